#!/usr/bin/python3
"""Runs every framework case against a direct redis-server and against ringproxy, and prints a
table: case, direct PASS/FAIL, ringproxy PASS/FAIL, and for a failure the first relevant error
(the Redis error the framework got, when there is one).

    tests/frameworks/setup.sh            # once: Debian packages and node_modules
    tests/frameworks/run.py              # all cases, both targets, 2 at a time
    tests/frameworks/run.py -k bullmq --target ringproxy -v
    tests/frameworks/run.py --monitor /tmp/fwmon   # also list the commands each framework sends

Each case runs as its own process (`test_<framework>.py CASE --target T`) with a timeout
(--timeout, 60 s): a hang is a failure, never a stuck run. A case that times out gets SIGTERM
(it then stops everything it started, by pid) and SIGKILL 15 s later.

With --monitor DIR every redis-server of a case is watched with MONITOR and DIR/commands.md
lists, per framework, the command forms seen on the direct runs (name, subcommand, numkeys of
EVAL/EVALSHA, timeout of blocking pops, SELECT db, ...) with counts and an example.

The exit status is 0 when every direct case passed (the tests themselves are right), whatever
ringproxy did; --strict makes a ringproxy failure count too (CTest runs it so)."""
import argparse
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"  # Debian's: python3-celery and python3-redis live there

# (case, test script, note shown beside the ringproxy result)
CASES = [
    ("celery_add", "test_celery.py", ""),
    ("celery_canvas", "test_celery.py", ""),
    ("celery_failure", "test_celery.py", ""),
    ("sidekiq_jobs", "test_sidekiq.py", ""),
    ("sidekiq_scheduled", "test_sidekiq.py", ""),
    ("bullmq_hashtag", "test_bullmq.py", ""),
    ("bullmq_hashtag_delayed", "test_bullmq.py", ""),
    ("bullmq_default_prefix", "test_bullmq.py", ""),
    ("socketio_broadcast", "test_socketio.py", ""),
    ("socketio_fetchsockets", "test_socketio.py", ""),
    ("socketio_sharded", "test_socketio.py", ""),
]


class Result:
    def __init__(self, case, target, ok, seconds, error, refused, output):
        self.case, self.target, self.ok, self.seconds = case, target, ok, seconds
        self.error, self.refused, self.output = error, refused, output


