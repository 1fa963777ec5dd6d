"""Blocking commands through ringproxy (2 workers) over 3 real redis-servers, with redis-py in
its default settings: BLPOP with timeout 0 is released by an LPUSH from another client on every
server; a timeout expires as Redis times it; a blocked client does not hold up the shared
connection other clients use; a client killed while blocked frees its backend connection at
once; pipelined requests around a blocking one keep their order; BLMOVE, BZPOPMIN, BLMPOP and
XREAD BLOCK work; keys on different servers are refused with CROSSSLOT; the number of such
connections is bounded (max_blocking_connections) and visible in /metrics. WAIT, over three
primaries each with a real replica: 1 once every server's replica has the client's writes, 0
after the timeout while one replica is stopped (SIGSTOP), so the count covers every write of
the client, wherever it went."""
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402


class RedisBlocking(unittest.TestCase):
    LIMIT = 40

    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        cls.port = harness.free_port()
        cls.admin = harness.free_port()
        cls.config = harness.write_config(harness.redis_pool_config(
            "blk", cls.port, [f"127.0.0.1:{p}:1" for p in cls.ports],
            extra=f'  hash_tag: "{{}}"\n  timeout: 500\n  max_blocking_connections: {cls.LIMIT}\n'))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port,
                                            extra=["--workers", "2", "--admin", f"127.0.0.1:{cls.admin}",
                                                   "-s", str(harness.free_port())])
        cls.direct = {p: redis.Redis(host="127.0.0.1", port=p) for p in cls.ports}
        keys = harness.hashlike_keys("q", 600)
        grouped = harness.keys_by_owner(cls.config, "blk", keys)
        cls.by_port = {harness.label_port(lbl): ks for lbl, ks in grouped.items()}
        assert sorted(cls.by_port) == sorted(cls.ports)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.config)

    def setUp(self):
        for d in self.direct.values():
            d.flushall()
        self.client = redis.Redis(host="127.0.0.1", port=self.port)

    def tearDown(self):
        self.client.close()
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def blocked_on_backends(self, command):
        """How many backend connections are blocked in `command` right now, over all servers."""
        n = 0
        for d in self.direct.values():
            n += sum(1 for c in d.client_list() if c.get("cmd") == command and "b" in c.get("flags", ""))
        return n

    def background(self, fn):
        result = {}

        def run():
            try:
                result["value"] = fn()
            except Exception as e:  # noqa: BLE001 - reported by the test
                result["error"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t, result

    def test_blpop_forever_is_released_by_lpush_from_another_client_on_every_server(self):
        for port in self.ports:
            key = self.by_port[port][0]
            waiter = redis.Redis(host="127.0.0.1", port=self.port)
            t, result = self.background(lambda: waiter.blpop([key], timeout=0))
            harness.wait_for(lambda: self.blocked_on_backends("blpop") == 1, what=f"BLPOP blocked on {port}")
            self.assertEqual(self.client.lpush(key, "job-" + str(port)), 1)
            t.join(5)
            self.assertFalse(t.is_alive(), "BLPOP was not released")
            self.assertNotIn("error", result)
            self.assertEqual(result["value"], (key.encode(), b"job-%d" % port))
            self.assertEqual(self.direct[port].llen(key), 0)  # popped on the owner
            waiter.close()

    def test_a_timeout_expires_as_redis_times_it_and_is_not_the_pools_timeout(self):
        key = self.by_port[self.ports[0]][1]
        start = time.monotonic()
        self.assertIsNone(self.client.brpop([key], timeout=1))  # the pool's timeout is 500 ms
        took = time.monotonic() - start
        self.assertGreater(took, 0.9)
        self.assertLess(took, 3.0)
        start = time.monotonic()
        self.assertIsNone(self.client.bzpopmin([key], timeout=0.3))  # fractional seconds
        self.assertGreater(time.monotonic() - start, 0.25)

    def test_a_blocked_client_does_not_hold_up_other_clients_of_the_same_server(self):
        port = self.ports[1]
        key, other = self.by_port[port][2], self.by_port[port][3]
        waiter = redis.Redis(host="127.0.0.1", port=self.port)
        t, result = self.background(lambda: waiter.blpop([key], timeout=0))
        harness.wait_for(lambda: self.blocked_on_backends("blpop") == 1, what="BLPOP blocked")
        start = time.monotonic()
        for i in range(200):
            self.client.set(other, i)
            self.assertEqual(self.client.get(other), str(i).encode())
        self.assertLess(time.monotonic() - start, 2.0)
        self.client.rpush(key, "x")
        t.join(5)
        self.assertEqual(result.get("value"), (key.encode(), b"x"))
        waiter.close()

    def test_a_client_killed_while_blocked_frees_its_backend_connection_at_once(self):
        key = self.by_port[self.ports[2]][4]
        socks = []
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall(harness.encode_command("BLPOP", key, "0"))
            socks.append(s)
        harness.wait_for(lambda: self.blocked_on_backends("blpop") == 5, what="5 BLPOPs blocked")
        metrics = harness.get_metrics(self.admin)
        self.assertEqual(harness.metric_value(metrics, "ringproxy_pool_blocking_connections", pool="blk"), 5)
        for s in socks:
            s.close()
        harness.wait_for(lambda: self.blocked_on_backends("blpop") == 0, timeout=2.0,
                         what="backend connections of killed clients closed")
        harness.wait_for(lambda: harness.metric_value(harness.get_metrics(self.admin),
                                                      "ringproxy_pool_blocking_connections", pool="blk") == 0,
                         what="blocking connections gauge back to 0")
        # Nothing was popped on behalf of the dead clients.
        self.client.rpush(key, "kept")
        self.assertEqual(self.direct[self.ports[2]].lrange(key, 0, -1), [b"kept"])

    def test_pipelined_requests_around_a_blocking_one_keep_their_order(self):
        key = self.by_port[self.ports[0]][5]
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, "a")
        pipe.blpop([key], timeout=0)
        pipe.llen(key)
        pipe.rpush(key, "b")
        self.assertEqual(pipe.execute(), [1, (key.encode(), b"a"), 0, 1])

    def test_blmove_bzpopmin_blmpop_and_xread_block(self):
        src, dst = "{job}:pending", "{job}:active"
        t, result = self.background(
            lambda: redis.Redis(host="127.0.0.1", port=self.port).blmove(src, dst, 0, "RIGHT", "LEFT"))
        harness.wait_for(lambda: self.blocked_on_backends("blmove") == 1, what="BLMOVE blocked")
        self.client.lpush(src, "j1")
        t.join(5)
        self.assertEqual(result.get("value"), b"j1")
        self.assertEqual(self.client.lrange(dst, 0, -1), [b"j1"])

        self.client.zadd("{z}:a", {"m": 2.5})
        self.assertEqual(self.client.bzpopmin(["{z}:a", "{z}:b"], timeout=1), (b"{z}:a", b"m", 2.5))
        self.client.rpush("{l}:b", "x", "y")
        self.assertEqual(self.client.blmpop(1, 2, "{l}:a", "{l}:b", direction="LEFT", count=5),
                         [b"{l}:b", [b"x", b"y"]])

        stream = self.by_port[self.ports[1]][6]
        t, result = self.background(lambda: redis.Redis(host="127.0.0.1", port=self.port).xread(
            {stream: "$"}, block=0))
        harness.wait_for(lambda: self.blocked_on_backends("xread") == 1, what="XREAD BLOCK blocked")
        entry = self.client.xadd(stream, {"f": "v"})
        t.join(5)
        self.assertEqual(result.get("value"), [[stream.encode(), [(entry, {b"f": b"v"})]]])
        # Without BLOCK it is an ordinary read.
        self.assertEqual(self.client.xread({stream: "0"}, count=1), [[stream.encode(), [(entry, {b"f": b"v"})]]])

    def test_keys_of_different_servers_are_refused_with_crossslot(self):
        a, b = self.by_port[self.ports[0]][7], self.by_port[self.ports[1]][7]
        with self.assertRaises(redis.exceptions.ResponseError) as ctx:
            self.client.blpop([a, b], timeout=1)
        self.assertIn("CROSSSLOT", str(ctx.exception))
        with self.assertRaises(redis.exceptions.ResponseError) as ctx:
            self.client.blmove(a, b, 1)
        self.assertIn("CROSSSLOT", str(ctx.exception))

    def test_blocking_connections_are_bounded(self):
        key = self.by_port[self.ports[0]][8]
        socks = []
        for _ in range(self.LIMIT):
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall(harness.encode_command("BLPOP", key, "0"))
            socks.append(s)
        harness.wait_for(lambda: self.blocked_on_backends("blpop") == self.LIMIT, what="the limit reached")
        with self.assertRaises(redis.exceptions.ResponseError) as ctx:
            self.client.blpop([key], timeout=1)
        self.assertIn("max_blocking_connections", str(ctx.exception))
        self.assertEqual(self.client.ping(), True)  # the client itself keeps working
        for s in socks:
            s.close()
        harness.wait_for(lambda: self.blocked_on_backends("blpop") == 0, what="released")
        self.client.rpush(key, "x")
        self.assertEqual(self.client.blpop([key], timeout=1), (key.encode(), b"x"))


