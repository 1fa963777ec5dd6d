"""ringctl's --svg pictures: one titled picture per pool, numbers that match --json, names that
cannot break the XML, a bounded file size, deterministic output, and (when rsvg-convert is
installed) a picture a renderer accepts. Pure CLI: nothing but ringctl runs."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402

NS = {"s": "http://www.w3.org/2000/svg"}
RENDERER = shutil.which("rsvg-convert")  # optional: not in CI's packages


def pool(name, port, servers, distribution="ketama", extra=""):
    lines = "".join(f"    - {s}\n" for s in servers)
    return (f"{name}:\n  listen: 127.0.0.1:{port}\n  redis: true\n  distribution: {distribution}\n{extra}"
            f"  servers:\n{lines}")


def servers(n, weights=None):
    weights = weights or [1] * n
    return [f"10.0.{i // 250}.{i % 250 + 1}:6379:{weights[i]} n{i:03d}" for i in range(n)]


def text_of(el):
    return "".join(el.itertext())


def pictures(path):
    """The picture groups of an SVG file: (title, group element) in document order."""
    root = ET.parse(path).getroot()
    out = []
    for g in root.findall("s:g", NS):
        if g.get("class") == "picture":
            out.append((g.find("s:title", NS).text, g))
    return out


def legend(group):
    """(label, share text, ideal text) per legend row of a picture, in order."""
    rows = []
    for row in group.iter("{%s}g" % NS["s"]):
        if row.get("class") != "node":
            continue
        label = [t for t in row.findall("s:text", NS) if t.get("class") == "label"][0]
        share = [t for t in row.findall("s:text", NS) if t.get("class") == "share"]
        if not share:
            continue  # a removed node: no share in the new ring
        m = re.fullmatch(r"([\d.]+)% \(ideal ([\d.]+)%\)", text_of(share[0]))
        rows.append((label.text.rstrip(), m.group(1), m.group(2)))  # a "(new)" tag follows a space
    return rows


def as_printed(fraction, printed):
    """fraction as a percentage with as many decimals as `printed` has."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return f"{fraction * 100:.{decimals}f}"


