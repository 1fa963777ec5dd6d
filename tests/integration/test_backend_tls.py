"""TLS from ringproxy to its backends (backend_tls), with real redis-servers listening only on
--tls-port and requiring client certificates. Certificates are made here with `openssl req`.

1. Plain clients through ringproxy to TLS backends: SET, GET, a split MGET and MSET work, and a
   direct TLS connection (redis-py with ssl=True) finds every key on its owner; memcached -Z
   (requiring a client certificate) serves set and get the same way.
2. A backend certificate from another CA, or a server name the certificate does not carry:
   requests fail with "certificate verify failed", and the log says so.
3. A reload whose certificate file is not a certificate changes nothing: the error names the
   file and the key, and the old connections keep serving.
4. Config errors name the line and key: a client certificate without its key, an unreadable
   CA file, backend_tls_* without backend_tls.
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
