"""memcached placement, key for key, against twemproxy: the same memcache pools (no `redis:
true`) given to nutcracker (the reference) and to ringproxy, over the same 3 memcached
servers. For 2000 keys, whatever one proxy writes the other reads back, and every key sits on
the same server either way (the one `ringctl owner` names), checked on the servers directly.

Pools: ketama with named servers (fnv1a_64, weights 1,1,2), and ketama with unnamed servers
(murmur), one of them on port 11211 when that port can be bound (twemproxy leaves the port
out of the ketama identity of a server on 11211); otherwise every server is on a free port.
"""
import faulthandler
import json
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
from harness import McConn  # noqa: E402
from pymemcache.client.base import Client  # noqa: E402

KEYS = 2000


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class MemcacheMatchesNutcracker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        faulthandler.dump_traceback_later(240, exit=True)
        cls.backends = [harness.start_memcached(), harness.start_memcached()]
        cls.has_11211 = False
        if port_free(11211):
            try:
                cls.backends.append(harness.start_memcached(11211))
                cls.has_11211 = True
            except RuntimeError:  # taken in between (another test run)
                pass
        if not cls.has_11211:
            cls.backends.append(harness.start_memcached())
        cls.ports = [b.port for b in cls.backends]
        p0, p1, p2 = cls.ports
        cls.names = {"alpha": p0, "beta": p1, "gamma": p2}
        cls.pools = {
            "named": ("fnv1a_64", [f"127.0.0.1:{p0}:1 alpha", f"127.0.0.1:{p1}:1 beta", f"127.0.0.1:{p2}:2 gamma"]),
            "unnamed": ("murmur", [f"127.0.0.1:{p0}:1", f"127.0.0.1:{p1}:1", f"127.0.0.1:{p2}:1"]),
        }
        cls.listen = {"ringproxy": {}, "nutcracker": {}}
        cls.configs = {}
        for proxy in cls.listen:
            text = ""
            for pool, (hash_name, servers) in cls.pools.items():
                cls.listen[proxy][pool] = harness.free_port()
                text += harness.memcache_pool_config(pool, cls.listen[proxy][pool], servers, hash_name, "ketama")
            cls.configs[proxy] = harness.write_config(text)
        first = cls.listen["ringproxy"]["named"]
        cls.ringproxy = harness.start_ringproxy(cls.configs["ringproxy"], first, extra=["--workers", "2"])
        cls.nutcracker = harness.start_nutcracker(cls.configs["nutcracker"], cls.listen["nutcracker"]["named"])
        for proxy, proc in (("ringproxy", cls.ringproxy), ("nutcracker", cls.nutcracker)):
            for port in cls.listen[proxy].values():
                proc.wait_port(port=port)
        cls.keys = [f"nc:{i}:{'x' * (i % 17)}" for i in range(KEYS - 6)] + [
            "a", "Z", "key-with-dash_and.dot", "utf8-\u00fc-ключ", "x" * 250, "{tag}:k"]

    @classmethod
    def tearDownClass(cls):
        faulthandler.cancel_dump_traceback_later()
        cls.ringproxy.stop()
        cls.nutcracker.stop()
        for b in cls.backends:
            b.stop()
        for path in cls.configs.values():
            os.unlink(path)

    def tearDown(self):
        self.assertIsNone(self.ringproxy.popen.poll(), f"ringproxy exited: {self.ringproxy.output()}")
        self.assertIsNone(self.nutcracker.popen.poll(), f"nutcracker exited: {self.nutcracker.output()}")

    def flush(self):
        for port in self.ports:
            with McConn(port) as c:
                self.assertEqual(c.call_text(b"flush_all\r\n"), b"OK\r\n")

    def ringctl_owners(self, pool):
        out = subprocess.run([harness.binary("ringctl"), "owner", "-c", self.configs["ringproxy"], "--pool", pool,
                              "--json"], input="".join(k + "\n" for k in self.keys).encode(), capture_output=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        rows = json.loads(out.stdout)["owners"]
        self.assertEqual(len(rows), len(self.keys))
        return {k: self.names.get(r["node"]) or harness.label_port(r["node"]) for k, r in zip(self.keys, rows)}

    def placement(self):
        """{key: port} for every key, asked of every server directly; fails if a key is on
        none or on two."""
        found = {k: [] for k in self.keys}
        for port in self.ports:
            with McConn(port) as c:
                c.send(b"".join(b"mg %s\r\n" % k.encode() for k in self.keys))
                for k in self.keys:
                    reply = c.read_text()
                    self.assertIn(reply[:2], (b"HD", b"EN"), reply)
                    if reply.startswith(b"HD"):
                        found[k].append(port)
        bad = {k: v for k, v in found.items() if len(v) != 1}
        self.assertEqual(bad, {}, "keys on no server or on several")
        return {k: v[0] for k, v in found.items()}

    def write(self, proxy, pool, tag):
        client = Client(("127.0.0.1", self.listen[proxy][pool]))
        try:
            for i in range(0, len(self.keys), 250):
                chunk = self.keys[i:i + 250]
                # bytes keys: pymemcache's defaults refuse non-ASCII str keys
                self.assertEqual(client.set_many({k.encode(): f"{tag}:{k}".encode() for k in chunk}, noreply=False), [])
        finally:
            client.close()

    def read_all(self, proxy, pool):
        client = Client(("127.0.0.1", self.listen[proxy][pool]))
        try:
            got = {}
            for i in range(0, len(self.keys), 250):
                got.update(client.get_many([k.encode() for k in self.keys[i:i + 250]]))
            return {k.decode(): v.decode() for k, v in got.items()}
        finally:
            client.close()

    def check_pool(self, pool):
        owners = self.ringctl_owners(pool)
        self.assertEqual(set(owners.values()), set(self.ports), "2000 keys should use every server")
        # Written through ringproxy, read through nutcracker.
        self.flush()
        self.write("ringproxy", pool, "rp")
        by_ringproxy = self.placement()
        got = self.read_all("nutcracker", pool)
        missing = [k for k in self.keys if got.get(k) != f"rp:{k}"]
        self.assertEqual(missing[:10], [], f"{len(missing)} keys written by ringproxy not found by nutcracker")
        # Written through nutcracker, read through ringproxy.
        self.flush()
        self.write("nutcracker", pool, "nc")
        by_nutcracker = self.placement()
        got = self.read_all("ringproxy", pool)
        missing = [k for k in self.keys if got.get(k) != f"nc:{k}"]
        self.assertEqual(missing[:10], [], f"{len(missing)} keys written by nutcracker not found by ringproxy")
        differ = {k: (by_ringproxy[k], by_nutcracker[k]) for k in self.keys if by_ringproxy[k] != by_nutcracker[k]}
        self.assertEqual(len(differ), 0, f"placement differs for {len(differ)} keys, e.g. {list(differ.items())[:5]}")
        differ = {k: (by_nutcracker[k], owners[k]) for k in self.keys if by_nutcracker[k] != owners[k]}
        self.assertEqual(len(differ), 0, f"ringctl owner differs for {len(differ)} keys, e.g. {list(differ.items())[:5]}")

    def test_named_servers(self):
        self.check_pool("named")

    def test_unnamed_servers(self):
        self.check_pool("unnamed")

    def test_a_server_on_port_11211_was_used(self):
        if not self.has_11211:
            self.skipTest("127.0.0.1:11211 is taken: the port-11211 rule is not exercised")
        self.assertIn(11211, self.ports)


if __name__ == "__main__":
    unittest.main(verbosity=2)
