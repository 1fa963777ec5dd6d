"""CLIENT LIST and CLIENT KILL answered by ringproxy (2 workers) for its own clients, with
redis-py: every client of the pool is listed whichever worker holds it, with its name, database
and subscriptions, and no client of another pool; TYPE and ID filter; CLIENT KILL by ID, by
address (the old form) and by TYPE closes the clients it names, on any worker, and SKIPME spares
the caller; CLIENT PAUSE is refused with the reason."""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402


def parse_list(text):
    out = []
    for line in text.decode().splitlines():
        out.append(dict(f.split("=", 1) for f in line.split(" ")))
    return out


class RedisClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = harness.start_redis()
        cls.port, cls.other = harness.free_port(), harness.free_port()
        servers = [f"127.0.0.1:{cls.backend.port}:1"]
        cls.config = harness.write_config(harness.redis_pool_config("main", cls.port, servers)
                                          + harness.redis_pool_config("other", cls.other, servers))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=["--workers", "2"])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.backend.stop()
        os.unlink(cls.config)

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def connect(self, name, db=0):
        c = redis.Redis(host="127.0.0.1", port=self.port, db=db, client_name=name)
        c.ping()
        return c

    def closed(self, sock, timeout=3.0):
        sock.settimeout(timeout)
        try:
            return sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def test_list_shows_every_client_of_the_pool_on_every_worker(self):
        clients = [self.connect(f"worker-{i}", db=i % 3) for i in range(8)]
        stranger = redis.Redis(host="127.0.0.1", port=self.other, client_name="stranger")
        stranger.ping()
        sub = redis.Redis(host="127.0.0.1", port=self.port).pubsub()
        sub.subscribe("news")
        sub.get_message(timeout=2)
        listed = clients[0].client_list()
        names = {c["name"]: c for c in listed}
        for i in range(8):
            self.assertIn(f"worker-{i}", names)
            self.assertEqual(int(names[f"worker-{i}"]["db"]), i % 3)
        self.assertNotIn("stranger", names)  # another pool is another server
        self.assertEqual(len(set(c["id"] for c in listed)), len(listed))
        pubsub = clients[0].client_list(_type="pubsub")
        self.assertEqual([(c["sub"], c["flags"]) for c in pubsub], [("1", "P")])
        me = clients[3].client_info()
        self.assertEqual(me["name"], "worker-3")
        self.assertEqual(clients[0].client_list(client_id=[str(me["id"])])[0]["name"], "worker-3")
        for c in clients:
            c.close()
        stranger.close()
        sub.close()

    def test_kill_by_id_address_and_type_closes_clients_on_any_worker(self):
        admin = self.connect("admin")
        socks = []
        for i in range(6):
            s = socket.create_connection(("127.0.0.1", self.port))
            s.sendall(harness.encode_command("CLIENT", "SETNAME", f"victim-{i}"))
            self.assertEqual(s.recv(100), b"+OK\r\n")
            socks.append(s)
        by_name = {c["name"]: c for c in admin.client_list()}
        # New form, by ID: the count of clients killed; they close whichever worker holds them.
        for i in range(3):
            self.assertEqual(admin.execute_command("CLIENT", "KILL", "ID", by_name[f"victim-{i}"]["id"]), 1)
        # Old form, by address.
        self.assertEqual(admin.execute_command("CLIENT", "KILL", by_name["victim-3"]["addr"]), b"OK")
        for i in range(4):
            self.assertTrue(self.closed(socks[i]), f"victim-{i} still open")
        with self.assertRaises(redis.exceptions.ResponseError):
            admin.execute_command("CLIENT", "KILL", "127.0.0.1:1")  # no such client
        # TYPE normal kills every normal client but the caller (SKIPME yes is the default).
        killed = admin.execute_command("CLIENT", "KILL", "TYPE", "normal")
        self.assertGreaterEqual(killed, 2)
        for s in socks[4:]:
            self.assertTrue(self.closed(s))
        self.assertTrue(admin.ping())
        names = [c["name"] for c in admin.client_list()]
        self.assertEqual(names, ["admin"])
        admin.close()
        for s in socks:
            s.close()

    def test_pause_is_refused_with_its_reason(self):
        c = self.connect("pauser")
        with self.assertRaises(redis.exceptions.ResponseError) as ctx:
            c.execute_command("CLIENT", "PAUSE", "100")
        self.assertIn("one server's connections", str(ctx.exception))
        self.assertTrue(c.ping())
        c.close()


if __name__ == "__main__":
    unittest.main()
