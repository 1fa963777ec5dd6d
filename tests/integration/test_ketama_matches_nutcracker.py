"""twemproxy placement, key for key: the same nutcracker.yml given to nutcracker (the reference)
and to `ringctl owner` must put every key on the same backend, for every hash twemproxy offers,
with weights 1,1,2, named and unnamed servers, a port-11211 server, hash tags, and modula."""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402

HASHES = ["one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64", "fnv1a_64", "fnv1_32", "fnv1a_32",
          "hsieh", "murmur", "jenkins"]
KEYS = 2000


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class KetamaMatchesNutcracker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A backend on 11211 exercises twemproxy's rule that the port is left out of the ketama
        # identity there; if the port is taken, that case is covered by named servers only.
        cls.has_11211 = port_free(11211)
        ports = [harness.free_port(), harness.free_port(), 11211 if cls.has_11211 else harness.free_port()]
        cls.backends = [harness.start_redis(p) for p in ports]
        cls.ports = ports
        pools, cls.listen = [], {}

        def pool(name, distribution, hash_name, servers, extra=""):
            port = harness.free_port()
            cls.listen[name] = port
            lines = "".join(f"    - {s}\n" for s in servers)
            pools.append(f"{name}:\n  listen: 127.0.0.1:{port}\n  hash: {hash_name}\n"
                         f"  distribution: {distribution}\n  redis: true\n{extra}  servers:\n{lines}")

        p0, p1, p2 = ports
        unnamed = [f"127.0.0.1:{p0}:1", f"127.0.0.1:{p1}:1", f"127.0.0.1:{p2}:2"]
        named = [f"127.0.0.1:{p0}:1 alpha", f"127.0.0.1:{p1}:1 beta", f"127.0.0.1:{p2}:2 gamma"]
        for h in HASHES:
            pool(f"k_{h}", "ketama", h, unnamed)
            pool(f"n_{h}", "ketama", h, named)
        pool("m_fnv1a_64", "modula", "fnv1a_64", unnamed)
        pool("m_murmur", "modula", "murmur", named)
        pool("tag_md5", "ketama", "md5", unnamed, extra='  hash_tag: "{}"\n')
        cls.config = harness.write_config("".join(pools))
        first = next(iter(cls.listen.values()))
        cls.nutcracker = harness.start_nutcracker(cls.config, first)
        for port in cls.listen.values():
            cls.nutcracker.wait_port(port=port)

    @classmethod
    def tearDownClass(cls):
        cls.nutcracker.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.config)

    def label_to_port(self, label):
        names = {"alpha": self.ports[0], "beta": self.ports[1], "gamma": self.ports[2]}
        if label in names:
            return names[label]
        return int(label.rsplit(":", 1)[1])

    def check_pool(self, pool, keys):
        for port in self.ports:
            redis.Redis(host="127.0.0.1", port=port).flushall()
        client = redis.Redis(host="127.0.0.1", port=self.listen[pool])
        pipe = client.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, pool)
        self.assertTrue(all(pipe.execute()))
        # Where did nutcracker put each key? Ask every backend directly.
        actual = {}
        for port in self.ports:
            direct = redis.Redis(host="127.0.0.1", port=port)
            for k in direct.keys("*"):
                self.assertNotIn(k, actual, f"{k} on two backends")
                actual[k.decode()] = port
        self.assertEqual(len(actual), len(keys))
        out = harness.run_ringctl("owner", "-c", self.config, "--pool", pool, stdin="\n".join(keys) + "\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertEqual(len(lines), len(keys))
        mismatches = []
        for line in lines:
            key, label = line.split("\t")
            if actual[key] != self.label_to_port(label):
                mismatches.append((key, label, actual[key]))
        self.assertEqual(mismatches[:5], [], f"{len(mismatches)} of {len(keys)} keys placed differently in {pool}")
        return actual

    def test_every_hash_with_ketama_unnamed_and_named(self):
        for h in HASHES:
            for prefix in ("k", "n"):
                with self.subTest(pool=f"{prefix}_{h}"):
                    self.check_pool(f"{prefix}_{h}", [f"{prefix}_{h}:{i}" for i in range(KEYS)])

    def test_modula(self):
        for pool in ("m_fnv1a_64", "m_murmur"):
            with self.subTest(pool=pool):
                placed = self.check_pool(pool, [f"{pool}:{i}" for i in range(KEYS)])
                self.assertEqual(len(set(placed.values())), 3)

    def test_hash_tags_keep_tagged_keys_together(self):
        keys = [f"tag_md5:{{user{i % 50}}}:{i}" for i in range(KEYS)]
        placed = self.check_pool("tag_md5", keys)
        by_tag = {}
        for k, port in placed.items():
            by_tag.setdefault(k.split("}")[0], set()).add(port)
        self.assertTrue(all(len(v) == 1 for v in by_tag.values()))
        self.assertGreater(len(set(placed.values())), 1)

    def test_the_empty_key_lands_where_nutcracker_puts_it(self):
        # nutcracker never hashes an empty key (its hash is 0): ketama gives it the first point's
        # server, modula the first slot's. ringctl owner (and so the proxy) must agree.
        for pool in list(self.listen):
            with self.subTest(pool=pool):
                for port in self.ports:
                    redis.Redis(host="127.0.0.1", port=port).flushall()
                redis.Redis(host="127.0.0.1", port=self.listen[pool]).set("", pool)
                actual = [p for p in self.ports if redis.Redis(host="127.0.0.1", port=p).get("") is not None]
                out = harness.run_ringctl("owner", "-c", self.config, "--pool", pool, "--", "")
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertEqual(actual, [self.label_to_port(out.stdout.strip().split("\t")[-1])])

    def test_weight_two_server_gets_about_half(self):
        placed = self.check_pool("k_md5", [f"k_md5:w{i}" for i in range(KEYS)])
        heavy = sum(1 for p in placed.values() if p == self.ports[2]) / KEYS
        self.assertGreater(heavy, 0.40)
        self.assertLess(heavy, 0.60)


if __name__ == "__main__":
    unittest.main(verbosity=2)
