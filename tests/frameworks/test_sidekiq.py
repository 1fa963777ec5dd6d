#!/usr/bin/python3
"""Sidekiq (Debian's ruby-sidekiq 6.4, ruby-redis 4.8) in its default settings (REDIS_URL only)
against TARGET=direct (one redis-server) or TARGET=ringproxy (ringproxy over three
redis-servers). Jobs are pushed with the Sidekiq client (sidekiq/push.rb) and run by a real
`sidekiq` process (sidekiq/jobs.rb: FwJob appends to a file and sets fwjob:<tag> through
Sidekiq's Redis connection).

Cases (python3 test_sidekiq.py CASE [--target direct|ringproxy]):
  sidekiq_jobs       10 jobs pushed with perform_async before the worker starts; the worker
                     fetches them (BRPOP) and runs each exactly once; their keys read back
  sidekiq_scheduled  perform_in(2 s) while the worker runs: the job waits in the schedule
                     (ZSET), is not run early, and is run by the scheduler's poller (default
                     poll: first check after 10-15 s, then every 2.5-7.5 s)
"""
import os
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CASES = ("sidekiq_jobs", "sidekiq_scheduled")
APP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sidekiq")
N_JOBS = 10


def push(env, *args):
    out = subprocess.run(["ruby", "push.rb", *map(str, args)], cwd=APP_DIR, env=env, capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"push.rb {' '.join(map(str, args))} failed ({out.returncode}):\n"
                             f"{out.stdout}\n{out.stderr[-3000:]}")
    fields = {}
    for line in out.stdout.splitlines():
        k, _, v = line.partition(" ")
        fields.setdefault(k, []).append(v)
    return fields


def start_worker(ep, env):
    worker = ep.spawn(["sidekiq", "-r", "./jobs.rb"], "sidekiq", cwd=APP_DIR, env=env)
    # Sidekiq logs "Booting Sidekiq" and then starts its fetchers; it exits if Redis refuses it.
    booted = common.wait_for(lambda: worker.poll() is not None or "Booting Sidekiq" in common.read_text(worker.log),
                             20)
    if worker.poll() is not None:
        raise AssertionError(f"sidekiq exited with {worker.returncode}")
    if not booted:
        raise AssertionError("sidekiq did not boot within 20 s")
    return worker


def ran(out_path):
    """{tag: [epoch seconds, ...]} of the job runs recorded in the output file."""
    runs = {}
    for line in common.read_text(out_path).splitlines():
        tag, t = line.split()
        runs.setdefault(tag, []).append(float(t))
    return runs


def check_worker_alive(worker):
    if worker.poll() is not None:
        raise AssertionError(f"sidekiq exited with {worker.returncode} while jobs were pending")


def case_jobs(ep, env, out_path):
    import redis
    fields = push(env, "jobs", N_JOBS)
    assert len(fields.get("jid", [])) == N_JOBS, fields
    assert fields["queue_size"] == [str(N_JOBS)], f"Sidekiq::Queue#size after push: {fields['queue_size']}"
    worker = start_worker(ep, env)
    want = {f"job-{i}" for i in range(N_JOBS)}
    done = common.wait_for(lambda: worker.poll() is not None or set(ran(out_path)) >= want, 30)
    check_worker_alive(worker)
    runs = ran(out_path)
    assert done and set(runs) == want, f"jobs run: {sorted(runs)}; expected {sorted(want)}"
    time.sleep(1.0)  # a second run of any job would show up here
    runs = ran(out_path)
    assert all(len(v) == 1 for v in runs.values()), f"jobs run more than once: {runs}"
    r = redis.Redis(host="127.0.0.1", port=ep.port)
    got = r.mget([f"fwjob:{t}" for t in sorted(want)])
    assert got == [f"done-{t}".encode() for t in sorted(want)], got
    assert r.llen("queue:default") == 0, "queue:default not empty after the run"


def case_scheduled(ep, env, out_path):
    import redis
    worker = start_worker(ep, env)
    fields = push(env, "scheduled", 2)
    pushed_at = float(fields["pushed_at"][0])
    assert fields["scheduled_size"] == ["1"], f"Sidekiq::ScheduledSet#size: {fields['scheduled_size']}"
    done = common.wait_for(lambda: worker.poll() is not None or "sched" in ran(out_path), 40, interval=0.2)
    check_worker_alive(worker)
    runs = ran(out_path)
    assert done and "sched" in runs, "the scheduled job did not run within 40 s"
    assert runs["sched"][0] >= pushed_at + 2.0 - 0.05, f"ran {runs['sched'][0] - pushed_at:.2f}s after perform_in(2)"
    r = redis.Redis(host="127.0.0.1", port=ep.port)
    assert r.get("fwjob:sched") == b"done-sched"
    assert r.zcard("schedule") == 0, "the job is still in the schedule"


def main():
    target = common.target_from_args()
    args = [a for a in sys.argv[1:] if not a.startswith("--target") and a not in common.TARGETS]
    case = args[0] if args else "sidekiq_jobs"
    if case not in CASES:
        raise SystemExit(f"unknown case {case!r}; one of {', '.join(CASES)}")
    ep = common.Endpoint(target, case)
    ok, detail = False, ""
    out_path = os.path.join(ep.tmp, "runs.txt")
    env = dict(os.environ, REDIS_URL=ep.url, FW_OUT=out_path)
    try:
        {"sidekiq_jobs": case_jobs, "sidekiq_scheduled": case_scheduled}[case](ep, env, out_path)
        ok = True
    except BaseException:  # noqa: BLE001 - reported
        detail = traceback.format_exc()
    finally:
        logs = ep.logs()
        ep.stop()
    common.report(case, target, ok, detail, logs)


if __name__ == "__main__":
    main()
