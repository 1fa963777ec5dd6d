"""Commands over the whole keyspace through ringproxy (2 workers) over real redis-servers, with
redis-py: a SCAN iteration returns each of 1000 keys, also when a reload adds a server in the
middle of it, and honours MATCH, COUNT and TYPE; KEYS merges every server's keys; RANDOMKEY
finds a key wherever it is; FLUSHDB empties every server; FUNCTION LOAD reaches every server so
FCALL works on any key; MEMORY USAGE, TYPE and OBJECT go to the key's owner; deny_commands
refuses what the operator forbade."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402

LIBRARY = """#!lua name=rplib
redis.register_function('rp_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)
"""


def config_text(port, locked_port, ports):
    servers = [f"127.0.0.1:{p}:1" for p in ports]
    return (harness.redis_pool_config("ks", port, servers, extra='  hash_tag: "{}"\n')
            + harness.redis_pool_config("locked", locked_port, servers,
                                        extra="  deny_commands: [flushall, FlushDB, keys]\n"))


class RedisKeyspace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(4)]
        cls.ports = [b.port for b in cls.backends]
        cls.port, cls.locked = harness.free_port(), harness.free_port()
        cls.admin = harness.free_port()
        cls.config = harness.write_config(config_text(cls.port, cls.locked, cls.ports[:3]))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=[
            "--workers", "2", "--admin", f"127.0.0.1:{cls.admin}", "-s", str(harness.free_port()), "--no-watch"])
        cls.direct = {p: redis.Redis(host="127.0.0.1", port=p) for p in cls.ports}

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.config)

    def setUp(self):
        for d in self.direct.values():
            d.flushall()
            d.function_flush()
        self.client = redis.Redis(host="127.0.0.1", port=self.port)

    def tearDown(self):
        self.client.close()
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def fill(self, n=1000):
        keys = harness.hashlike_keys("key", n)
        pipe = self.client.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, k)
        pipe.execute()
        for port in self.ports[:3]:
            self.assertGreater(self.direct[port].dbsize(), n // 10, f"keys did not spread to {port}")
        return keys

    def test_scan_returns_every_key_and_honours_match_count_and_type(self):
        keys = self.fill()
        seen = [k.decode() for k in self.client.scan_iter(count=50)]
        self.assertEqual(set(seen), set(keys))
        self.client.hset("h:1", "f", "v")
        self.client.hset("h:2", "f", "v")
        self.client.set("h:3", "string")
        self.assertEqual(sorted(k.decode() for k in self.client.scan_iter(match="h:*", _type="hash")), ["h:1", "h:2"])
        self.assertEqual(sorted(k.decode() for k in self.client.scan_iter(match="key:a*")),
                         sorted(k for k in keys if k.startswith("key:a")))

    def test_zz_a_scan_iteration_survives_a_reload_that_adds_a_server(self):
        keys = self.fill()
        seen = []
        cursor, steps = 0, 0
        while True:
            cursor, batch = self.client.scan(cursor, count=100)
            seen += [k.decode() for k in batch]
            steps += 1
            if steps == 4:  # mid-iteration: a fourth server joins the pool
                with open(self.config, "w") as f:
                    f.write(config_text(self.port, self.locked, self.ports))
                status, _, body = harness.http_request(self.admin, "POST", "/reload")
                self.assertEqual(status, 200, body)
                self.client.set("{new}:after-reload", "x")  # written during the iteration: may or may not show
            if cursor == 0:
                break
        self.assertGreater(steps, 4)
        self.assertEqual(set(keys) - set(seen), set(), "keys present for the whole iteration were missed")
        with open(self.config, "w") as f:  # back to three servers for the other tests
            f.write(config_text(self.port, self.locked, self.ports[:3]))
        harness.http_request(self.admin, "POST", "/reload")

    def test_keys_randomkey_flushdb_and_per_key_introspection(self):
        self.assertIsNone(self.client.randomkey())
        keys = self.fill(300)
        self.assertEqual(sorted(k.decode() for k in self.client.keys("key:*")), sorted(keys))
        self.assertIn(self.client.randomkey().decode(), keys)
        self.assertEqual(self.client.type(keys[1]), b"string")
        self.assertEqual(self.client.object("encoding", keys[1]), b"embstr")
        self.assertGreater(self.client.memory_usage(keys[1]), 0)
        self.assertTrue(self.client.flushdb())
        for port in self.ports[:3]:
            self.assertEqual(self.direct[port].dbsize(), 0)
        self.assertEqual(self.client.dbsize(), 0)

    def test_function_load_reaches_every_server_so_fcall_works_for_any_key(self):
        self.assertEqual(self.client.function_load(LIBRARY), b"rplib")
        for port in self.ports[:3]:
            self.assertEqual(self.direct[port].function_list()[0][1], b"rplib")
        for k in [f"f:{i}" for i in range(30)]:
            self.assertEqual(self.client.fcall("rp_set", 1, k, "v"), b"OK")
        self.assertEqual(len(self.client.keys("f:*")), 30)
        self.assertTrue(self.client.function_delete("rplib"))
        self.assertEqual(self.direct[self.ports[0]].function_list(), [])

    def test_deny_commands_refuses_what_the_operator_forbade(self):
        locked = redis.Redis(host="127.0.0.1", port=self.locked)
        locked.set("survivor", "1")
        for cmd in (("FLUSHALL",), ("flushdb",), ("KEYS", "*")):
            with self.assertRaises(redis.exceptions.ResponseError) as ctx:
                locked.execute_command(*cmd)
            self.assertIn(f"'{cmd[0].lower()}' is disabled for this pool (deny_commands)", str(ctx.exception))
        self.assertEqual(locked.get("survivor"), b"1")
        self.assertEqual([k for k in locked.scan_iter()], [b"survivor"])  # SCAN is not denied
        locked.close()


if __name__ == "__main__":
    unittest.main()
