#!/usr/bin/python3
"""Celery (Debian's python3-celery 5.2) with Redis as broker and result backend, in its
default settings, against TARGET=direct (one redis-server) or TARGET=ringproxy (ringproxy over
three redis-servers). A real `celery worker` process (default prefork pool) runs the tasks of
celery/fwtasks.py.

Cases (python3 test_celery.py CASE [--target direct|ringproxy]):
  celery_add        add.delay(2, 3).get() == 5, and 20 more concurrent adds
  celery_canvas     a group of adds ([i + i]) and a chord (adds -> tsum) with their results
  celery_failure    a task raising ValueError: .get() re-raises it with its message, state FAILURE
"""
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CASES = ("celery_add", "celery_canvas", "celery_failure")
HERE = os.path.dirname(os.path.abspath(__file__))
APP_DIR = os.path.join(HERE, "celery")
RESULT_TIMEOUT = 15


def start_worker(ep):
    env = dict(os.environ, CELERY_REDIS_URL=ep.url + "/0", PYTHONPATH=APP_DIR, PYTHONUNBUFFERED="1")
    worker = ep.spawn(["/usr/bin/python3", "-m", "celery", "-A", "fwtasks", "worker", "--loglevel=INFO",
                       "--hostname", f"fw-{ep.target}@%h"], "celery-worker", cwd=APP_DIR, env=env)
    ready = common.wait_for(lambda: worker.poll() is not None or " ready." in common.read_text(worker.log), 30)
    if worker.poll() is not None:
        raise AssertionError(f"celery worker exited with {worker.returncode} before it was ready")
    if not ready:
        raise AssertionError("celery worker not ready within 30 s")
    return worker


def case_add(tasks):
    r = tasks.add.delay(2, 3)
    got = r.get(timeout=RESULT_TIMEOUT)
    assert got == 5, f"add(2, 3) returned {got!r}"
    assert r.state == "SUCCESS", r.state
    many = [tasks.add.delay(i, 100) for i in range(20)]
    got = [m.get(timeout=RESULT_TIMEOUT) for m in many]
    assert got == [i + 100 for i in range(20)], got


def case_canvas(tasks):
    from celery import chord, group
    g = group(tasks.add.s(i, i) for i in range(8))()
    got = g.get(timeout=RESULT_TIMEOUT)
    assert got == [i + i for i in range(8)], f"group returned {got!r}"
    c = chord(tasks.add.s(i, 10) for i in range(6))(tasks.tsum.s())
    got = c.get(timeout=RESULT_TIMEOUT)
    assert got == sum(i + 10 for i in range(6)), f"chord returned {got!r}"


def case_failure(tasks):
    r = tasks.fail.delay("xyzzy")
    try:
        r.get(timeout=RESULT_TIMEOUT)
    except ValueError as e:
        assert "boom xyzzy" in str(e), f"exception text {e!r}"
    else:
        raise AssertionError("fail() returned instead of raising")
    assert r.state == "FAILURE", r.state
    assert isinstance(r.result, ValueError), repr(r.result)
    # The worker keeps working after a failed task.
    assert tasks.add.delay(40, 2).get(timeout=RESULT_TIMEOUT) == 42


def main():
    target = common.target_from_args()
    args = [a for a in sys.argv[1:] if not a.startswith("--target") and a not in common.TARGETS]
    case = args[0] if args else "celery_add"
    if case not in CASES:
        raise SystemExit(f"unknown case {case!r}; one of {', '.join(CASES)}")
    # kombu names a queue's priority lists "celery", "celery\x06\x163", ... and BRPOPs them all
    # at once: the key-prefix rule hashes each as "celery", so they share a server.
    ep = common.Endpoint(target, case, '  hash_key_separator: "\\x06\\x16"\n')
    ok, detail, logs = False, "", {}
    try:
        os.environ["CELERY_REDIS_URL"] = ep.url + "/0"
        sys.path.insert(0, APP_DIR)
        import fwtasks
        start_worker(ep)
        {"celery_add": case_add, "celery_canvas": case_canvas, "celery_failure": case_failure}[case](fwtasks)
        ok = True
    except BaseException:  # noqa: BLE001 - reported
        detail = traceback.format_exc()
    finally:
        try:
            import fwtasks
            fwtasks.app.close()
        except Exception:  # noqa: BLE001
            pass
        logs = ep.logs()
        ep.stop()
    common.report(case, target, ok, detail, logs)


if __name__ == "__main__":
    main()
