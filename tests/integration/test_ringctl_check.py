"""`ringctl check` as a user runs it: every error of a file, one FILE:LINE: KEY: MESSAGE line
each and a count, exit 1; warnings (exit 0) for server host names that do not resolve, unless
--no-resolve. Pure CLI: no servers. The .invalid top-level domain never resolves (RFC 6761), so
the warnings are the same offline."""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402

# Three mistakes in two pools, each on a line of its own: a bad key in p, a bad key in q, and a
# bad server in q after it (an error must hide none of the others).
THREE_ERRORS = (
    "p:\n"                          # 1
    "  listen: 127.0.0.1:30000\n"   # 2
    "  redis: true\n"               # 3
    "  hash: nope\n"                # 4  error
    "  servers:\n"                  # 5
    "    - 10.0.0.1:6379:1 a\n"     # 6
    "q:\n"                          # 7
    "  listen: 127.0.0.1:30001\n"   # 8
    "  timeout: soon\n"             # 9  error
    "  servers:\n"                  # 10
    "    - 10.0.0.2:6379:1 b\n"     # 11
    "    - 10.0.0.3:70000:1 c\n"    # 12 error
)


def one_pool(servers, extra=""):
    """A valid redis pool p; its first server is on line 5 (+ the lines of `extra`)."""
    lines = "".join(f"    - {s}\n" for s in servers)
    return f"p:\n  listen: 127.0.0.1:30000\n  redis: true\n{extra}  servers:\n{lines}"


class RingctlCheck(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringctl-check-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_every_error_is_listed_with_its_line_and_a_count(self):
        conf = self.write("three.yml", THREE_ERRORS)
        out = harness.run_ringctl("check", "-c", conf)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertEqual(out.stdout, "")
        lines = out.stderr.splitlines()
        self.assertEqual(len(lines), 4, out.stderr)
        self.assertTrue(lines[0].startswith(f"{conf}:4: p.hash: "), lines[0])
        self.assertTrue(lines[1].startswith(f"{conf}:9: q.timeout: "), lines[1])
        self.assertTrue(lines[2].startswith(f"{conf}:12: q.servers[1]: "), lines[2])
        self.assertIn("70000", lines[2])
        self.assertEqual(lines[3], f"{conf}: 3 errors")

    def test_json_lists_every_error_and_keeps_the_first_at_the_top(self):
        conf = self.write("three.yml", THREE_ERRORS)
        out = harness.run_ringctl("check", "-c", conf, "--json")
        self.assertEqual(out.returncode, 1, out.stderr)
        js = json.loads(out.stdout)
        self.assertEqual(js["file"], conf)
        self.assertFalse(js["valid"])
        self.assertEqual([(e["line"], e["key"]) for e in js["errors"]],
                         [(4, "p.hash"), (9, "q.timeout"), (12, "q.servers[1]")])
        self.assertTrue(all(e["message"] for e in js["errors"]))
        # The fields of a single error, as before the list: the first one.
        self.assertEqual((js["line"], js["key"], js["message"]), (4, "p.hash", js["errors"][0]["message"]))
        self.assertEqual(js["warnings"], [])
        self.assertEqual(js["pools"], [])

    def test_one_error_says_one_error(self):
        conf = self.write("one.yml", one_pool(["10.0.0.1:6379:1"], extra="  hash: nope\n"))
        out = harness.run_ringctl("check", "-c", conf)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(out.stderr.splitlines()[-1], f"{conf}: 1 error")

    def test_a_host_that_does_not_resolve_is_a_warning_not_an_error(self):
        conf = self.write("unresolvable.yml", one_pool(["10.0.0.1:6379:1 a", "no-such-host.invalid:6379:1 b"]))
        out = harness.run_ringctl("check", "-c", conf)
        self.assertEqual(out.returncode, 0, out.stderr)
        warning = out.stderr.splitlines()
        self.assertEqual(len(warning), 1, out.stderr)
        self.assertTrue(warning[0].startswith(
            f"{conf}:6: p.servers[1]: host no-such-host.invalid does not resolve ("), warning[0])
        self.assertEqual(out.stdout, f"{conf}: ok, 1 pool, 1 warning\n")

        js = json.loads(harness.run_ringctl("check", "-c", conf, "--json").stdout)
        self.assertTrue(js["valid"])
        self.assertEqual(js["errors"], [])
        self.assertEqual([(w["line"], w["key"]) for w in js["warnings"]], [(6, "p.servers[1]")])
        self.assertIn("no-such-host.invalid", js["warnings"][0]["message"])
        self.assertEqual(js["pools"], ["p"])

    def test_previous_servers_are_looked_up_too(self):
        conf = self.write("transition.yml", one_pool(
            ["10.0.0.1:6379:1 a"], extra="  previous_servers:\n    - gone.invalid:6379:1 a\n"))
        out = harness.run_ringctl("check", "-c", conf)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stderr.startswith(f"{conf}:5: p.previous_servers[0]: host gone.invalid "), out.stderr)

    def test_localhost_literals_and_unix_sockets_give_no_warning(self):
        conf = self.write("fine.yml", one_pool(
            ["localhost:6379:1 a", "127.0.0.1:6380:1 b", '"[::1]:6381:1 c"', "/tmp/ringctl-check.sock:1 d"]))
        out = harness.run_ringctl("check", "-c", conf)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, "")
        self.assertEqual(out.stdout, f"{conf}: ok, 1 pool\n")

    def test_no_resolve_skips_the_lookups(self):
        conf = self.write("unresolvable.yml", one_pool(["no-such-host.invalid:6379:1"]))
        out = harness.run_ringctl("check", "-c", conf, "--no-resolve")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, "")
        self.assertEqual(out.stdout, f"{conf}: ok, 1 pool\n")
        js = json.loads(harness.run_ringctl("check", "-c", conf, "--no-resolve", "--json").stdout)
        self.assertEqual(js["warnings"], [])

    def test_many_unresolvable_names_are_looked_up_together(self):
        # Each name warned about on its own line; the look-ups run at once, within a bounded time.
        names = [f"missing-{i}.invalid:6379:1" for i in range(60)]
        conf = self.write("many.yml", one_pool(names))
        start = time.monotonic()
        out = harness.run_ringctl("check", "-c", conf)
        elapsed = time.monotonic() - start
        self.assertEqual(out.returncode, 0, out.stderr)
        warnings = out.stderr.splitlines()
        self.assertEqual(len(warnings), 60)
        self.assertEqual([w.split(":")[1] for w in warnings], [str(5 + i) for i in range(60)])
        self.assertIn("60 warnings", out.stdout)
        self.assertLess(elapsed, 30)  # the budget is 6 s however many names; sequential could be minutes


if __name__ == "__main__":
    unittest.main(verbosity=2)
