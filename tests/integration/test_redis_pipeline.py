"""Redis data path through ringproxy (2 workers) over 3 real redis-servers: deep pipelines in
one write, reply order and exact reply bytes; large and binary values; clients that vanish
with requests in flight."""
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402
from harness import RawConn, encode_command  # noqa: E402

MIB = 1024 * 1024


def bulk(b):
    if b is None:
        return b"$-1\r\n"
    return b"$%d\r\n%s\r\n" % (len(b), b)


def integer(n):
    return b":%d\r\n" % n


def array(items):
    return b"*%d\r\n" % len(items) + b"".join(items)


WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
NOT_INT = b"-ERR value is not an integer or out of range\r\n"


class PipelineModel:
    """Generates mixed commands with the exact replies Redis gives, from a model of the data."""

    def __init__(self, prefix, seed):
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.data = {}  # key(bytes) -> ("string", bytes) | ("hash", dict) | ("list", list) | ("set", set)
        self.strings = [f"{prefix}:s{i}".encode() for i in range(60)]
        self.counters = [f"{prefix}:c{i}".encode() for i in range(12)]
        self.hashes = [f"{prefix}:h{i}".encode() for i in range(12)]
        self.lists = [f"{prefix}:l{i}".encode() for i in range(12)]
        self.sets = [f"{prefix}:z{i}".encode() for i in range(12)]
        self.all = self.strings + self.counters + self.hashes + self.lists + self.sets

    def value(self):
        r = self.rng.random()
        if r < 0.1:
            return b""
        if r < 0.25:
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 40)))  # \r\n, NUL, ...
        return b"v%d" % self.rng.randrange(10 ** 9)

    def type_of(self, k):
        return self.data[k][0] if k in self.data else None

    def string_value(self, k):
        t = self.data.get(k)
        return t[1] if t and t[0] == "string" else None

    def pick(self, pool, n):
        return [self.rng.choice(pool) for _ in range(n)]

    def next(self):
        """(command args, expected reply bytes)"""
        rng, d = self.rng, self.data
        op = rng.randrange(26)
        if op <= 3:
            k, v = rng.choice(self.strings), self.value()
            d[k] = ("string", v)
            return [b"SET", k, v], b"+OK\r\n"
        if op <= 6:
            k = rng.choice(self.strings + self.counters + self.hashes)
            t = self.type_of(k)
            if t not in (None, "string"):
                return [b"GET", k], WRONGTYPE
            return [b"GET", k], bulk(self.string_value(k))
        if op <= 8:
            k = rng.choice(self.counters + self.strings[:3])
            t = d.get(k)
            if t is None:
                n = 1
            else:
                try:
                    n = int(t[1]) + 1
                    if not t[1] or t[1] != str(int(t[1])).encode():
                        raise ValueError
                except ValueError:
                    return [b"INCR", k], NOT_INT
            d[k] = ("string", str(n).encode())
            return [b"INCR", k], integer(n)
        if op == 9:
            keys = self.pick(self.all, rng.randrange(1, 5))
            n = sum(1 for k in set(keys) if k in d)
            for k in keys:
                d.pop(k, None)
            return [b"DEL", *keys], integer(n)
        if op <= 11:
            keys = self.pick(self.strings + self.counters + self.hashes, rng.randrange(1, 9))
            return [b"MGET", *keys], array([bulk(self.string_value(k)) for k in keys])
        if op == 12:
            pairs = []
            for k in self.pick(self.strings, rng.randrange(1, 5)):
                v = self.value()
                pairs += [k, v]
                d[k] = ("string", v)
            return [b"MSET", *pairs], b"+OK\r\n"
        if op <= 14:
            k = rng.choice(self.hashes)
            f, v = b"f%d" % rng.randrange(8), self.value()
            h = d.setdefault(k, ("hash", {}))[1]
            new = f not in h
            h[f] = v
            return [b"HSET", k, f, v], integer(1 if new else 0)
        if op == 15:
            k = rng.choice(self.hashes)
            f = b"f%d" % rng.randrange(8)
            h = d.get(k, ("hash", {}))[1]
            return [b"HGET", k, f], bulk(h.get(f))
        if op <= 17:
            k = rng.choice(self.lists)
            items = [self.value() for _ in range(rng.randrange(1, 4))]
            lst = d.setdefault(k, ("list", []))[1]
            cmd = rng.choice([b"LPUSH", b"RPUSH"])
            for it in items:
                if cmd == b"LPUSH":
                    lst.insert(0, it)
                else:
                    lst.append(it)
            return [cmd, k, *items], integer(len(lst))
        if op == 18:
            k = rng.choice(self.lists)
            lst = d.get(k, ("list", []))[1]
            return [b"LRANGE", k, b"0", b"-1"], array([bulk(x) for x in lst])
        if op == 19:
            k = rng.choice(self.sets)
            m = b"m%d" % rng.randrange(20)
            s = d.setdefault(k, ("set", set()))[1]
            new = m not in s
            s.add(m)
            return [b"SADD", k, m], integer(1 if new else 0)
        if op == 20:
            k = rng.choice(self.sets)
            return [b"SCARD", k], integer(len(d.get(k, ("set", set()))[1]))
        if op == 21:
            keys = self.pick(self.all, rng.randrange(1, 6))
            return [b"EXISTS", *keys], integer(sum(1 for k in keys if k in d))
        if op == 22:
            k, v = rng.choice(self.strings), self.value()
            old = self.string_value(k) or b""
            d[k] = ("string", old + v)
            return [b"APPEND", k, v], integer(len(old) + len(v))
        if op == 23:
            k = rng.choice(self.strings)
            return [b"STRLEN", k], integer(len(self.string_value(k) or b""))
        if op == 24:
            r = rng.randrange(5)
            if r == 0:
                return [b"PING"], b"+PONG\r\n"
            if r == 1:
                m = self.value()
                return [b"ECHO", m], bulk(m)
            if r == 2:
                return [b"SELECT", b"0"], b"+OK\r\n"
            if r == 3:
                return [b"FOOBAR", b"x"], b"-ERR unknown command 'FOOBAR', with args beginning with: 'x' \r\n"
            return [b"GET"], b"-ERR wrong number of arguments for 'get' command\r\n"
        k = rng.choice(self.hashes + self.lists)
        t = self.type_of(k)
        return [b"STRLEN", k], (WRONGTYPE if t is not None else integer(0))


