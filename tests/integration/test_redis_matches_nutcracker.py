"""Drop-in placement: the same nutcracker.yml pools (ketama, fnv1a_64, weights 1,1,2; unnamed
servers, named servers, and with hash_tag) served by nutcracker and by ringproxy (2 workers)
over the same 3 redis-servers. Only the listen ports differ, since both cannot bind one port.
Keys written through one proxy are found through the other, on the very same backend."""
import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402

KEYS = 2000


class RedisMatchesNutcracker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        p0, p1, p2 = cls.ports
        pools = {
            "unnamed": ([f"127.0.0.1:{p0}:1", f"127.0.0.1:{p1}:1", f"127.0.0.1:{p2}:2"], ""),
            "named": ([f"127.0.0.1:{p0}:1 alpha", f"127.0.0.1:{p1}:1 beta", f"127.0.0.1:{p2}:2 gamma"], ""),
            "tagged": ([f"127.0.0.1:{p0}:1", f"127.0.0.1:{p1}:1", f"127.0.0.1:{p2}:2"], '  hash_tag: "{}"\n'),
        }
        cls.nc_port = {name: harness.free_port() for name in pools}
        cls.rp_port = {name: harness.free_port() for name in pools}

        def config(listen):
            return "".join(harness.redis_pool_config(name, listen[name], servers, hash_name="fnv1a_64",
                                                     distribution="ketama", extra=extra)
                           for name, (servers, extra) in pools.items())

        cls.nc_config = harness.write_config(config(cls.nc_port))
        cls.rp_config = harness.write_config(config(cls.rp_port))
        cls.nutcracker = harness.start_nutcracker(cls.nc_config, cls.nc_port["unnamed"])
        cls.proxy = harness.start_ringproxy(cls.rp_config, cls.rp_port["unnamed"], extra=["--workers", "2"])
        for name in pools:
            cls.nutcracker.wait_port(port=cls.nc_port[name])
            cls.proxy.wait_port(port=cls.rp_port[name])
        cls.direct = {p: redis.Redis(host="127.0.0.1", port=p) for p in cls.ports}

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.nutcracker.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.nc_config)
        os.unlink(cls.rp_config)

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def placement(self):
        placed = {}
        for port, d in self.direct.items():
            for k in d.keys("*"):
                self.assertNotIn(k, placed, f"{k} on two backends")
                placed[k.decode()] = port
        return placed

    def check_pool(self, pool, keys):
        for d in self.direct.values():
            d.flushall()
        rp = redis.Redis(host="127.0.0.1", port=self.rp_port[pool])
        nc = redis.Redis(host="127.0.0.1", port=self.nc_port[pool])

        # Written through ringproxy, read through nutcracker.
        pipe = rp.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, "rp:" + k)
        self.assertTrue(all(pipe.execute()))
        by_rp = self.placement()
        self.assertEqual(len(by_rp), len(keys))
        pipe = nc.pipeline(transaction=False)
        for k in keys:
            pipe.get(k)
        got = pipe.execute()
        missed = [k for k, v in zip(keys, got) if v != ("rp:" + k).encode()]
        self.assertEqual(missed[:5], [], f"nutcracker does not find {len(missed)} of {len(keys)} keys ringproxy wrote")

        # Written through nutcracker (same keys, new values): it must overwrite in place.
        pipe = nc.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, "nc:" + k)
        self.assertTrue(all(pipe.execute()))
        self.assertEqual(self.placement(), by_rp, "nutcracker put keys on other backends than ringproxy")
        # And read back through ringproxy, one by one and as one cross-shard MGET.
        self.assertEqual(rp.mget(keys), [("nc:" + k).encode() for k in keys])
        self.assertEqual(nc.mget(keys[:100]), rp.mget(keys[:100]))
        # Both agree on the placement `ringctl owner` predicts.
        owners = harness.ringctl_owners(self.rp_config, pool, keys)
        labels = {"alpha": self.ports[0], "beta": self.ports[1], "gamma": self.ports[2]}
        predicted = {k: labels[v] if v in labels else harness.label_port(v) for k, v in owners.items()}
        self.assertEqual(predicted, by_rp)
        return by_rp

    def test_unnamed_servers(self):
        # Hash-like key names: fnv1a_64 (truncated to 32 bits, as twemproxy does) spreads runs of
        # near-identical short keys in coarse blocks, which would make the share check noisy.
        placed = self.check_pool("unnamed", [f"user:{hashlib.sha1(b'%d' % i).hexdigest()[:12]}" for i in range(KEYS)])
        heavy = sum(1 for p in placed.values() if p == self.ports[2]) / KEYS
        self.assertGreater(heavy, 0.35, "weight-2 server should hold about half the keys")
        self.assertLess(heavy, 0.65)
        self.assertEqual(len(set(placed.values())), 3)

    def test_named_servers(self):
        placed = self.check_pool("named", [f"session-{i:05d}" for i in range(KEYS)])
        self.assertGreater(len(set(placed.values())), 1)

    def test_hash_tags(self):
        # Varied tags, for the same reason as above.
        tags = [hashlib.sha1(b"%d" % t).hexdigest()[:10] for t in range(97)]
        keys = [f"{{{tags[i % 97]}}}:item:{i}" for i in range(KEYS)]
        placed = self.check_pool("tagged", keys)
        for tag in tags:
            self.assertEqual(len({p for k, p in placed.items() if k.startswith(f"{{{tag}}}:")}), 1)
        self.assertEqual(len(set(placed.values())), 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
