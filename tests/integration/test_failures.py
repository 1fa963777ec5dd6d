"""Backend failures through ringproxy, over real redis-servers and memcached (and nutcracker as
the reference where twemproxy's behaviour is the contract).

1. auto_eject_hosts (server_failure_limit 2, server_retry_timeout 1500, timeout 300), one of
   3 backends SIGKILLed: at most server_failure_limit errors before its keys are served by the
   next owners; the very same keys land on the very same backends as through nutcracker; a
   backend that is still down when its retry timeout ends costs at most server_failure_limit
   more errors per cycle (as nutcracker); restarted on its port, it gets its keys back; the
   ejections are counted in /metrics and in the stats JSON. With 2 workers, an ejection by one
   holds for the other at once (counted once).
2. Without auto_eject_hosts: the dead backend's keys fail fast with an error naming the backend
   and the cause, other keys keep working, and the backend is reconnected in the background.
3. A backend that accepts but never answers (SIGSTOP): "no reply within <timeout> ms", in time,
   other keys unaffected; SIGCONT and it serves again.
4. A backend that closes in the middle of a reply (a fake RESP server): only the requests it
   owed fail, in their places in the pipeline, and the client connection stays up.
5. Every server of a pool down (redis, redis with auto_eject_hosts, memcached): every request
   gets a prompt error, and 20000 such requests leave the proxy's RSS flat.
"""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402
from harness import ErrorReply, McConn, RawConn, encode_command  # noqa: E402

EJECT = ("  auto_eject_hosts: true\n  server_failure_limit: 2\n  server_retry_timeout: 1500\n"
         "  timeout: 300\n")
FAILURE_LIMIT = 2
RETRY_TIMEOUT = 1.5
MAX_BACKOFF = 2.0  # README: reconnects back off from 50 ms to 2 s


def value_of(key):
    return b"v:" + (key.encode() if isinstance(key, str) else key)


class Fleet:
    """3 redis-servers named r0, r1, r2 behind one ringproxy pool (and, optionally, behind a
    nutcracker with the same pool on another port), with the keys each one owns."""

    def __init__(self, extra, workers=1, nutcracker=False, n=3):
        self.backends = {f"r{i}": harness.start_redis() for i in range(n)}
        self.port_of = {name: b.port for name, b in self.backends.items()}
        self.servers = [f"127.0.0.1:{p}:1 {name}" for name, p in self.port_of.items()]
        self.extra = extra
        self.port, self.admin, self.stats = harness.free_port(), harness.free_port(), harness.free_port()
        self.config = harness.write_config(harness.redis_pool_config("pool", self.port, self.servers, extra=extra))
        self.proxy = harness.start_ringproxy(self.config, self.port, extra=[
            "--workers", str(workers), "--admin", f"127.0.0.1:{self.admin}", "-s", str(self.stats)])
        self.proxy.wait_port(port=self.admin)
        self.nutcracker = None
        if nutcracker:
            self.nc_port = harness.free_port()
            self.nc_config = harness.write_config(
                harness.redis_pool_config("pool", self.nc_port, self.servers, extra=extra))
            self.nutcracker = harness.start_nutcracker(self.nc_config, self.nc_port)
        self.keys = harness.hashlike_keys("k", 900)
        self.by_owner = harness.keys_by_owner(self.config, "pool", self.keys)
        for name in self.backends:
            if len(self.by_owner.get(name, [])) < 50:
                raise RuntimeError(f"{name} owns too few keys: {len(self.by_owner.get(name, []))}")

    def direct(self, name):
        return redis.Redis(host="127.0.0.1", port=self.port_of[name], socket_timeout=5)

    def seed(self):
        """Every key holds value_of(key) on its owner."""
        for name, keys in self.by_owner.items():
            with self.direct(name) as d:
                d.mset({k: value_of(k) for k in keys})

    def live(self):
        return [n for n, b in self.backends.items() if b.popen.poll() is None]

    def holders(self, key, value):
        """Names of the live backends where `key` holds `value`."""
        found = []
        for name in self.live():
            with self.direct(name) as d:
                if d.get(key) == value:
                    found.append(name)
        return found

    def kill(self, name):
        b = self.backends[name]
        os.kill(b.pid, signal.SIGKILL)
        b.popen.wait()

    def restart(self, name):
        self.backends[name] = harness.start_redis(port=self.port_of[name])

    def metrics(self):
        return harness.get_metrics(self.admin)

    def backend_metric(self, metric, name):
        """A per-backend sample, found by the backend's name in its label."""
        hits = [v for (m, labels), v in self.metrics().items()
                if m == metric and any(l == "backend" and (val == name or val.startswith(name + " "))
                                       for l, val in labels)]
        if len(hits) != 1:
            raise KeyError(f"{metric} for {name}: {len(hits)} samples")
        return hits[0]

    def expected_without(self, dead, keys):
        """{key: owner name} on the ring of the other servers: where twemproxy's ketama sends a
        key while `dead` is ejected (it rebuilds its continuum from the live servers)."""
        servers = [s for s in self.servers if not s.endswith(" " + dead)]
        path = harness.write_config(harness.redis_pool_config("pool", harness.free_port(), servers,
                                                              extra=self.extra))
        try:
            return harness.ringctl_owners(path, "pool", keys)
        finally:
            os.unlink(path)

    def stop(self):
        for b in self.backends.values():
            b.signal(signal.SIGCONT)
        self.proxy.stop()
        if self.nutcracker:
            self.nutcracker.stop()
            os.unlink(self.nc_config)
        for b in self.backends.values():
            b.stop()
        os.unlink(self.config)


