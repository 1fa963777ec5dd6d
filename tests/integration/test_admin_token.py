"""The admin listener with --admin-token-file: every endpoint needs "Authorization: Bearer
<token>" (401 with WWW-Authenticate otherwise, a wrong token included), POST /reload works with
it; a token file that is missing or too short stops the start with a message. (That POST /reload
is refused without a token on a listener not on loopback is a unit test: tests here listen on
127.0.0.1 only.)"""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402

TOKEN = "s3cr3t-t0ken-for-the-admin"


def request(port, method, path, token=None):
    auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    raw = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    return harness.http_request(port, raw=raw.encode())


class AdminToken(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.token_file = os.path.join(cls.dir, "token")
        with open(cls.token_file, "w") as f:
            f.write(TOKEN + "\n")
        cls.redis = harness.start_redis()
        cls.port, cls.admin = harness.free_port(), harness.free_port()
        cls.config = harness.write_config(harness.redis_pool_config("p", cls.port, [f"127.0.0.1:{cls.redis.port}:1"]))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=[
            "--admin", f"127.0.0.1:{cls.admin}", "--admin-token-file", cls.token_file])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.redis.stop()

    def test_every_endpoint_needs_the_token(self):
        for method, path in (("GET", "/metrics"), ("GET", "/status"), ("GET", "/stats"), ("GET", "/ring?pool=p"),
                             ("POST", "/reload"), ("GET", "/nothing")):
            for token in (None, "wrong", TOKEN[:-1], TOKEN + "x"):
                with self.subTest(path=path, token=token):
                    status, headers, _ = request(self.admin, method, path, token)
                    self.assertEqual(status, 401)
                    self.assertEqual(headers.get("www-authenticate"), "Bearer")
        status, _, body = request(self.admin, "GET", "/metrics", TOKEN)
        self.assertEqual(status, 200)
        self.assertIn(b"ringproxy_reload_generation", body)
        status, _, body = request(self.admin, "POST", "/reload", TOKEN)
        self.assertEqual(status, 200, body)
        self.assertIn(b'"ok":true', body)

    def test_ringctl_status_sends_the_token(self):
        out = harness.run_ringctl("status", f"127.0.0.1:{self.admin}", "--json")
        self.assertEqual(out.returncode, 1)
        self.assertIn("401", out.stderr)
        out = harness.run_ringctl("status", f"127.0.0.1:{self.admin}", "--json", "--token-file", self.token_file)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('"generation"', out.stdout)

    def test_a_bad_token_file_stops_the_start(self):
        short = os.path.join(self.dir, "short")
        with open(short, "w") as f:
            f.write("abc\n")
        for path, words in ((os.path.join(self.dir, "missing"), "cannot read"), (short, "16 characters")):
            with self.subTest(path=path):
                out = subprocess.run([harness.binary("ringproxy"), "-c", self.config, "-s", "0", "--admin",
                                      f"127.0.0.1:{harness.free_port()}", "--admin-token-file", path],
                                     capture_output=True, text=True, timeout=10)
                self.assertEqual(out.returncode, 1)
                self.assertIn(words, out.stderr)
                self.assertIn(path, out.stderr)



class AdminTls(unittest.TestCase):
    """--admin-tls-cert/--admin-tls-key: the admin listener serves HTTPS (with the token)."""

    def test_https_with_a_token(self):
        import shutil
        import ssl
        import socket
        sys.path.insert(0, os.path.dirname(__file__))
        from test_backend_tls import make_ca, make_cert
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        make_ca(d, "ca")
        make_cert(d, "ca", "server", "IP:127.0.0.1")
        token_file = os.path.join(d, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        r = harness.start_redis()
        self.addCleanup(r.stop)
        port, admin = harness.free_port(), harness.free_port()
        config = harness.write_config(harness.redis_pool_config("p", port, [f"127.0.0.1:{r.port}:1"]))
        proxy = harness.start_ringproxy(config, port, extra=[
            "--admin", f"127.0.0.1:{admin}", "--admin-token-file", token_file,
            "--admin-tls-cert", f"{d}/server.crt", "--admin-tls-key", f"{d}/server.key"])
        self.addCleanup(proxy.stop)
        ctx = ssl.create_default_context(cafile=f"{d}/ca.crt")

        def get(path, token):
            with ctx.wrap_socket(socket.create_connection(("127.0.0.1", admin)), server_hostname="127.0.0.1") as s:
                auth = f"Authorization: Bearer {token}\r\n" if token else ""
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode())
                data = b""
                while True:
                    try:
                        chunk = s.recv(65536)
                    except ssl.SSLError:
                        break
                    if not chunk:
                        break
                    data += chunk
                return data

        answer = get("/metrics", TOKEN)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:100])
        self.assertIn(b"ringproxy_build_info", answer)
        self.assertTrue(get("/status", None).startswith(b"HTTP/1.1 401"))
        # Plain HTTP to the HTTPS listener gets nothing served.
        status_line = b""
        try:
            status, _, _ = harness.http_request(admin, "GET", "/metrics", timeout=3)
            status_line = str(status).encode()
        except Exception:
            pass
        self.assertNotEqual(status_line, b"200")


if __name__ == "__main__":
    unittest.main(verbosity=2)
