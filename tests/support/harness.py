"""Process launcher for integration tests: real redis-server, memcached, nutcracker and
ringproxy on free loopback ports, each stopped by pid when the test ends.

Every server binds 127.0.0.1 only. Ports come from the kernel (bind to port 0), so tests can
run in parallel and beside anything else on the machine.
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BUILD = os.environ.get("RINGPROXY_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
_procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name):
    """Path of one of our binaries in the build tree."""
    for sub in ("proxy", "."):
        p = os.path.join(BUILD, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not built under {BUILD}")


class Proc:
    def __init__(self, argv, port, name, cwd=None, log=None):
        self.argv, self.port, self.name = argv, port, name
        self.log = log or tempfile.NamedTemporaryFile(prefix=name + "-", suffix=".log", delete=False).name
        self.popen = subprocess.Popen(argv, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, cwd=cwd)
        self.pid = self.popen.pid
        _procs.append(self)

    def wait_port(self, timeout=10.0, port=None):
        """Waits until the process accepts connections on its port (or another of its ports)."""
        port = port or self.port
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not listen on {port}: {self.output()}")

    def output(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def signal(self, sig):
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, timeout=5.0):
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        if self in _procs:
            _procs.remove(self)
        return self.popen.returncode


def _cleanup():
    for p in list(_procs):
        try:
            p.stop(2.0)
        except Exception:
            pass


atexit.register(_cleanup)


def start_redis(port=None, extra=()):
    port = port or free_port()
    argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no", *extra]
    return Proc(argv, port, f"redis-{port}").wait_port()


def start_memcached(port=None, extra=()):
    port = port or free_port()
    argv = [shutil.which("memcached") or "/usr/bin/memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0",
            "-m", "64", *extra]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    return Proc(argv, port, f"memcached-{port}").wait_port()


def write_config(text, directory=None):
    fd, path = tempfile.mkstemp(prefix="ringproxy-", suffix=".yml", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def start_nutcracker(config_path, listen_port, stats_port=None):
    stats_port = stats_port or free_port()
    argv = [shutil.which("nutcracker") or "/usr/sbin/nutcracker", "-c", config_path, "-s", str(stats_port),
            "-a", "127.0.0.1", "-v", "4"]
    return Proc(argv, listen_port, f"nutcracker-{listen_port}").wait_port()


def start_ringproxy(config_path, listen_port, extra=()):
    argv = [binary("ringproxy"), "-c", config_path, *extra]
    return Proc(argv, listen_port, f"ringproxy-{listen_port}").wait_port()


def run_ringctl(*args, stdin=None):
    return subprocess.run([binary("ringctl"), *args], input=stdin, capture_output=True, text=True)
