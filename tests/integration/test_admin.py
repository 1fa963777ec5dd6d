"""ringproxy's observability and command line, against real redis-servers (and nutcracker).

1. The stats port (-s/-a) writes twemproxy's JSON and closes: the same key names, at every
   level, as nutcracker's stats port for the same pools (named servers, host:port, host alone
   for port 11211); the counters move with traffic.
2. The admin listener: /metrics is valid Prometheus text whose request counter grows by exactly
   the requests made; /ring matches `ringctl shares`; /status and /stats are JSON; 404, 405,
   400 for a garbage request line, 413 for more than 8 KiB of headers; a data-path client
   keeps working throughout.
3. `ringctl status` names every backend; `ringctl balance` counts what was written.
4. twemproxy's other flags: -d -p -o -i -m -v daemonize with a pid file, -V, -h, -D.
"""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402
from harness import ErrorReply, RawConn, encode_command, read_until_close  # noqa: E402

POOL_FIELDS = {"client_eof", "client_err", "client_connections", "server_ejects", "forward_error", "fragments"}
SERVER_FIELDS = {"server_eof", "server_err", "server_timedout", "server_connections", "server_ejected_at", "requests",
                 "request_bytes", "responses", "response_bytes", "in_queue", "in_queue_bytes", "out_queue",
                 "out_queue_bytes"}
TOP_FIELDS = {"service", "source", "version", "uptime", "timestamp", "total_connections", "curr_connections"}


def keyset(prefix, n):
    """Key names that hash like random ones (a run like "k:0".."k:999" does not, under fnv1a)."""
    return [f"{prefix}:{hashlib.sha1(b'%d' % i).hexdigest()[:16]}" for i in range(n)]


def value_of(key):
    return b"v:" + key.encode() + b":" + hashlib.sha1(key.encode()).hexdigest()[:16].encode()


def key_paths(obj, prefix=()):
    """Every key of a nested JSON object, as a path tuple."""
    out = set()
    for k, v in obj.items():
        out.add(prefix + (k,))
        if isinstance(v, dict):
            out |= key_paths(v, prefix + (k,))
    return out


class DataPathClient(threading.Thread):
    """SET then GET of its own keys on one persistent connection until stopped; any error
    reply, wrong value, nil or disconnect is recorded."""

    def __init__(self, port, prefix):
        super().__init__(daemon=True)
        self.keys = keyset(prefix, 100)
        self.conn = RawConn(port, timeout=10.0)
        self.stopping = threading.Event()
        self.ops = 0
        self.problems = []
        self.disconnect = None

    def run(self):
        i = 0
        try:
            while not self.stopping.is_set():
                k = self.keys[i % len(self.keys)]
                i += 1
                self.conn.send(encode_command("SET", k, value_of(k)) + encode_command("GET", k))
                a, b = self.conn.read(), self.conn.read()
                self.ops += 2
                if a != b"OK" or b != value_of(k):
                    self.problems.append((k, a, b))
        except Exception as e:  # noqa: BLE001
            self.disconnect = repr(e)

    def finish(self):
        self.stopping.set()
        self.join(10)
        self.conn.close()
        return not self.is_alive()


class AdminEndpoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        cls.direct = {p: redis.Redis(host="127.0.0.1", port=p) for p in cls.ports}
        cls.unused = harness.free_port()  # beta's servers take no traffic: nothing listens there
        cls.port, cls.beta_port = harness.free_port(), harness.free_port()
        cls.config_text = cls.pools_text(cls.port, cls.beta_port)
        cls.tmp = tempfile.mkdtemp(prefix="ringproxy-admin-")
        cls.config = os.path.join(cls.tmp, "nutcracker.yml")
        with open(cls.config, "w") as f:
            f.write(cls.config_text)
        cls.admin, cls.stats_port = harness.free_port(), harness.free_port()
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=[
            "--workers", "2", "--admin", f"127.0.0.1:{cls.admin}", "-s", str(cls.stats_port), "-a", "127.0.0.1"])
        cls.proxy.wait_port(port=cls.admin)
        cls.proxy.wait_port(port=cls.stats_port)

    @classmethod
    def pools_text(cls, port, beta_port):
        a, b, c = cls.ports
        return (harness.redis_pool_config("alpha", port, [f"127.0.0.1:{a}:1", f"127.0.0.1:{b}:1 named-b",
                                                          f"127.0.0.1:{c}:1"])
                + harness.redis_pool_config("beta", beta_port, ["127.0.0.1:11211:1",
                                                                f"127.0.0.1:{cls.unused}:2 beta-named"]))

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        for d in self.direct.values():
            d.flushall()

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def expected_servers(self):
        a, b, c = self.ports
        return {"alpha": {f"127.0.0.1:{a}", "named-b", f"127.0.0.1:{c}"}, "beta": {"127.0.0.1", "beta-named"}}

    # 1 ---------------------------------------------------------------------------------------
    def check_stats_layout(self, stats):
        self.assertTrue(TOP_FIELDS <= set(stats), set(stats))
        self.assertEqual(set(stats) - TOP_FIELDS, {"alpha", "beta"})
        self.assertEqual(stats["service"], "nutcracker")
        for f in ("uptime", "timestamp", "total_connections", "curr_connections"):
            self.assertIsInstance(stats[f], int, f)
        self.assertLess(abs(stats["timestamp"] - time.time()), 60)
        for pool, servers in self.expected_servers().items():
            p = stats[pool]
            self.assertEqual(set(p) - POOL_FIELDS, servers, pool)
            self.assertTrue(POOL_FIELDS <= set(p))
            for f in POOL_FIELDS:
                self.assertIsInstance(p[f], int, (pool, f))
            for s in servers:
                self.assertEqual(set(p[s]), SERVER_FIELDS, (pool, s))
                for f in SERVER_FIELDS:
                    self.assertIsInstance(p[s][f], int, (pool, s, f))

    def test_stats_port_layout_matches_nutcracker_and_counters_move(self):
        stats = json.loads(read_until_close(self.stats_port))
        self.check_stats_layout(stats)
        # nutcracker, same pools (other listen ports), its stats port right away.
        nc_config = harness.write_config(self.pools_text(harness.free_port(), harness.free_port()), directory=self.tmp)
        with open(nc_config) as f:
            nc_listen = int(re.search(r"listen: 127\.0\.0\.1:(\d+)", f.read()).group(1))
        nc_stats = harness.free_port()
        nc = harness.start_nutcracker(nc_config, nc_listen, nc_stats)
        self.addCleanup(nc.stop)
        nc.wait_port(port=nc_stats)
        theirs = json.loads(read_until_close(nc_stats))
        self.assertEqual(key_paths(stats), key_paths(theirs))
        # The counters move: 100 requests through the proxy.
        before = stats
        keys = keyset("st", 50)
        with RawConn(self.port) as c:
            c.send(b"".join(encode_command("SET", k, value_of(k)) for k in keys))
            self.assertEqual([c.read() for _ in keys], [b"OK"] * 50)
            c.send(b"".join(encode_command("GET", k) for k in keys))
            self.assertEqual([c.read() for _ in keys], [value_of(k) for k in keys])
            during = json.loads(read_until_close(self.stats_port))
        after = json.loads(read_until_close(self.stats_port))
        self.check_stats_layout(after)
        servers = self.expected_servers()["alpha"]
        total = lambda st, f: sum(st["alpha"][s][f] for s in servers)  # noqa: E731
        self.assertGreaterEqual(total(after, "requests") - total(before, "requests"), 100)
        self.assertGreaterEqual(total(after, "responses") - total(before, "responses"), 100)
        self.assertGreater(total(after, "request_bytes"), total(before, "request_bytes"))
        self.assertGreater(total(after, "response_bytes"), total(before, "response_bytes"))
        self.assertGreaterEqual(total(after, "server_connections"), 1)
        self.assertGreater(after["total_connections"], before["total_connections"])
        self.assertGreaterEqual(during["alpha"]["client_connections"], 1)
        self.assertEqual(sum(after["beta"][s]["requests"] for s in self.expected_servers()["beta"]), 0)

    # 2 ---------------------------------------------------------------------------------------
    def test_in_queue_bytes_counts_what_a_stalled_backend_has_not_taken(self):
        a = self.ports[0]
        owners = harness.ringctl_owners(self.config, "alpha", keyset("iq", 200))
        key = next(k for k, lbl in owners.items() if lbl.split(" ")[0] in (f"127.0.0.1:{a}", f"127.0.0.1:{a}:1"))
        server = f"127.0.0.1:{a}"
        stalled = self.backends[0]
        stalled.signal(signal.SIGSTOP)
        self.addCleanup(stalled.signal, signal.SIGCONT)
        # More than the kernel can buffer between the proxy and the stopped server (its receive
        # buffer grows up to tcp_rmem's maximum, the proxy's send buffer up to tcp_wmem's), so
        # that part of the SET must wait in the proxy; under max_request_bytes (64 MiB).
        kernel = sum(int(open(f"/proc/sys/net/ipv4/{f}").read().split()[2]) for f in ("tcp_rmem", "tcp_wmem"))
        value = b"q" * min(kernel + 8 * 1024 * 1024, 60 * 1024 * 1024)
        if len(value) < kernel + 2 * 1024 * 1024:
            self.skipTest(f"the kernel may buffer {kernel} bytes per connection: more than a request may hold")
        queued = lambda: json.loads(read_until_close(self.stats_port))["alpha"][server]["in_queue_bytes"]  # noqa: E731
        with RawConn(self.port) as c:
            c.send(encode_command("SET", key, value))
            harness.wait_for(lambda: queued() > 1000000, timeout=10.0,
                             what="in_queue_bytes showing the SET the stalled backend has not taken")
            stalled.signal(signal.SIGCONT)
            self.assertEqual(c.read(), b"OK")
        harness.wait_for(lambda: queued() == 0, timeout=5.0, what="in_queue_bytes back to 0")
        self.assertEqual(len(self.direct[a].get(key)), len(value))

    def test_metrics_is_prometheus_text_and_counts_requests(self):
        status, headers, body = harness.http_request(self.admin, "GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain"), headers)
        m0 = harness.parse_prometheus(body.decode())
        names = {name for name, _ in m0}
        for n in ("ringproxy_pool_requests_total", "ringproxy_backend_requests_total", "ringproxy_reload_generation",
                  "ringproxy_reload_failures_total"):
            self.assertIn(n, names)
        self.assertEqual(harness.metric_value(m0, "ringproxy_reload_generation"), 1)
        backends = {dict(labels)["backend"] for name, labels in m0 if name == "ringproxy_backend_requests_total"}
        self.assertEqual(backends, {f"127.0.0.1:{self.ports[0]}", "named-b", f"127.0.0.1:{self.ports[2]}",
                                    "127.0.0.1:11211", "beta-named"})
        n = 37
        keys = keyset("mt", n)
        with RawConn(self.port) as c:
            for i, k in enumerate(keys):
                if i % 2:
                    self.assertEqual(c.call("SET", k, value_of(k)), b"OK")
                else:
                    self.assertIsNone(c.call("GET", k))
        m1 = harness.get_metrics(self.admin)
        req = lambda m, pool: harness.metric_value(m, "ringproxy_pool_requests_total", pool=pool)  # noqa: E731
        self.assertEqual(req(m1, "alpha") - req(m0, "alpha"), n)
        self.assertEqual(req(m1, "beta"), req(m0, "beta"))
        sent = lambda m: sum(v for (name, labels), v in m.items()  # noqa: E731
                             if name == "ringproxy_backend_requests_total" and dict(labels)["pool"] == "alpha")
        self.assertGreaterEqual(sent(m1) - sent(m0), n)

    def test_ring_matches_ringctl_shares(self):
        for pool in ("alpha", "beta"):
            with self.subTest(pool=pool):
                status, _, body = harness.http_request(self.admin, "GET", f"/ring?pool={pool}")
                self.assertEqual(status, 200)
                ring = json.loads(body)
                self.assertEqual(ring["pool"], pool)
                self.assertAlmostEqual(sum(n["share"] for n in ring["nodes"]), 1.0, places=6)
                out = harness.run_ringctl("shares", "--json", "-c", self.config, "--pool", pool)
                self.assertEqual(out.returncode, 0, out.stderr)
                ref = json.loads(out.stdout)["pools"]
                self.assertEqual(len(ref), 1)
                ref = ref[0]
                self.assertEqual(ring["points"], ref["points"])
                mine = {n["node"]: n for n in ring["nodes"]}
                theirs = {n["node"]: n for n in ref["nodes"]}
                self.assertEqual(set(mine), set(theirs))
                for node, n in mine.items():
                    self.assertAlmostEqual(n["share"], theirs[node]["share"], places=8)
                    self.assertEqual((n["points"], n["weight"], n["address"]),
                                     (theirs[node]["points"], theirs[node]["weight"], theirs[node]["address"]))

    def test_status_and_stats_json(self):
        status, headers, body = harness.http_request(self.admin, "GET", "/status")
        self.assertEqual(status, 200)
        self.assertIn("json", headers["content-type"])
        st = json.loads(body)
        self.assertEqual(st["generation"], 1)
        self.assertEqual(st["workers"], 2)
        self.assertEqual(os.path.realpath(st["config"]), os.path.realpath(self.config))
        pools = {p["name"]: p for p in st["pools"]}
        self.assertEqual(set(pools), {"alpha", "beta"})
        self.assertEqual(pools["alpha"]["listen"], f"127.0.0.1:{self.port}")
        self.assertEqual({b["name"] for b in pools["alpha"]["backends"]},
                         {f"127.0.0.1:{self.ports[0]}", "named-b", f"127.0.0.1:{self.ports[2]}"})
        self.assertEqual({b["address"] for b in pools["alpha"]["backends"]}, {f"127.0.0.1:{p}" for p in self.ports})
        status, _, body = harness.http_request(self.admin, "GET", "/stats")
        self.assertEqual(status, 200)
        stats = json.loads(body)
        self.check_stats_layout(stats)

    def test_http_errors_while_the_data_path_is_busy(self):
        client = DataPathClient(self.port, "busy")
        client.start()
        try:
            harness.wait_for(lambda: client.ops >= 200, 5.0, what="data-path traffic")
            cases = [
                ("unknown path", b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
                ("POST /metrics", b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
                ("GET /reload", b"GET /reload HTTP/1.1\r\nHost: x\r\n\r\n", 405),
                ("DELETE /status", b"DELETE /status HTTP/1.1\r\nHost: x\r\n\r\n", 405),
                ("garbage", b"\x16\x03\x01 hello there\r\n\r\n", 400),
                ("no version", b"GET /metrics\r\n\r\n", 400),
                ("ring without pool", b"GET /ring HTTP/1.1\r\n\r\n", 400),
                ("ring of unknown pool", b"GET /ring?pool=nope HTTP/1.1\r\n\r\n", 404),
                ("64 KiB of headers", b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n", 413),
                ("64 KiB, no end", b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (64 * 1024), 413),
            ]
            for what, raw, expected in cases:
                with self.subTest(what):
                    ops = client.ops
                    status, _, _ = harness.http_request(self.admin, raw=raw)
                    self.assertEqual(status, expected)
                    harness.wait_for(lambda: client.ops >= ops + 20 or not client.is_alive(), 5.0,
                                     what="data-path progress")
                    self.assertTrue(client.is_alive(), client.disconnect)
            # Still serving after all of that.
            self.assertEqual(harness.http_request(self.admin, "GET", "/metrics")[0], 200)
        finally:
            stopped = client.finish()
        self.assertTrue(stopped)
        self.assertIsNone(client.disconnect)
        self.assertEqual(client.problems, [])

    def test_request_just_over_8k_of_headers_gets_413(self):
        # 9 KiB of headers, sent at once with the blank line: still more than the 8 KiB limit.
        raw = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (9 * 1024) + b"\r\n\r\n"
        status, _, body = harness.http_request(self.admin, raw=raw)
        self.assertEqual(status, 413, body[:80])

    # 3 ---------------------------------------------------------------------------------------
    def test_ringctl_status_names_every_backend(self):
        out = subprocess.run([harness.binary("ringctl"), "status", f"127.0.0.1:{self.admin}"], capture_output=True,
                             text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        a, b, c = self.ports
        for name in (f"127.0.0.1:{a}", "named-b", f"127.0.0.1:{b}", f"127.0.0.1:{c}", "127.0.0.1:11211", "beta-named",
                     f"127.0.0.1:{self.unused}"):
            self.assertIn(name, out.stdout)
        self.assertRegex(out.stdout, r"generation 1\b")
        out = subprocess.run([harness.binary("ringctl"), "status", "--json", f"127.0.0.1:{self.admin}"],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["generation"], 1)

    def test_ringctl_balance_counts_the_keys_written(self):
        keys = keyset("bal", 1000)
        r = redis.Redis(host="127.0.0.1", port=self.port)
        for i in range(0, 1000, 250):
            self.assertTrue(r.mset({k: value_of(k) for k in keys[i:i + 250]}))
        r.close()
        out = harness.run_ringctl("balance", "-c", self.config, "--pool", "alpha", "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        pool = json.loads(out.stdout)["pools"]
        self.assertEqual([p["pool"] for p in pool], ["alpha"])
        pool = pool[0]
        self.assertEqual(pool["keys"], 1000)
        self.assertEqual(sum(n["keys"] for n in pool["nodes"]), 1000)
        self.assertEqual(len(pool["nodes"]), 3)
        for n in pool["nodes"]:
            self.assertAlmostEqual(n["actual"], n["keys"] / 1000, places=6)
            self.assertLess(abs(n["actual"] - n["expected"]), 0.06, n)
        # Each count is what that backend really holds.
        by_address = {n["address"]: n["keys"] for n in pool["nodes"]}
        self.assertEqual(by_address, {f"127.0.0.1:{p}": self.direct[p].dbsize() for p in self.ports})
        text = harness.run_ringctl("balance", "-c", self.config, "--pool", "alpha")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn("1000 keys", text.stdout)


class CommandLine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = harness.start_redis()
        cls.tmp = tempfile.mkdtemp(prefix="ringproxy-cli-")
        cls.port = harness.free_port()
        cls.config = os.path.join(cls.tmp, "nutcracker.yml")
        with open(cls.config, "w") as f:
            f.write(harness.redis_pool_config("alpha", cls.port, [f"127.0.0.1:{cls.backend.port}:1"]))

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_proxy(self, *args):
        return subprocess.run([harness.binary("ringproxy"), *args], capture_output=True, text=True, timeout=10)

    @staticmethod
    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except FileNotFoundError:
            return False

    def test_daemonize_with_pid_and_log_files(self):
        pidfile, logfile = os.path.join(self.tmp, "ringproxy.pid"), os.path.join(self.tmp, "ringproxy.log")
        # -s: a free stats port rather than the default 22222, which may be taken on this machine.
        out = self.run_proxy("-d", "-p", pidfile, "-o", logfile, "-c", self.config, "-i", "1000", "-m", "16384",
                             "-v", "5", "-s", str(harness.free_port()), "-a", "127.0.0.1")
        pid = None

        def stop():
            if pid is not None and self.alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.addCleanup(stop)
        self.assertEqual(out.returncode, 0, out.stderr)
        def read_pid():
            try:
                with open(pidfile) as f:
                    text = f.read().strip()
            except FileNotFoundError:
                return None
            return int(text) if text.isdigit() else None
        pid = harness.wait_for(read_pid, 5.0, what="pid file")
        self.assertTrue(self.alive(pid))
        self.assertNotEqual(pid, os.getpid())
        harness.wait_for(lambda: self.accepts(self.port), 5.0, what="daemon listening")
        r = redis.Redis(host="127.0.0.1", port=self.port)
        self.assertTrue(r.set("daemon:k", "v"))
        self.assertEqual(r.get("daemon:k"), b"v")
        r.close()
        with open(logfile) as f:
            self.assertIn(f"pid {pid}", f.read())
        os.kill(pid, signal.SIGTERM)
        harness.wait_for(lambda: not self.alive(pid), 5.0, what="daemon stopped")
        self.assertFalse(os.path.exists(pidfile), "the pid file is removed on exit")

    @staticmethod
    def accepts(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def test_version(self):
        out = self.run_proxy("-V")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout + out.stderr, r"\d+\.\d+\.\d+")

    def test_help(self):
        out = self.run_proxy("-h")
        self.assertEqual(out.returncode, 0, out.stderr)
        for flag in ("-c", "-s", "-a", "-d", "-p", "-o", "-i", "-m", "-v", "-t", "-D", "-V", "--workers", "--admin",
                     "--max-buffered-bytes", "--no-watch"):
            self.assertIn(flag, out.stdout)
        self.assertNotIn("aggregation interval", out.stdout)  # -i is accepted and ignored: it says so

    def test_a_missing_value_is_named(self):
        out = self.run_proxy("-c")
        self.assertEqual(out.returncode, 2)
        self.assertIn("option '-c' requires an argument", out.stderr)

    def test_bundled_flags_as_getopt_takes_them(self):
        out = self.run_proxy("-tc", self.config)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("syntax is ok", out.stdout)

    def test_a_missing_file_says_so(self):
        out = self.run_proxy("-t", "-c", os.path.join(self.tmp, "nowhere.yml"))
        self.assertEqual(out.returncode, 1)
        self.assertIn("No such file or directory", out.stderr)

    def test_ringctl_version(self):
        out = subprocess.run([harness.binary("ringctl"), "--version"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"^ringctl \d+\.\d+\.\d+\n$")

    def test_describe_stats(self):
        out = self.run_proxy("-D")
        self.assertEqual(out.returncode, 0, out.stderr)
        for field in POOL_FIELDS | SERVER_FIELDS:
            self.assertRegex(out.stdout, rf"\b{field}\b")

    def test_unknown_flag_is_a_usage_error(self):
        out = self.run_proxy("--frobnicate")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("--frobnicate", out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
