"""ringctl as a user runs it: owner, shares, diff, check, their --json and --svg forms, and
the exit codes (0 ok, 1 bad input, 2 usage). Pure CLI: no servers needed."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402


def pool(name, port, servers, distribution="ketama", extra=""):
    lines = "".join(f"    - {s}\n" for s in servers)
    return (f"{name}:\n  listen: 127.0.0.1:{port}\n  redis: true\n  distribution: {distribution}\n{extra}"
            f"  servers:\n{lines}")


THREE = ["10.0.0.1:6379:1 a", "10.0.0.2:6379:1 b", "10.0.0.3:6379:1 c"]
FOUR = THREE + ["10.0.0.4:6379:1 d"]


class Ringctl(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringctl-test-")

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_owner_prints_key_tab_owner_and_agrees_with_json(self):
        conf = self.write("a.yml", pool("p", 30000, THREE))
        out = harness.run_ringctl("owner", "-c", conf, "--pool", "p", "user:1", "user:2", "x")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = [l.split("\t") for l in out.stdout.splitlines()]
        self.assertEqual([l[0] for l in lines], ["user:1", "user:2", "x"])
        self.assertTrue(all(l[1] in ("a", "b", "c") for l in lines))
        js = json.loads(harness.run_ringctl("owner", "-c", conf, "--json", "user:1", "user:2", "x").stdout)
        self.assertEqual([o["node"] for o in js["owners"]], [l[1] for l in lines])
        # Keys from stdin when none are given.
        piped = harness.run_ringctl("owner", "-c", conf, stdin="user:1\nx\n")
        self.assertEqual(piped.stdout.splitlines(), [out.stdout.splitlines()[0], out.stdout.splitlines()[2]])

    def test_owner_needs_a_pool_when_the_file_has_several(self):
        conf = self.write("two.yml", pool("p", 30000, THREE) + pool("q", 30001, THREE))
        out = harness.run_ringctl("owner", "-c", conf, "k")
        self.assertEqual(out.returncode, 2)
        self.assertIn("--pool", out.stderr)
        bad = harness.run_ringctl("owner", "-c", conf, "--pool", "nope", "k")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("nope", bad.stderr)

    def test_shares_sum_to_one_and_svg_is_drawn(self):
        conf = self.write("w.yml", pool("p", 30000, ["10.0.0.1:6379:1 a", "10.0.0.2:6379:1 b", "10.0.0.3:6379:2 c"]))
        svg = os.path.join(self.dir, "ring.svg")
        out = harness.run_ringctl("shares", "-c", conf, "--json", "--svg", svg)
        self.assertEqual(out.returncode, 0, out.stderr)
        rep = json.loads(out.stdout)["pools"][0]
        self.assertAlmostEqual(sum(n["share"] for n in rep["nodes"]), 1.0, places=9)
        self.assertEqual([n["points"] for n in rep["nodes"]], [120, 120, 240])  # ketama, weights 1,1,2
        self.assertGreaterEqual(rep["peak_over_mean"], 1.0)
        with open(svg) as f:
            drawing = f.read()
        self.assertTrue(drawing.startswith("<svg"))
        self.assertEqual(drawing.count('<g class="node">'), 3)  # a legend row per node (test_ringctl_pictures)
        text = harness.run_ringctl("shares", "-c", conf)
        self.assertIn("peak/mean", text.stdout)

    def test_diff_native_ring_moves_exactly_the_new_nodes_share(self):
        old = self.write("old.yml", pool("p", 30000, THREE, "vnode"))
        new = self.write("new.yml", pool("p", 30000, FOUR, "vnode"))
        out = harness.run_ringctl("diff", old, new, "--json", "--svg", os.path.join(self.dir, "d.svg"))
        self.assertEqual(out.returncode, 0, out.stderr)
        d = json.loads(out.stdout)["pools"][0]
        self.assertTrue(d["exact"])
        self.assertAlmostEqual(d["ideal_min"], 0.25, places=9)
        self.assertTrue(all(f["to"] == "d" for f in d["flows"]))
        self.assertAlmostEqual(sum(f["share"] for f in d["flows"]), d["moved"], places=9)
        shares = json.loads(harness.run_ringctl("shares", "-c", new, "--json").stdout)["pools"][0]["nodes"]
        self.assertAlmostEqual(d["moved"], [n for n in shares if n["node"] == "d"][0]["share"], places=9)
        self.assertTrue(os.path.getsize(os.path.join(self.dir, "d.svg")) > 1000)

    def test_diff_reports_added_and_removed_pools_and_hash_changes(self):
        old = self.write("o.yml", pool("p", 30000, THREE) + pool("gone", 30001, THREE))
        new = self.write("n.yml", pool("p", 30000, THREE, extra="  hash: murmur\n") + pool("fresh", 30002, THREE))
        d = json.loads(harness.run_ringctl("diff", old, new, "--json").stdout)["pools"]
        status = {p["pool"]: p["status"] for p in d}
        self.assertEqual(status, {"p": "kept", "gone": "removed", "fresh": "added"})
        kept = [p for p in d if p["pool"] == "p"][0]
        self.assertFalse(kept["exact"])  # a changed hash is estimated by sampling, and says so
        self.assertGreater(kept["moved"], 0.5)
        text = harness.run_ringctl("diff", old, new).stdout
        self.assertIn("estimated", text)

    def test_check_and_exit_codes(self):
        good = self.write("good.yml", pool("p", 30000, THREE))
        bad = self.write("bad.yml", pool("p", 30000, ["10.0.0.1:70000:1"]))
        ok = harness.run_ringctl("check", "-c", good)
        self.assertEqual(ok.returncode, 0)
        fail = harness.run_ringctl("check", "-c", bad)
        self.assertEqual(fail.returncode, 1)
        self.assertIn(bad + ":", fail.stderr)  # file:line: key: message
        self.assertIn("p.servers[0]", fail.stderr)
        js = json.loads(harness.run_ringctl("check", "-c", bad, "--json").stdout)
        self.assertFalse(js["valid"])
        self.assertGreater(js["line"], 0)
        self.assertEqual(harness.run_ringctl("frobnicate").returncode, 2)
        self.assertEqual(harness.run_ringctl("owner", "k").returncode, 2)  # no -c
        self.assertEqual(harness.run_ringctl("shares", "-c", good, "--bogus").returncode, 2)
        self.assertEqual(harness.run_ringctl("diff", good).returncode, 2)
        self.assertEqual(harness.run_ringctl("shares", "-c", os.path.join(self.dir, "missing.yml")).returncode, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
