"""/metrics tells the truth: what it says of the process, the build and the ring matches what
the kernel, the binaries and ringctl say, and a standard Prometheus parser reads all of it.

1. The whole scrape parses with the Prometheus client library's own parser
   (prometheus_client.parser, Debian's python3-prometheus-client), every sample belongs to a
   family declared once (one HELP, one TYPE), and counters end in _total.
2. process_* against /proc: process_resident_memory_bytes within 20% of VmRSS,
   process_open_fds the number of entries in /proc/PID/fd (give or take 2),
   process_max_fds the soft "Max open files" limit, process_start_time_seconds within 5 s of
   when the test started the process, process_cpu_seconds_total growing under load.
3. ringproxy_build_info's version is what `ringproxy --version` prints.
4. Every ringproxy_backend_* sample carries the same label names (a histogram bucket adds
   `le`), every ringproxy_pool_* sample just `pool`; no metric named for a share lacks _ratio.
5. After a reload that adds a fourth server to three, ringproxy_reload_moved_ratio is what
   `ringctl diff --json` says moved (within 0.01), the ideal minimum likewise, and each
   backend's ringproxy_backend_key_share_ratio is its share per `ringctl shares --json`.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def scrape(admin):
    status, _, body = harness.http_request(admin, "GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}: {body[:200]!r}")
    return body.decode("utf-8")


def samples_of(text):
    """Every sample of a scrape as (name, {labels}, value), by the client library's parser."""
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def value(samples, name, **labels):
    found = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items())]
    if len(found) != 1:
        raise KeyError(f"{name} {labels}: {len(found)} samples")
    return found[0]


def vm_rss_bytes(pid):
    return harness.proc_status_kb(pid, "VmRSS") * 1024


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise RuntimeError("no 'Max open files' in /proc/PID/limits")


class ProxyWithAdmin(unittest.TestCase):
    """Redis servers, one pool over the first three, a proxy with the admin listener."""
    servers = 3

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ringproxy-metrics-truth-")
        cls.redis = [harness.start_redis() for _ in range(4)]
        cls.listen, cls.admin = harness.free_port(), harness.free_port()
        cls.config = os.path.join(cls.tmp, "proxy.yml")
        with open(cls.config, "w") as f:
            f.write(cls.pool_config(cls.servers))
        cls.launched = time.time()
        cls.proxy = harness.start_ringproxy(cls.config, cls.listen,
                                            extra=["--workers", "2", "--admin", f"127.0.0.1:{cls.admin}"])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for r in cls.redis:
            r.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def pool_config(cls, n):
        return harness.redis_pool_config("alpha", cls.listen, [f"127.0.0.1:{r.port}:1" for r in cls.redis[:n]])