class RedisPipeline(unittest.TestCase):
    WORKERS = 2

    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(3)]
        cls.port = harness.free_port()
        cls.config = harness.write_config(harness.redis_pool_config(
            "pipe", cls.port, [f"127.0.0.1:{b.port}:1" for b in cls.backends], hash_name="md5"))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=["--workers", str(cls.WORKERS)])
        cls.direct = [redis.Redis(host="127.0.0.1", port=b.port) for b in cls.backends]

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.config)

    def setUp(self):
        for d in self.direct:
            d.flushall()
        self.client = redis.Redis(host="127.0.0.1", port=self.port)

    def tearDown(self):
        self.client.close()
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def where(self, key):
        """Backend indexes holding `key`, asked directly."""
        return [i for i, d in enumerate(self.direct) if d.exists(key)]

    # 1 -----------------------------------------------------------------------------------------
    def test_5000_mixed_commands_in_one_write_answered_in_order(self):
        model = PipelineModel("pl", seed=1234)
        cmds, expected = zip(*(model.next() for _ in range(5000)))
        payload = b"".join(encode_command(*c) for c in cmds)
        with RawConn(self.port, timeout=20) as conn:
            conn.send(payload)  # one sendall: the whole pipeline before reading anything
            got = [conn.read_raw() for _ in range(len(cmds))]
            self.assertEqual(conn.pending(), b"", "bytes after the last expected reply")
            for i, (g, e) in enumerate(zip(got, expected)):
                if g != e:
                    self.fail(f"reply {i} to {cmds[i]!r}: got {g[:200]!r}, expected {e[:200]!r}")
            self.assertEqual(conn.call("PING"), b"PONG")
        # The final state, key by key, read back through the proxy and on the owning backend.
        for k, (t, v) in sorted(model.data.items()):
            if t == "string":
                self.assertEqual(self.client.get(k), v, k)
            elif t == "list":
                self.assertEqual(self.client.lrange(k, 0, -1), v, k)
            elif t == "hash":
                self.assertEqual(self.client.hgetall(k), v, k)
            elif t == "set":
                self.assertEqual(self.client.smembers(k), v, k)
            self.assertEqual(len(self.where(k)), 1, k)
        total = sum(d.dbsize() for d in self.direct)
        self.assertEqual(total, len(model.data))

    def test_pipeline_of_mgets_across_shards_keeps_key_order(self):
        keys = [f"order:{i}" for i in range(300)]
        self.client.mset({k: f"val-{k}" for k in keys})
        self.assertEqual(sorted(len(self.where(k)) for k in keys[:30]), [1] * 30)
        self.assertEqual(sum(1 for d in self.direct if d.dbsize() > 0), 3, "keys should span all 3 backends")
        rng = random.Random(7)
        reqs, expected = [], []
        for i in range(400):
            sample = [rng.choice(keys + ["order:missing"]) for _ in range(rng.randrange(1, 12))]
            reqs.append(encode_command("MGET", *sample))
            expected.append(array([bulk(None if k == "order:missing" else f"val-{k}".encode()) for k in sample]))
            reqs.append(encode_command("PING", str(i)))
            expected.append(bulk(str(i).encode()))
        with RawConn(self.port) as conn:
            conn.send(b"".join(reqs))
            got = [conn.read_raw() for _ in expected]
        self.assertEqual(got, expected)

    def test_pipeline_deeper_than_the_pending_limit(self):
        # 40000 requests in one write: more than the proxy keeps in flight per client (16K),
        # so it must pause reading and resume by itself as replies go out.
        self.client.mset({f"deep:{i}": str(i) for i in range(100)})
        n = 40000
        payload = b"".join(encode_command("GET", f"deep:{i % 100}") if i % 3 else encode_command("PING", str(i))
                           for i in range(n))
        with RawConn(self.port, timeout=30) as conn:
            conn.send(payload)
            for i in range(n):
                expected = bulk(str(i % 100).encode()) if i % 3 else bulk(str(i).encode())
                got = conn.read_raw()
                if got != expected:
                    self.fail(f"reply {i}: got {got[:80]!r}, expected {expected!r}")
            self.assertEqual(conn.call("PING"), b"PONG")

    def test_slow_reader_of_large_replies_gets_everything(self):
        # 150 MiB of replies to a client that reads nothing for a while: the proxy must hold
        # back (its per-client output limit is 64 MiB) and then deliver every byte in order.
        value = random.Random(11).randbytes(MIB)
        self.assertTrue(self.client.set("slow:big", value))
        self.client.set("slow:small", "tail")
        with RawConn(self.port, timeout=30) as conn:
            conn.send(encode_command("GET", "slow:big") * 150 + encode_command("GET", "slow:small"))
            time.sleep(1.0)
            for i in range(150):
                self.assertEqual(conn.read(), value, f"reply {i}")
            self.assertEqual(conn.read(), b"tail")
            self.assertEqual(conn.call("PING"), b"PONG")

    # 4 -----------------------------------------------------------------------------------------
    def test_large_values_round_trip_exactly(self):
        rng = random.Random(99)
        one = rng.randbytes(MIB)
        eight = rng.randbytes(8 * MIB)
        self.assertTrue(self.client.set("big:1m", one))
        self.assertTrue(self.client.set("big:8m", eight))
        self.assertEqual(self.client.get("big:1m"), one)
        self.assertEqual(self.client.get("big:8m"), eight)
        self.assertEqual(self.client.strlen("big:8m"), 8 * MIB)
        # On the backend, exactly once.
        [i8] = self.where("big:8m")
        self.assertEqual(self.direct[i8].get("big:8m"), eight)
        # Merged fan-out replies with large elements, in key order.
        self.assertEqual(self.client.mget(["big:8m", "big:none", "big:1m", "big:8m"]), [eight, None, one, eight])
        # MSET of large values across shards.
        vals = {f"big:m{i}": rng.randbytes(MIB + i) for i in range(6)}
        self.assertTrue(self.client.mset(vals))
        self.assertEqual(self.client.mget(list(vals)), list(vals.values()))

    def test_large_value_arriving_in_awkward_pieces(self):
        value = random.Random(5).randbytes(8 * MIB)
        req = encode_command("SET", "big:pieces", value) + encode_command("GET", "big:pieces")
        head = req.index(b"$%d" % len(value))
        # Cut inside the bulk header, inside the payload, between its CR and LF, and at the end.
        cuts = [head + 3, head + 5000, head + 4 * MIB, head + len(b"$%d\r\n" % len(value)) + len(value) + 1, len(req)]
        with RawConn(self.port, timeout=20) as conn:
            start = 0
            for c in cuts:
                conn.send(req[start:c])
                start = c
                time.sleep(0.05)
            self.assertEqual(conn.read_raw(), b"+OK\r\n")
            self.assertEqual(conn.read_raw(), bulk(value))

    def test_binary_keys_and_values(self):
        cases = {
            b"bin:\r\nkey": b"value with\r\nCRLF",
            b"bin:\x00nul\x00": b"\x00\x00\x00",
            b"bin:*1\r\n$4\r\nPING\r\n": b"$5\r\nfake\r\n",
            bytes(range(256)): bytes(range(255, -1, -1)) * 4,
            b"bin:empty": b"",
            b"bin:\n": b"\r",
        }
        for k, v in cases.items():
            self.assertTrue(self.client.set(k, v))
        for k, v in cases.items():
            self.assertEqual(self.client.get(k), v, k)
            holders = self.where(k)
            self.assertEqual(len(holders), 1, k)
            self.assertEqual(self.direct[holders[0]].get(k), v, k)
        self.assertEqual(self.client.mget(list(cases)), list(cases.values()))
        self.assertEqual(self.client.exists(*cases), len(cases))
        self.assertEqual(self.client.delete(*cases), len(cases))
        self.assertEqual(sum(d.dbsize() for d in self.direct), 0)

    # 11 ----------------------------------------------------------------------------------------
    def test_client_vanishing_with_requests_in_flight_disturbs_no_one(self):
        big = random.Random(3).randbytes(MIB)
        self.assertTrue(self.client.set("inflight:big", big))
        small = {f"inflight:s{i}": f"small-{i}" for i in range(50)}
        self.client.mset(small)
        stop = threading.Event()
        errors, rounds = [], [0]

        def bystander():
            # Another client keeps asking for small keys (on every backend) the whole time:
            # every reply must be its own, never a chunk of the vanished client's 1 MiB replies.
            try:
                with RawConn(self.port, timeout=20) as conn:
                    keys = list(small)
                    while not stop.is_set():
                        conn.send(b"".join(encode_command("GET", k) for k in keys) + encode_command("MGET", *keys))
                        for k in keys:
                            got = conn.read()
                            if got != small[k].encode():
                                errors.append((k, got[:80] if isinstance(got, bytes) else got))
                                return
                        got = conn.read()
                        if got != [small[k].encode() for k in keys]:
                            errors.append(("MGET", str(got)[:200]))
                            return
                        rounds[0] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(("exception", repr(e)))

        t = threading.Thread(target=bystander)
        t.start()
        try:
            time.sleep(0.1)
            get_big = encode_command("GET", "inflight:big")
            # One client resets the connection right after sending 1000 GETs of 1 MiB ...
            victim = RawConn(self.port)
            victim.send(get_big * 1000)
            victim.close(reset=True)
            # ... another closes normally (FIN) with 300 in flight and half a request pending ...
            victim2 = RawConn(self.port)
            victim2.send(get_big * 300 + b"*2\r\n$3\r\nGET\r\n$12\r\ninflight")
            victim2.close()
            # ... and a third reads one reply and then goes.
            victim3 = RawConn(self.port)
            victim3.send(get_big * 200)
            self.assertEqual(victim3.read(), big)
            victim3.close(reset=True)
            time.sleep(1.0)
        finally:
            stop.set()
            t.join(30)
        self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])
        self.assertGreater(rounds[0], 0)
        self.assertIsNone(self.proxy.popen.poll(), f"proxy died: {self.proxy.output()}")
        # New clients still get correct, in-order answers, big and small.
        with RawConn(self.port) as conn:
            conn.send(encode_command("GET", "inflight:big") * 20 + b"".join(encode_command("GET", k) for k in small))
            for _ in range(20):
                self.assertEqual(conn.read(), big)
            for k, v in small.items():
                self.assertEqual(conn.read(), v.encode())
            self.assertEqual(conn.call("PING"), b"PONG")
        self.assertEqual(self.client.get("inflight:big"), big)


if __name__ == "__main__":
    unittest.main(verbosity=2)
