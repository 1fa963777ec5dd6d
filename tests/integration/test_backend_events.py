"""What ringproxy's log says about its backends, with real redis-servers.

1. A backend that is down from the start: the first refused connect is one warning naming the
   backend and the cause ("Connection refused"); hundreds of failing requests after it add no
   more lines at the default level (-v 5), while -v 7 logs each failed connect attempt.
2. When it comes up on its port, a notice says it recovered and after how many failures.
3. A backend that stops answering: the reply timeout is a warning with "timed out" and the
   number of requests it failed. One the backend closes while idle is a notice, not a warning.
"""
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402


def log_of(proc):
    with open(proc.log, "rb") as f:
        return f.read().decode(errors="replace")


def lines_about(proc, name):
    return [line for line in log_of(proc).splitlines() if f"backend {name} (" in line]


class Pair:
    """One live redis (r0) and one port with nothing behind it yet (r1), one pool, one worker."""

    def __init__(self, verbosity, extra=""):
        self.live = harness.start_redis()
        self.dead_port = harness.free_port()
        self.port = harness.free_port()
        servers = [f"127.0.0.1:{self.live.port}:1 r0", f"127.0.0.1:{self.dead_port}:1 r1"]
        self.config = harness.write_config(harness.redis_pool_config("pool", self.port, servers, extra=extra))
        self.proxy = harness.start_ringproxy(self.config, self.port, extra=["--workers", "1", "-v", str(verbosity)])
        keys = harness.hashlike_keys("ev", 200)
        owners = harness.keys_by_owner(self.config, "pool", keys)
        self.r0_keys, self.r1_keys = owners["r0"], owners["r1"]
        self.client = redis.Redis(port=self.port, socket_timeout=5)
        self.revived = None

    def hammer_dead(self, n):
        """n GETs of r1's keys, each answered with an error; returns the error count."""
        errors = 0
        for i in range(n):
            try:
                self.client.get(self.r1_keys[i % len(self.r1_keys)])
            except redis.exceptions.ResponseError:
                errors += 1
        return errors

    def stop(self):
        self.client.close()
        self.proxy.stop()
        self.live.stop()
        if self.revived:
            self.revived.stop()


class DeadBackend(unittest.TestCase):
    def test_one_warning_not_a_flood_then_a_notice_when_it_recovers(self):
        p = Pair(verbosity=5)
        try:
            self.assertEqual(p.hammer_dead(300), 300)
            time.sleep(0.5)  # reconnect attempts back off from 50 ms: a few more happen meanwhile
            p.hammer_dead(50)
            about = lines_about(p.proxy, "r1")
            self.assertEqual(len(about), 1, about)
            self.assertRegex(about[0], r"\] warn ")
            self.assertRegex(about[0], r"backend r1 \(127\.0\.0\.1:\d+\): cannot connect \(connect failed: Connection refused\)")
            self.assertEqual(lines_about(p.proxy, "r0"), [])  # the healthy one is not mentioned at -v 5
            self.assertEqual(p.client.set(p.r0_keys[0], "fine"), True)

            p.revived = harness.start_redis(port=p.dead_port)
            deadline = time.time() + 5  # the backoff is at most 2 s
            while time.time() < deadline:
                try:
                    p.client.set(p.r1_keys[0], "back")
                    break
                except redis.exceptions.ResponseError:
                    time.sleep(0.1)
            self.assertEqual(p.client.get(p.r1_keys[0]), b"back")
            recovered = [line for line in lines_about(p.proxy, "r1") if "recovered" in line]
            self.assertEqual(len(recovered), 1, lines_about(p.proxy, "r1"))
            m = re.search(r"connected again after (\d+) failures? over ([\d.]+) s", recovered[0])
            self.assertIsNotNone(m, recovered[0])
            self.assertGreaterEqual(int(m.group(1)), 2)  # the refused connects plus the fast-failed sends
            self.assertGreater(float(m.group(2)), 0.4)
        finally:
            p.stop()

    def test_debug_level_logs_each_failed_connect(self):
        p = Pair(verbosity=7)
        try:
            for _ in range(12):  # ~2.4 s: reconnects at 50, 100, 200, 400, 800 ms backoffs
                p.hammer_dead(5)
                time.sleep(0.2)
            refused = [line for line in lines_about(p.proxy, "r1") if "Connection refused" in line]
            self.assertGreaterEqual(len(refused), 4, refused)
            self.assertTrue(any(re.search(r"failure \d+", line) for line in refused[1:]), refused)
            # and -v 6 and 7 say when a backend connects
            self.assertTrue(p.client.set(p.r0_keys[0], "x"))
            self.assertTrue(any(re.search(r"backend r0 \(\S+\): connected$", line) for line in lines_about(p.proxy, "r0")))
        finally:
            p.stop()


class FailingBackend(unittest.TestCase):
    def test_reply_timeout_is_a_warning_that_names_it(self):
        p = Pair(verbosity=5, extra="  timeout: 300\n")
        try:
            p.client.set(p.r0_keys[0], "x")
            p.live.signal(signal.SIGSTOP)
            try:
                with self.assertRaises(redis.exceptions.ResponseError):
                    p.client.get(p.r0_keys[0])
            finally:
                p.live.signal(signal.SIGCONT)
            about = lines_about(p.proxy, "r0")
            self.assertEqual(len(about), 1, about)
            self.assertIn("connection dropped (timed out: no reply within 300 ms); 1 request failed", about[0])
        finally:
            p.stop()

    def test_backend_closing_an_idle_connection_is_a_notice_and_a_recovery(self):
        p = Pair(verbosity=5)
        try:
            p.client.set(p.r0_keys[0], "x")
            with redis.Redis(port=p.live.port) as direct:  # the backend drops the proxy's connection
                for c in direct.client_list():
                    if c.get("name", "") == "" and c["cmd"] != "client|list":
                        direct.client_kill_filter(_id=c["id"])
            time.sleep(0.3)
            self.assertEqual(p.client.get(p.r0_keys[0]), b"x")  # reconnects at once on demand
            about = lines_about(p.proxy, "r0")
            self.assertTrue(any("connection lost (connection closed by backend); 0 requests failed" in line
                                for line in about), about)
            lost = [line for line in about if "connection lost" in line]
            self.assertTrue(all(re.search(r"\] notice ", line) for line in lost), lost)
            # An idle close does not start a failing spell: if the backend is then gone for
            # good, the refused reconnect is the warning.
            p.live.popen.kill()
            p.live.popen.wait()
            time.sleep(0.3)
            with self.assertRaises(redis.exceptions.ResponseError):
                p.client.get(p.r0_keys[0])
            refused = [line for line in lines_about(p.proxy, "r0") if "Connection refused" in line]
            self.assertEqual(len(refused), 1, lines_about(p.proxy, "r0"))
            self.assertRegex(refused[0], r"\] warn ")
        finally:
            p.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