class ScrapeAndProcess(ProxyWithAdmin):
    # 1 ---------------------------------------------------------------------------------------
    def test_the_client_library_parses_every_family(self):
        text = scrape(self.admin)
        families = list(text_string_to_metric_families(text))
        # The library yields a sample it cannot place in a declared family as an untyped
        # family of its own: none may be.
        self.assertEqual([f.name for f in families if f.type == "untyped"], [])
        names = [f.name for f in families]
        self.assertEqual(len(names), len(set(names)), "a family split in two")
        for kind in ("HELP", "TYPE"):
            declared = re.findall(rf"^# {kind} (\S+) ", text, re.M)
            self.assertEqual(len(declared), len(set(declared)), f"a family with two {kind} lines")
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            if types.get(name) == "counter":
                self.assertTrue(name.endswith("_total"), name)
            elif name in types:
                self.assertFalse(name.endswith("_total"), f"{name} is a {types[name]} named like a counter")
        for expected in ("process_cpu_seconds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                         "process_open_fds", "process_max_fds", "process_start_time_seconds",
                         "ringproxy_build_info", "ringproxy_uptime_seconds", "ringproxy_backend_key_share_ratio"):
            self.assertIn(expected, names)
        self.assertEqual({f.type for f in families if f.name.startswith("process_")}, {"counter", "gauge"})

    # 2 ---------------------------------------------------------------------------------------
    def test_memory_and_descriptors_match_proc(self):
        pid = self.proxy.pid
        samples = samples_of(scrape(self.admin))
        rss, fds = vm_rss_bytes(pid), len(os.listdir(f"/proc/{pid}/fd"))
        reported = value(samples, "process_resident_memory_bytes")
        self.assertLess(abs(reported - rss), 0.2 * rss, f"/metrics {reported}, VmRSS {rss}")
        self.assertGreaterEqual(value(samples, "process_virtual_memory_bytes"), reported)
        # The scrape's own connection is open while /metrics is rendered, closed by now.
        self.assertLessEqual(abs(value(samples, "process_open_fds") - fds), 2,
                             f"/metrics {value(samples, 'process_open_fds')}, /proc/{pid}/fd {fds}")
        self.assertEqual(value(samples, "process_max_fds"), soft_nofile(pid))

    def test_start_time_is_when_the_process_started(self):
        samples = samples_of(scrape(self.admin))
        started = value(samples, "process_start_time_seconds")
        self.assertLess(abs(started - self.launched), 5.0, f"start {started}, launched at {self.launched}")
        self.assertLessEqual(value(samples, "ringproxy_uptime_seconds"), time.time() - self.launched + 1)

    def test_cpu_seconds_grow_under_load(self):
        before = value(samples_of(scrape(self.admin)), "process_cpu_seconds_total")
        r = redis.Redis(host="127.0.0.1", port=self.listen)
        for round_ in range(20):
            with r.pipeline(transaction=False) as p:
                for i in range(1000):
                    p.set(f"cpu:{round_}:{i}", "x" * 100)
                self.assertTrue(all(p.execute()))
        r.close()
        after = value(samples_of(scrape(self.admin)), "process_cpu_seconds_total")
        self.assertGreater(after, before)

    # 3 ---------------------------------------------------------------------------------------
    def test_build_info_is_the_version_the_binary_prints(self):
        out = subprocess.run([harness.binary("ringproxy"), "--version"], capture_output=True, text=True, check=True)
        version = re.search(r"ringproxy-(\S+)", out.stdout).group(1)
        info = [(l, v) for n, l, v in samples_of(scrape(self.admin)) if n == "ringproxy_build_info"]
        self.assertEqual(len(info), 1)
        labels, one = info[0]
        self.assertEqual(one, 1)
        self.assertEqual(labels["version"], version)
        self.assertEqual(set(labels), {"version", "compiler", "build_type"})
        self.assertNotEqual(labels["compiler"], "")
        self.assertNotEqual(labels["build_type"], "")
        ringctl = harness.run_ringctl("--version").stdout.split()
        self.assertEqual(ringctl[-1], version)

    # 4 ---------------------------------------------------------------------------------------
    def test_backend_and_pool_series_carry_uniform_labels(self):
        samples = samples_of(scrape(self.admin))
        backend = {n: set(l) - ({"le"} if n.endswith("_bucket") else set())
                   for n, l, _ in samples if n.startswith("ringproxy_backend_")}
        self.assertGreater(len(backend), 12)
        self.assertEqual(set(map(frozenset, backend.values())), {frozenset({"pool", "backend", "address"})},
                         backend)
        buckets = [l for n, l, _ in samples if n == "ringproxy_backend_latency_seconds_bucket"]
        self.assertTrue(all("le" in l for l in buckets))
        pool = {frozenset(l) for n, l, _ in samples if n.startswith("ringproxy_pool_")}
        self.assertEqual(pool, {frozenset({"pool"})})
        # Each backend's series name the same backends and addresses.
        per_backend = {}
        for n, l, _ in samples:
            if n.startswith("ringproxy_backend_") and not n.endswith("_bucket"):
                per_backend.setdefault(n, set()).add((l["pool"], l["backend"], l["address"]))
        self.assertEqual(len(set(map(frozenset, per_backend.values()))), 1, per_backend)

    def test_no_share_without_ratio(self):
        text = scrape(self.admin)
        names = {n for n, _, _ in samples_of(text)} | set(re.findall(r"^# (?:HELP|TYPE) (\S+)", text, re.M))
        self.assertEqual([n for n in names if "share" in n and not n.endswith("_ratio")], [])
        for n, _, v in samples_of(text):
            if n.endswith("_ratio"):
                self.assertTrue(0.0 <= v <= 1.0, f"{n} {v}")


class ReloadRatios(ProxyWithAdmin):
    # 5 ---------------------------------------------------------------------------------------
    def save(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def ringctl_json(self, *args):
        out = harness.run_ringctl(*args, "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)["pools"][0]

    def test_reload_moved_ratio_matches_ringctl_diff(self):
        three, four = self.save("three.yml", self.pool_config(3)), self.save("four.yml", self.pool_config(4))
        # Before: three backends' shares (the proxy keeps them per configuration: they must
        # follow the reload below).
        before = [v for n, _, v in samples_of(scrape(self.admin)) if n == "ringproxy_backend_key_share_ratio"]
        self.assertEqual(len(before), 3)
        self.assertAlmostEqual(sum(before), 1.0, places=6)
        with open(self.config, "w") as f:
            f.write(self.pool_config(4))
        status, _, body = harness.http_request(self.admin, "POST", "/reload")
        self.assertEqual(status, 200, body)
        samples = samples_of(scrape(self.admin))
        self.assertEqual(value(samples, "ringproxy_reload_generation"), 2)
        diff = self.ringctl_json("diff", three, four)
        moved = value(samples, "ringproxy_reload_moved_ratio", pool="alpha")
        self.assertGreater(moved, 0.05)
        self.assertLess(abs(moved - diff["moved"]), 0.01, f"/metrics {moved}, ringctl diff {diff['moved']}")
        self.assertLess(abs(value(samples, "ringproxy_reload_ideal_moved_ratio", pool="alpha") - diff["ideal_min"]),
                        0.01)
        # Each backend's key share, as ringctl computes it from the same file.
        shares = {n["address"]: n["share"] for n in self.ringctl_json("shares", "-c", four)["nodes"]}
        ours = {l["address"]: v for n, l, v in samples if n == "ringproxy_backend_key_share_ratio"}
        self.assertEqual(set(ours), set(shares))
        for address, share in shares.items():
            self.assertAlmostEqual(ours[address], share, places=6, msg=address)
        self.assertAlmostEqual(sum(ours.values()), 1.0, places=6)


if __name__ == "__main__":
    unittest.main(verbosity=2)
