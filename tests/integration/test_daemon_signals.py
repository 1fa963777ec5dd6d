"""Signals as twemproxy 0.5.0 treats them, and a log that cannot be forged.

1. SIGHUP reopens the log file (-o) and reloads: after logrotate's rename, the next lines go
   to a new file at the path.
2. SIGTTIN raises and SIGTTOU lowers the log level one step (debug lines appear, then go),
   while a GET through the proxy to a real redis-server keeps working; SIGUSR1, SIGUSR2 and
   SIGPIPE leave the process running. Each signal is logged by number and name.
3. SIGTERM: the first stops gracefully (in-flight requests may finish); a second one ends the
   process at once. With the control loop frozen (its thread stopped by ptrace), the first
   SIGTERM still ends the process within a few seconds.
4. SIGSEGV and SIGABRT write a stack trace to the log, then the process dies by the signal.
5. A config key holding a newline, reported in a reload error, stays on one log line.
"""
import ctypes
import errno
import os
import re
import resource
import shutil
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
from harness import RawConn, encode_command  # noqa: E402

# The crash tests kill the proxy with SIGSEGV and SIGABRT: no core files from them.
resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))

SIGNAL_STOP_REACT_S = 3.0  # SignalThread::kStopReactMs


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def pool_config(listen_port, backend_port, extra=""):
    return (f"alpha:\n  listen: 127.0.0.1:{listen_port}\n  hash: fnv1a_64\n  distribution: ketama\n"
            f"  redis: true\n{extra}  servers:\n    - 127.0.0.1:{backend_port}:1\n")