def run_case(case, script, target, timeout, env):
    argv = [PYTHON, os.path.join(HERE, script), case, "--target", target]
    t0 = time.time()
    p = subprocess.Popen(argv, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    timed_out = False
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(p.pid, signal.SIGTERM)
        try:
            out, _ = p.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
    seconds = time.time() - t0
    out = out.decode(errors="replace")
    lines = out.splitlines()
    ok = p.returncode == 0 and any(ln.startswith("PASS: ") for ln in lines) and not timed_out
    error, refused = "", []
    if not ok:
        fail = next((ln[6:] for ln in lines if ln.startswith("FAIL: ")), "")
        redis_err = next((ln[13:] for ln in lines if ln.startswith("REDIS-ERROR: ")), "")
        refused = [ln[9:] for ln in lines if ln.startswith("REFUSED: ")]
        if timed_out:
            error = f"timed out after {timeout}s" + (f"; {redis_err}" if redis_err else "")
        else:
            error = redis_err or re.sub(r"^\S+ \[\w+\]: ", "", fail) or (lines[-1] if lines else f"exit {p.returncode}")
    return Result(case, target, ok, seconds, error, refused, out)


# --------------------------------------------------------------------------------------------
# MONITOR logs -> command forms

_MON_LINE = re.compile(r'^(\d+\.\d+) \[(\d+) ([^\]]+)\] (.*)$')
SUBCOMMANDS = {"CLIENT", "SCRIPT", "PUBSUB", "CONFIG", "COMMAND", "OBJECT", "XINFO", "XGROUP", "FUNCTION",
               "MEMORY", "CLUSTER", "MODULE", "SLOWLOG", "ACL", "LATENCY", "DEBUG"}


def _unquote_args(text):
    """The arguments of one MONITOR line ("a" "b\\x00" ...), unescaped."""
    args, i, n = [], 0, len(text)
    while i < n:
        if text[i] != '"':
            i += 1
            continue
        i += 1
        cur = []
        while i < n and text[i] != '"':
            c = text[i]
            if c == "\\" and i + 1 < n:
                nxt = text[i + 1]
                if nxt == "x" and i + 3 < n:
                    cur.append(chr(int(text[i + 2:i + 4], 16)))
                    i += 4
                    continue
                cur.append({"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}.get(nxt, nxt))
                i += 2
                continue
            cur.append(c)
            i += 1
        args.append("".join(cur))
        i += 1
    return args


def command_form(args):
    """A command's shape for the feature list: what matters to a proxy, not the data."""
    name = args[0].upper()
    rest = args[1:]
    if name in SUBCOMMANDS and rest:
        sub = rest[0].upper()
        if name == "PUBSUB" and sub in ("NUMSUB", "SHARDNUMSUB"):
            return f"PUBSUB {sub} ({len(rest) - 1} channel{'s' if len(rest) != 2 else ''})"
        if name == "CLIENT" and sub == "SETINFO" and len(rest) > 1:
            return f"CLIENT SETINFO {rest[1].upper()}"
        return f"{name} {sub}"
    if name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO") and len(rest) >= 2:
        return f"{name} numkeys={rest[1]}"
    if name in ("BRPOP", "BLPOP", "BZPOPMIN", "BZPOPMAX") and rest:
        return f"{name} ({len(rest) - 1} key{'s' if len(rest) != 2 else ''}) timeout={rest[-1]}"
    if name == "BLMOVE" and len(rest) == 5:
        return f"BLMOVE {rest[2].upper()} {rest[3].upper()} timeout={rest[4]}"
    if name == "BRPOPLPUSH" and len(rest) == 3:
        return f"BRPOPLPUSH timeout={rest[2]}"
    if name in ("BLMPOP", "BZMPOP") and rest:
        return f"{name} timeout={rest[0]}"
    if name in ("XREAD", "XREADGROUP"):
        up = [a.upper() for a in rest]
        block = f" BLOCK {rest[up.index('BLOCK') + 1]}" if "BLOCK" in up else ""
        return f"{name}{block}"
    if name in ("SELECT", "HELLO"):
        return f"{name} {' '.join(rest)}".strip()
    if name == "INFO":
        return f"INFO {' '.join(a.lower() for a in rest)}".strip()
    if name in ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"):
        return f"{name} ({len(rest)} channel{'s' if len(rest) != 1 else ''})"
    return name


def summarize_monitor(paths):
    """{form: [count, example]} and a {name: count} of commands run by Lua scripts, over the
    MONITOR logs `paths`. Commands between MULTI and EXEC of one client get ' (in MULTI)'."""
    forms, lua, in_multi = {}, {}, set()
    for path in paths:
        with open(path, "rb") as f:
            for raw in f:
                m = _MON_LINE.match(raw.decode(errors="replace").rstrip("\n"))
                if not m:
                    continue
                _, db, client, argtext = m.groups()
                args = _unquote_args(argtext)
                if not args:
                    continue
                if client == "lua":
                    lua[args[0].upper()] = lua.get(args[0].upper(), 0) + 1
                    continue
                name = args[0].upper()
                form = command_form(args)
                if name == "MULTI":
                    in_multi.add(client)
                elif name in ("EXEC", "DISCARD"):
                    in_multi.discard(client)
                elif client in in_multi:
                    form += " (in MULTI)"
                if db != "0":
                    form += f" [db {db}]"
                entry = forms.setdefault(form, [0, ""])
                entry[0] += 1
                if not entry[1]:
                    example = " ".join(a if len(a) <= 60 else a[:57] + "..." for a in args[:8])
                    if len(args) > 8:
                        example += f" ... ({len(args)} args)"
                    entry[1] = example.replace("\n", "\\n").replace("\r", "\\r").replace("|", "\\|")[:200]
    return forms, lua


def write_commands_md(directory, results):
    by_framework = {}
    for case, _, _ in CASES:
        paths = [os.path.join(directory, f) for f in sorted(os.listdir(directory))
                 if f.startswith(case + ".direct.") and f.endswith(".monitor")]
        if paths:
            by_framework.setdefault(case.split("_")[0], []).extend(paths)
    out = ["# Redis commands the frameworks send (MONITOR on the direct runs)\n"]
    for fw, paths in by_framework.items():
        forms, lua = summarize_monitor(paths)
        out.append(f"\n## {fw} ({', '.join(sorted({os.path.basename(p).split('.')[0] for p in paths}))})\n")
        out.append("| command form | count | example |\n| --- | ---: | --- |\n")
        for form, (count, example) in sorted(forms.items()):
            out.append(f"| `{form}` | {count} | `{example}` |\n")
        if lua:
            out.append("\nRun inside Lua scripts: " + ", ".join(f"{k} ({v})" for k, v in sorted(lua.items())) + "\n")
    path = os.path.join(directory, "commands.md")
    with open(path, "w") as f:
        f.write("".join(out))
    return path


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", choices=("both", "direct", "ringproxy"), default="both")
    ap.add_argument("-k", dest="pattern", default="", help="only cases whose name contains this")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="cases run at once (default 2)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    ap.add_argument("--monitor", metavar="DIR", help="keep MONITOR logs in DIR and write DIR/commands.md")
    ap.add_argument("--strict", action="store_true", help="exit non-zero when a ringproxy case fails too")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the output of failed cases")
    opts = ap.parse_args()

    if not os.path.isdir(os.path.join(HERE, "node_modules", "bullmq")):
        print("tests/frameworks/node_modules is missing: run tests/frameworks/setup.sh first", file=sys.stderr)
    env = dict(os.environ)
    if opts.verbose:
        env["VERBOSE"] = "1"  # failed cases print their traceback and the tails of their logs
    if opts.monitor:
        env["MONITOR_DIR"] = os.path.abspath(opts.monitor)
        os.makedirs(env["MONITOR_DIR"], exist_ok=True)
    targets = ("direct", "ringproxy") if opts.target == "both" else (opts.target,)
    cases = [c for c in CASES if opts.pattern in c[0]]
    jobs = [(case, script, t) for case, script, _ in cases for t in targets]
    t0 = time.time()
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        futures = {pool.submit(run_case, case, script, t, opts.timeout, env): (case, t) for case, script, t in jobs}
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            results[(r.case, r.target)] = r
            print(f"  {'pass' if r.ok else 'FAIL'}  {r.case} [{r.target}] {r.seconds:.1f}s", file=sys.stderr,
                  flush=True)

    def cell(case, t):
        r = results.get((case, t))
        return "-" if r is None else ("pass" if r.ok else "FAIL")

    rows = [("case", "direct", "ringproxy", "first error (ringproxy unless direct failed)")]
    for case, _, note in cases:
        err = ""
        for t in ("direct", "ringproxy"):
            r = results.get((case, t))
            if r is not None and not r.ok:
                err = (f"[{t}] " if t == "direct" else "") + r.error
                break
        if note and cell(case, "ringproxy") == "FAIL":
            err = f"({note}) {err}"
        rows.append((case, cell(case, "direct"), cell(case, "ringproxy"), err[:200]))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    print()
    for i, r in enumerate(rows):
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
        if i == 0:
            print(f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}  {'-' * 40}")
    refused = {}
    for (case, t), r in results.items():
        for line in r.refused:
            refused.setdefault(line, set()).add(case)
    if refused:
        print("\nringproxy refusals seen (every distinct one, with the cases that met it):")
        for line, where in sorted(refused.items()):
            print(f"  {line}\n      <- {', '.join(sorted(where))}")
    n_direct_fail = sum(1 for (c, t), r in results.items() if t == "direct" and not r.ok)
    n_proxy_fail = sum(1 for (c, t), r in results.items() if t == "ringproxy" and not r.ok)
    passed = sum(1 for r in results.values() if r.ok)
    print(f"\nframeworks: {passed} passed, {len(results) - passed} failed "
          f"(direct failures: {n_direct_fail}, ringproxy failures: {n_proxy_fail}) in {time.time() - t0:.0f}s")
    if opts.verbose:
        for (case, t), r in sorted(results.items()):
            if not r.ok:
                print(f"\n===== {case} [{t}] =====\n{r.output[-6000:]}")
    if opts.monitor:
        print(f"commands: {write_commands_md(env['MONITOR_DIR'], results)}")
    return 1 if n_direct_fail or (opts.strict and n_proxy_fail) else 0


if __name__ == "__main__":
    sys.exit(main())
