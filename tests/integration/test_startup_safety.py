"""Start-up and reload cannot hang on a bad config path or silently share a listener.

1. The config path replaced by a FIFO (or a symlink to /dev/zero, or a huge file): a running
   proxy still answers the stats port, admin HTTP and SIGTERM, and a reload fails with the
   reason (POST /reload and SIGHUP); at start the proxy refuses such a path with its name.
2. A listener that cannot be bound ends start-up with exit 1 and the reason: the stats port
   (-s/-a), the admin listener (--admin), a pool's listen address; also under -d (the parent
   waits for the daemon to be running).
3. A second ringproxy on the same pool address fails with "address in use" (SO_REUSEPORT
   lets the workers of one process share a port, never two processes); a reload that would
   listen on an address another process holds fails with the reason. Unix socket listeners:
   refused while another process listens on the path, a stale socket file is replaced, a
   regular file is left alone.
4. The start-up log names the config, each pool's listen address, distribution, hash and
   server count, and the stats and admin addresses.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
from harness import RawConn  # noqa: E402


def pool_config(name, listen, backend_port):
    return (f"{name}:\n  listen: {listen}\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n"
            f"  servers:\n    - 127.0.0.1:{backend_port}:1\n")


def run_proxy(*args, timeout=8.0):
    """Runs ringproxy to completion. A proxy that should have failed but keeps running is
    killed after `timeout` and reported as (None, its output)."""
    try:
        out = subprocess.run([harness.binary("ringproxy"), *args], capture_output=True, text=True, timeout=timeout)
        return out.returncode, out.stdout + out.stderr
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"") + (e.stderr or b"")
        return None, text.decode(errors="replace") if isinstance(text, bytes) else text


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = harness.start_redis()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ringproxy-startup-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def get_through(self, port, key="k"):
        with RawConn(port, timeout=5.0) as c:
            self.assertEqual(c.call("SET", key, "v-" + key), b"OK")
            return c.call("GET", key)

    def start(self, config, port, *extra):
        proc = harness.start_ringproxy(config, port, extra=list(extra))
        self.addCleanup(proc.stop)
        return proc


class ConfigPathTest(Base):
    def test_config_replaced_by_a_fifo_leaves_the_proxy_responsive(self):
        port, stats, admin = harness.free_port(), harness.free_port(), harness.free_port()
        config = os.path.join(self.tmp, "nutcracker.yml")
        with open(config, "w") as f:
            f.write(pool_config("alpha", f"127.0.0.1:{port}", self.redis.port))
        log = os.path.join(self.tmp, "proxy.log")
        proxy = self.start(config, port, "-s", str(stats), "--admin", f"127.0.0.1:{admin}", "-o", log)
        self.assertEqual(self.get_through(port), b"v-k")

        os.unlink(config)
        os.mkfifo(config)  # a new file that no writer has closed: the watch leaves it alone
        time.sleep(0.5)
        self.assertNotIn("reload (config file changed)", read(log))

        # The control loop still runs: the stats port and admin HTTP answer.
        stats_json = harness.read_stats_port(stats, timeout=3.0)
        self.assertIn("alpha", stats_json)
        status, _, body = harness.http_request(admin, "GET", "/status", timeout=3.0)
        self.assertEqual(status, 200)
        status, _, body = harness.http_request(admin, "POST", "/reload", timeout=3.0)
        self.assertEqual(status, 422)
        reply = json.loads(body)
        self.assertFalse(reply["ok"])
        self.assertIn(config, reply["error"])
        self.assertIn("FIFO", reply["error"])
        self.assertIn("not a regular file", reply["error"])

        proxy.signal(signal.SIGHUP)
        harness.wait_for(lambda: re.search(r"reload \(SIGHUP\) failed.*FIFO", read(log)), 5.0,
                         what="the SIGHUP reload's failure in the log")
        self.assertEqual(self.get_through(port, "k2"), b"v-k2")  # the old config still serves

        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.popen.wait(5.0), 0)

    def test_oversized_config_on_reload_changes_nothing(self):
        port, admin = harness.free_port(), harness.free_port()
        config = os.path.join(self.tmp, "nutcracker.yml")
        with open(config, "w") as f:
            f.write(pool_config("alpha", f"127.0.0.1:{port}", self.redis.port))
        self.start(config, port, "-s", "0", "--admin", f"127.0.0.1:{admin}", "--no-watch")
        with open(config, "r+") as f:
            f.truncate(8 * 1024 * 1024 + 1)  # sparse: the YAML above, then zeros
        status, _, body = harness.http_request(admin, "POST", "/reload", timeout=5.0)
        self.assertEqual(status, 422)
        error = json.loads(body)["error"]
        self.assertIn("8388609 bytes", error)
        self.assertIn("8 MiB", error)
        status, _, body = harness.http_request(admin, "GET", "/status", timeout=5.0)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["generation"], 1)
        self.assertEqual(self.get_through(port), b"v-k")

    def test_start_refuses_a_symlink_to_dev_zero_and_a_fifo(self):
        link = os.path.join(self.tmp, "zero.yml")
        os.symlink("/dev/zero", link)
        for args in (["-t", "-c", link], ["-c", link, "-s", "0"]):
            rc, out = run_proxy(*args)
            self.assertEqual(rc, 1, out)
            self.assertIn(link, out)
            self.assertIn("character device", out)
        fifo = os.path.join(self.tmp, "fifo.yml")
        os.mkfifo(fifo)
        rc, out = run_proxy("-c", fifo, "-s", "0")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"{fifo}: is a FIFO", out)


class ListenerTest(Base):
    def occupied_port(self, reuseport=False):
        """A loopback port another socket (this test) listens on."""
        s = socket.socket()
        if reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", harness.free_port()))
        s.listen(8)
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def config(self, port, name="alpha"):
        return harness.write_config(pool_config(name, f"127.0.0.1:{port}", self.redis.port), directory=self.tmp)

    def test_busy_stats_port_fails_start(self):
        busy, port = self.occupied_port(), harness.free_port()
        rc, out = run_proxy("-c", self.config(port), "-s", str(busy), "-a", "127.0.0.1")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"127.0.0.1:{busy}", out)
        self.assertRegex(out, r"(?i)address already in use")
        self.assertIn("stats port", out)
        self.assertFalse(accepts(port), "the pool's listener is closed again")

    def test_busy_admin_port_fails_start(self):
        busy, port = self.occupied_port(), harness.free_port()
        rc, out = run_proxy("-c", self.config(port), "-s", "0", "--admin", f"127.0.0.1:{busy}")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"127.0.0.1:{busy}", out)
        self.assertRegex(out, r"(?i)address already in use")
        self.assertIn("admin", out)

    def test_busy_pool_port_fails_start_also_when_daemonizing(self):
        busy = self.occupied_port()
        rc, out = run_proxy("-c", self.config(busy), "-s", "0")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"pool alpha: cannot listen on 127.0.0.1:{busy}: Address already in use", out)
        # -d: the parent answers for the daemon; it used to exit 0 before anything was bound.
        log = os.path.join(self.tmp, "daemon.log")
        rc, out = run_proxy("-d", "-o", log, "-c", self.config(busy), "-s", "0")
        self.assertEqual(rc, 1, out)
        self.assertIn("Address already in use", out)
        self.assertIn("Address already in use", read(log))

    def test_second_proxy_on_the_same_address_fails(self):
        port = harness.free_port()
        config = self.config(port)
        first = self.start(config, port, "-s", "0", "--workers", "2")
        rc, out = run_proxy("-c", config, "-s", "0", "--workers", "2", timeout=5.0)
        self.assertEqual(rc, 1, f"the second proxy started: {out}")
        self.assertIn(f"cannot listen on 127.0.0.1:{port}: Address already in use", out)
        # Every connection still reaches the first proxy, on both of its workers' sockets.
        for i in range(20):
            self.assertEqual(self.get_through(port, f"k{i}"), f"v-k{i}".encode())
        self.assertIsNone(first.popen.poll())

    def test_workers_of_one_proxy_share_the_port_and_restart_rebinds(self):
        port = harness.free_port()
        config = self.config(port)
        proxy = self.start(config, port, "-s", "0", "--workers", "2")
        conns = [RawConn(port) for _ in range(8)]
        for c in conns:
            self.assertEqual(c.call("PING"), b"PONG")
        for c in conns:
            c.close()
        self.assertEqual(proxy.stop(), 0)
        # Connections of the first run in TIME_WAIT do not stop a restart on the same port.
        self.start(config, port, "-s", "0", "--workers", "2")
        self.assertEqual(self.get_through(port), b"v-k")

    def test_reload_onto_a_port_another_process_holds_fails(self):
        port, admin = harness.free_port(), harness.free_port()
        # The other holder sets SO_REUSEPORT, as another ringproxy's workers do: the kernel
        # alone would let us share its port.
        busy = self.occupied_port(reuseport=True)
        config = os.path.join(self.tmp, "nutcracker.yml")
        with open(config, "w") as f:
            f.write(pool_config("alpha", f"127.0.0.1:{port}", self.redis.port))
        self.start(config, port, "-s", "0", "--admin", f"127.0.0.1:{admin}", "--no-watch")
        with open(config, "a") as f:
            f.write(pool_config("beta", f"127.0.0.1:{busy}", self.redis.port))
        status, _, body = harness.http_request(admin, "POST", "/reload", timeout=5.0)
        self.assertEqual(status, 422, body)
        error = json.loads(body)["error"]
        self.assertIn(f"pool beta: cannot listen on 127.0.0.1:{busy}: Address already in use", error)
        status, _, body = harness.http_request(admin, "GET", "/status", timeout=5.0)
        self.assertEqual(json.loads(body)["generation"], 1)
        self.assertEqual(self.get_through(port), b"v-k")

        # A pool renamed in place keeps its address: that port is ours to share.
        with open(config, "w") as f:
            f.write(pool_config("gamma", f"127.0.0.1:{port}", self.redis.port))
        status, _, body = harness.http_request(admin, "POST", "/reload", timeout=5.0)
        self.assertEqual(status, 200, body)

        def served():
            # A connection queued on the old pool's socket as it closes is reset (the kernel
            # does not move it to the new socket): that is the rename's window, so retry.
            try:
                return self.get_through(port, "k3")
            except ConnectionError:
                return None
        self.assertEqual(harness.wait_for(served, 5.0, what="the renamed pool serving"), b"v-k3")

    def test_unix_socket_listener(self):
        path = os.path.join(self.tmp, "proxy.sock")
        config = harness.write_config(pool_config("alpha", path, self.redis.port), directory=self.tmp)

        def ping():
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(3.0)
                s.connect(path)
                s.sendall(b"PING\r\n")
                return s.recv(100)

        # A stale socket file (its process died without removing it) is replaced.
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
        first = harness.Proc([harness.binary("ringproxy"), "-c", config, "-s", "0"], 0, "ringproxy-unix")
        self.addCleanup(first.stop)
        harness.wait_for(lambda: first.popen.poll() is not None or "running" in first.output(), 5.0,
                         what="the first proxy running")
        self.assertIsNone(first.popen.poll(), first.output())
        self.assertEqual(ping(), b"+PONG\r\n")

        # A second proxy on the same path fails, and the first keeps its socket file.
        rc, out = run_proxy("-c", config, "-s", "0", timeout=5.0)
        self.assertEqual(rc, 1, out)
        self.assertIn(f"cannot listen on {path}: Address already in use", out)
        self.assertEqual(ping(), b"+PONG\r\n")

        # A regular file at the path is not ours to delete.
        other = os.path.join(self.tmp, "data.sock")
        with open(other, "w") as f:
            f.write("precious")
        config2 = harness.write_config(pool_config("beta", other, self.redis.port), directory=self.tmp)
        rc, out = run_proxy("-c", config2, "-s", "0")
        self.assertEqual(rc, 1, out)
        self.assertIn("is not a socket", out)
        self.assertEqual(read(other), "precious")


class StartupLogTest(Base):
    def test_startup_log_names_config_pools_and_listeners(self):
        port1, port2, stats, admin = (harness.free_port() for _ in range(4))
        config = harness.write_config(
            pool_config("alpha", f"127.0.0.1:{port1}", self.redis.port)
            + f"beta:\n  listen: 127.0.0.1:{port2}\n  hash: murmur\n  hash_tag: \"{{}}\"\n"
              f"  distribution: vnode\n  redis: true\n  servers:\n"
              f"    - 127.0.0.1:{self.redis.port}:1 one\n    - 127.0.0.1:{self.redis.port + 1}:1 two\n",
            directory=self.tmp)
        log = os.path.join(self.tmp, "proxy.log")
        self.start(config, port1, "-s", str(stats), "-a", "127.0.0.1", "--admin", f"127.0.0.1:{admin}", "-o", log)
        harness.wait_for(lambda: "ringproxy running" in read(log), 5.0, what="start-up log")
        text = read(log)
        self.assertIn(f"config {config}: 2 pools", text)
        self.assertIn(f"pool alpha: listening on 127.0.0.1:{port1}, redis, 1 server, distribution ketama, "
                      f"hash fnv1a_64", text)
        self.assertIn(f"pool beta: listening on 127.0.0.1:{port2}, redis, 2 servers, distribution vnode, "
                      f"hash murmur, hash_tag {{}}", text)
        self.assertIn(f"stats port on 127.0.0.1:{stats}", text)
        self.assertIn(f"admin HTTP on 127.0.0.1:{admin}", text)
        # Everything above is logged before the proxy says it is running.
        self.assertLess(text.index(f"admin HTTP on"), text.index("ringproxy running"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