class SilentServer:
    """Accepts connections and never answers: a request sent to it stays in flight."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", harness.free_port()))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class FrozenThread:
    """Stops one thread of a child process with ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT);
    the process's other threads run on. The main thread of ringproxy runs its control loop,
    so freezing it is a control loop that never returns to its events."""
    PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
    WALL = 0x40000000

    def __init__(self, tid):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self.tid = tid
        for request in (self.PTRACE_SEIZE, self.PTRACE_INTERRUPT):
            if self.libc.ptrace(request, tid, None, None) != 0:
                raise OSError(ctypes.get_errno(), f"ptrace {request:#x} on {tid}")
        _, status = os.waitpid(tid, self.WALL)  # the stop itself, so Popen.wait sees only the exit
        if not os.WIFSTOPPED(status):
            raise RuntimeError(f"thread {tid} did not stop: status {status:#x}")

    @staticmethod
    def state(pid):
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]


class SignalTestBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = harness.start_redis()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ringproxy-signals-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.log = os.path.join(self.tmp, "proxy.log")

    def start(self, backend_port=None, extra_config="", args=()):
        self.port = harness.free_port()
        self.config = os.path.join(self.tmp, "nutcracker.yml")
        with open(self.config, "w") as f:
            f.write(pool_config(self.port, backend_port or self.redis.port, extra_config))
        proc = harness.start_ringproxy(self.config, self.port, extra=["-s", "0", "-o", self.log, *args])  # a later -s wins
        self.addCleanup(proc.stop)
        harness.wait_for(lambda: "ringproxy running" in read(self.log), 5.0, what="the proxy running")
        return proc

    def wait_log(self, pattern, path=None, timeout=5.0):
        return harness.wait_for(lambda: re.search(pattern, read(path or self.log)), timeout,
                                what=f"{pattern!r} in the log")

    def get_through(self, key):
        with RawConn(self.port, timeout=5.0) as c:
            self.assertEqual(c.call("SET", key, "v-" + key), b"OK")
            return c.call("GET", key)


class LogSignalsTest(SignalTestBase):
    def test_sighup_reopens_the_log_after_rotation_and_reloads(self):
        proxy = self.start()
        os.rename(self.log, self.log + ".1")  # logrotate's first step
        proxy.signal(signal.SIGHUP)
        # The lines after the SIGHUP (its own, the reload's) land in a new file at the path.
        self.wait_log(r"reload \(SIGHUP\): generation 2 is live")
        self.assertIn("signal 1 (SIGHUP) received", read(self.log + ".1"))
        proxy.signal(signal.SIGUSR1)
        self.wait_log(r"signal 10 \(SIGUSR1\) received")
        rotated = read(self.log + ".1")
        self.assertNotIn("generation 2 is live", rotated)
        self.assertNotIn("SIGUSR1", rotated)
        self.assertEqual(self.get_through("hup"), b"v-hup")

    def test_ttin_ttou_step_the_level_and_usr_signals_are_ignored(self):
        stats = harness.free_port()
        proxy = self.start(args=["-s", str(stats)])

        def debug_line_after_stats():
            # Each read of the stats port gathers every worker's counters, which the control
            # thread notes at debug level.
            before = read(self.log).count("stats: collected from")
            harness.read_stats_port(stats)
            time.sleep(0.2)
            return read(self.log).count("stats: collected from") > before

        self.assertFalse(debug_line_after_stats(), "no debug lines at the default level (notice)")
        proxy.signal(signal.SIGTTIN)
        self.wait_log(r"signal 21 \(SIGTTIN\) received: log level raised to 6 \(info\)")
        proxy.signal(signal.SIGTTIN)
        self.wait_log(r"log level raised to 7 \(debug\)")
        self.assertTrue(debug_line_after_stats(), "debug lines at level 7")
        self.assertEqual(self.get_through("ttin"), b"v-ttin")
        proxy.signal(signal.SIGTTOU)
        self.wait_log(r"signal 22 \(SIGTTOU\) received: log level lowered to 6 \(info\)")
        self.assertFalse(debug_line_after_stats(), "no debug lines at level 6")
        self.assertNotEqual(FrozenThread.state(proxy.pid), "T", "SIGTTIN/SIGTTOU must not suspend the process")

        for sig, pattern in ((signal.SIGUSR1, r"signal 10 \(SIGUSR1\) received .*ignored"),
                             (signal.SIGUSR2, r"signal 12 \(SIGUSR2\) received .*ignored")):
            proxy.signal(sig)
            self.wait_log(pattern)
        proxy.signal(signal.SIGPIPE)
        time.sleep(0.2)
        self.assertIsNone(proxy.popen.poll(), "SIGUSR1/SIGUSR2/SIGPIPE must not kill the process")
        self.assertEqual(self.get_through("usr"), b"v-usr")
        self.assertEqual(proxy.stop(), 0)

    def test_a_config_key_with_a_newline_cannot_forge_a_log_line(self):
        proxy = self.start()
        forged = "[2030-01-01 00:00:00.000] notice forged line"
        with open(self.config, "a") as f:
            f.write(f'  "x\\n{forged}\\u001b[31m": 1\n')  # a YAML key holding a newline and an ESC
        proxy.signal(signal.SIGHUP)
        self.wait_log(r"reload \(SIGHUP\) failed")
        text = read(self.log)
        self.assertNotRegex(text, r"(?m)^\[2030-01-01")
        self.assertIn(f"x\\n{forged}\\x1b[31m", text)
        self.assertNotIn("\x1b", text)
        for line in text.splitlines():
            self.assertRegex(line, r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] ")


class StopSignalsTest(SignalTestBase):
    def test_second_sigterm_ends_a_graceful_stop_at_once(self):
        silent = SilentServer()
        self.addCleanup(silent.close)
        proxy = self.start(backend_port=silent.port)
        client = RawConn(self.port, timeout=10.0)
        self.addCleanup(client.close)
        client.send(encode_command("GET", "never-answered"))
        harness.wait_for(lambda: silent.conns, 5.0, what="the request forwarded")
        time.sleep(0.2)
        proxy.signal(signal.SIGTERM)
        self.wait_log(r"stopping: no longer accepting connections")
        time.sleep(0.5)
        self.assertIsNone(proxy.popen.poll(), "the first SIGTERM waits for the request in flight")
        sent = time.monotonic()
        proxy.signal(signal.SIGTERM)
        rc = proxy.popen.wait(10.0)
        self.assertLess(time.monotonic() - sent, 1.5, "the second SIGTERM ends the process at once")
        self.assertEqual(rc, -signal.SIGTERM)
        self.assertIn("received again while stopping: exiting at once", read(self.log))

    def test_first_sigterm_with_nothing_in_flight_exits_0(self):
        proxy = self.start()
        self.assertEqual(self.get_through("k"), b"v-k")
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.popen.wait(5.0), 0)
        self.assertIn("ringproxy stopped", read(self.log))

    def test_sigterm_ends_the_process_when_the_control_loop_is_stuck(self):
        proxy = self.start()
        try:
            FrozenThread(proxy.pid)  # the main thread: the control loop
        except OSError as e:
            if e.errno in (errno.EPERM, errno.EACCES):
                self.skipTest(f"ptrace is not permitted here: {e}")
            raise
        self.assertEqual(self.get_through("frozen"), b"v-frozen")  # workers still serve
        sent = time.monotonic()
        proxy.signal(signal.SIGTERM)
        try:
            rc = proxy.popen.wait(SIGNAL_STOP_REACT_S + 5.0)
        except subprocess.TimeoutExpired:
            os.kill(proxy.pid, signal.SIGKILL)
            proxy.popen.wait()
            self.fail("SIGTERM was ignored while the control loop was stuck")
        elapsed = time.monotonic() - sent
        self.assertEqual(rc, -signal.SIGTERM)
        self.assertGreaterEqual(elapsed, SIGNAL_STOP_REACT_S - 0.5, "the control loop had its chance first")
        self.assertIn("the control loop did not begin stopping in time", read(self.log))


class CrashTraceTest(SignalTestBase):
    def test_crash_signals_log_a_stack_trace_and_die_by_the_signal(self):
        for sig, name in ((signal.SIGSEGV, "SIGSEGV"), (signal.SIGABRT, "SIGABRT")):
            with self.subTest(name):
                if os.path.exists(self.log):
                    os.unlink(self.log)
                proxy = self.start()
                proxy.signal(sig)
                self.assertEqual(proxy.popen.wait(5.0), -sig)
                text = read(self.log)
                self.assertRegex(text, rf"fatal  signal {int(sig)} \({name}\) received in thread \d+, stack trace")
                # backtrace_symbols_fd: one "object(symbol+offset) [address]" line per frame,
                # among them frames of the proxy itself (at least the handler).
                self.assertRegex(text, r"ringproxy\(.*\)\s*\[0x[0-9a-f]+\]")


if __name__ == "__main__":
    unittest.main(verbosity=2)