class RedisWait(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.primaries = [harness.start_redis() for _ in range(3)]
        cls.replicas = [harness.start_redis(extra=["--replicaof", "127.0.0.1", str(p.port)]) for p in cls.primaries]
        for r in cls.replicas:
            harness.wait_for(lambda r=r: redis.Redis(host="127.0.0.1", port=r.port).info("replication")
                             .get("master_link_status") == "up", timeout=10, what="replica in sync")
        cls.port = harness.free_port()
        cls.config = harness.write_config(harness.redis_pool_config(
            "w", cls.port, [f"127.0.0.1:{p.port}:1" for p in cls.primaries]))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port)
        keys = harness.hashlike_keys("w", 300)
        cls.by_port = {harness.label_port(lbl): ks for lbl, ks in harness.keys_by_owner(cls.config, "w", keys).items()}

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for p in cls.replicas + cls.primaries:
            p.signal(signal.SIGCONT)
            p.stop()
        os.unlink(cls.config)

    def test_wait_counts_replicas_that_have_every_write_of_the_client(self):
        c = redis.Redis(host="127.0.0.1", port=self.port)
        for p in self.primaries:
            c.set(self.by_port[p.port][0], "v")
        self.assertEqual(c.wait(1, 5000), 1)
        # WAITAOF is Redis 7.2's: a 7.0 backend's own refusal comes back as it is.
        version = redis.Redis(host="127.0.0.1", port=self.primaries[0].port).info("server")["redis_version"]
        if tuple(int(x) for x in version.split(".")[:2]) >= (7, 2):
            self.assertEqual(c.execute_command("WAITAOF", 0, 1, 5000), [0, 1])
        else:
            with self.assertRaises(redis.exceptions.ResponseError) as ctx:
                c.execute_command("WAITAOF", 0, 1, 5000)
            self.assertIn("WAITAOF", str(ctx.exception))
        stopped = self.replicas[1]
        stopped.signal(signal.SIGSTOP)
        try:
            c.set(self.by_port[self.primaries[1].port][1], "unacknowledged")
            start = time.monotonic()
            self.assertEqual(c.wait(1, 500), 0)  # that server's replica cannot acknowledge
            self.assertGreater(time.monotonic() - start, 0.4)
        finally:
            stopped.signal(signal.SIGCONT)
        self.assertEqual(c.wait(1, 5000), 1)  # it catches up
        c.close()


if __name__ == "__main__":
    unittest.main()