class RingctlPictures(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringctl-pictures-")

    def write(self, name, text, mode="w"):
        path = os.path.join(self.dir, name)
        with open(path, mode) as f:
            f.write(text)
        return path

    def ringctl(self, *args):
        out = harness.run_ringctl(*args)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out

    def draw(self, name, *args):
        """Runs ringctl with --svg; the picture must also render where a renderer is installed
        (RendererAvailable says when it is not)."""
        svg = os.path.join(self.dir, name)
        out = self.ringctl(*args, "--svg", svg)
        if RENDERER is not None:
            png = svg[:-4] + ".png"
            done = subprocess.run([RENDERER, svg, "-o", png], capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, f"{svg}: {done.stderr}")
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        return svg, out

    def test_one_titled_picture_per_pool_and_only_the_chosen_one(self):
        conf = self.write("pools.yml",
                          pool("web", 30000, servers(4)) +
                          pool("sessions", 30001, servers(5, [1, 2, 1, 3, 1]), "vnode") +
                          pool("counters", 30002, servers(3, [1, 1, 2]), "modula") +
                          pool("spread", 30003, servers(3), "random"))
        svg, _ = self.draw("all.svg", "shares", "-c", conf)
        titles = [t for t, _ in pictures(svg)]
        self.assertEqual(titles, ["pool web: shares", "pool sessions: shares", "pool counters: shares",
                                  "pool spread: shares"])
        for _, g in pictures(svg):  # each picture names its pool where people read it, too
            shown = [text_of(t) for t in g.findall("s:text", NS) if t.get("class") == "title"]
            self.assertEqual(len(shown), 1)
        one, _ = self.draw("one.svg", "shares", "-c", conf, "--pool", "sessions")
        self.assertEqual([t for t, _ in pictures(one)], ["pool sessions: shares"])

    def test_legend_shares_equal_the_json_shares(self):
        conf = self.write("w.yml", pool("k", 30000, servers(4)) +
                          pool("v", 30001, servers(5, [1, 2, 1, 3, 1]), "vnode"))
        svg, out = self.draw("w.svg", "shares", "-c", conf, "--json")
        report = json.loads(out.stdout)["pools"]
        drawn = pictures(svg)
        self.assertEqual(len(drawn), len(report))
        for rep, (_, g) in zip(report, drawn):
            rows = legend(g)
            self.assertEqual([r[0] for r in rows], [n["node"] for n in rep["nodes"]])
            for (label, share, ideal), n in zip(rows, rep["nodes"]):
                self.assertEqual(share, as_printed(n["share"], share), label)
                self.assertEqual(ideal, as_printed(n["ideal"], ideal), label)
        # Unequal weights: the ideals printed are weight-proportional (3 of 8 = 37.50%).
        self.assertEqual(legend(drawn[1][1])[3][2], "37.50")

    def test_diff_shows_the_json_moved_share_and_ideal_minimum(self):
        old = self.write("old.yml", pool("p", 30000, servers(4), "vnode") + pool("gone", 30001, servers(3)))
        new = self.write("new.yml", pool("p", 30000, servers(5), "vnode") + pool("fresh", 30002, servers(3)))
        fewer = self.write("fewer.yml", pool("p", 30000, servers(3), "vnode"))
        for name, a, b, n_pictures in (("add.svg", old, new, 3), ("remove.svg", old, fewer, 2)):
            svg, out = self.draw(name, "diff", a, b, "--json")
            diffs = {d["pool"]: d for d in json.loads(out.stdout)["pools"]}
            drawn = dict(pictures(svg))
            self.assertEqual(len(drawn), n_pictures, list(drawn))  # kept, removed and added pools
            self.assertIn("pool gone: removed", drawn)
            g = drawn["pool p: diff"]
            moved = [t for t in g.iter("{%s}text" % NS["s"]) if t.get("class") == "moved"]
            m = re.fullmatch(r"moved ([\d.]+)% \(ideal minimum ([\d.]+)%\)", text_of(moved[0]))
            self.assertEqual(m.group(1), as_printed(diffs["p"]["moved"], m.group(1)))
            self.assertEqual(m.group(2), as_printed(diffs["p"]["ideal_min"], m.group(2)))
            self.assertGreater(diffs["p"]["moved"], 0.15)  # a node in 4 or 5 changes: not nothing
            # Where keys move is drawn: the moved track has a path.
            tracks = [t for t in g.iter("{%s}g" % NS["s"]) if t.get("class") == "moved-track"]
            self.assertEqual(len(tracks), 1)
            self.assertIsNotNone(tracks[0].find("s:path", NS))
        self.assertIn("pool fresh: added", dict(pictures(os.path.join(self.dir, "add.svg"))))
        # The new ring's legend matches `shares` on the new file, and flags the new node.
        rows = legend(dict(pictures(os.path.join(self.dir, "add.svg")))["pool p: diff"])
        shares = json.loads(self.ringctl("shares", "-c", new, "--pool", "p", "--json").stdout)["pools"][0]["nodes"]
        self.assertEqual([r[0] for r in rows], [n["node"] for n in shares])
        for (_, share, _), n in zip(rows, shares):
            self.assertEqual(share, as_printed(n["share"], share))

    def test_names_that_are_markup_or_not_utf8_still_parse(self):
        hostile = ["a<b&\"c'd>", "nœud-é-節点", "]]><!--x-->"]
        text = pool('"q<&\\"\'>"', 30000, [f"10.0.0.{i + 1}:6379:1 {n}" for i, n in enumerate(hostile)], "vnode")
        conf = self.write("evil.yml", text.encode() + b"    - 10.0.0.9:6379:1 bad\xff\x01name\n", "wb")
        svg, _ = self.draw("evil.svg", "shares", "-c", conf, "--json")  # text output echoes raw bytes
        drawn = pictures(svg)  # parses: every name was escaped
        self.assertEqual([t for t, _ in drawn], ["pool q<&\"'>: shares"])
        labels = [r[0] for r in legend(drawn[0][1])]
        self.assertEqual(labels[:3], hostile)
        self.assertEqual(labels[3], "bad\ufffd\ufffdname")  # bytes XML cannot hold, replaced
        with open(svg, encoding="utf-8") as f:
            raw = f.read()
        self.assertIn("a&lt;b&amp;&quot;c&apos;d&gt;", raw)
        self.assertNotIn("<!--x-->", raw)
        # The same names through a diff: flows and removed rows are escaped too.
        fewer = self.write("fewer.yml", pool('"q<&\\"\'>"', 30000, ["10.0.0.1:6379:1 " + hostile[0]], "vnode"))
        diff_svg, _ = self.draw("evil-diff.svg", "diff", conf, fewer, "--json")
        self.assertEqual(len(pictures(diff_svg)), 1)

    def test_ten_nodes_of_1024_vnodes_draw_small_and_the_same_every_time(self):
        conf = self.write("ten.yml", pool("p", 30000, servers(10), "vnode"))
        eleven = self.write("eleven.yml", pool("p", 30000, servers(11), "vnode"))
        shares = json.loads(self.ringctl("shares", "-c", conf, "--json").stdout)["pools"][0]
        self.assertEqual(shares["points"], 10 * 1024)
        svg, _ = self.draw("ten.svg", "shares", "-c", conf)
        diff_svg, _ = self.draw("ten-eleven.svg", "diff", conf, eleven)
        # One path per point made 800 KB of moire; a picture a person can read is far smaller.
        self.assertLess(os.path.getsize(svg), 100_000)
        self.assertLess(os.path.getsize(diff_svg), 150_000)
        again, _ = self.draw("ten-again.svg", "shares", "-c", conf)
        with open(svg, "rb") as a, open(again, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_big_pools_list_the_nodes_furthest_from_their_ideal(self):
        conf = self.write("big.yml", pool("p", 30000, servers(60), "vnode", "  vnodes: 64\n"))
        svg, out = self.draw("big.svg", "shares", "-c", conf, "--json")
        nodes = json.loads(out.stdout)["pools"][0]["nodes"]
        rows = legend(pictures(svg)[0][1])
        self.assertEqual(len(rows), 40)  # 20 above their ideal the most, 20 below
        by_ratio = sorted(nodes, key=lambda n: n["share"] / n["ideal"], reverse=True)
        self.assertEqual({r[0] for r in rows}, {n["node"] for n in by_ratio[:20] + by_ratio[-20:]})
        self.assertEqual(rows[0][0], by_ratio[0]["node"])
        with open(svg, encoding="utf-8") as f:
            self.assertIn("20 more nodes", f.read())


class RendererAvailable(unittest.TestCase):
    def test_rsvg_convert_renders_a_picture(self):
        if RENDERER is None:
            self.skipTest("rsvg-convert is not installed (apt-get install librsvg2-bin)")
        d = tempfile.mkdtemp(prefix="ringctl-render-")
        conf = os.path.join(d, "p.yml")
        with open(conf, "w") as f:
            f.write(pool("p", 30000, servers(3), "vnode"))
        svg, png = os.path.join(d, "p.svg"), os.path.join(d, "p.png")
        self.assertEqual(harness.run_ringctl("shares", "-c", conf, "--svg", svg).returncode, 0)
        done = subprocess.run([RENDERER, svg, "-o", png], capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertGreater(os.path.getsize(png), 10_000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
