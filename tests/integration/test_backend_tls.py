"""TLS on both sides of ringproxy: to its backends (backend_tls), with real redis-servers
listening only on --tls-port and requiring client certificates, and to its clients (tls_cert_file).
Certificates are made here with `openssl req`.

1. Plain clients through ringproxy to TLS backends: SET, GET, a split MGET and MSET work, and a
   direct TLS connection (redis-py with ssl=True) finds every key on its owner; memcached -Z
   (requiring a client certificate) serves set and get the same way.
2. A backend certificate from another CA, or a server name the certificate does not carry:
   requests fail with "certificate verify failed", and the log says so.
3. A reload whose certificate file is not a certificate changes nothing: the error names the
   file and the key, and the old connections keep serving.
4. Config errors name the line and key: a client certificate without its key, an unreadable
   CA file, backend_tls_* without backend_tls.
5. Clients over TLS: redis-cli --tls, redis-py with ssl=True, plain-to-TLS and TLS-to-TLS; a
   client certificate from another CA is refused when they are required; a client that never
   finishes its handshake is closed after its timeout; a plain listener of another pool on the
   same servers keeps working.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


def make_cert(d, ca, name, san):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)


def start_tls_redis(d):
    port = harness.free_port()
    argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", "0", "--tls-port", str(port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--tls-cert-file", os.path.join(d, "server.crt"), "--tls-key-file", os.path.join(d, "server.key"),
            "--tls-ca-cert-file", os.path.join(d, "ca.crt"), "--tls-auth-clients", "yes"]
    return harness.Proc(argv, port, f"redis-tls-{port}").wait_port()


def tls_pool(name, port, servers, d, **overrides):
    keys = {"backend_tls": "true", "backend_tls_ca_file": os.path.join(d, "ca.crt"),
            "backend_tls_cert_file": os.path.join(d, "client.crt"), "backend_tls_key_file": os.path.join(d, "client.key")}
    keys.update(overrides)
    extra = "".join(f"  {k}: {v}\n" for k, v in keys.items() if v is not None)
    return harness.redis_pool_config(name, port, [f"127.0.0.1:{p}:1 s{i}" for i, p in enumerate(servers)], extra=extra)


class BackendTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = tempfile.mkdtemp()
        make_ca(cls.d, "ca")
        make_ca(cls.d, "otherca")
        make_cert(cls.d, "ca", "server", "IP:127.0.0.1,DNS:localhost")
        make_cert(cls.d, "ca", "client", "DNS:ringproxy")
        cls.servers = [start_tls_redis(cls.d) for _ in range(2)]
        cls.ports = [s.port for s in cls.servers]

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.stop()
        shutil.rmtree(cls.d)

    def direct(self, port):
        return redis.Redis(port=port, ssl=True, ssl_ca_certs=os.path.join(self.d, "ca.crt"),
                           ssl_certfile=os.path.join(self.d, "client.crt"),
                           ssl_keyfile=os.path.join(self.d, "client.key"))

    def start_proxy(self, text):
        port, admin = harness.free_port(), harness.free_port()
        path = harness.write_config(text.replace("LISTEN", str(port)))
        proxy = harness.start_ringproxy(path, port, extra=["--admin", f"127.0.0.1:{admin}"])
        self.addCleanup(proxy.stop)
        return proxy, port, admin, path

    def test_plain_clients_reach_tls_backends(self):
        proxy, port, _, path = self.start_proxy(tls_pool("alpha", "LISTEN", self.ports, self.d))
        c = redis.Redis(port=port)
        keys = [f"tls:{i}" for i in range(200)]
        self.assertTrue(c.mset({k: f"v{k}" for k in keys}))
        self.assertEqual(c.get("tls:7"), b"vtls:7")
        self.assertEqual(c.mget(keys), [f"v{k}".encode() for k in keys])
        owners = harness.keys_by_owner(path, "alpha", keys)
        for i, port_i in enumerate(self.ports):
            with self.direct(port_i) as d:
                mine = owners.get(f"s{i}", [])
                self.assertGreater(len(mine), 20)
                self.assertEqual(d.mget(mine), [f"v{k}".encode() for k in mine])
        c.close()

    def test_memcached_with_tls(self):
        port = harness.free_port()
        d = self.d
        argv = [shutil.which("memcached") or "/usr/bin/memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0",
                "-m", "64", "-Z", "-o",
                f"ssl_chain_cert={d}/server.crt,ssl_key={d}/server.key,ssl_ca_cert={d}/ca.crt,ssl_verify_mode=2"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        mc = harness.Proc(argv, port, f"memcached-tls-{port}").wait_port()
        self.addCleanup(mc.stop)
        extra = "".join(f"  {k}: {v}\n" for k, v in {
            "backend_tls": "true", "backend_tls_ca_file": f"{d}/ca.crt",
            "backend_tls_cert_file": f"{d}/client.crt", "backend_tls_key_file": f"{d}/client.key"}.items())
        text = harness.memcache_pool_config("m", "LISTEN", [f"127.0.0.1:{port}:1"], extra=extra)
        proxy, listen, _, _ = self.start_proxy(text)
        c = harness.McConn(listen)
        self.assertEqual(c.call_text(b"set a 0 0 5\r\nhello\r\n"), b"STORED\r\n")
        self.assertEqual(c.call_text(b"get a\r\n"), b"VALUE a 0 5\r\nhello\r\nEND\r\n")
        c.close()

    def test_a_server_the_ca_does_not_vouch_for_is_refused(self):
        for overrides, what in (({"backend_tls_ca_file": os.path.join(self.d, "otherca.crt")}, "another CA"),
                                ({"backend_tls_server_name": "cache.example.com"}, "a name it does not carry")):
            with self.subTest(what):
                proxy, port, _, _ = self.start_proxy(tls_pool("alpha", "LISTEN", self.ports[:1], self.d, **overrides))
                with redis.Redis(port=port) as c:
                    with self.assertRaises(redis.exceptions.ResponseError) as e:
                        c.get("k")
                self.assertIn("certificate verify failed", str(e.exception))
                harness.wait_for(lambda: "certificate verify failed" in proxy.output(), 3, what="the log line")
                proxy.stop()

    def test_a_bad_certificate_in_a_reload_changes_nothing(self):
        bad = os.path.join(self.d, "bad.crt")
        with open(bad, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        proxy, port, admin, path = self.start_proxy(tls_pool("alpha", "LISTEN", self.ports, self.d))
        c = redis.Redis(port=port)
        self.assertTrue(c.set("before", "1"))
        listen = str(port)
        with open(path, "w") as f:
            f.write(tls_pool("alpha", listen, self.ports, self.d, backend_tls_cert_file=bad))
        status, _, body = harness.http_request(admin, "POST", "/reload")
        self.assertEqual(status, 422, body)
        self.assertIn("alpha.backend_tls_cert_file", body.decode() if isinstance(body, bytes) else body)
        self.assertIn(bad, body.decode() if isinstance(body, bytes) else body)
        self.assertEqual(c.get("before"), b"1")
        self.assertTrue(c.set("after", "2"))
        self.assertEqual(harness.metric_value(harness.get_metrics(admin), "ringproxy_reload_generation"), 1)
        c.close()

    def test_an_expired_client_certificate_refuses_the_start(self):
        d = self.d
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=gone", "-keyout", "gone.key", "-out", "gone.csr",
                cwd=d)
        openssl("x509", "-req", "-in", "gone.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "-1",
                "-out", "gone.crt", cwd=d)
        port = harness.free_port()
        path = harness.write_config(tls_pool("alpha", port, self.ports, d, backend_tls_cert_file=f"{d}/gone.crt",
                                             backend_tls_key_file=f"{d}/gone.key"))
        out = subprocess.run([harness.binary("ringproxy"), "-c", path, "-s", "0"], capture_output=True, text=True,
                             timeout=10)
        self.assertEqual(out.returncode, 1)
        self.assertIn("alpha.backend_tls_cert_file", out.stderr)
        self.assertIn("the certificate has expired", out.stderr)

    def test_config_errors_name_line_and_key(self):
        cases = [
            (tls_pool("alpha", 1, self.ports, self.d, backend_tls_key_file=None), "alpha.backend_tls_cert_file",
             "needs backend_tls_key_file"),
            (tls_pool("alpha", 1, self.ports, self.d, backend_tls_ca_file="/nonexistent/ca.pem"),
             "alpha.backend_tls_ca_file", "No such file or directory"),
            (tls_pool("alpha", 1, self.ports, self.d, backend_tls="false"), "alpha.backend_tls_ca_file",
             "has no effect without backend_tls: true"),
        ]
        for text, key, message in cases:
            with self.subTest(key=key, message=message):
                path = harness.write_config(text)
                out = harness.run_ringctl("check", "-c", path, "--no-resolve")
                self.assertEqual(out.returncode, 1, out.stderr)
                self.assertRegex(out.stderr, rf"{path}:\d+: {key}: .*{message}")


class ClientTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = tempfile.mkdtemp()
        make_ca(cls.d, "ca")
        make_ca(cls.d, "otherca")
        make_cert(cls.d, "ca", "server", "IP:127.0.0.1,DNS:localhost")
        make_cert(cls.d, "ca", "client", "DNS:ringproxy")
        make_cert(cls.d, "otherca", "stranger", "DNS:stranger")
        cls.tls_redis = start_tls_redis(cls.d)
        cls.plain_redis = harness.start_redis()
        cls.memcached = harness.start_memcached()
        d = cls.d
        cls.tls_port, cls.plain_port, cls.tls2_port = harness.free_port(), harness.free_port(), harness.free_port()
        cls.mc_port = harness.free_port()
        listener = {"tls_cert_file": f"{d}/server.crt", "tls_key_file": f"{d}/server.key",
                    "tls_ca_file": f"{d}/ca.crt"}
        text = (harness.redis_pool_config("tls_to_plain", cls.tls_port, [f"127.0.0.1:{cls.plain_redis.port}:1"],
                                          extra="".join(f"  {k}: {v}\n" for k, v in listener.items()))
                + harness.redis_pool_config("plain", cls.plain_port, [f"127.0.0.1:{cls.plain_redis.port}:1"])
                + tls_pool("tls_to_tls", cls.tls2_port, [cls.tls_redis.port], d, **listener)
                + harness.memcache_pool_config("mc_tls", cls.mc_port, [f"127.0.0.1:{cls.memcached.port}:1"],
                                               extra="".join(f"  {k}: {v}\n" for k, v in listener.items())))
        cls.path = harness.write_config(text)
        cls.proxy = harness.start_ringproxy(cls.path, cls.plain_port, extra=["--workers", "2"])
        cls.proxy.wait_port(port=cls.tls_port)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.tls_redis.stop()
        cls.plain_redis.stop()
        cls.memcached.stop()
        shutil.rmtree(cls.d)

    def test_pymemcache_over_tls(self):
        import ssl
        from pymemcache.client.base import Client
        ctx = ssl.create_default_context(cafile=os.path.join(self.d, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.d, "client.crt"), os.path.join(self.d, "client.key"))
        c = Client(("127.0.0.1", self.mc_port), tls_context=ctx)
        self.assertTrue(c.set("mc-tls", b"v" * 100000))
        self.assertEqual(c.get("mc-tls"), b"v" * 100000)
        self.assertEqual(c.get_many(["mc-tls", "none"]), {"mc-tls": b"v" * 100000})
        c.close()

    def client(self, port, cert="client"):
        return redis.Redis(port=port, ssl=True, ssl_ca_certs=os.path.join(self.d, "ca.crt"),
                           ssl_certfile=os.path.join(self.d, f"{cert}.crt"),
                           ssl_keyfile=os.path.join(self.d, f"{cert}.key"), socket_timeout=5)

    def test_redis_py_over_tls_both_ways(self):
        for port in (self.tls_port, self.tls2_port):
            with self.subTest(port=port), self.client(port) as c:
                keys = [f"ct:{port}:{i}" for i in range(300)]
                self.assertTrue(c.mset({k: "x" * (i % 50) + k for i, k in enumerate(keys)}))
                self.assertEqual(c.mget(keys), [("x" * (i % 50) + k).encode() for i, k in enumerate(keys)])
                big = os.urandom(3 << 20)  # several TLS records each way
                self.assertTrue(c.set(f"big:{port}", big))
                self.assertEqual(c.get(f"big:{port}"), big)
                pipe = c.pipeline(transaction=False)
                for i in range(2000):
                    pipe.incr(f"n:{port}")
                self.assertEqual(pipe.execute()[-1], 2000)
        with redis.Redis(port=self.plain_port) as plain:  # the plain pool on the same server
            self.assertEqual(plain.get(f"n:{self.tls_port}"), b"2000")

    def test_ioredis_over_tls(self):
        node = shutil.which("node")
        clients = os.path.join(os.path.dirname(__file__), "..", "clients")
        if node is None or not os.path.isdir(os.path.join(clients, "node_modules", "ioredis")):
            self.skipTest("node or tests/clients/node_modules missing (scripts/setup installs them)")
        d = self.d
        script = (
            "const Redis = require('ioredis'); const fs = require('fs');"
            f"const r = new Redis({{host: '127.0.0.1', port: {self.tls_port}, tls: {{"
            f"ca: fs.readFileSync('{d}/ca.crt'), cert: fs.readFileSync('{d}/client.crt'),"
            f"key: fs.readFileSync('{d}/client.key')}}}});"
            "r.set('io', 'tls').then(() => r.mget('io', 'nothing')).then(v => {"
            "console.log(JSON.stringify(v)); r.disconnect(); })"
            ".catch(e => { console.error(String(e)); process.exit(1); });")
        out = subprocess.run([node, "-e", script], cwd=clients, capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), '["tls",null]')

    def test_redis_cli_tls(self):
        d = self.d
        out = subprocess.run(["redis-cli", "-p", str(self.tls_port), "--tls", "--cacert", f"{d}/ca.crt",
                              "--cert", f"{d}/client.crt", "--key", f"{d}/client.key", "SET", "cli", "ok"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.stdout.strip(), "OK", out.stderr)
        with self.client(self.tls_port) as c:
            self.assertEqual(c.get("cli"), b"ok")

    def test_a_reload_with_a_new_certificate_keeps_established_clients(self):
        import signal
        import ssl
        import time

        def served_serial():
            ctx = ssl.create_default_context(cafile=os.path.join(self.d, "ca.crt"))
            ctx.load_cert_chain(os.path.join(self.d, "client.crt"), os.path.join(self.d, "client.key"))
            with ctx.wrap_socket(__import__("socket").create_connection(("127.0.0.1", self.tls_port)),
                                 server_hostname="127.0.0.1") as s:
                return s.getpeercert()["serialNumber"]

        before = served_serial()
        established = self.client(self.tls_port)
        self.assertTrue(established.set("kept", "1"))
        make_cert(self.d, "ca", "server2", "IP:127.0.0.1")
        with open(self.path) as f:
            text = f.read()
        with open(self.path, "w") as f:
            f.write(text.replace(f"{self.d}/server.crt", f"{self.d}/server2.crt")
                    .replace(f"{self.d}/server.key", f"{self.d}/server2.key"))
        self.proxy.signal(signal.SIGHUP)
        harness.wait_for(lambda: served_serial() != before, 5, what="the new certificate served")
        self.assertEqual(established.get("kept"), b"1")  # the same TLS connection, still served
        established.close()
        # A certificate that cannot be used in a reload changes nothing.
        with open(self.path, "w") as f:
            f.write(text.replace(f"{self.d}/server.crt", f"{self.d}/otherca.crt"))
        served = served_serial()
        self.proxy.signal(signal.SIGHUP)
        harness.wait_for(lambda: "tls_key_file" in self.proxy.output() or "tls_cert_file" in self.proxy.output(),
                         5, what="the refused reload")
        time.sleep(0.3)
        self.assertEqual(served_serial(), served)
        with open(self.path, "w") as f:
            f.write(text)

    def test_an_expired_certificate_in_a_reload_is_refused(self):
        import signal
        d = self.d
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=old", "-keyout", "old.key", "-out", "old.csr", cwd=d)
        openssl("x509", "-req", "-in", "old.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "-1",
                "-out", "old.crt", cwd=d)
        with open(self.path) as f:
            text = f.read()
        with open(self.path, "w") as f:
            f.write(text.replace(f"{d}/server.crt", f"{d}/old.crt").replace(f"{d}/server.key", f"{d}/old.key"))
        try:
            self.proxy.signal(signal.SIGHUP)
            harness.wait_for(lambda: "the certificate has expired" in self.proxy.output(), 5, what="the refused reload")
            self.assertIn("tls_cert_file", self.proxy.output())
            with self.client(self.tls_port) as c:  # the old certificate still serves
                self.assertTrue(c.ping())
        finally:
            with open(self.path, "w") as f:
                f.write(text)

    def test_a_certificate_from_another_ca_is_refused(self):
        with self.assertRaises((redis.exceptions.ConnectionError, OSError)):
            with self.client(self.tls_port, cert="stranger") as c:
                c.ping()
        with self.client(self.tls_port) as c:
            self.assertTrue(c.ping())

    def test_plain_bytes_to_a_tls_listener_and_a_stalled_handshake_are_closed(self):
        import socket
        import time
        s = socket.create_connection(("127.0.0.1", self.tls_port))
        s.sendall(b"*1\r\n$4\r\nPING\r\n")  # not a TLS ClientHello
        s.settimeout(3)
        try:
            answer = s.recv(100)
        except ConnectionResetError:
            answer = b""
        self.assertNotIn(b"PONG", answer)  # closed (a TLS alert at most), never served in clear
        s.close()
        quiet = socket.create_connection(("127.0.0.1", self.tls_port))  # says nothing at all
        quiet.settimeout(15)
        t = time.time()
        self.assertEqual(quiet.recv(100), b"")
        self.assertGreater(time.time() - t, 8)
        quiet.close()
        with self.client(self.tls_port) as c:
            self.assertTrue(c.ping())


if __name__ == "__main__":
    unittest.main(verbosity=2)
