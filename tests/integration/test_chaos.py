"""The short (20 s) chaos run: scripts/chaos --seconds 20 (see that script for what it does).

ringproxy (2 workers, timeout 300 ms, auto_eject_hosts, server_failure_limit 2,
server_retry_timeout 1000 ms) in front of 3 redis-servers, under 16 checker connections and a
redis-benchmark, while a backend is killed and restarted, another paused and resumed, and the
config reloaded (a node added by SIGHUP, removed by POST /reload, a bad file both ways). The
script exits 0 only with no wrong value, no lost acknowledged write, no crash, hang or dropped
client, errors naming only disturbed backends, a clean recovery pass and the proxy's RSS back
within 4 MB of its baseline; this test also checks that the chaos really happened.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class ChaosShort(unittest.TestCase):
    def test_chaos_20_seconds(self):
        fd, summary_path = tempfile.mkstemp(prefix="ringproxy-chaos-", suffix=".json")
        os.close(fd)
        try:
            # One redis-benchmark: CTest runs the integration tests in parallel on few cores.
            argv = [sys.executable, os.path.join(REPO, "scripts", "chaos"), "--seconds", "20", "--bench", "1",
                    "--json", summary_path]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=150)
            print(out.stdout)
            print(out.stderr[-3000:], file=sys.stderr)
            with open(summary_path) as f:
                summary = json.load(f)
        finally:
            os.unlink(summary_path)
        self.assertEqual(out.returncode, 0, f"chaos run failed: {summary['failures']}")
        self.assertTrue(summary["passed"])
        self.assertIsNone(summary["crashed"])
        self.assertEqual(summary["wrong_values"], 0)
        self.assertEqual(summary["nil_unexplained"], 0)
        self.assertEqual(summary["errors_hard"], 0)
        self.assertEqual((summary["disconnects"], summary["hangs"], summary["recovery_problems"]), (0, 0, 0))
        rss = summary["rss_kb"]
        self.assertLessEqual(rss["final"], rss["baseline"] + rss["slack"])
        # The chaos happened and the proxy saw it.
        events = " | ".join(e for _, e in summary["events"])
        for what in ("SIGKILL", "restarted", "SIGSTOP", "SIGCONT", "reload by SIGHUP", "reload by POST /reload",
                     "bad file (unknown key) by SIGHUP", "bad file (bad port) by POST /reload"):
            self.assertIn(what, events)
        self.assertGreater(summary["ejections"], 0, "a killed backend should have been ejected")
        self.assertGreater(sum(n for _, _, kind, n in summary["errors_by_cause"] if kind == "killed"), 0)
        self.assertGreater(summary["checker_requests"], 20000)
        self.assertGreater(summary["proxy_requests"], summary["checker_requests"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
