"""Shared fixture of the framework tests: a Redis endpoint for a framework to use, either a
lone redis-server (TARGET=direct) or ringproxy over three redis-servers (TARGET=ringproxy,
a twemproxy-format pool: redis: true, ketama, hash_tag "{}"), plus helpers to run the
framework's own processes and report the first Redis error they met.

Everything binds 127.0.0.1 on free ports (tests/support/harness.py) and is stopped by pid.

With MONITOR_DIR set, every redis-server behind the endpoint is watched with
`redis-cli MONITOR` and its log kept in MONITOR_DIR/<case>.<target>.<port>.monitor, so the
exact commands a framework sends can be listed (run.py --monitor summarizes them)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import harness  # noqa: E402

TARGETS = ("direct", "ringproxy")


def _terminated(signum, frame):
    # run.py's per-case timeout sends SIGTERM: unwind so every `finally` stops what the case
    # started (the framework's workers run in their own process groups).
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _terminated)

# Lines that carry the Redis error a framework got: ringproxy's refusals first, then any
# Redis error reply as the client libraries print it.
_PROXY_ERR = re.compile(r"(ringproxy (does not support|cannot route|serves one database)[^\n]*|CROSSSLOT[^\n]*)")
_REDIS_ERR = re.compile(r"((ReplyError|ResponseError|Redis::CommandError|CommandError|ErrorReply|"
                        r"SimpleError|RedisError)[^\n]*|\bERR [^\n]*|\bNOSCRIPT[^\n]*|\bWRONGTYPE[^\n]*)")


def target_from_args(argv=None):
    """The target named by --target X / --target=X on the command line, else $TARGET, else
    direct."""
    argv = sys.argv[1:] if argv is None else argv
    t = os.environ.get("TARGET", "direct")
    for i, a in enumerate(argv):
        if a == "--target" and i + 1 < len(argv):
            t = argv[i + 1]
        elif a.startswith("--target="):
            t = a.split("=", 1)[1]
    if t not in TARGETS:
        raise SystemExit(f"unknown target {t!r}; use one of {', '.join(TARGETS)}")
    return t


class Endpoint:
    """A Redis endpoint for one case: `.port` is where the framework connects."""

    def __init__(self, target, case="case", pool_extra=""):
        self.target, self.case = target, case
        self.backends, self.proxy, self.config = [], None, None
        self.monitors = []
        self.extra_procs = []
        self.tmp = tempfile.mkdtemp(prefix=f"fw-{case}-{target}-")
        try:
            if target == "direct":
                self.backends = [harness.start_redis()]
                self.port = self.backends[0].port
            else:
                self.backends = [harness.start_redis() for _ in range(3)]
                self.port = harness.free_port()
                self.config = harness.write_config(harness.redis_pool_config(
                    "frameworks", self.port, [f"127.0.0.1:{b.port}:1" for b in self.backends],
                    hash_name="fnv1a_64", distribution="ketama", extra='  hash_tag: "{}"\n' + pool_extra), directory=self.tmp)
                self.proxy = harness.start_ringproxy(self.config, self.port)
            self._start_monitors()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def _start_monitors(self):
        directory = os.environ.get("MONITOR_DIR")
        if not directory:
            return
        os.makedirs(directory, exist_ok=True)
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        for b in self.backends:
            path = os.path.join(directory, f"{self.case}.{self.target}.{b.port}.monitor")
            out = open(path, "wb")
            p = subprocess.Popen([cli, "-h", "127.0.0.1", "-p", str(b.port), "monitor"], stdout=out,
                                 stderr=subprocess.STDOUT)
            out.close()
            self.monitors.append(p)
        # MONITOR is in effect once redis-cli printed OK.
        deadline = time.time() + 5
        for b in self.backends:
            path = os.path.join(directory, f"{self.case}.{self.target}.{b.port}.monitor")
            while time.time() < deadline:
                with open(path, "rb") as f:
                    if f.read(2) == b"OK":
                        break
                time.sleep(0.02)

    def spawn(self, argv, name, cwd=None, env=None):
        """Starts one of the framework's processes (a worker, a server); output goes to a log
        file. Stopped by pid in stop()."""
        log = os.path.join(self.tmp, f"{name}.log")
        out = open(log, "wb")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                             start_new_session=True)
        out.close()
        p.log = log
        p.name = name
        self.extra_procs.append(p)
        return p

    def stop_proc(self, p, timeout=5.0):
        """SIGTERM to the process group of a spawned process (it and the children it forked,
        e.g. celery's pool), then SIGKILL if it outlives `timeout`."""
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # children the leader left behind, and the leader if it hung
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.poll() is None:
            p.wait(5)

    def logs(self):
        """{name: text} of the spawned processes' logs, the proxy's log, and the backends'."""
        out = {}
        for p in self.extra_procs:
            out[p.name] = read_text(p.log)
        if self.proxy is not None:
            out["ringproxy"] = self.proxy.output()
        return out

    def stop(self):
        for p in reversed(self.extra_procs):
            try:
                self.stop_proc(p)
            except Exception:  # noqa: BLE001 - keep stopping the others
                pass
        for m in self.monitors:
            if m.poll() is None:
                m.send_signal(signal.SIGTERM)
                try:
                    m.wait(5)
                except subprocess.TimeoutExpired:
                    m.kill()
                    m.wait()
        self.monitors = []
        if self.proxy is not None:
            self.proxy.stop()
        for b in self.backends:
            b.stop()
        if self.config and os.path.exists(self.config):
            os.unlink(self.config)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def first_redis_error(*texts):
    """The first line naming a ringproxy refusal in `texts`, else the first Redis error line."""
    for pattern in (_PROXY_ERR, _REDIS_ERR):
        for t in texts:
            m = pattern.search(t or "")
            if m:
                return re.sub(r'["\']\)?$', "", m.group(0).strip())[:300]
    return None


def proxy_refusals(*texts):
    """Every distinct ringproxy refusal / CROSSSLOT line in `texts`, in order of appearance."""
    seen = []
    for t in texts:
        for m in _PROXY_ERR.finditer(t or ""):
            line = re.sub(r'["\']\)?$', "", m.group(0).strip())[:300]
            if line not in seen:
                seen.append(line)
    return seen


def run_node_case(script, case, target, timeout=50, pool_extra=""):
    """Runs `node node/SCRIPT CASE PORT` against a fresh endpoint (the Node.js frameworks
    print PASS or FAIL themselves); reports and exits."""
    if not os.path.isdir(os.path.join(HERE, "node_modules", "bullmq")):
        report(case, target, False, "tests/frameworks/node_modules is missing: run tests/frameworks/setup.sh")
    ep = Endpoint(target, case, pool_extra)
    ok, detail = False, ""
    try:
        try:
            out = subprocess.run(["node", os.path.join(HERE, "node", script), case.split("_", 1)[1], str(ep.port)],
                                 cwd=os.path.join(HERE, "node"), capture_output=True, text=True, timeout=timeout)
            detail = out.stdout + out.stderr
            ok = out.returncode == 0 and "PASS" in out.stdout.splitlines()[-1:]
            if not ok:
                fails = [ln for ln in detail.splitlines() if ln.startswith("FAIL: ") or re.match(r"^\w*Error: ", ln)]
                detail += f"\n{fails[0] if fails else f'node exited with {out.returncode}'}"
        except subprocess.TimeoutExpired as e:
            detail = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))
            detail += f"\nnode {script} {case} did not finish within {timeout}s"
    finally:
        logs = ep.logs()
        ep.stop()
    report(case, target, ok, detail, logs)


