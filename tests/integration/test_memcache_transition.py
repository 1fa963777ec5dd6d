"""A memcached pool growing from 4 servers to 5, with real memcacheds and pymemcache in its
default settings: the hit ratio of a read pass right after a plain reload (about 80%: the moved
share misses) against the same pass in a transition (previous_servers), where a moved key's
miss is answered by its previous owner and copied to its new one in add mode, with its flags
and TTL; multi-key gets (pymemcache get_many) find the moved items too. The ratios are printed. After the transition pass the new server holds the moved
items, so deploying the new config keeps the cache warm; a key deleted during the transition
stays deleted (the delete reached both owners)."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
from pymemcache.client.base import Client  # noqa: E402

ITEMS = int(os.environ.get("MC_TRANSITION_ITEMS", "20000"))


class MemcacheTransition(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_memcached() for _ in range(5)]
        cls.ports = [b.port for b in cls.backends]
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.config = harness.write_config(cls.text(cls.ports[:4]))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=[
            "--workers", "2", "--admin", f"127.0.0.1:{cls.admin}", "-s", str(harness.free_port()), "--no-watch"])
        cls.keys = harness.hashlike_keys("c", ITEMS)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.config)

    @classmethod
    def text(cls, ports, previous=None):
        t = harness.memcache_pool_config("cache", cls.port, [f"127.0.0.1:{p}:1" for p in ports], hash_name="murmur")
        if previous:
            t += "  previous_servers:\n" + "".join(f"    - 127.0.0.1:{p}:1\n" for p in previous)
        return t

    def deploy(self, ports, previous=None):
        with open(self.config, "w") as f:
            f.write(self.text(ports, previous))
        status, _, body = harness.http_request(self.admin, "POST", "/reload")
        self.assertEqual(status, 200, body)

    def fill(self):
        for p in self.ports:
            Client(("127.0.0.1", p)).flush_all()
        self.deploy(self.ports[:4])
        c = Client(("127.0.0.1", self.port))
        for i, k in enumerate(self.keys):
            c.set(k, f"v{i}", expire=3600)
        c.close()

    def hit_ratio(self):
        c = Client(("127.0.0.1", self.port))
        hits = 0
        for i, k in enumerate(self.keys):
            v = c.get(k)
            if v is not None:
                self.assertEqual(v, f"v{i}".encode(), k)
                hits += 1
        c.close()
        return hits / len(self.keys)

    def test_hit_ratio_in_a_transition_against_a_plain_reload(self):
        self.fill()
        self.deploy(self.ports)  # a plain reload: ownership moves, the items stay behind
        plain = self.hit_ratio()

        self.fill()
        self.deploy(self.ports, previous=self.ports[:4])
        start = time.monotonic()
        transition = self.hit_ratio()
        seconds = time.monotonic() - start
        print(f"\nhit ratio after adding a 5th server to 4 ({ITEMS} items, single gets): plain reload "
              f"{plain:.2%}, transition {transition:.2%} ({seconds:.1f} s)", file=sys.stderr)
        self.assertLess(plain, 0.9)
        self.assertGreaterEqual(transition, 0.995)
        # The moved items were copied to the new server (in the background of the replies).
        new = Client(("127.0.0.1", self.ports[4]))
        harness.wait_for(lambda: int(new.stats()[b"curr_items"]) >= int((1 - plain) * ITEMS * 0.95),
                         what="moved items copied to the new server")
        metrics = harness.get_metrics(self.admin)
        self.assertGreater(harness.metric_value(metrics, "ringproxy_pool_transition_moves_total", pool="cache"), 0)

        # A delete during the transition reaches both owners: the key stays gone.
        c = Client(("127.0.0.1", self.port))
        moved = [k for k in self.keys[:2000] if new.get(k) is not None]
        self.assertGreater(len(moved), 10)
        for k in moved[:10]:
            self.assertTrue(c.delete(k))
            self.assertIsNone(c.get(k))
        # The transition ends: the cache is warm without the previous servers.
        self.deploy(self.ports)
        after = self.hit_ratio_except(set(moved[:10]))
        print(f"hit ratio once the new config is deployed: {after:.2%}", file=sys.stderr)
        self.assertGreaterEqual(after, 0.995)
        for k in moved[:10]:
            self.assertIsNone(c.get(k))
        c.close()
        new.close()

    def test_multi_key_gets_in_a_transition_find_the_moved_items_too(self):
        self.fill()
        self.deploy(self.ports, previous=self.ports[:4])
        c = Client(("127.0.0.1", self.port))
        hits = 0
        for start in range(0, len(self.keys), 100):  # pymemcache get_many: one multi-key get
            batch = self.keys[start:start + 100]
            got = c.get_many(batch)
            for j, k in enumerate(batch):
                if k in got:
                    self.assertEqual(got[k], f"v{start + j}".encode(), k)
                    hits += 1
        c.close()
        ratio = hits / len(self.keys)
        print(f"\nhit ratio of multi-key gets (100 keys each) in a transition: {ratio:.2%}", file=sys.stderr)
        self.assertGreaterEqual(ratio, 0.995)

    def hit_ratio_except(self, deleted):
        c = Client(("127.0.0.1", self.port))
        keys = [(i, k) for i, k in enumerate(self.keys) if k not in deleted]
        hits = sum(1 for i, k in keys if c.get(k) == f"v{i}".encode())
        c.close()
        return hits / len(keys)


if __name__ == "__main__":
    unittest.main()
