"""Connection churn and idle connections: what clients cost ringproxy in memory.

1. 3000 connect/command/close cycles from 4 threads, a mix of a clean QUIT, a plain close after
   the reply, and a close (FIN or RST) with requests still in flight (GET, a multi-shard MGET,
   a 4 KiB GET, a SET; sometimes cut mid-request), leave ringproxy's RSS within CHURN_SLACK_KB
   (4 MB) of where it was after a warm-up of 200 cycles, with no client left open in /metrics
   and the proxy still serving.
1b. The same bound after 1500 clients that each pipeline 12 GETs of 64 KiB values and close at
   once (hostile churn: the replies arrive after the client is gone).
2. 10000 idle client connections (each has done one PING): ringproxy's RSS per connection is
   measured, and nutcracker's for the same pool and backends; ringproxy must cost at most
   2x nutcracker's bytes per connection + 100 bytes (and at most a few KB), all 10000 must
   still work (PING on a sample of 200), and new clients are served meanwhile. Needs an
   RLIMIT_NOFILE hard limit of at least 10500 (the test raises its soft limit to it; skipped
   with a message otherwise).
"""
import os
import random
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
from harness import RawConn, encode_command  # noqa: E402

CHURN_CYCLES, CHURN_WARMUP, CHURN_THREADS = 3000, 200, 4
CHURN_SLACK_KB = 4 * 1024
IDLE_CONNECTIONS, IDLE_SAMPLE = 10000, 200
BIG = 64 * 1024


def rss(proc):
    kb = harness.proc_status_kb(proc.pid)
    if kb is None:
        raise AssertionError(f"{proc.name} is gone: {proc.output()}")
    return kb


class ProxyFixture:
    """3 redis-servers; ringproxy (2 workers, admin listener) and, on demand, nutcracker over
    them with the same pool (only the listen port differs)."""

    def __init__(self):
        self.backends = [harness.start_redis() for _ in range(3)]
        self.servers = [f"127.0.0.1:{b.port}:1 s{i}" for i, b in enumerate(self.backends)]
        self.port = harness.free_port()
        self.config = harness.write_config(self.pool_text(self.port))
        self.admin = harness.free_port()
        self.proxy = harness.start_ringproxy(self.config, self.port, extra=[
            "--workers", "2", "--admin", f"127.0.0.1:{self.admin}", "-s", "0", "--no-watch"])
        self.proxy.wait_port(port=self.admin)
        self.extra_files = [self.config]

    def pool_text(self, port):
        return harness.redis_pool_config("alpha", port, self.servers, extra="  timeout: 2000\n")

    def start_nutcracker(self):
        port = harness.free_port()
        path = harness.write_config(self.pool_text(port))
        self.extra_files.append(path)
        return harness.start_nutcracker(path, port)

    def clients(self):
        return harness.metric_value(harness.get_metrics(self.admin), "ringproxy_pool_clients", pool="alpha")

    def wait_no_clients(self):
        """Until /metrics shows no client open and no request in flight to a backend."""
        def quiet():
            m = harness.get_metrics(self.admin)
            inflight = sum(v for (name, _), v in m.items() if name == "ringproxy_backend_inflight")
            return harness.metric_value(m, "ringproxy_pool_clients", pool="alpha") == 0 and inflight == 0
        harness.wait_for(quiet, 20.0, interval=0.05, what="every client closed, nothing in flight")

    def stop(self):
        self.proxy.stop()
        for b in self.backends:
            b.stop()
        for p in self.extra_files:
            try:
                os.unlink(p)
            except OSError:
                pass


def settled_rss(proc, seconds=2.5):
    """RSS (kB) after `seconds` more of idling (the proxy gives freed memory back to the system
    every 2 s, so wait a little longer than that)."""
    time.sleep(seconds)
    return rss(proc)


