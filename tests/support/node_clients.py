"""The Node.js client libraries of tests/clients (ioredis, node-redis, memjs), for integration
tests that drive the proxy with them: finds node and npm, installs the locked packages when
node_modules is missing or older than package-lock.json, and runs one script.

Problems are returned as messages, so a test can fail with them: a missing node is a broken
setup (run scripts/setup), never a reason to skip silently."""
import fcntl
import os
import shutil
import subprocess

CLIENTS = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "clients"))
MIN_NODE_MAJOR = 20  # ioredis 6 and redis (node-redis) 6 require node >= 20


def node_problem():
    """None when node >= 20 and npm are on PATH, else what is wrong and what to do."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        return (f"{missing} not found on PATH: the client-library tests need Node.js >= {MIN_NODE_MAJOR} "
                f"with npm; run scripts/setup")
    out = subprocess.run([node, "--version"], capture_output=True, text=True)
    version = out.stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        return f"cannot tell the version of {node} ({version!r} {out.stderr.strip()!r}); run scripts/setup"
    if major < MIN_NODE_MAJOR:
        return f"{node} is {version}; the client libraries need Node.js >= {MIN_NODE_MAJOR}: run scripts/setup"
    return None


def _installed():
    marker = os.path.join(CLIENTS, "node_modules", ".package-lock.json")  # written by npm ci/install
    lock = os.path.join(CLIENTS, "package-lock.json")
    if not os.path.exists(marker):
        return False
    return not os.path.exists(lock) or os.path.getmtime(marker) >= os.path.getmtime(lock)


def ensure_installed(timeout=300):
    """Installs tests/clients' packages if needed (`npm ci` from the lockfile, or `npm install`
    without one). Returns None on success, else a message. Serialized with other test processes
    by a lock on package.json."""
    problem = node_problem()
    if problem:
        return problem
    with open(os.path.join(CLIENTS, "package.json"), "rb") as lockfile:
        fcntl.flock(lockfile, fcntl.LOCK_EX)
        try:
            if _installed():
                return None
            has_lock = os.path.exists(os.path.join(CLIENTS, "package-lock.json"))
            argv = ["npm", "ci" if has_lock else "install", "--no-audit", "--no-fund"]
            try:
                out = subprocess.run(argv, cwd=CLIENTS, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return f"`{' '.join(argv)}` in {CLIENTS} did not finish within {timeout}s"
            if out.returncode != 0:
                return (f"`{' '.join(argv)}` in {CLIENTS} failed ({out.returncode}):\n"
                        f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
            return None
        finally:
            fcntl.flock(lockfile, fcntl.LOCK_UN)


def run_script(script, *args, timeout=60):
    """Runs `node tests/clients/SCRIPT ARGS...`; returns the CompletedProcess (text output)."""
    return subprocess.run(["node", os.path.join(CLIENTS, script), *map(str, args)], cwd=CLIENTS,
                          capture_output=True, text=True, timeout=timeout)


def package_version(name):
    """The installed version of a package in tests/clients/node_modules, or None."""
    import json
    try:
        with open(os.path.join(CLIENTS, "node_modules", name, "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, KeyError, ValueError):
        return None
