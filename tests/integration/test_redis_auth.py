"""redis_auth and redis_db: a pool with `redis_auth: secret` in front of redis-servers started
with --requirepass secret asks its clients for the password (NOAUTH, WRONGPASS, then +OK) and
authenticates its own backend connections; a pool with `redis_db: N` keeps its keys in db N on
the backends. Error wordings are compared with a real redis-server's.

Backend ACL users: redis-servers whose default user is off and whose only user is `ringproxy`;
a pool with backend_auth_user/backend_auth_password logs in as that user on every kind of
connection (pipelined, SELECTed database, RESP3, a client's own for blocking commands), while
its clients log in to the proxy with redis_auth. (Transitions' MIGRATE uses AUTH2 user password.)"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402
from harness import ErrorReply, RawConn  # noqa: E402

SECRET = "secret"


class RedisAuthAndDb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.locked = [harness.start_redis(extra=["--requirepass", SECRET]) for _ in range(2)]
        cls.plain = [harness.start_redis() for _ in range(2)]
        cls.listen = {name: harness.free_port() for name in ("auth", "db2", "authdb", "open")}
        locked = [f"127.0.0.1:{b.port}:1" for b in cls.locked]
        plain = [f"127.0.0.1:{b.port}:1" for b in cls.plain]
        cls.config = harness.write_config(
            harness.redis_pool_config("auth", cls.listen["auth"], locked, hash_name="md5",
                                      extra=f"  redis_auth: {SECRET}\n")
            + harness.redis_pool_config("db2", cls.listen["db2"], plain, hash_name="md5", extra="  redis_db: 2\n")
            + harness.redis_pool_config("authdb", cls.listen["authdb"], locked, hash_name="md5",
                                        extra=f"  redis_auth: {SECRET}\n  redis_db: 3\n")
            + harness.redis_pool_config("open", cls.listen["open"], plain, hash_name="md5"))
        cls.proxy = harness.start_ringproxy(cls.config, cls.listen["auth"], extra=["--workers", "2"])
        for port in cls.listen.values():
            cls.proxy.wait_port(port=port)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.locked + cls.plain:
            b.stop()
        os.unlink(cls.config)

    def setUp(self):
        for b in self.locked:
            redis.Redis(host="127.0.0.1", port=b.port, password=SECRET).flushall()
        for b in self.plain:
            redis.Redis(host="127.0.0.1", port=b.port).flushall()

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def keys_in_db(self, servers, db, password=None):
        out = {}
        for b in servers:
            for k in redis.Redis(host="127.0.0.1", port=b.port, db=db, password=password).keys("*"):
                self.assertNotIn(k, out)
                out[k.decode()] = b.port
        return out

    def owners(self, pool, keys):
        return {k: harness.label_port(v) for k, v in harness.ringctl_owners(self.config, pool, keys).items()}

    # 7 -----------------------------------------------------------------------------------------
    def test_commands_before_auth_get_noauth_like_redis(self):
        with RawConn(self.listen["auth"]) as c, RawConn(self.locked[0].port) as real:
            for cmd in [("GET", "a:k"), ("SET", "a:k", "v"), ("MGET", "a:k", "a:j"), ("DEL", "a:k"), ("PING",)]:
                with self.subTest(cmd=cmd):
                    expected = real.call_raw(*cmd)
                    self.assertTrue(expected.startswith(b"-NOAUTH"), expected)
                    self.assertEqual(c.call_raw(*cmd), expected)
        self.assertEqual(self.keys_in_db(self.locked, 0, SECRET), {}, "an unauthenticated SET reached a backend")

    def test_wrong_password_then_right_one(self):
        with RawConn(self.listen["auth"]) as c, RawConn(self.locked[0].port) as real:
            expected = real.call_raw("AUTH", "wrong")
            self.assertTrue(expected.startswith(b"-WRONGPASS"), expected)
            self.assertEqual(c.call_raw("AUTH", "wrong"), expected)
            self.assertEqual(c.call_raw("AUTH", "default", "wrong"), real.call_raw("AUTH", "default", "wrong"))
            self.assertTrue(c.call_raw("GET", "a:k").startswith(b"-NOAUTH"), "a wrong AUTH must not authenticate")
            self.assertEqual(c.call_raw("AUTH", SECRET), b"+OK\r\n")
            self.assertEqual(c.call_raw("SET", "a:k", "v1"), b"+OK\r\n")
            self.assertEqual(c.call_raw("GET", "a:k"), b"$2\r\nv1\r\n")
            self.assertEqual(c.call_raw("PING"), b"+PONG\r\n")
        # Another connection is not authenticated by the first one's AUTH.
        with RawConn(self.listen["auth"]) as other:
            self.assertTrue(other.call_raw("GET", "a:k").startswith(b"-NOAUTH"))
            self.assertEqual(other.call_raw("AUTH", "default", SECRET), b"+OK\r\n")
            self.assertEqual(other.call_raw("GET", "a:k"), b"$2\r\nv1\r\n")

    def test_authenticated_client_library_works_across_backends(self):
        bad = redis.Redis(host="127.0.0.1", port=self.listen["auth"])
        with self.assertRaises(redis.exceptions.AuthenticationError):
            bad.get("a:k")
        # A wrong password fails the same way as against redis-server itself.
        with self.assertRaises(redis.exceptions.ResponseError) as real:
            redis.Redis(host="127.0.0.1", port=self.locked[0].port, password="nope").get("a:k")
        with self.assertRaises(redis.exceptions.ResponseError) as proxied:
            redis.Redis(host="127.0.0.1", port=self.listen["auth"], password="nope").get("a:k")
        self.assertIs(type(proxied.exception), type(real.exception))
        self.assertEqual(str(proxied.exception), str(real.exception))
        client = redis.Redis(host="127.0.0.1", port=self.listen["auth"], password=SECRET)
        keys = [f"a:{i}" for i in range(200)]
        self.assertTrue(client.mset({k: k.upper() for k in keys}))
        self.assertEqual(client.mget(keys + ["a:none"]), [k.upper().encode() for k in keys] + [None])
        self.assertEqual(client.exists(*keys), 200)
        placed = self.keys_in_db(self.locked, 0, SECRET)
        self.assertEqual(placed, self.owners("auth", keys))
        self.assertEqual(len(set(placed.values())), 2)
        self.assertEqual(client.delete(*keys), 200)
        self.assertEqual(self.keys_in_db(self.locked, 0, SECRET), {})

    def test_hello_with_auth(self):
        # A RESP3 client of a password pool: the proxy's RESP3 backend connections must
        # authenticate too (HELLO 3 before AUTH is refused by redis-server with NOAUTH).
        with RawConn(self.listen["auth"]) as c:
            self.assertTrue(c.call_raw("HELLO", "3").startswith(b"-NOAUTH"))
            hello = c.call_raw("HELLO", "3", "AUTH", "default", SECRET)
            self.assertTrue(hello.startswith(b"%"), hello[:20])
            self.assertEqual(c.call_raw("GET", "a:none"), b"_\r\n")
            self.assertEqual(c.call_raw("SET", "a:h", "3"), b"+OK\r\n")
            self.assertEqual(c.call_raw("GET", "a:h"), b"$1\r\n3\r\n")
        with RawConn(self.listen["auth"]) as c:
            self.assertEqual(c.call_raw("AUTH", SECRET), b"+OK\r\n")
            self.assertTrue(c.call_raw("HELLO", "3").startswith(b"%"))
            self.assertEqual(c.call_raw("MGET", "a:h", "a:none"), b"*2\r\n$1\r\n3\r\n_\r\n")
        self.assertEqual(self.keys_in_db(self.locked, 0, SECRET), {"a:h": self.owners("auth", ["a:h"])["a:h"]})

    def test_auth_on_a_pool_without_password_answers_like_redis(self):
        with RawConn(self.listen["open"]) as c, RawConn(self.plain[0].port) as real:
            expected = real.call_raw("AUTH", "x")
            self.assertTrue(expected.startswith(b"-ERR AUTH"), expected)
            self.assertEqual(c.call_raw("AUTH", "x"), expected)
            self.assertEqual(c.call_raw("PING"), b"+PONG\r\n")

    def test_redis_db_keeps_keys_in_that_db(self):
        client = redis.Redis(host="127.0.0.1", port=self.listen["db2"])
        keys = [f"d:{i}" for i in range(200)]
        self.assertTrue(client.mset({k: "v" + k for k in keys}))
        self.assertTrue(client.set("d:single", "one"))
        self.assertEqual(client.incr("d:ctr"), 1)
        self.assertEqual(client.mget(["d:single", "d:3", "d:none"]), [b"one", b"vd:3", None])
        in_db2 = self.keys_in_db(self.plain, 2)
        self.assertEqual(in_db2, self.owners("db2", keys + ["d:single", "d:ctr"]))
        self.assertEqual(len(set(in_db2.values())), 2)
        self.assertEqual(self.keys_in_db(self.plain, 0), {}, "keys leaked into db 0")
        # The 'open' pool (db 0) over the same backends does not see db 2.
        self.assertIsNone(redis.Redis(host="127.0.0.1", port=self.listen["open"]).get("d:single"))
        self.assertEqual(client.delete(*keys), 200)
        self.assertEqual(set(self.keys_in_db(self.plain, 2)), {"d:single", "d:ctr"})
        with RawConn(self.listen["db2"]) as c:
            # SELECT means what it means to Redis: database 0 is database 0 on the backends;
            # redis_db is the database of clients that never select one.
            self.assertEqual(c.call_raw("SELECT", "0"), b"+OK\r\n")
            self.assertEqual(c.call_raw("GET", "d:single"), b"$-1\r\n")
            self.assertEqual(c.call_raw("SELECT", "2"), b"+OK\r\n")
            self.assertEqual(c.call_raw("GET", "d:single"), b"$3\r\none\r\n")
            # RESP3 clients' backend connections select the db too.
            self.assertTrue(c.call_raw("HELLO", "3").startswith(b"%"))
            self.assertEqual(c.call_raw("SET", "d:resp3", "3"), b"+OK\r\n")
            self.assertEqual(c.call_raw("MGET", "d:resp3", "d:none"), b"*2\r\n$1\r\n3\r\n_\r\n")
        self.assertEqual(set(self.keys_in_db(self.plain, 2)), {"d:single", "d:ctr", "d:resp3"})
        self.assertEqual(self.keys_in_db(self.plain, 0), {})

    def test_auth_and_db_together(self):
        client = redis.Redis(host="127.0.0.1", port=self.listen["authdb"], password=SECRET)
        keys = [f"ad:{i}" for i in range(100)]
        self.assertTrue(client.mset({k: k for k in keys}))
        self.assertEqual(client.mget(keys[:3]), [k.encode() for k in keys[:3]])
        self.assertEqual(self.keys_in_db(self.locked, 3, SECRET), self.owners("authdb", keys))
        self.assertEqual(self.keys_in_db(self.locked, 0, SECRET), {})



class BackendAclUser(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        acl = ["--user", "default", "off", "--user", "ringproxy", "on", ">backendpw", "~*", "&*", "+@all"]
        cls.backends = [harness.start_redis(extra=acl) for _ in range(2)]
        cls.port = harness.free_port()
        servers = [f"127.0.0.1:{b.port}:1" for b in cls.backends]
        extra = "  redis_auth: clientpw\n  backend_auth_user: ringproxy\n  backend_auth_password: backendpw\n"
        cls.config = harness.write_config(harness.redis_pool_config("acl", cls.port, servers, extra=extra))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()

    def direct(self, b):
        return redis.Redis(port=b.port, username="ringproxy", password="backendpw")

    def test_the_backends_see_the_configured_user(self):
        with self.assertRaises(redis.exceptions.ResponseError) as wrong:
            redis.Redis(port=self.port, password="backendpw").ping()  # clients use redis_auth
        self.assertIn("WRONGPASS", str(wrong.exception))
        c = redis.Redis(port=self.port, password="clientpw")
        keys = [f"acl:{i}" for i in range(100)]
        self.assertTrue(c.mset({k: k for k in keys}))
        self.assertEqual(c.mget(keys), [k.encode() for k in keys])
        self.assertEqual(redis.Redis(port=self.port, password="clientpw", db=1).set("in-db1", "x"), True)
        self.assertEqual(c.blpop(["acl:list"], timeout=0.1), None)  # a connection of the client's own
        r3 = RawConn(self.port)
        r3.call("HELLO", "3", "AUTH", "default", "clientpw")
        self.assertEqual(r3.call("GET", "acl:1"), b"acl:1")
        r3.close()
        users = set()
        for b in self.backends:
            with self.direct(b) as d:
                self.assertEqual(d.acl_whoami(), "ringproxy")
                for client in d.client_list():
                    users.add(client["user"])
        self.assertEqual(users, {"ringproxy"})
        self.assertEqual(sum(self.direct(b).dbsize() for b in self.backends), 100)
        in_db1 = [redis.Redis(port=b.port, username="ringproxy", password="backendpw", db=1).exists("in-db1")
                  for b in self.backends]
        self.assertEqual(sorted(in_db1), [0, 1])
        c.close()



class ProxyUsers(unittest.TestCase):
    """users: on the proxy: AUTH user password, HELLO 3 AUTH, ACL WHOAMI as Redis answers them; a
    read-only user cannot write; a user limited to a key prefix cannot touch other keys (nor list
    the keyspace); wrong credentials get Redis's error and are counted."""

    @classmethod
    def setUpClass(cls):
        import hashlib
        import tempfile
        cls.backends = [harness.start_redis(extra=["--requirepass", "legacy-pw"]) for _ in range(2)]
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.pwfile = tempfile.NamedTemporaryFile("w", suffix=".pw", delete=False)
        cls.pwfile.write("from-a-file\n")
        cls.pwfile.close()
        sha = hashlib.sha256(b"writer-pw").hexdigest()
        sha_ro = harness.run_ringctl("hash-password", stdin="reader-pw\n").stdout.strip()
        assert sha_ro == hashlib.sha256(b"reader-pw").hexdigest(), sha_ro
        extra = (f"  redis_auth: legacy-pw\n  users:\n"
                 f"    - {{name: writer, password_sha256: {sha}}}\n"
                 f"    - {{name: reader, password_sha256: {sha_ro}, commands: read-only}}\n"
                 f"    - {{name: tenant, password_file: {cls.pwfile.name}, key_prefix: \"t1:\"}}\n")
        servers = [f"127.0.0.1:{b.port}:1" for b in cls.backends]
        cls.config = harness.write_config(harness.redis_pool_config("users", cls.port, servers, extra=extra))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=["--admin", f"127.0.0.1:{cls.admin}"])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.pwfile.name)

    def test_users_log_in_and_whoami_says_who(self):
        for user, password in (("writer", "writer-pw"), ("reader", "reader-pw"), ("tenant", "from-a-file")):
            with self.subTest(user=user):
                c = RawConn(self.port)
                self.assertEqual(c.call("ACL", "WHOAMI"), ErrorReply("NOAUTH Authentication required."))
                self.assertEqual(c.call("AUTH", user, password), b"OK")
                self.assertEqual(c.call("ACL", "WHOAMI"), user.encode())
                c.close()
        c = RawConn(self.port)
        self.assertEqual(c.call("AUTH", "legacy-pw"), b"OK")
        self.assertEqual(c.call("ACL", "WHOAMI"), b"default")
        c.close()
        with redis.Redis(port=self.port, username="writer", password="writer-pw") as r:
            self.assertTrue(r.set("w:1", "x"))
            self.assertEqual(r.acl_whoami(), "writer")
        h = RawConn(self.port)
        hello = h.call("HELLO", "3", "AUTH", "reader", "reader-pw")
        self.assertNotIsInstance(hello, ErrorReply)
        self.assertEqual(h.call("ACL", "WHOAMI"), b"reader")
        h.close()

    def test_wrong_credentials_are_refused_as_redis_does_and_counted(self):
        def failures():
            return harness.metric_value(harness.get_metrics(self.admin), "ringproxy_pool_auth_failures_total",
                                        pool="users")
        before = failures()
        c = RawConn(self.port)
        wrong = "WRONGPASS invalid username-password pair or user is disabled."
        self.assertEqual(c.call("AUTH", "writer", "reader-pw"), ErrorReply(wrong))
        self.assertEqual(c.call("AUTH", "nobody", "writer-pw"), ErrorReply(wrong))
        self.assertEqual(c.call("AUTH", "writer-pw"), ErrorReply(wrong))  # the default user's is legacy-pw
        self.assertEqual(c.call("HELLO", "3", "AUTH", "reader", "nope"), ErrorReply(wrong))
        self.assertEqual(c.call("GET", "x"), ErrorReply("NOAUTH Authentication required."))
        c.close()
        self.assertEqual(failures() - before, 4)

    def test_a_read_only_user_cannot_write(self):
        c = RawConn(self.port)
        self.assertEqual(c.call("AUTH", "reader", "reader-pw"), b"OK")
        self.assertEqual(c.call("GET", "anything"), None)
        for cmd in (("SET", "k", "v"), ("DEL", "k"), ("MSET", "a", "1", "b", "2"), ("INCR", "n"), ("FLUSHALL",)):
            with self.subTest(cmd=cmd[0]):
                reply = c.call(*cmd)
                self.assertIsInstance(reply, ErrorReply)
                self.assertTrue(reply.startswith("NOPERM User reader has no permissions to run the"), reply)
        for b in self.backends:
            self.assertIsNone(redis.Redis(port=b.port, password="legacy-pw").get("k"))
        c.close()

    def test_a_user_limited_to_a_prefix_cannot_touch_other_keys(self):
        c = RawConn(self.port)
        self.assertEqual(c.call("AUTH", "tenant", "from-a-file"), b"OK")
        self.assertEqual(c.call("SET", "t1:a", "1"), b"OK")
        self.assertEqual(c.call("MSET", "t1:b", "2", "t1:c", "3"), b"OK")
        self.assertEqual(c.call("MGET", "t1:a", "t1:b", "t1:c"), [b"1", b"2", b"3"])
        for cmd in (("GET", "t2:a"), ("SET", "other", "x"), ("MGET", "t1:a", "t2:a"), ("DEL", "t1:a", "w:1"),
                    ("RENAME", "t1:a", "stolen"), ("KEYS", "*"), ("SCAN", "0"), ("FLUSHDB",)):
            with self.subTest(cmd=cmd):
                reply = c.call(*cmd)
                self.assertIsInstance(reply, ErrorReply)
                self.assertTrue(reply.startswith("NOPERM"), reply)
        self.assertEqual(c.call("GET", "t1:a"), b"1")
        self.assertEqual(c.call("PING"), b"PONG")
        c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