def report(case, target, ok, detail="", logs=None):
    """Prints the verdict in the form run.py reads and exits: 0 on pass, 1 on failure. On
    failure, the first Redis error found in `detail` or the logs is printed as REDIS-ERROR."""
    if ok:
        print(f"PASS: {case} [{target}]", flush=True)
        _exit(0)
    texts = [detail] + list((logs or {}).values())
    err = first_redis_error(*texts)
    print(f"FAIL: {case} [{target}]: {detail.strip().splitlines()[-1] if detail.strip() else 'failed'}",
          flush=True)
    if err:
        print(f"REDIS-ERROR: {err}", flush=True)
    for line in proxy_refusals(*texts):
        print(f"REFUSED: {line}", flush=True)
    if os.environ.get("FRAMEWORK_VERBOSE") or os.environ.get("VERBOSE"):
        print(detail)
        for name, text in (logs or {}).items():
            print(f"----- {name} (last 3000 chars) -----\n{text[-3000:]}")
    _exit(1)


def _exit(code):
    """Exits now: a framework's finalizers (celery's AsyncResult.__del__ reconnecting to a
    server that was already stopped, for one) must not delay or clutter the verdict.
    Everything the case started was stopped by pid before this."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def wait_for(predicate, timeout, interval=0.1):
    """Polls `predicate` until it returns something true or `timeout` seconds pass; returns
    its last value."""
    deadline = time.time() + timeout
    value = predicate()
    while not value and time.time() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
