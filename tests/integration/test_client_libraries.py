"""Real client libraries, in their default settings and built exactly as their READMEs show,
against ringproxy (2 workers) over 3 real redis-servers:

- redis-py (Debian's python3-redis): `redis.Redis(host=, port=)`, its default `pipeline()`
  (transactional: MULTI ... EXEC) and `pipeline(transaction=False)` over keys on all shards,
  MGET/DEL across shards, binary values, EX/TTL, hashes, lists, WATCH and aborted MULTI.
- ioredis and node-redis (tests/clients, locked by package-lock.json; `npm ci` when
  node_modules is missing): tests/clients/ioredis_test.js and node_redis_test.js run the same
  kind of scenario and check every reply and that the connection never dropped. Both speak
  RESP3 by default (HELLO 3 on connect). Without node the test fails, naming scripts/setup.
- A raw RESP3 session whose replies must equal, byte for byte, a redis-server's after HELLO 3,
  and INFO over RESP3 (ioredis' ready check) describing the backends as it does over RESP2.
- Transactions: atomic on one server under concurrent readers, EXECABORT after a bad command,
  WATCH aborting EXEC, and `transactions: strict` refusing a second server (CROSSSLOT).

Keys that must span shards are chosen with `ringctl owner`, and where they landed is checked on
the backends directly."""
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import node_clients  # noqa: E402
import redis  # noqa: E402
from harness import ErrorReply, RawConn, encode_command  # noqa: E402

EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
BINARY = b"\x00\r\n\x00\r\n$5\r\nhello\r\n*2\r\n:1\r\n-ERR no\r\n+OK\r\n_\r\n" + bytes(range(256)) + b"\r"


