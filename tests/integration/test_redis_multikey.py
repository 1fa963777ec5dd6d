"""Multi-key commands through ringproxy (2 workers) over 3 redis-servers, ketama fnv1a_64 with
hash_tag "{}": MGET/MSET/DEL/EXISTS/UNLINK/TOUCH split by owner and merged; every key lands on
exactly the backend `ringctl owner` names; MSETNX and other multi-key commands whose keys have
different owners are refused with CROSSSLOT, and work when the keys share a hash tag."""
import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402
from harness import ErrorReply, RawConn  # noqa: E402


class RedisMultiKey(unittest.TestCase):
    WORKERS = 2

    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        cls.port = harness.free_port()
        cls.config = harness.write_config(harness.redis_pool_config(
            "multi", cls.port, [f"127.0.0.1:{p}:1" for p in cls.ports], hash_name="fnv1a_64",
            extra='  hash_tag: "{}"\n'))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=["--workers", str(cls.WORKERS)])
        cls.direct = {p: redis.Redis(host="127.0.0.1", port=p) for p in cls.ports}
        # A key set that has keys on every backend, chosen by the reference placement.
        candidates = [f"mk:{i}" for i in range(3000)]
        owners = cls.owners(candidates)
        by_port = {p: [k for k in candidates if owners[k] == p] for p in cls.ports}
        for p, ks in by_port.items():
            assert len(ks) >= 20, f"backend {p} owns only {len(ks)} of 3000 keys"
        cls.by_port = by_port
        cls.keys = [k for i in range(20) for p in cls.ports for k in [by_port[p][i]]]  # interleaved owners

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.config)

    @classmethod
    def owners(cls, keys):
        return {k: harness.label_port(lbl) for k, lbl in harness.ringctl_owners(cls.config, "multi", keys).items()}

    def setUp(self):
        for d in self.direct.values():
            d.flushall()
        self.client = redis.Redis(host="127.0.0.1", port=self.port)

    def tearDown(self):
        self.client.close()
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def placement(self):
        """{key: port} of every key on every backend, failing if a key is on two."""
        placed = {}
        for port, d in self.direct.items():
            for k in d.keys("*"):
                k = k.decode()
                self.assertNotIn(k, placed, f"{k} on two backends")
                placed[k] = port
        return placed

    def two_keys_with_different_owners(self):
        return self.by_port[self.ports[0]][0], self.by_port[self.ports[1]][0]

    # 2 -----------------------------------------------------------------------------------------
    def test_script_load_reaches_every_server_so_evalsha_works_for_any_key(self):
        # redis-py's register_script / evalsha, as Celery and Sidekiq use it.
        body = "return redis.call('SET', KEYS[1], ARGV[1])"
        sha = self.client.script_load(body)
        for port, d in self.direct.items():
            self.assertEqual(d.script_exists(sha), [True], f"script missing on {port}")
        for port in self.ports:
            key = self.by_port[port][0]
            self.assertEqual(self.client.evalsha(sha, 1, key, "v" + str(port)), b"OK")
            self.assertEqual(self.direct[port].get(key), ("v" + str(port)).encode())
        self.assertEqual(self.client.script_exists(sha, "0" * 40), [True, False])
        # A script one server lacks is reported missing for the pool.
        self.direct[self.ports[1]].script_flush()
        self.assertEqual(self.client.script_exists(sha), [False])
        self.client.script_flush()
        for d in self.direct.values():
            self.assertEqual(d.script_exists(sha), [False])

    def test_mset_then_each_key_is_on_its_owner_only(self):
        values = {k: f"value-of-{k}" for k in self.keys}
        self.assertTrue(self.client.mset(values))
        placed = self.placement()
        self.assertEqual(set(placed), set(self.keys))
        self.assertEqual(placed, self.owners(self.keys))
        self.assertEqual(set(placed.values()), set(self.ports))
        for k, v in values.items():
            self.assertEqual(self.direct[placed[k]].get(k), v.encode())

    def test_mget_with_missing_and_repeated_keys(self):
        present = self.keys[:30]
        self.client.mset({k: f"v:{k}" for k in present})
        missing = [f"{k}:nope" for k in self.keys[:9]]
        ask = [present[0], missing[0], present[1], present[2], missing[1], present[0], *present[3:], *missing[2:],
               present[5]]
        expected = [None if k in missing else f"v:{k}".encode() for k in ask]
        self.assertEqual(self.client.mget(ask), expected)
        self.assertEqual(self.client.mget(missing), [None] * len(missing))
        self.assertEqual(self.client.mget([present[4]]), [f"v:{present[4]}".encode()])
        # Exact RESP2 bytes for a small cross-shard MGET.
        with RawConn(self.port) as c:
            raw = c.call_raw("MGET", present[0], missing[0], present[1])
        self.assertEqual(raw, b"*3\r\n$%d\r\nv:%s\r\n$-1\r\n$%d\r\nv:%s\r\n" % (
            len(present[0]) + 2, present[0].encode(), len(present[1]) + 2, present[1].encode()))

    def test_del_exists_unlink_touch_sum_over_shards(self):
        ks = self.keys[:45]
        self.client.mset({k: "x" for k in ks})
        missing = [f"{k}:missing" for k in ks[:6]]
        dup = ks[:5]
        # EXISTS and TOUCH count a repeated key each time, as Redis does.
        self.assertEqual(self.client.exists(*ks, *missing, *dup), 45 + 5)
        self.assertEqual(self.client.touch(*ks, *missing, *dup), 45 + 5)
        # DEL and UNLINK count each removed key once.
        self.assertEqual(self.client.delete(*ks[:15], *missing, *ks[:3]), 15)
        self.assertEqual(self.client.unlink(*ks[15:30], *missing[:2], ks[20]), 15)
        self.assertEqual(self.client.delete(*ks[:30]), 0)
        self.assertEqual(self.client.exists(*ks), 15)
        self.assertEqual(self.placement(), {k: p for k, p in self.owners(ks[30:]).items()})
        # One-key forms, and raw bytes of the merged integer.
        with RawConn(self.port) as c:
            self.assertEqual(c.call_raw("EXISTS", ks[40]), b":1\r\n")
            self.assertEqual(c.call_raw("DEL", ks[40], ks[41], ks[0]), b":2\r\n")
            self.assertEqual(c.call_raw("TOUCH", ks[42], ks[43], ks[44], ks[42]), b":4\r\n")
            self.assertEqual(c.call_raw("UNLINK", ks[42], ks[43], ks[44]), b":3\r\n")
        self.assertEqual(sum(d.dbsize() for d in self.direct.values()), 10)

    def test_keys_of_one_owner_are_sent_whole_and_answered_exactly(self):
        # All keys under one hash tag: the request goes to that server as the client sent it and
        # its reply comes back as it is; the results must be the same as for split requests.
        tag_keys = [f"{{t42}}:{i}" for i in range(12)]
        owner = self.owners(["t42"])["t42"]
        self.assertTrue(self.client.mset({k: f"w:{k}" for k in tag_keys[:8]}))
        self.assertEqual(set(self.placement()), set(tag_keys[:8]))
        self.assertEqual(set(self.placement().values()), {owner})
        ask = [tag_keys[0], tag_keys[9], tag_keys[0], *tag_keys[1:8], tag_keys[10]]
        self.assertEqual(self.client.mget(ask), [None if k in tag_keys[8:] else f"w:{k}".encode() for k in ask])
        self.direct[owner].rpush(tag_keys[11], "not a string")
        self.assertEqual(self.client.mget([tag_keys[11], tag_keys[0]]), [None, f"w:{tag_keys[0]}".encode()])
        with RawConn(self.port) as c:
            self.assertEqual(c.call_raw("MGET", tag_keys[1], tag_keys[9]),
                             b"*2\r\n$%d\r\nw:%s\r\n$-1\r\n" % (len(tag_keys[1]) + 2, tag_keys[1].encode()))
            self.assertEqual(c.call_raw("EXISTS", *tag_keys[:3], tag_keys[9], tag_keys[0]), b":4\r\n")
            self.assertEqual(c.call_raw("TOUCH", *tag_keys[:2]), b":2\r\n")
            self.assertEqual(c.call_raw("DEL", *tag_keys[5:10]), b":3\r\n")  # 5, 6 and 7 exist
            self.assertEqual(c.call_raw("UNLINK", tag_keys[4], tag_keys[11]), b":2\r\n")
            # Inline requests are re-encoded as RESP before they are sent whole.
            c.send(b"MGET {t42}:0 {t42}:1 {t42}:9\r\n")
            self.assertEqual(c.read(), [f"w:{tag_keys[0]}".encode(), f"w:{tag_keys[1]}".encode(), None])
            # RESP3: the backend connection speaks RESP3 too, so its nulls arrive as RESP3 nulls.
            c.call("HELLO", "3")
            self.assertEqual(c.call_raw("MGET", tag_keys[0], tag_keys[9]),
                             b"*2\r\n$%d\r\nw:%s\r\n_\r\n" % (len(tag_keys[0]) + 2, tag_keys[0].encode()))
        self.assertEqual(sorted(self.placement()), sorted(tag_keys[:4]))

    def test_msetnx_needs_one_owner(self):
        a, b = self.two_keys_with_different_owners()
        with RawConn(self.port) as c:
            reply = c.call("MSETNX", a, "1", b, "2")
            self.assertIsInstance(reply, ErrorReply)
            self.assertTrue(reply.startswith("CROSSSLOT"), reply)
            self.assertEqual(c.call("PING"), b"PONG")
        self.assertEqual(self.placement(), {}, "a refused MSETNX must write nothing")
        # With a common hash tag: all or nothing on one server.
        self.assertEqual(self.client.msetnx({"{acct7}:a": "1", "{acct7}:b": "2", "{acct7}:c": "3"}), True)
        self.assertEqual(self.client.msetnx({"{acct7}:c": "new", "{acct7}:d": "4"}), False)
        self.assertEqual(self.client.mget(["{acct7}:a", "{acct7}:b", "{acct7}:c", "{acct7}:d"]),
                         [b"1", b"2", b"3", None])
        placed = self.placement()
        self.assertEqual(set(placed), {"{acct7}:a", "{acct7}:b", "{acct7}:c"})
        self.assertEqual(len(set(placed.values())), 1)
        self.assertEqual(set(placed.values()), {self.owners(["acct7"])["acct7"]})

    # 3 -----------------------------------------------------------------------------------------
    def test_hash_tagged_keys_share_a_backend(self):
        # user1 .. user40, and hash-like tags: fnv1a_64 (truncated to 32 bits, as twemproxy
        # does) may put all of a run of near-identical short tags on one server.
        users = [f"user{u}" for u in range(1, 41)] + [f"u{hashlib.sha1(b'%d' % u).hexdigest()[:10]}" for u in range(40)]
        fields = ("a", "b", "profile", "x:{y}")
        keys = [f"{{{u}}}:{field}" for u in users for field in fields]
        self.assertTrue(self.client.mset({k: k for k in keys}))
        placed = self.placement()
        self.assertEqual(set(placed), set(keys))
        tag_owner = self.owners(users)
        for u in users:
            ports = {placed[f"{{{u}}}:{f}"] for f in fields}
            self.assertEqual(len(ports), 1, f"{u} split over {ports}")
            # The tag alone decides: the owner of "{userN}:..." is the owner of "userN".
            self.assertEqual(ports, {tag_owner[u]})
        self.assertEqual(len(set(placed.values())), 3, "80 tags should use every backend")
        self.assertEqual(placed, self.owners(keys))

    def test_cross_owner_multi_key_commands_get_crossslot(self):
        x, y = self.two_keys_with_different_owners()
        # Make sure the two keys really have different owners under the tag rules too.
        o = self.owners([x, y])
        self.assertNotEqual(o[x], o[y])
        self.client.rpush(x, "x1", "x2")
        self.client.sadd(y, "m")
        refused = [
            ("RPOPLPUSH", x, y), ("LMOVE", x, y, "LEFT", "RIGHT"), ("SINTER", x, y), ("SUNION", x, y),
            ("SINTERSTORE", x, x, y), ("SMOVE", y, x, "m"), ("RENAME", x, y), ("ZUNIONSTORE", x, "2", x, y),
            ("EVAL", "return 1", "2", x, y), ("PFMERGE", x, y), ("SDIFF", x, y), ("MSETNX", x, "1", y, "2"),
        ]
        with RawConn(self.port) as c:
            for cmd in refused:
                with self.subTest(cmd=cmd[0]):
                    reply = c.call(*cmd)
                    self.assertIsInstance(reply, ErrorReply, cmd)
                    self.assertTrue(reply.startswith("CROSSSLOT "), reply)
                    self.assertEqual(c.call("PING"), b"PONG")
        # Nothing was changed on any backend.
        self.assertEqual(self.client.lrange(x, 0, -1), [b"x1", b"x2"])
        self.assertEqual(self.client.smembers(y), {b"m"})
        self.assertEqual(set(self.placement()), {x, y})

    def test_multi_key_commands_work_under_one_hash_tag(self):
        src, dst = "{q9}:src", "{q9}:dst"
        s1, s2, s3 = "{q9}:s1", "{q9}:s2", "{q9}:s3"
        c = self.client
        self.assertEqual(c.rpush(src, "a", "b", "c"), 3)
        self.assertEqual(c.rpoplpush(src, dst), b"c")
        self.assertEqual(c.lmove(src, dst, "LEFT", "RIGHT"), b"a")
        self.assertEqual(c.lrange(dst, 0, -1), [b"c", b"a"])
        self.assertEqual(c.lrange(src, 0, -1), [b"b"])
        c.sadd(s1, "a", "b", "c", "d")
        c.sadd(s2, "b", "c", "e")
        self.assertEqual(c.sinter(s1, s2), {b"b", b"c"})
        self.assertEqual(c.sunion(s1, s2), {b"a", b"b", b"c", b"d", b"e"})
        self.assertEqual(c.sdiff(s1, s2), {b"a", b"d"})
        self.assertEqual(c.sinterstore(s3, [s1, s2]), 2)
        self.assertEqual(c.smembers(s3), {b"b", b"c"})
        self.assertTrue(c.smove(s1, s2, "a"))
        self.assertEqual(c.smembers(s2), {b"a", b"b", b"c", b"e"})
        self.assertTrue(c.rename(s3, "{q9}:renamed"))
        self.assertEqual(c.smembers("{q9}:renamed"), {b"b", b"c"})
        c.zadd("{q9}:z1", {"a": 1, "b": 2})
        c.zadd("{q9}:z2", {"b": 10, "c": 3})
        self.assertEqual(c.zunionstore("{q9}:zu", ["{q9}:z1", "{q9}:z2"]), 3)
        self.assertEqual(c.zrange("{q9}:zu", 0, -1, withscores=True), [(b"a", 1.0), (b"c", 3.0), (b"b", 12.0)])
        self.assertEqual(c.eval("return {KEYS[1], KEYS[2], ARGV[1]}", 2, src, dst, "arg"),
                         [src.encode(), dst.encode(), b"arg"])
        placed = self.placement()
        self.assertEqual(len(set(placed.values())), 1)
        self.assertEqual(set(placed.values()), {self.owners(["q9"])["q9"]})

    def test_store_destinations_are_routed_like_keys(self):
        # SORT ... STORE dst and GEORADIUS ... STORE/STOREDIST dst write dst: it must share the
        # source's owner (CROSSSLOT otherwise), and then it is readable through the proxy.
        a, b = self.two_keys_with_different_owners()
        self.client.rpush(a, 3, 1, 2)
        with self.assertRaises(redis.exceptions.ResponseError) as ctx:
            self.client.sort(a, store=b)
        self.assertIn("CROSSSLOT", str(ctx.exception))
        self.client.rpush("{s}:list", 3, 1, 2)
        self.assertEqual(self.client.sort("{s}:list", store="{s}:out"), 3)
        self.assertEqual(self.client.lrange("{s}:out", 0, -1), [b"1", b"2", b"3"])
        self.client.geoadd("{g}:places", (13.361389, 38.115556, "Palermo"))
        self.assertEqual(self.client.georadius("{g}:places", 15, 37, 200, "km", store="{g}:near"), 1)
        self.assertEqual(self.client.zrange("{g}:near", 0, -1), [b"Palermo"])
        g_owner = self.owners(["{g}:places"])["{g}:places"]
        elsewhere = next(ks[5] for port, ks in self.by_port.items() if port != g_owner)  # a key nobody wrote
        with self.assertRaises(redis.exceptions.ResponseError) as ctx:
            self.client.georadiusbymember("{g}:places", "Palermo", 10, "km", store_dist=elsewhere)
        self.assertIn("CROSSSLOT", str(ctx.exception))
        # BY/GET patterns read other keys, which may be anywhere: refused, and the list untouched.
        with self.assertRaises(redis.exceptions.ResponseError) as ctx:
            self.client.sort(a, by="weight_*")
        self.assertIn("pattern reads other keys", str(ctx.exception))
        self.assertEqual(self.client.sort(a, by="nosort"), [b"3", b"1", b"2"])
        self.assertEqual(self.placement().get(b), None)  # nothing written to b's server
        self.assertEqual(self.placement().get(elsewhere), None)


if __name__ == "__main__":
    unittest.main(verbosity=2)