def names_backend(message, name, port):
    return name in message or f"127.0.0.1:{port}" in message


def drive_to_ejection(conn, keys, timeout=4.0):
    """SETs keys of a dead backend until one succeeds (its keys then go to the next owners).
    Returns the error replies met on the way."""
    errors, i = [], 0
    deadline = time.time() + timeout
    while time.time() < deadline:
        k = keys[i % len(keys)]
        i += 1
        r = conn.call("SET", k, "x")
        if not isinstance(r, ErrorReply):
            if r != b"OK":
                raise AssertionError(f"SET {k}: {r!r}")
            return errors
        errors.append(str(r))
        time.sleep(0.002)
    raise AssertionError(f"keys of the dead backend were never served within {timeout}s: {errors[:3]}")


def set_until_ok(conn, key, value, timeout=6.0):
    """SET, retrying after error replies (a proxy may be between retry and re-ejection)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = conn.call("SET", key, value)
        if last == b"OK":
            return
        if not isinstance(last, ErrorReply):
            raise AssertionError(f"SET {key}: {last!r}")
        time.sleep(0.02)
    raise AssertionError(f"SET {key} kept failing for {timeout}s: {last!r}")


class AutoEject(unittest.TestCase):
    def setUp(self):
        self.f = Fleet(EJECT, workers=1, nutcracker=True)
        self.addCleanup(self.f.stop)
        self.rp, self.nc = RawConn(self.f.port), RawConn(self.f.nc_port)
        self.addCleanup(self.rp.close)
        self.addCleanup(self.nc.close)
        self.dead = self.f.by_owner["r1"]
        # Both proxies hold a connection to every backend before the kill.
        for conn in (self.rp, self.nc):
            for name in self.f.backends:
                k = self.f.by_owner[name][0]
                self.assertEqual(conn.call("SET", k, value_of(k)), b"OK")

    def tearDown(self):
        self.assertIsNone(self.f.proxy.popen.poll(), f"ringproxy exited: {self.f.proxy.output()}")

    def test_at_most_failure_limit_errors_before_the_keys_move(self):
        self.f.kill("r1")
        errors = {}
        for name, conn in (("ringproxy", self.rp), ("nutcracker", self.nc)):
            errors[name] = drive_to_ejection(conn, self.dead, timeout=2.0)
            # Ejected: the dead backend's keys are served, one after another.
            for k in self.dead[:20]:
                self.assertEqual(conn.call("SET", k, value_of(k)), b"OK", name)
                self.assertEqual(conn.call("GET", k), value_of(k), name)
        port = self.f.port_of["r1"]
        for e in errors["ringproxy"]:
            self.assertTrue(names_backend(e, "r1", port), e)
        self.assertLessEqual(
            len(errors["ringproxy"]), FAILURE_LIMIT,
            f"ringproxy (1 worker, server_failure_limit {FAILURE_LIMIT}) answered {len(errors['ringproxy'])} errors "
            f"before ejecting the dead backend; nutcracker {len(errors['nutcracker'])}. First: "
            f"{errors['ringproxy'][:2]}")

    def test_ejected_keys_land_where_nutcracker_puts_them(self):
        self.f.kill("r1")
        drive_to_ejection(self.rp, self.dead)
        drive_to_ejection(self.nc, self.dead)
        keys = self.dead[:40]
        expected = self.f.expected_without("r1", keys)
        self.assertEqual(set(expected.values()), {"r0", "r2"}, "the test wants keys moving to both others")
        mismatches = []
        for k in keys:
            nc_value, rp_value = b"nc:" + k.encode(), b"rp:" + k.encode()
            set_until_ok(self.nc, k, nc_value)
            by_nc = self.f.holders(k, nc_value)
            for name in self.f.live():
                with self.f.direct(name) as d:
                    d.delete(k)
            set_until_ok(self.rp, k, rp_value)
            by_rp = self.f.holders(k, rp_value)
            if by_nc != [expected[k]] or by_rp != by_nc:
                mismatches.append((k, "expected", expected[k], "nutcracker", by_nc, "ringproxy", by_rp))
        self.assertEqual(mismatches, [])
        # The other backends' keys never moved.
        for name in ("r0", "r2"):
            for k in self.f.by_owner[name][:20]:
                set_until_ok(self.rp, k, b"live:" + k.encode())
                self.assertEqual(self.f.holders(k, b"live:" + k.encode()), [name], k)

    def test_a_backend_still_down_after_its_retry_timeout_costs_few_errors(self):
        """When server_retry_timeout ends, both proxies put the backend back and must find
        again that it is down: twemproxy lets server_failure_limit requests fail and ejects it
        again. Sampled every 10 ms over more than two retry cycles, on both proxies at once."""
        self.f.kill("r1")
        drive_to_ejection(self.rp, self.dead)
        drive_to_ejection(self.nc, self.dead)
        errors = {"ringproxy": [], "nutcracker": []}
        start, i = time.time(), 0
        while time.time() - start < 2 * RETRY_TIMEOUT + 0.6:
            k = self.dead[i % len(self.dead)]
            i += 1
            for name, conn in (("ringproxy", self.rp), ("nutcracker", self.nc)):
                r = conn.call("SET", k, "x")
                if isinstance(r, ErrorReply):
                    errors[name].append((round(time.time() - start, 3), str(r)))
                else:
                    self.assertEqual(r, b"OK")
            time.sleep(0.01)
        self.assertGreater(len(errors["nutcracker"]), 0, "the window should cover a retry of the dead backend")
        rp_errors = errors["ringproxy"]
        self.assertLessEqual(
            len(rp_errors), len(errors["nutcracker"]) + FAILURE_LIMIT,
            f"over {i} requests for the dead backend's keys in {2 * RETRY_TIMEOUT + 0.6}s, ringproxy answered "
            f"{len(rp_errors)} errors (from t={rp_errors[0][0]}s to t={rp_errors[-1][0]}s), nutcracker "
            f"{len(errors['nutcracker'])} (at {[t for t, _ in errors['nutcracker']]})")

    def test_restarted_backend_gets_its_keys_back_and_ejections_are_counted(self):
        self.f.kill("r1")
        drive_to_ejection(self.rp, self.dead)
        drive_to_ejection(self.nc, self.dead)
        samples = self.f.metrics()
        self.assertGreaterEqual(harness.metric_value(samples, "ringproxy_pool_ejections_total", pool="pool"), 1)
        stats = harness.read_stats_port(self.f.stats)
        self.assertGreaterEqual(stats["pool"]["server_ejects"], 1, stats["pool"])
        self.f.restart("r1")
        restarted = time.time()
        # Back in the ring after server_retry_timeout; ringproxy may also have to wait for its
        # next reconnect attempt (backoff up to 2 s).
        attempt = iter(range(1 << 30))
        for name, conn in (("ringproxy", self.rp), ("nutcracker", self.nc)):
            k = self.dead[0]

            def landed():
                value = b"%s:back:%d" % (name.encode(), next(attempt))  # fresh: never on another backend
                r = conn.call("SET", k, value)
                return r == b"OK" and self.f.holders(k, value) == ["r1"]
            harness.wait_for(landed, timeout=RETRY_TIMEOUT + MAX_BACKOFF + 2.0, interval=0.05,
                             what=f"{name} writing {k} to the restarted r1")
        back_after = time.time() - restarted
        # Every key of r1 goes to r1 again, and reads come from it.
        for k in self.dead[:30]:
            value = b"back:" + k.encode()
            self.assertEqual(self.rp.call("SET", k, value), b"OK", k)
            self.assertEqual(self.f.holders(k, value), ["r1"], k)
            self.assertEqual(self.rp.call("GET", k), value, k)
        self.assertEqual(self.f.backend_metric("ringproxy_backend_ejected", "r1"), 0)
        self.assertLess(back_after, RETRY_TIMEOUT + MAX_BACKOFF + 2.0)


class AutoEjectAcrossWorkers(unittest.TestCase):
    """With --workers 2, an ejection is the process's, not one worker's: once one worker has
    seen server_failure_limit failures and ejected a stalled backend, clients served by the
    other worker no longer meet its timeouts either (as with nutcracker, one process)."""

    def setUp(self):
        self.f = Fleet(EJECT, workers=2)
        self.addCleanup(self.f.stop)

    def worker_of(self, conn):
        info = conn.call("INFO", "proxy").decode()
        return int(next(line.split(":")[1] for line in info.split("\r\n") if line.startswith("worker:")))

    def test_an_ejection_by_one_worker_holds_for_the_other(self):
        conns = {}
        for _ in range(64):  # SO_REUSEPORT spreads connections over the workers
            c = RawConn(self.f.port)
            self.addCleanup(c.close)
            conns.setdefault(self.worker_of(c), []).append(c)
            if len(conns) == 2 and min(len(v) for v in conns.values()) >= 4:
                break
        self.assertEqual(sorted(conns), [0, 1], "connections on both workers")
        dead = self.f.by_owner["r1"]
        for cs in conns.values():  # every connection has used every backend
            for c in cs:
                for name in self.f.backends:
                    k = self.f.by_owner[name][0]
                    self.assertEqual(c.call("SET", k, value_of(k)), b"OK")
        # Stalled, not killed: a dead backend's closed connections would tell every worker at
        # once; a stalled one only fails the requests sent to it (timeout 300 ms), so worker 1,
        # which sends it nothing, learns of the failures from worker 0 alone.
        r1 = self.f.backends["r1"]
        os.kill(r1.pid, signal.SIGSTOP)
        self.addCleanup(lambda: r1.popen.poll() is None and os.kill(r1.pid, signal.SIGCONT))
        drive_to_ejection(conns[0][0], dead)
        time.sleep(0.1)
        errors = []
        for c in conns[1]:
            for k in dead[:10]:
                r = c.call("SET", k, value_of(k))
                if r != b"OK":
                    errors.append(r)
        self.assertEqual(errors, [], "worker 1 still sent the stalled backend's keys to it after worker 0 ejected it")
        # Counted once, by the worker that saw the failures.
        self.assertEqual(harness.metric_value(self.f.metrics(), "ringproxy_pool_ejections_total", pool="pool"), 1)
        for k in dead[:10]:
            self.assertEqual(conns[0][1 % len(conns[0])].call("GET", k), value_of(k))


class NoAutoEject(unittest.TestCase):
    def setUp(self):
        self.f = Fleet("  timeout: 300\n", workers=2)
        self.addCleanup(self.f.stop)
        self.f.seed()
        self.conn = RawConn(self.f.port)
        self.addCleanup(self.conn.close)

    def tearDown(self):
        self.assertIsNone(self.f.proxy.popen.poll(), f"ringproxy exited: {self.f.proxy.output()}")

    def test_dead_backend_fails_fast_others_work_and_it_comes_back_alone(self):
        c, f = self.conn, self.f
        dead, port = f.by_owner["r1"], f.port_of["r1"]
        others = f.by_owner["r0"][:5] + f.by_owner["r2"][:5]
        for k in dead[:3] + others:
            self.assertEqual(c.call("GET", k), value_of(k))
        f.kill("r1")
        times, messages, i = [], [], 0
        start = time.time()
        while time.time() - start < 1.6:  # several backoff periods and reconnect attempts
            k = dead[i % len(dead)]
            t = time.time()
            r = c.call("GET", k)
            times.append(time.time() - t)
            self.assertIsInstance(r, ErrorReply, f"GET {k} of the dead backend: {r!r}")
            messages.append(str(r))
            o = others[i % len(others)]
            t = time.time()
            self.assertEqual(c.call("GET", o), value_of(o), "a live backend's key")
            self.assertLess(time.time() - t, 0.1)
            i += 1
            time.sleep(0.005)
        self.assertLess(times[0], 0.3 + 0.5, "the first failure")
        slow = [round(t, 3) for t in times[1:] if t >= 0.1]
        self.assertEqual(slow, [], f"of {len(times)} requests after the first failure, these waited")
        for m in set(messages):
            self.assertTrue(names_backend(m, "r1", port), m)
            self.assertRegex(m, r"refused|closed|reset", "the cause")
        # Every failed request is counted where its HELP says, refused at once in a backoff
        # or failed by the connection (it counted 1 of 20 before).
        self.assertGreaterEqual(f.backend_metric("ringproxy_backend_failures_total", "r1"), len(times))
        # Restarted on its port: reconnected without any request asking for it.
        f.restart("r1")
        harness.wait_for(lambda: f.backend_metric("ringproxy_backend_connections", "r1") >= 1,
                         timeout=MAX_BACKOFF + 2.0, interval=0.05, what="a background reconnect to r1")
        k = dead[0]
        self.assertEqual(c.call("SET", k, b"again"), b"OK", "first request after the restart")
        self.assertEqual(f.holders(k, b"again"), ["r1"])
        for k in dead[1:20]:
            self.assertEqual(c.call("SET", k, value_of(k)), b"OK")
            self.assertEqual(c.call("GET", k), value_of(k))


class StalledBackend(unittest.TestCase):
    TIMEOUT_MS = 400

    def setUp(self):
        self.f = Fleet(f"  timeout: {self.TIMEOUT_MS}\n", workers=1)
        self.addCleanup(self.f.stop)
        self.f.seed()
        self.a, self.b = RawConn(self.f.port), RawConn(self.f.port)
        self.addCleanup(self.a.close)
        self.addCleanup(self.b.close)

    def tearDown(self):
        self.assertIsNone(self.f.proxy.popen.poll(), f"ringproxy exited: {self.f.proxy.output()}")

    def test_no_reply_within_timeout(self):
        f, a, b = self.f, self.a, self.b
        stalled, live = f.by_owner["r1"], f.by_owner["r0"][:5] + f.by_owner["r2"][:5]
        for k in stalled[:2] + live:
            self.assertEqual(a.call("GET", k), value_of(k))
            self.assertEqual(b.call("GET", k), value_of(k))
        f.backends["r1"].signal(signal.SIGSTOP)
        timeout = self.TIMEOUT_MS / 1000
        want = f"no reply within {self.TIMEOUT_MS} ms"
        t0 = time.time()
        a.send(encode_command("GET", stalled[0]))
        # Meanwhile, other keys on another connection are served at once.
        for k in live:
            t = time.time()
            self.assertEqual(b.call("GET", k), value_of(k))
            self.assertLess(time.time() - t, 0.1, "a live key while r1 is stalled")
        r = a.read()
        waited = time.time() - t0
        self.assertIsInstance(r, ErrorReply)
        self.assertTrue(names_backend(r, "r1", f.port_of["r1"]), r)
        self.assertIn(want, r)
        self.assertGreaterEqual(waited, timeout * 0.9, "failed before the timeout")
        self.assertLess(waited, timeout + 0.5, "failed long after the timeout")
        # Again, pipelined with a live key behind it: the error first, then the value, in order.
        for _ in range(3):
            t0 = time.time()
            a.send(encode_command("GET", stalled[1]) + encode_command("GET", live[0]))
            r1, r2 = a.read(), a.read()
            self.assertIsInstance(r1, ErrorReply)
            self.assertIn(want, r1)
            self.assertEqual(r2, value_of(live[0]))
            self.assertLess(time.time() - t0, timeout + 0.5)
        f.backends["r1"].signal(signal.SIGCONT)
        harness.wait_for(lambda: a.call("GET", stalled[0]) == value_of(stalled[0]), timeout=4.0, interval=0.05,
                         what="r1 serving again after SIGCONT")
        for k in stalled[:20]:
            self.assertEqual(a.call("SET", k, b"cont"), b"OK")
            self.assertEqual(f.holders(k, b"cont"), ["r1"])


class ClosedMidReply(unittest.TestCase):
    """A real redis-server and a fake one that answers N requests, sends half of the next reply
    and closes."""

    def setUp(self):
        self.real = harness.start_redis()
        self.fake = harness.FakeRedis()
        self.port = harness.free_port()
        servers = [f"127.0.0.1:{self.real.port}:1 real", f"127.0.0.1:{self.fake.port}:1 fake"]
        self.config = harness.write_config(harness.redis_pool_config("pool", self.port, servers,
                                                                     extra="  timeout: 2000\n"))
        self.proxy = harness.start_ringproxy(self.config, self.port, extra=["--workers", "1", "-s",
                                                                            str(harness.free_port())])
        by_owner = harness.keys_by_owner(self.config, "pool", harness.hashlike_keys("m", 400))
        self.real_keys, self.fake_keys = by_owner["real"][:20], by_owner["fake"][:20]
        with redis.Redis(port=self.real.port) as d:
            d.mset({k: value_of(k) for k in self.real_keys})
        self.conn = RawConn(self.port)
        # Connected to both before anything misbehaves.
        self.assertEqual(self.conn.call("GET", self.real_keys[0]), value_of(self.real_keys[0]))
        self.assertEqual(self.conn.call("GET", self.fake_keys[0]), self.fake.value_of(self.fake_keys[0]))

    def tearDown(self):
        alive = self.proxy.popen.poll() is None
        self.conn.close()
        self.proxy.stop()
        self.fake.stop()
        self.real.stop()
        os.unlink(self.config)
        self.assertTrue(alive, f"ringproxy exited: {self.proxy.output()}")

    def assert_recovers(self):
        c = self.conn
        self.assertEqual(c.call("PING"), b"PONG", "the client connection stays up")
        k = self.fake_keys[1]
        harness.wait_for(lambda: c.call("GET", k) == self.fake.value_of(k), timeout=3.0, interval=0.05,
                         what="the fake backend serving again")
        for k in self.real_keys:
            self.assertEqual(c.call("GET", k), value_of(k))

    def test_pipeline_only_the_requests_it_owed_fail(self):
        answered = 5
        self.fake.cut_after(answered)
        pipeline = []
        for r, fk in zip(self.real_keys, self.fake_keys):
            pipeline += [("real", r), ("fake", fk)]
        self.conn.send(b"".join(encode_command("GET", k) for _, k in pipeline))
        replies = [self.conn.read() for _ in pipeline]
        self.assertEqual(self.fake.cuts, 1)
        real = [(k, r) for (who, k), r in zip(pipeline, replies) if who == "real"]
        fake = [(k, r) for (who, k), r in zip(pipeline, replies) if who == "fake"]
        self.assertEqual([r for _, r in real], [value_of(k) for k, _ in real], "the real backend's replies")
        self.assertEqual([r for _, r in fake[:answered]], [self.fake.value_of(k) for k, _ in fake[:answered]],
                         "replies the fake sent before it closed")
        failed = [i for i, (_, r) in enumerate(fake) if isinstance(r, ErrorReply)]
        self.assertTrue(failed and failed[0] == answered, f"failed fake requests: {failed}")
        self.assertEqual(failed, list(range(answered, answered + len(failed))), "failures are the ones owed, in order")
        for i in failed:
            self.assertTrue(names_backend(fake[i][1], "fake", self.fake.port), fake[i][1])
            self.assertIn("closed", fake[i][1])
        for k, r in fake[answered + len(failed):]:  # sent after the proxy had reconnected, if any
            self.assertEqual(r, self.fake.value_of(k))
        self.assert_recovers()

    def test_mget_across_both_fails_only_the_fakes_keys(self):
        self.fake.cut_after(0)
        keys = [k for pair in zip(self.real_keys[:8], self.fake_keys[:8]) for k in pair]
        reply = self.conn.call("MGET", *keys)
        self.assertIsInstance(reply, list, reply)
        self.assertEqual(len(reply), len(keys))
        for k, r in zip(keys, reply):
            if k in self.real_keys:
                self.assertEqual(r, value_of(k))
            else:
                self.assertIsInstance(r, ErrorReply, f"{k}: {r!r}")
                self.assertTrue(names_backend(r, "fake", self.fake.port), r)
        self.assert_recovers()

    def test_multi_key_request_owned_by_the_failing_backend_alone(self):
        # Every key on the fake: the request is sent whole to it. Its failure must look as it
        # does for a split request: MGET gets one error element per key, DEL/EXISTS one error.
        self.fake.cut_after(0)
        keys = self.fake_keys[:5]
        reply = self.conn.call("MGET", *keys)
        self.assertIsInstance(reply, list, reply)
        self.assertEqual(len(reply), len(keys))
        for k, r in zip(keys, reply):
            self.assertIsInstance(r, ErrorReply, f"{k}: {r!r}")
            self.assertTrue(names_backend(r, "fake", self.fake.port), r)
        harness.wait_for(lambda: self.conn.call("GET", keys[0]) == self.fake.value_of(keys[0]), timeout=3.0,
                         interval=0.05, what="the fake backend serving again")
        self.fake.cut_after(0)
        reply = self.conn.call("EXISTS", *keys)
        self.assertIsInstance(reply, ErrorReply, reply)
        self.assertTrue(names_backend(reply, "fake", self.fake.port), reply)
        self.assert_recovers()


class AllServersDown(unittest.TestCase):
    """Three pools whose every server is down: redis, redis with auto_eject_hosts, memcached."""

    @classmethod
    def setUpClass(cls):
        cls.redis_backends = [harness.start_redis() for _ in range(6)]
        cls.mc_backends = [harness.start_memcached() for _ in range(2)]
        cls.port, cls.eject_port, cls.mc_port = harness.free_port(), harness.free_port(), harness.free_port()
        rs = [f"127.0.0.1:{b.port}:1" for b in cls.redis_backends]
        text = (harness.redis_pool_config("plain", cls.port, rs[:3], extra="  timeout: 300\n")
                + harness.redis_pool_config("eject", cls.eject_port, rs[3:], extra=EJECT)
                + harness.memcache_pool_config("mc", cls.mc_port, [f"127.0.0.1:{b.port}:1" for b in cls.mc_backends],
                                               extra="  timeout: 300\n"))
        cls.config = harness.write_config(text)
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=["--workers", "2", "-s",
                                                                         str(harness.free_port())])
        cls.proxy.wait_port(port=cls.eject_port)
        cls.proxy.wait_port(port=cls.mc_port)
        cls.keys = harness.hashlike_keys("d", 50)
        cls.redis_conns = [RawConn(cls.port), RawConn(cls.eject_port)]
        cls.mc = McConn(cls.mc_port)
        # Working first (so the proxy holds connections that then break), then everything dies.
        for c in cls.redis_conns:
            assert c.call("MSET", *[x for k in cls.keys for x in (k, k)]) == b"OK"
        assert cls.mc.call_text(b"set d 0 0 1\r\nx\r\n") == b"STORED\r\n"
        for b in cls.redis_backends + cls.mc_backends:
            os.kill(b.pid, signal.SIGKILL)
            b.popen.wait()

    @classmethod
    def tearDownClass(cls):
        for c in cls.redis_conns:
            c.close()
        cls.mc.close()
        cls.proxy.stop()
        for b in cls.redis_backends + cls.mc_backends:
            b.stop()
        os.unlink(cls.config)

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"ringproxy exited: {self.proxy.output()}")

    def assert_redis_error(self, reply, what):
        if isinstance(reply, list):  # MGET may answer per-key errors
            self.assertTrue(reply and all(isinstance(r, ErrorReply) for r in reply), f"{what}: {reply!r}")
            reply = reply[0]
        self.assertIsInstance(reply, ErrorReply, what)
        self.assertIn("backend", reply, what)

    def redis_requests(self, i):
        k = self.keys[i % len(self.keys)]
        return [encode_command("GET", k), encode_command("MGET", *self.keys), encode_command("SET", k, "v")]

    def mc_requests(self, i):
        k = self.keys[i % len(self.keys)]
        return [b"get %s\r\n" % k.encode(), b"get " + " ".join(self.keys).encode() + b"\r\n",
                b"set %s 0 0 1\r\nv\r\n" % k.encode()]

    def test_every_request_gets_a_prompt_error(self):
        slow = []
        for i in range(40):
            for c in self.redis_conns:
                for req in self.redis_requests(i):
                    t = time.time()
                    c.send(req)
                    r = c.read()
                    dt = time.time() - t
                    self.assert_redis_error(r, req[:40])
                    if dt >= 0.2:
                        slow.append((req[:30], round(dt, 3)))
            for req in self.mc_requests(i):
                t = time.time()
                r = self.mc.call_text(req)
                dt = time.time() - t
                self.assertTrue(r.startswith(b"SERVER_ERROR"), f"{req[:30]!r}: {r!r}")
                if dt >= 0.2:
                    slow.append((req[:30], round(dt, 3)))
        self.assertEqual(slow, [])

    def test_20000_failing_requests_leave_memory_flat(self):
        def batch(n_rounds):
            total = 0
            for c in self.redis_conns:
                reqs = [r for i in range(n_rounds) for r in self.redis_requests(i)]
                t = time.time()
                c.send(b"".join(reqs))
                for req in reqs:
                    self.assert_redis_error(c.read(), req[:40])
                self.assertLess(time.time() - t, 2.0, "a batch of failing requests")
                total += len(reqs)
            reqs = [r for i in range(n_rounds) for r in self.mc_requests(i)]
            t = time.time()
            self.mc.send(b"".join(reqs))
            for req in reqs:
                r = self.mc.read_text()
                self.assertTrue(r.startswith(b"SERVER_ERROR"), f"{req[:30]!r}: {r!r}")
            self.assertLess(time.time() - t, 2.0, "a batch of failing memcached requests")
            return total + len(reqs)

        for _ in range(5):  # warm up: buffers, parsers, allocator arenas
            batch(40)
        before = harness.rss_kb(self.proxy.pid)
        done = 0
        while done < 20000:
            done += batch(40)
        grown = harness.rss_kb(self.proxy.pid) - before
        self.assertLess(grown, 2048, f"RSS grew by {grown} KiB over {done} failing requests")


if __name__ == "__main__":
    unittest.main(verbosity=2)