class ClientLibraries(unittest.TestCase):
    WORKERS = 2

    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        cls.reference = harness.start_redis()  # a lone redis-server: what the replies must equal
        cls.port, cls.strict_port = harness.free_port(), harness.free_port()
        servers = [f"127.0.0.1:{p}:1" for p in cls.ports]
        cls.config = harness.write_config(
            harness.redis_pool_config("libs", cls.port, servers, hash_name="murmur", extra='  hash_tag: "{}"\n')
            + harness.redis_pool_config("strict", cls.strict_port, servers, hash_name="murmur",
                                        extra='  hash_tag: "{}"\n  transactions: strict\n'))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=["--workers", str(cls.WORKERS),
                                                                         "-s", str(harness.free_port())])
        cls.proxy.wait_port(port=cls.strict_port)
        cls.direct = {p: redis.Redis(host="127.0.0.1", port=p) for p in cls.ports}
        for d in cls.direct.values():
            d.flushall()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends + [cls.reference]:
            b.stop()
        os.unlink(cls.config)

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    # helpers -----------------------------------------------------------------------------------
    def owners(self, keys, pool="libs"):
        """{key: backend port} from `ringctl owner`."""
        return {k: harness.label_port(v) for k, v in harness.ringctl_owners(self.config, pool, keys).items()}

    def spread(self, prefix, per_server, pool="libs"):
        """per_server keys on each of the 3 backends, interleaved so that any 3 consecutive keys
        sit on 3 different backends."""
        owners = self.owners([f"{prefix}:{i}" for i in range(200)], pool)
        by_port = {}
        for k, port in owners.items():
            by_port.setdefault(port, []).append(k)
        self.assertEqual(sorted(by_port), sorted(self.ports), "ringctl owner names other backends")
        self.assertTrue(all(len(v) >= per_server for v in by_port.values()), "200 keys too few to spread")
        return [by_port[p][j] for j in range(per_server) for p in self.ports]

    def assert_on_owner(self, key, value, pool="libs"):
        """`key` holds `value` on the backend ringctl names, and on no other backend."""
        owner = self.owners([key], pool)[key]
        for port, d in self.direct.items():
            if port == owner:
                self.assertEqual(d.get(key), value, f"{key} on its owner 127.0.0.1:{port}")
            else:
                self.assertFalse(d.exists(key), f"{key} also on 127.0.0.1:{port} (owner is {owner})")

    def proxy_client(self):
        return redis.Redis(host="127.0.0.1", port=self.port)

    def assert_one_connection(self, client, sockname):
        """The client never reconnected: one connection created, still the same socket."""
        pool = client.connection_pool
        self.assertEqual(pool._created_connections, 1, "redis-py opened another connection")
        conn = pool._available_connections[0]
        self.assertIsNotNone(conn._sock, "redis-py's connection was closed")
        self.assertEqual(conn._sock.getsockname(), sockname, "redis-py reconnected")

    def first_sockname(self, client):
        client.ping()
        return client.connection_pool._available_connections[0]._sock.getsockname()

    # redis-py ----------------------------------------------------------------------------------
    def test_redis_py_default_client(self):
        r = self.proxy_client()  # the README's redis.Redis(host=..., port=...)
        sockname = self.first_sockname(r)
        keys = self.spread("py:s", 3)
        self.assertTrue(r.set("py:str", "hello"))
        self.assertEqual(r.get("py:str"), b"hello")
        self.assertIsNone(r.get("py:missing"))
        for i, k in enumerate(keys):
            self.assertTrue(r.set(k, f"v{i}"))
        self.assertEqual(r.mget(keys + ["py:missing"]), [f"v{i}".encode() for i in range(len(keys))] + [None])
        self.assertEqual(r.incr("py:counter"), 1)
        self.assertEqual(r.incrby("py:counter", 41), 42)
        dels = self.spread("py:d", 2)
        for k in dels:
            r.set(k, "x")
        self.assertEqual(r.delete(*dels, "py:missing"), len(dels))
        self.assertEqual(r.exists(*dels), 0)
        self.assertTrue(r.set("py:bin", BINARY))
        self.assertEqual(r.get("py:bin"), BINARY)
        self.assertTrue(r.set(b"py:\x00\r\n\xffkey", BINARY[:40]))
        self.assertEqual(r.get(b"py:\x00\r\n\xffkey"), BINARY[:40])
        self.assertTrue(r.set("py:exp", "data", ex=100))
        self.assertTrue(0 < r.ttl("py:exp") <= 100)
        self.assertEqual(r.hset("py:h", mapping={"f1": "a", "f2": "b", "f\r\n3": "c\r\n"}), 3)
        self.assertEqual(r.hgetall("py:h"), {b"f1": b"a", b"f2": b"b", b"f\r\n3": b"c\r\n"})
        self.assertEqual(r.lpush("py:l", "a", "b", "c"), 3)
        self.assertEqual(r.lrange("py:l", 0, -1), [b"c", b"b", b"a"])
        for i, k in enumerate(keys):
            self.assert_on_owner(k, f"v{i}".encode())
        self.assert_one_connection(r, sockname)

    def test_redis_py_default_pipeline_is_a_transaction_over_shards(self):
        r = self.proxy_client()
        sockname = self.first_sockname(r)
        keys = self.spread("py:tx", 2)
        pipe = r.pipeline()  # transaction=True: MULTI ... EXEC in one write
        for i, k in enumerate(keys):
            pipe.set(k, f"t{i}")
        for k in keys:
            pipe.get(k)
        pipe.incr(keys[0] + ":n").incr(keys[1] + ":n").incr(keys[0] + ":n").get("py:tx:missing")
        self.assertEqual(pipe.execute(), [True] * len(keys) + [f"t{i}".encode() for i in range(len(keys))]
                         + [1, 1, 2, None])
        for i, k in enumerate(keys):
            self.assert_on_owner(k, f"t{i}".encode())
        # A long transaction: 600 commands over the 3 servers, replies merged back in order.
        pipe = r.pipeline()
        for i in range(300):
            pipe.incr(keys[i % len(keys)] + ":big").get(keys[(i + 1) % len(keys)])
        expected = []
        for i in range(300):
            expected += [i // len(keys) + 1, f"t{(i + 1) % len(keys)}".encode()]
        self.assertEqual(pipe.execute(), expected)
        # An error reply inside the transaction (wrong type) comes back in its place.
        pipe = r.pipeline()
        pipe.set(keys[0], "x").lpush(keys[0], "y").set(keys[1], "z")
        results = pipe.execute(raise_on_error=False)
        self.assertEqual(results[0], True)
        self.assertIsInstance(results[1], redis.ResponseError)
        self.assertIn("WRONGTYPE", str(results[1]))
        self.assertEqual(results[2], True)
        self.assertEqual(r.mget(keys[:2]), [b"x", b"z"])
        self.assert_one_connection(r, sockname)

    def test_redis_py_pipeline_without_transaction(self):
        r = self.proxy_client()
        sockname = self.first_sockname(r)
        keys = self.spread("py:nt", 3)
        pipe = r.pipeline(transaction=False)
        expected = []
        for rnd in range(20):
            for i, k in enumerate(keys):
                pipe.set(k, f"{rnd}.{i}")
                pipe.get(k)
                pipe.incr(k + ":n")
                expected += [True, f"{rnd}.{i}".encode(), rnd + 1]
        pipe.mget(keys).delete(*(k + ":n" for k in keys))
        expected += [[f"19.{i}".encode() for i in range(len(keys))], len(keys)]
        self.assertEqual(pipe.execute(), expected)
        for i, k in enumerate(keys):
            self.assert_on_owner(k, f"19.{i}".encode())
        self.assert_one_connection(r, sockname)

    def test_redis_py_watch_aborts_exec(self):
        r, other = self.proxy_client(), self.proxy_client()
        key = "{w}:py"
        r.set(key, "start")
        with r.pipeline() as pipe:  # redis-py's README idiom for WATCH
            pipe.watch(key)
            self.assertEqual(pipe.get(key), b"start")  # immediate mode while watching
            other.set(key, "changed")
            pipe.multi()
            pipe.set(key, "mine")
            with self.assertRaises(redis.WatchError):
                pipe.execute()
        self.assertEqual(r.get(key), b"changed")
        with r.pipeline() as pipe:  # nobody interferes: EXEC runs
            pipe.watch(key)
            value = pipe.get(key)
            pipe.multi()
            pipe.set(key, value + b"+mine")
            self.assertEqual(pipe.execute(), [True])
        self.assertEqual(r.get(key), b"changed+mine")

    def test_redis_py_pipeline_with_unknown_command_is_aborted(self):
        r = self.proxy_client()
        sockname = self.first_sockname(r)
        pipe = r.pipeline()
        pipe.set("py:abort", "v").execute_command("NOSUCHCMD", "x").set("py:abort2", "v")
        with self.assertRaisesRegex(redis.ResponseError, "unknown command"):
            pipe.execute()
        self.assertEqual(r.exists("py:abort", "py:abort2"), 0)
        self.assertTrue(r.ping())
        self.assert_one_connection(r, sockname)

    # Node.js libraries -------------------------------------------------------------------------
    def run_node_library(self, script, lib):
        problem = node_clients.ensure_installed()
        if problem:
            self.fail(problem)
        keys = {"spread": self.spread(f"{lib}:s", 3), "dels": self.spread(f"{lib}:d", 2),
                "txn": self.spread(f"{lib}:t", 2)}
        out = node_clients.run_script(script, self.port, json.dumps(keys))
        self.assertEqual(out.returncode, 0, f"{script} failed:\n{out.stdout}\n{out.stderr}\n"
                                            f"proxy log:\n{self.proxy.output()[-2000:]}")
        self.assertIn("OK", out.stdout)
        # Where the library's writes landed: on the owners ringctl names.
        for i, k in enumerate(keys["spread"]):
            self.assert_on_owner(k, f"p{i}".encode())
        for i in range(3):
            self.assert_on_owner(keys["txn"][i], f"m{i}".encode())
        self.assert_on_owner(keys["txn"][3], b"2")
        for k in keys["dels"]:
            self.assertFalse(any(d.exists(k) for d in self.direct.values()), f"{k} survived DEL")
        return out.stdout.strip()

    def test_ioredis(self):
        print(self.run_node_library("ioredis_test.js", "ioredis"), file=sys.stderr)

    def test_node_redis(self):
        print(self.run_node_library("node_redis_test.js", "node_redis"), file=sys.stderr)

    # RESP3 -------------------------------------------------------------------------------------
    def test_resp3_session_matches_redis_byte_for_byte(self):
        spread = self.spread("r3:s", 2)
        script = [
            ("DEL", "r3:h", "r3:set", "r3:z", "r3:l", "r3:n", *spread),
            ("HSET", "r3:h", "f1", "a", "f2", "b", "f\r\n3", "c"),
            ("HGETALL", "r3:h"),                       # %3 map
            ("HGETALL", "r3:missing"),                 # %0
            ("SADD", "r3:set", "3", "1", "2"),         # integers: an intset, same order everywhere
            ("SMEMBERS", "r3:set"),                    # ~3 set
            ("ZADD", "r3:z", "1.5", "m", "2", "n"),
            ("ZSCORE", "r3:z", "m"),                   # ,1.5 double
            ("ZRANGE", "r3:z", "0", "-1", "WITHSCORES"),  # array of [member, double] pairs
            ("ZSCORE", "r3:z", "missing"),             # _ null
            ("GET", "r3:missing"),                     # _ null
            ("LPUSH", "r3:l", "x", "y"),
            ("LRANGE", "r3:l", "0", "-1"),
            ("INCR", "r3:n"),
            ("HGET", "r3:h", "nofield"),               # _
            ("LPOP", "r3:missing"),                    # _
            *[("SET", k, f"v{i}") for i, k in enumerate(spread)],
            ("MGET", *spread, "r3:missing"),           # merged over 3 shards, _ for the missing key
            ("DEL", spread[0], spread[1], spread[2], "r3:missing"),
            ("GET", "r3:h"),                           # WRONGTYPE error
            ("MULTI",), ("GET", "r3:missing"), ("HGETALL", "r3:h"), ("EXEC",),
            # WATCH moves the client to a dedicated backend connection: it must speak RESP3 too
            ("WATCH", "r3:h"), ("HGETALL", "r3:h"), ("HGET", "r3:h", "nofield"), ("ZSCORE", "r3:z", "m"),
            ("MULTI",), ("HGETALL", "r3:h"), ("HGET", "r3:h", "nofield"), ("EXEC",),  # one server: WATCH's rule
            ("WATCH", "r3:h"), ("UNWATCH",), ("HGETALL", "r3:h"),
        ]
        with RawConn(self.port) as proxy, RawConn(self.reference.port) as ref:
            hello = proxy.call_raw("HELLO", "3")
            self.assertTrue(hello.startswith(b"%"), hello)
            self.assertIn(("proto", 3), [(k.decode(), v) for k, v in harness.parse_reply(hello)[0]])
            self.assertTrue(ref.call_raw("HELLO", "3").startswith(b"%"))
            for cmd in script:  # one command at a time
                want, got = ref.call_raw(*cmd), proxy.call_raw(*cmd)
                self.assertEqual(got, want, f"reply to {cmd}")
            # the same script again, every command in one write
            blob = b"".join(encode_command(*cmd) for cmd in script)
            ref.send(blob)
            proxy.send(blob)
            for cmd in script:
                want, got = ref.read_raw(), proxy.read_raw()
                self.assertEqual(got, want, f"pipelined reply to {cmd}")
            # the types the brief names, spelled out
            self.assertTrue(proxy.call_raw("HGETALL", "r3:h").startswith(b"%3\r\n"))
            self.assertTrue(proxy.call_raw("SMEMBERS", "r3:set").startswith(b"~3\r\n"))
            self.assertEqual(proxy.call_raw("ZSCORE", "r3:z", "m"), b",1.5\r\n")
            self.assertEqual(proxy.call_raw("GET", "r3:missing"), b"_\r\n")

    def test_info_over_resp3_reports_what_resp2_reports(self):
        """ioredis and node-redis speak RESP3 by default, and ioredis sends INFO as its ready
        check: INFO after HELLO 3 must describe the backends as it does over RESP2 (a RESP3
        backend answers INFO with a verbatim string '=', not '$')."""
        with RawConn(self.port) as r2, RawConn(self.port) as r3:
            r2.call("SET", "info:k", "v")
            self.assertTrue(r3.call_raw("HELLO", "3").startswith(b"%"))
            dbsize = r2.call("DBSIZE")
            self.assertEqual(r3.call("DBSIZE"), dbsize)
            text2 = r2.call("INFO").decode()
            raw3 = r3.call_raw("INFO")
            self.assertIn(raw3[:1], (b"$", b"="), raw3[:40])
            text3 = harness.parse_reply(raw3)[0].decode()
            if raw3.startswith(b"="):
                text3 = text3[4:]  # "txt:"

            def fields(text):
                return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            f2, f3 = fields(text2), fields(text3)
            self.assertTrue(f2.get("redis_version", "unknown")[0].isdigit(), text2)
            self.assertIn("db0", f2, text2)
            self.assertTrue(f2["db0"].startswith(f"keys={dbsize},"), text2)
            for name in ("redis_version", "backends_answering", "db0"):
                self.assertEqual(f3.get(name), f2.get(name), f"INFO field {name} over RESP3:\n{text3}")

    # Transactions ------------------------------------------------------------------------------
    def test_transaction_is_atomic_for_concurrent_readers(self):
        keys = ["{t}:a", "{t}:b", "{t}:c"]
        self.assertEqual(len(set(self.owners(keys).values())), 1)
        writer = self.proxy_client()
        writer.mset({k: "0" for k in keys})
        done = threading.Event()
        torn, reads, seen = [], [0], set()

        def reader():
            with RawConn(self.port) as c:
                request = encode_command("MGET", *keys)
                while not done.is_set():
                    c.send(request)
                    values = c.read()
                    reads[0] += 1
                    seen.add(values[0])
                    if len(set(values)) != 1:
                        torn.append(values)
                        if len(torn) > 5:
                            return

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            deadline = time.time() + 2.0
            i = 0
            # redis-py's default pipeline: MULTI SET SET SET EXEC in one write
            while time.time() < deadline and i < 600:
                i += 1
                pipe = writer.pipeline()
                for k in keys:
                    pipe.set(k, str(i))
                self.assertEqual(pipe.execute(), [True] * 3)
            # a client that waits for every QUEUED before sending the next command
            with RawConn(self.port) as c:
                deadline = time.time() + 1.0
                while time.time() < deadline and i < 900:
                    i += 1
                    self.assertEqual(c.call_raw("MULTI"), b"+OK\r\n")
                    for k in keys:
                        self.assertEqual(c.call_raw("SET", k, str(i)), b"+QUEUED\r\n")
                    self.assertEqual(c.call_raw("EXEC"), b"*3\r\n+OK\r\n+OK\r\n+OK\r\n")
        finally:
            done.set()
            for t in threads:
                t.join(10)
        self.assertEqual(torn[:5], [], f"a reader saw a half-applied transaction ({len(torn)} times)")
        self.assertGreater(reads[0], 100, "the readers hardly ran")
        self.assertGreater(len(seen), 10, "the readers saw too few distinct transactions")
        self.assertEqual(writer.mget(keys), [str(i).encode()] * 3)

    def test_execabort_after_unknown_command(self):
        with RawConn(self.port) as proxy, RawConn(self.reference.port) as ref:
            for c in (proxy, ref):
                c.call("DEL", "{x}:a", "{x}:b")
            script = [("MULTI",), ("SET", "{x}:a", "1"), ("NOSUCHCMD", "x"), ("SET", "{x}:b", "2"), ("EXEC",),
                      ("MGET", "{x}:a", "{x}:b")]
            got = [proxy.call_raw(*cmd) for cmd in script]
            want = [ref.call_raw(*cmd) for cmd in script]
            self.assertTrue(got[2].startswith(b"-ERR"), got[2])
            self.assertEqual(got[4], EXECABORT)
            self.assertEqual(got[5], b"*2\r\n$-1\r\n$-1\r\n", "a command of the aborted transaction ran")
            self.assertEqual(got, want)
            # Also when the bad command is the first one, and with the arity error Redis itself
            # detects (the README example of ioredis).
            for bad in [("NOSUCHCMD",), ("SET", "{x}:a")]:
                got = [proxy.call_raw(*cmd) for cmd in [("MULTI",), bad, ("SET", "{x}:b", "2"), ("EXEC",)]]
                self.assertEqual(got[3], EXECABORT, f"EXEC after {bad}: {got}")
                self.assertEqual(proxy.call_raw("EXISTS", "{x}:a", "{x}:b"), b":0\r\n", f"after {bad}")
            self.assertEqual(proxy.call_raw("PING"), b"+PONG\r\n")

    def test_watch_then_change_from_another_connection_aborts_exec(self):
        key = "{w}:k"
        with RawConn(self.port) as c, RawConn(self.port) as other, \
                RawConn(self.reference.port) as ref, RawConn(self.reference.port) as ref_other:
            results = []
            for conn, changer in ((c, other), (ref, ref_other)):
                conn.call("SET", key, "start")
                steps = [conn.call_raw("WATCH", key), changer.call_raw("SET", key, "changed"),
                         conn.call_raw("MULTI"), conn.call_raw("SET", key, "mine"), conn.call_raw("EXEC"),
                         conn.call_raw("GET", key)]
                results.append(steps)
            self.assertEqual(results[0][4], b"*-1\r\n", "EXEC ran although the watched key changed")
            self.assertEqual(results[0][5], b"$7\r\nchanged\r\n")
            self.assertEqual(results[0], results[1])
            # Unchanged: the transaction runs; and the connection is free of the WATCH afterwards.
            self.assertEqual(c.call_raw("WATCH", key), b"+OK\r\n")
            self.assertEqual(c.call_raw("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call_raw("SET", key, "mine"), b"+QUEUED\r\n")
            self.assertEqual(c.call_raw("EXEC"), b"*1\r\n+OK\r\n")
            other.call("SET", key, "later")
            self.assertEqual(c.call_raw("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call_raw("SET", key, "again"), b"+QUEUED\r\n")
            self.assertEqual(c.call_raw("EXEC"), b"*1\r\n+OK\r\n")
            self.assertEqual(c.call_raw("GET", key), b"$5\r\nagain\r\n")

    def test_strict_pool_refuses_a_second_server(self):
        a, b = self.spread("strict:k", 1, pool="strict")[:2]
        with RawConn(self.strict_port) as c:
            c.call("DEL", a)
            c.call("DEL", b)
            self.assertEqual(c.call_raw("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call_raw("SET", a, "1"), b"+QUEUED\r\n")
            crossslot = c.call("SET", b, "2")
            self.assertIsInstance(crossslot, ErrorReply)
            self.assertTrue(crossslot.startswith("CROSSSLOT"), crossslot)
            self.assertEqual(c.call_raw("EXEC"), EXECABORT)
            self.assertEqual(c.call_raw("MGET", a, b), b"*2\r\n$-1\r\n$-1\r\n")
            # Keys under one hash tag are fine in the strict pool.
            self.assertEqual(c.call_raw("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call_raw("SET", "{s}:a", "1"), b"+QUEUED\r\n")
            self.assertEqual(c.call_raw("INCR", "{s}:b"), b"+QUEUED\r\n")
            self.assertEqual(c.call_raw("EXEC"), b"*2\r\n+OK\r\n:1\r\n")
            c.call("DEL", "{s}:a", "{s}:b")
        # redis-py's default (transactional) pipeline over two servers fails the same way.
        r = redis.Redis(host="127.0.0.1", port=self.strict_port)
        pipe = r.pipeline()
        pipe.set(a, "1").set(b, "2")
        with self.assertRaisesRegex(redis.ResponseError, "CROSSSLOT"):
            pipe.execute()
        self.assertEqual(r.mget(a, b), [None, None])


if __name__ == "__main__":
    unittest.main(verbosity=2)