class Churn(unittest.TestCase):
    def setUp(self):
        self.f = ProxyFixture()

    def tearDown(self):
        self.assertIsNone(self.f.proxy.popen.poll(), f"ringproxy exited: {self.f.proxy.output()}")
        self.f.stop()

    def run_cycles(self, total, cycle):
        """`total` cycles from CHURN_THREADS threads; cycle(n, rng) does one."""
        errors = []

        def worker(t):
            rng = random.Random(t)
            try:
                for n in range(t, total, CHURN_THREADS):
                    cycle(n, rng)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(CHURN_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])

    def churn_rss(self, warmup, total, cycle):
        """RSS (kB) after `warmup` cycles and after `total` more, each measured once the proxy
        has no client left and has idled a second; returns (before, after, seconds)."""
        f = self.f
        self.run_cycles(warmup, cycle)
        f.wait_no_clients()
        before = settled_rss(f.proxy)
        t0 = time.time()
        self.run_cycles(total, cycle)
        elapsed = time.time() - t0
        f.wait_no_clients()
        return before, settled_rss(f.proxy), elapsed

    def test_connect_command_close_cycles_leave_rss_flat(self):
        f = self.f
        small = [f"small:{i}" for i in range(6)]  # spread over the 3 shards
        with RawConn(f.port) as c:
            self.assertEqual(c.call("MSET", *[x for k in small for x in (k, k * 40)]), b"OK")
            self.assertEqual(c.call("SET", "big", b"b" * 4096), b"OK")
        in_flight = (encode_command("GET", small[0]) + encode_command("MGET", *small) +
                     encode_command("GET", "big") + encode_command("SET", "churn:last", "x"))
        problems = []

        def cycle(n, rng):
            mode = n % 4
            c = RawConn(f.port, timeout=10.0)
            try:
                if mode == 0:  # a command, then QUIT: the proxy answers +OK and closes
                    key = f"churn:{n % 500}"
                    if c.call("SET", key, str(n)) != b"OK" or c.call("GET", key) != str(n).encode():
                        problems.append((n, "SET/GET"))
                    if c.call("QUIT") != b"OK":
                        problems.append((n, "QUIT"))
                    c.wait_closed(5.0)
                elif mode == 1:  # a command, its reply, then a plain close
                    if c.call("PING") != b"PONG":
                        problems.append((n, "PING"))
                    c.close()
                else:  # close with requests in flight (one of them cut short): FIN (2) or RST (3)
                    c.send(in_flight[:rng.choice([len(in_flight), len(in_flight) - 5])])
                    if rng.random() < 0.5:
                        time.sleep(0.0005)
                    c.close(reset=mode == 3)
            finally:
                c.close()

        before, after, elapsed = self.churn_rss(CHURN_WARMUP, CHURN_CYCLES, cycle)
        m = harness.get_metrics(f.admin)
        accepted = harness.metric_value(m, "ringproxy_pool_client_connections_total", pool="alpha")
        print(f"\nchurn: {CHURN_CYCLES} cycles in {elapsed:.1f} s; ringproxy RSS {before} kB after "
              f"{CHURN_WARMUP} warm-up cycles, {after} kB after {CHURN_CYCLES} more ({after - before:+d} kB, "
              f"allowed +{CHURN_SLACK_KB} kB); {int(accepted)} clients accepted, 0 open; buffered "
              f"{int(harness.metric_value(m, 'ringproxy_buffered_bytes'))} bytes", flush=True)
        self.assertEqual(problems, [])
        self.assertGreaterEqual(accepted, CHURN_WARMUP + CHURN_CYCLES + 1)
        self.assertLessEqual(after - before, CHURN_SLACK_KB, "RSS grew with connection churn")
        with RawConn(f.port) as c:  # still serving
            self.assertEqual(c.call("MGET", *small), [k.encode() * 40 for k in small])

    def test_closes_with_large_replies_in_flight_leave_rss_flat(self):
        """Clients that pipeline 12 GETs of 64 KiB values and close at once (the proxy answers a
        half-closed client, so it holds the replies until it finds the socket gone)."""
        f = self.f
        keys = [f"big:{i}" for i in range(12)]
        with RawConn(f.port) as c:
            for k in keys:
                self.assertEqual(c.call("SET", k, (k.encode() + b"|") * (BIG // 8)), b"OK")
        in_flight = b"".join(encode_command("GET", k) for k in keys)

        def cycle(n, rng):
            with socket.create_connection(("127.0.0.1", f.port), timeout=10.0) as s:
                s.sendall(in_flight)

        before, after, elapsed = self.churn_rss(100, 1500, cycle)
        hwm = harness.proc_status_kb(f.proxy.pid, "VmHWM")
        print(f"\nlarge replies in flight: 1500 closes in {elapsed:.1f} s; ringproxy RSS {before} kB after 100 "
              f"warm-up closes, {after} kB after 1500 more and idle ({after - before:+d} kB, allowed "
              f"+{CHURN_SLACK_KB} kB; peak {hwm} kB)", flush=True)
        # Found by this test and fixed: the memory freed after such a burst stayed in glibc's
        # heap (tens of MB resident); the proxy now finds a dead socket at its first reply,
        # takes large blocks from mmap and trims the heap every 2 s.
        self.assertLessEqual(after - before, CHURN_SLACK_KB,
                             f"RSS did not come back after closed clients' in-flight replies were dropped (peak "
                             f"{hwm} kB; no client open and nothing in flight when measured)")
        with RawConn(f.port) as c:
            self.assertEqual(c.call("GET", keys[0]), (keys[0].encode() + b"|") * (BIG // 8))

    def test_ten_thousand_idle_connections(self):
        soft, hard = harness.raise_nofile()
        if hard < IDLE_CONNECTIONS + 500:
            self.skipTest(f"RLIMIT_NOFILE hard limit is {hard}; {IDLE_CONNECTIONS} idle connections need at "
                          f"least {IDLE_CONNECTIONS + 500} (raise it with ulimit -Hn or limits.conf)")
        f = self.f
        # Started after the limit was raised, so it inherits it (ringproxy raises its own).
        nut = f.start_nutcracker()
        self.addCleanup(nut.stop)
        results = {}
        for name, proc, port in (("ringproxy", f.proxy, f.port), ("nutcracker", nut, nut.port)):
            per_conn, conns = self.idle_cost(name, proc, port)
            results[name] = per_conn
            try:
                if name == "ringproxy":
                    self.assertEqual(f.clients(), IDLE_CONNECTIONS)
                # Every connection still works: PING a sample of them.
                sample = random.Random(7).sample(conns, IDLE_SAMPLE)
                for s in sample:
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                bad = [i for i, s in enumerate(sample) if recv_line(s) != b"+PONG\r\n"]
                self.assertEqual(bad, [], f"{name}: idle connections that no longer answer PING")
                # A new client is served, through a backend, while they are all open.
                with RawConn(port, timeout=5.0) as c:
                    self.assertEqual(c.call("SET", "idle:new", name), b"OK")
                    self.assertEqual(c.call("GET", "idle:new"), name.encode())
            finally:
                for s in conns:
                    s.close()
            if name == "ringproxy":
                f.wait_no_clients()
        print(f"\nidle connections: ringproxy {results['ringproxy']:.0f} bytes/connection, nutcracker "
              f"{results['nutcracker']:.0f} bytes/connection (RSS delta over {IDLE_CONNECTIONS} connections that "
              f"each did one PING); ratio {results['ringproxy'] / max(results['nutcracker'], 1):.2f}", flush=True)
        self.assertLessEqual(results["ringproxy"], 2 * results["nutcracker"] + 100,
                             "ringproxy costs more than twice nutcracker's bytes per idle connection")
        self.assertLessEqual(results["ringproxy"], 4096)

    def idle_cost(self, name, proc, port):
        """Opens IDLE_CONNECTIONS connections to `port`, each PINGed once; returns (RSS bytes per
        connection, the open sockets)."""
        for _ in range(3):  # warm-up: the first connections and requests allocate once
            with RawConn(port) as c:
                self.assertEqual(c.call("PING"), b"PONG")
        before = settled_rss(proc, 0.5)
        conns = []
        t0 = time.time()
        try:
            for start in range(0, IDLE_CONNECTIONS, 500):
                batch = []
                for _ in range(min(500, IDLE_CONNECTIONS - start)):
                    s = socket.create_connection(("127.0.0.1", port), timeout=10.0)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    batch.append(s)
                    conns.append(s)
                for s in batch:
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                for s in batch:
                    self.assertEqual(recv_line(s), b"+PONG\r\n", f"{name}: PING on connection {len(conns)}")
        except BaseException:
            for s in conns:
                s.close()
            raise
        after = settled_rss(proc, 0.5)
        per_conn = (after - before) * 1024 / IDLE_CONNECTIONS
        print(f"\n{name}: RSS {before} kB -> {after} kB with {IDLE_CONNECTIONS} idle connections "
              f"(opened in {time.time() - t0:.1f} s): {per_conn:.0f} bytes/connection", flush=True)
        return per_conn, conns


def recv_line(s):
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(64)
        if not chunk:
            break
        data += chunk
    return data


if __name__ == "__main__":
    unittest.main(verbosity=2)
