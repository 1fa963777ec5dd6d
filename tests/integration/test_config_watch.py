"""The config-file watch never loads a file that is still being written.

It reacts when a writer closes the file or when a file is renamed or symlinked into place, never
to a write in progress. Backends need not run for a reload, so none is started.

1. A writer that rewrites the file in place and pauses 1.5 s half-way, with the file open: the
   half-written file (itself a valid config with half the servers) never goes live, not even
   when another file in the directory is written and closed during the pause; once the writer
   closes the file, the whole new config goes live in one reload.
2. A config path that is a symlink into another directory: an in-place edit of the target
   reloads, and so does `ln -sf` pointing the link at another file.
3. --no-watch: none of this reloads.
"""
import os
import re
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402


def config(listen, ports, weight=1):
    return harness.redis_pool_config("alpha", listen, [f"127.0.0.1:{p}:{weight} s{i}" for i, p in enumerate(ports)])


class WatchBase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.listen, self.admin = harness.free_port(), harness.free_port()
        self.ports = [harness.free_port() for _ in range(4)]
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.proxy.stop()
        self.dir.cleanup()

    def start(self, path, watch=True):
        extra = ["--admin", f"127.0.0.1:{self.admin}"] + ([] if watch else ["--no-watch"])
        self.proxy = harness.start_ringproxy(path, self.listen, extra=extra)

    def generation(self):
        return int(harness.metric_value(harness.get_metrics(self.admin), "ringproxy_reload_generation"))

    def reload_lines(self):
        with open(self.proxy.log, "rb") as f:
            return re.findall(r"reload generation \d+: pool alpha: [^\n]*", f.read().decode(errors="replace"))


class InPlaceWriter(WatchBase):
    def test_a_writer_pausing_half_way_is_not_caught_half_way(self):
        path = os.path.join(self.dir.name, "ringproxy.yml")
        with open(path, "w") as f:
            f.write(config(self.listen, self.ports))
        self.start(path)
        new = config(self.listen, self.ports, weight=2)
        cut = new.index("    - 127.0.0.1:%d" % self.ports[2])  # the first two servers only
        with open(path, "w") as f:
            f.write(new[:cut])
            f.flush()
            time.sleep(0.7)
            with open(os.path.join(self.dir.name, "notes.txt"), "w") as other:
                other.write("another file written and closed in the same directory\n")
            time.sleep(0.8)
            self.assertEqual(self.generation(), 1, self.reload_lines())
            f.write(new[cut:])
        harness.wait_for(lambda: self.generation() == 2, timeout=5, what="the reload once the writer closed")
        time.sleep(0.5)
        self.assertEqual(self.generation(), 2)
        lines = self.reload_lines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("+0 -0 ~4 nodes", lines[0])  # every weight changed; no server went away

    def test_no_watch_ignores_a_finished_write(self):
        path = os.path.join(self.dir.name, "ringproxy.yml")
        with open(path, "w") as f:
            f.write(config(self.listen, self.ports[:3]))
        self.start(path, watch=False)
        with open(path, "w") as f:
            f.write(config(self.listen, self.ports))
        time.sleep(1.0)
        self.assertEqual(self.generation(), 1)


class Symlinks(WatchBase):
    def test_edit_through_a_symlink_and_a_relinked_symlink_both_reload(self):
        real_dir = os.path.join(self.dir.name, "real")
        os.mkdir(real_dir)
        target = os.path.join(real_dir, "v1.yml")
        with open(target, "w") as f:
            f.write(config(self.listen, self.ports[:2]))
        link = os.path.join(self.dir.name, "ringproxy.yml")
        os.symlink(target, link)
        self.start(link)
        with open(target, "w") as f:  # edited where it lives, not where ringproxy was pointed
            f.write(config(self.listen, self.ports[:3]))
        harness.wait_for(lambda: self.generation() == 2, timeout=5, what="reload after editing the target")
        self.assertIn("+1 -0", self.reload_lines()[-1])
        v2 = os.path.join(real_dir, "v2.yml")
        with open(v2, "w") as f:
            f.write(config(self.listen, self.ports))
        os.unlink(link)  # what `ln -sf` does
        os.symlink(v2, link)
        harness.wait_for(lambda: self.generation() == 3, timeout=5, what="reload after relinking")
        self.assertIn("+1 -0", self.reload_lines()[-1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
