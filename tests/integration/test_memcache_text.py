"""memcached text protocol through ringproxy (2 workers) over 3 memcached servers (named mc0..mc2,
ketama fnv1a_64):

- every command: get/gets (multi-key), gat/gats, set/add/replace/append/prepend/cas with data
  blocks (flags, exptime and cas uniques preserved), delete, incr/decr, touch, and the noreply
  form of each, with pymemcache in its default settings and on raw sockets; where each key
  landed is checked on the backends directly (exactly one server: the one `ringctl owner`
  names);
- a whole pipelined session, byte for byte equal to what a lone memcached answers;
- noreply pipelines interleaved with normal requests: no reply for them, no stall, no
  reordering of later replies;
- a 100-key multi-get over all shards (exact bytes, client key order, one END, misses left
  out, duplicates repeated) and a 2000-key one;
- 1 MiB values, version, quit, stats/verbosity refused, flush_all on every server;
- key rules (over 250 bytes, control characters: CLIENT_ERROR, the connection goes on),
  malformed input (garbage lines, bad/negative/huge byte counts, a missing or unterminated
  data block: the framing is lost, so that client alone is closed);
- a backend stopped: a single get answers SERVER_ERROR naming it, a multi-get answers the
  other shards' items, and the connection stays up.
"""
import os
import random
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
from harness import McConn  # noqa: E402
from pymemcache.client.base import Client  # noqa: E402

MiB = 1 << 20
CAS_RE = re.compile(rb"^(VALUE \S+ \d+ \d+) \d+\r\n", re.M)


def normalize_cas(data):
    """gets/gats replies with their cas uniques blanked (they differ between servers)."""
    return CAS_RE.sub(rb"\1 CAS\r\n", data)


def item(key, value, flags=0, cas=None):
    key = key.encode() if isinstance(key, str) else key
    value = value.encode() if isinstance(value, str) else value
    head = b"VALUE %s %d %d" % (key, flags, len(value)) + (b" %d" % cas if cas is not None else b"")
    return head + b"\r\n" + value + b"\r\n"


def direct(port, request):
    """One request on a fresh connection straight to a backend."""
    with McConn(port) as c:
        return c.call_text(request)


def ttl_of(port, key):
    """The remaining TTL of `key` on a backend (-1: never expires), from `mg <key> t`."""
    reply = direct(port, f"mg {key} t\r\n")
    m = re.match(rb"^HD t(-?\d+)\r\n$", reply)
    if m is None:
        raise AssertionError(f"mg {key} t on {port}: {reply!r}")
    return int(m.group(1))


class MemcacheTextBase(harness.McFleetCase):
    POOL, KEY_PREFIX, KEYS_PER_SERVER, REFERENCE = "text", "t:", 60, False

    def assert_ttl(self, port, key, expected):
        """The TTL the owner has for key is `expected` seconds, read up to 3 s later."""
        ttl = ttl_of(port, key)
        self.assertTrue(expected - 3 <= ttl <= expected, f"TTL of {key} on {port} is {ttl}, expected {expected}")

    def assert_placement(self, expected_keys):
        """Each of expected_keys is on exactly one backend, its owner by `ringctl owner`, and
        no backend holds any other key. Returns {key bytes: port}."""
        problems, owners = self.fleet.placement_problems(expected_keys)
        self.assertEqual(problems, [])
        return owners


class MemcacheText(MemcacheTextBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ref = harness.start_memcached(extra=("-I", "2m"))  # a lone memcached: the replies to match

    @classmethod
    def tearDownClass(cls):
        cls.ref.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        with McConn(self.ref.port) as c:
            self.assertEqual(c.call_text(b"flush_all\r\n"), b"OK\r\n")

    # --- every command, with a real client in its default settings ---------------------------
    def test_pymemcache_every_command_lands_on_its_owner(self):
        c = Client(("127.0.0.1", self.port))  # default settings: set & co. are sent noreply
        try:
            ks = self.keys[:30]
            for i, k in enumerate(ks):
                self.assertTrue(c.set(k, f"value-{i}"))
            self.assertEqual(c.get_many(ks), {k: f"value-{i}".encode() for i, k in enumerate(ks)})
            a, b, n = ks[0], ks[1], ks[2]  # three owners
            self.assertEqual(len({self.owner(a), self.owner(b), self.owner(n)}), 3)
            new = self.keys[30:33]
            # add / replace
            self.assertFalse(c.add(a, "other", noreply=False))
            for k in new:
                self.assertTrue(c.add(k, "added", noreply=False))
            self.assertTrue(c.replace(b, "replaced", noreply=False))
            self.assertFalse(c.replace(self.keys[33], "never", noreply=False))
            # append / prepend
            self.assertTrue(c.append(a, "-tail", noreply=False))
            self.assertTrue(c.prepend(a, "head-", noreply=False))
            self.assertFalse(c.append(self.keys[34], "x", noreply=False))
            self.assertFalse(c.prepend(self.keys[35], "x", noreply=False))
            self.assertEqual(c.get(a), b"head-value-0-tail")
            self.assertEqual(c.get(b), b"replaced")
            # gets / cas
            value, token = c.gets(n)
            self.assertEqual(value, b"value-2")
            self.assertFalse(c.cas(n, "stale", int(token) + 1000))
            self.assertTrue(c.cas(n, "swapped", token))
            self.assertFalse(c.cas(n, "again", token), "a used cas unique must not match")
            self.assertIsNone(c.cas(self.keys[36], "x", 1))
            self.assertEqual(c.get(n), b"swapped")
            self.assertEqual(c.gets_many([a, n, self.keys[36]]).keys(), {a, n})
            # incr / decr
            counter = self.keys[37]
            self.assertTrue(c.set(counter, "10"))
            self.assertEqual(c.incr(counter, 5), 15)
            self.assertEqual(c.decr(counter, 20), 0)
            self.assertEqual(c.incr(counter, 2 ** 64 - 1), 2 ** 64 - 1)
            self.assertEqual(c.incr(counter, 1), 0, "incr wraps at 64 bits")
            self.assertIsNone(c.incr(self.keys[38], 1))
            self.assertIsNone(c.decr(self.keys[38], 1))
            # touch / delete
            self.assertTrue(c.touch(a, 500, noreply=False))
            self.assertFalse(c.touch(self.keys[38], 500, noreply=False))
            self.assert_ttl(self.owner(a), a, 500)
            self.assertTrue(c.delete(ks[3], noreply=False))
            self.assertFalse(c.delete(ks[3], noreply=False))
            self.assertTrue(c.delete(ks[4]))  # noreply
            self.assertIsNone(c.get(ks[4]))
            self.assertRegex(c.version(), rb"^[!-~]+$")
            live = set(ks) - {ks[3], ks[4]} | set(new) | {counter}
            placed = self.assert_placement(live)
            self.assertEqual(set(placed.values()), set(self.ports))
            for k in (a, b, n, counter):
                owner = self.owner(k)
                expect = c.get(k)
                self.assertEqual(direct(owner, f"get {k}\r\n"), item(k, expect) + b"END\r\n")
                for other in set(self.ports) - {owner}:
                    self.assertEqual(direct(other, f"get {k}\r\n"), b"END\r\n")
        finally:
            c.close()

    def test_flags_exptime_and_cas_unique_preserved(self):
        a, b, n = self.keys[0:3]
        with McConn(self.port) as c:
            self.assertEqual(c.call_text(f"set {a} 123 1000 5\r\nhello\r\n"), b"STORED\r\n")
            self.assertEqual(c.call_text(f"set {b} 4294967295 0 0\r\n\r\n"), b"STORED\r\n")
            self.assertEqual(c.call_text(f"add {n} 77 300 2\r\nhi\r\n"), b"STORED\r\n")
            # On the owners directly: the flags and TTLs the client gave.
            self.assertEqual(direct(self.owner(a), f"mg {a} f v\r\n"), b"VA 5 f123\r\nhello\r\n")
            self.assert_ttl(self.owner(a), a, 1000)
            self.assertEqual(direct(self.owner(b), f"mg {b} f\r\n"), b"HD f4294967295\r\n")
            self.assertEqual(ttl_of(self.owner(b), b), -1)
            self.assert_ttl(self.owner(n), n, 300)
            # gets through the proxy shows the owner's own cas unique.
            via_proxy = c.call_text(f"gets {a}\r\n")
            self.assertEqual(via_proxy, direct(self.owner(a), f"gets {a}\r\n"))
            cas = int(via_proxy.split(b"\r\n")[0].split()[4])
            self.assertEqual(c.call_text(f"cas {a} 9 0 3 {cas + 1}\r\nbad\r\n"), b"EXISTS\r\n")
            self.assertEqual(c.call_text(f"cas {a} 9 600 3 {cas}\r\nnew\r\n"), b"STORED\r\n")
            self.assertEqual(c.call_text(f"cas {a} 9 0 3 {cas}\r\nold\r\n"), b"EXISTS\r\n")
            self.assertEqual(c.call_text(f"cas {self.keys[3]} 0 0 1 {cas}\r\nx\r\n"), b"NOT_FOUND\r\n")
            self.assertEqual(direct(self.owner(a), f"mg {a} f v\r\n"), b"VA 3 f9\r\nnew\r\n")
            self.assert_ttl(self.owner(a), a, 600)
            # replace/append keep what memcached keeps: replace sets flags, append keeps them.
            self.assertEqual(c.call_text(f"replace {n} 5 0 3\r\nrep\r\n"), b"STORED\r\n")
            self.assertEqual(c.call_text(f"append {n} 99 0 2\r\n++\r\n"), b"STORED\r\n")
            self.assertEqual(c.call_text(f"prepend {n} 98 0 2\r\n--\r\n"), b"STORED\r\n")
            self.assertEqual(c.call_text(f"get {n}\r\n"), item(n, "--rep++", flags=5) + b"END\r\n")
            # touch, gat and gats set the TTL on the owner.
            self.assertEqual(c.call_text(f"touch {b} 400\r\n"), b"TOUCHED\r\n")
            self.assert_ttl(self.owner(b), b, 400)
            self.assertEqual(c.call_text(f"gat 800 {n}\r\n"), item(n, "--rep++", flags=5) + b"END\r\n")
            self.assert_ttl(self.owner(n), n, 800)
            reply = c.call_text(f"gats 900 {a} {self.keys[3]} {b} {n}\r\n")
            expected = b"".join(direct(self.owner(k), f"gets {k}\r\n")[:-5] for k in (a, b, n)) + b"END\r\n"
            self.assertEqual(reply, expected)
            for k in (a, b, n):
                self.assert_ttl(self.owner(k), k, 900)
            # A negative exptime stores an already expired item.
            self.assertEqual(c.call_text(f"set {self.keys[4]} 0 -1 1\r\nx\r\n"), b"STORED\r\n")
            self.assertEqual(c.call_text(f"get {self.keys[4]}\r\n"), b"END\r\n")
        self.assert_placement({a, b, n})

    def test_pipelined_session_matches_a_single_memcached(self):
        ks = self.keys[:9]
        k = ks
        session = [
            f"set {k[0]} 5 0 3\r\nabc\r\n", f"set {k[1]} 6 0 3\r\ndef\r\n", f"set {k[2]} 7 0 3\r\nghi\r\n",
            f"add {k[0]} 0 0 1\r\nx\r\n", f"add {k[3]} 1 0 4\r\nnew3\r\n", f"replace {k[1]} 9 0 2\r\nrr\r\n",
            f"replace {k[4]} 0 0 1\r\nx\r\n", f"append {k[2]} 0 0 3\r\n+++\r\n", f"prepend {k[2]} 0 0 3\r\n---\r\n",
            f"append {k[5]} 0 0 1\r\nx\r\n", f"prepend {k[5]} 0 0 1\r\nx\r\n",
            f"get {k[0]}\r\n", f"get {k[2]} {k[1]} {k[5]} {k[0]} {k[3]}\r\n", f"gets {k[0]} {k[1]} {k[2]}\r\n",
            f"set {k[6]} 0 0 2\r\n10\r\n", f"incr {k[6]} 5\r\n", f"decr {k[6]} 3\r\n", f"decr {k[6]} 100\r\n",
            f"incr {k[7]} 1\r\n", f"incr {k[0]} 1\r\n", f"touch {k[0]} 100\r\n", f"touch {k[7]} 100\r\n",
            f"gat 100 {k[1]} {k[7]} {k[2]}\r\n", f"gats 0 {k[3]}\r\n", f"delete {k[3]}\r\n", f"delete {k[3]}\r\n",
            f"delete {k[1]} 0\r\n",
            # noreply forms between loud ones: no reply, and the next reply is the next request's
            f"set {k[7]} 1 0 2 noreply\r\nnr\r\n", f"get {k[7]}\r\n",
            f"add {k[7]} 0 0 1 noreply\r\nx\r\n", f"add {k[8]} 2 0 2 noreply\r\nad\r\n", f"get {k[8]} {k[7]}\r\n",
            f"replace {k[8]} 3 0 2 noreply\r\nrp\r\n", f"replace {k[4]} 3 0 2 noreply\r\nrp\r\n",
            f"append {k[8]} 0 0 1 noreply\r\n>\r\n", f"prepend {k[8]} 0 0 1 noreply\r\n<\r\n", f"get {k[8]}\r\n",
            f"incr {k[6]} 7 noreply\r\n", f"decr {k[6]} 2 noreply\r\n", f"incr {k[8]} 1 noreply\r\n",
            f"get {k[6]}\r\n", f"touch {k[6]} 50 noreply\r\n", f"delete {k[8]} noreply\r\n",
            f"delete {k[8]} noreply\r\n", f"get {k[8]} {k[6]}\r\n", f"cas {k[6]} 0 0 1 1 noreply\r\nx\r\n",
            f"get {k[6]}\r\n", "bogus command\r\n", f"get {k[4]}\r\n", "quit\r\n",
            f"set {k[4]} 0 0 5\r\nafter\r\n",  # after quit: never runs
        ]
        data = "".join(session).encode()
        via_proxy = harness.mc_exchange(self.port, data)
        via_memcached = harness.mc_exchange(self.ref.port, data)
        self.assertEqual(normalize_cas(via_proxy), normalize_cas(via_memcached))
        self.assertGreater(len(via_memcached), 300)
        self.assertIn(b"VALUE %s 1 2\r\nnr\r\n" % k[7].encode(), via_proxy)
        self.assertEqual(via_proxy.count(b"END\r\n"), 12)
        self.assert_placement({k[0], k[2], k[6], k[7]})

    # --- noreply ------------------------------------------------------------------------------
    def test_noreply_pipeline_interleaved_with_gets(self):
        ks = self.keys[:120]
        req, expected = [], []
        for i, k in enumerate(ks):
            req.append(f"set {k} {i} 0 {len(str(i))} noreply\r\n{i}\r\n")
            if i % 3 == 0:
                req.append(f"get {k}\r\n")  # same owner as the quiet set just before
                expected.append(item(k, str(i), flags=i) + b"END\r\n")
            if i % 7 == 0 and i > 0 and (i - 1) % 10 != 5:
                req.append(f"append {ks[i - 1]} 0 0 1 noreply\r\n!\r\n")
                req.append(f"get {ks[i - 1]} {k}\r\n")  # two owners
                expected.append(item(ks[i - 1], f"{i - 1}!", flags=i - 1) + item(k, str(i), flags=i) + b"END\r\n")
            if i % 10 == 5:
                req.append(f"delete {k} noreply\r\nincr {ks[0]} 1 noreply\r\ntouch {k} 10 noreply\r\n")
                req.append(f"get {k}\r\nversion\r\n")
                expected.append(b"END\r\n")
                expected.append(None)  # VERSION line
        req.append(f"get {ks[0]}\r\n")
        bumps = sum(1 for i in range(len(ks)) if i % 10 == 5)
        expected.append(item(ks[0], str(bumps), flags=0) + b"END\r\n")
        with McConn(self.port) as c:
            c.send("".join(req).encode())
            for want in expected:
                got = c.read_text()
                if want is None:
                    self.assertRegex(got, rb"^VERSION \S+\r\n$")
                else:
                    self.assertEqual(got, want)
            self.assertEqual(c.drain(0.3), b"", "replies beyond the loud requests'")
        deleted = {ks[i] for i in range(len(ks)) if i % 10 == 5}
        self.assert_placement(set(ks) - deleted)

    def test_noreply_alone_does_not_stall_the_next_request(self):
        k0, k1, k2 = self.keys[:3]
        forms = [
            f"set {k0} 0 0 1 noreply\r\n1\r\n", f"add {k1} 0 0 1 noreply\r\n2\r\n",
            f"replace {k0} 0 0 1 noreply\r\n3\r\n", f"append {k0} 0 0 1 noreply\r\n4\r\n",
            f"prepend {k0} 0 0 1 noreply\r\n5\r\n", f"incr {k0} 1 noreply\r\n", f"decr {k0} 1 noreply\r\n",
            f"touch {k0} 100 noreply\r\n", f"cas {k0} 0 0 1 999999 noreply\r\n6\r\n",
            f"delete {k1} noreply\r\n", f"incr {k2} 1 noreply\r\n",  # misses: still no reply
            f"set {k2} 0 0 1 noreply\r\nz\r\n", f"incr {k2} 1 noreply\r\n",  # an error: no reply either
            "flush_all 0 noreply\r\n", "flush_all noreply\r\n", "verbosity 1 noreply\r\n",
        ]
        with McConn(self.port) as c:
            for f in forms:
                with self.subTest(request=f.split("\r\n")[0]):
                    c.send(f.encode())
                    start = time.time()
                    self.assertEqual(c.call_text(f"get {k2}x\r\n"), b"END\r\n")
                    self.assertLess(time.time() - start, 2.0)
            self.assertEqual(c.drain(0.2), b"")
        # The noreply writes took effect, in order: 1 -> 3 -> 34 -> 534 -> 535 -> 534.
        c2 = McConn(self.port)
        c2.send(f"set {k0} 0 0 1 noreply\r\n1\r\nreplace {k0} 0 0 1 noreply\r\n3\r\nappend {k0} 0 0 1 noreply\r\n4"
                f"\r\nprepend {k0} 0 0 1 noreply\r\n5\r\nincr {k0} 1 noreply\r\ndecr {k0} 1 noreply\r\n"
                f"get {k0}\r\n".encode())
        self.assertEqual(c2.read_text(), item(k0, "534") + b"END\r\n")
        c2.close()

    # --- multi-get ----------------------------------------------------------------------------
    def test_multiget_100_keys_over_all_shards(self):
        rnd = random.Random(7)
        ks = self.keys[:100]
        self.assertEqual(set(self.fleet.owners(ks).values()), set(self.ports))
        present = [k for i, k in enumerate(ks) if i % 10 not in (3, 8)]  # 80 present, 20 missing
        values = {}
        store = []
        for i, k in enumerate(present):
            v = [b"", b"x", b"END\r\nVALUE fake 0 1\r\n", bytes(range(256)), b"v" * 3000][i % 5] + b"%d" % i
            values[k] = (i % 4 * 1000, v)
            store.append(b"set %s %d 0 %d noreply\r\n%s\r\n" % (k.encode(), i % 4 * 1000, len(v), v))
        ask = list(ks)
        rnd.shuffle(ask)
        ask[10:10] = [ask[0], ask[0]]  # a key three times, twice in a row
        ask.append(ask[5])
        ask.append("t:never-set")
        expected = b"".join(item(k, values[k][1], values[k][0]) for k in ask if k in values) + b"END\r\n"
        line = ("get " + " ".join(ask) + "\r\n").encode()
        for port in (self.port, self.ref.port):
            with McConn(port) as c:
                c.send(b"".join(store))
                self.assertEqual(c.call_text(b"version\r\n")[:8], b"VERSION ")
        with McConn(self.port) as c:
            self.assertEqual(c.call_text(line), expected)
            self.assertEqual(c.drain(0.1), b"")
            # The same bytes as one memcached holding every key.
            with McConn(self.ref.port) as r:
                self.assertEqual(r.call_text(line), expected)
                gets = ("gets " + " ".join(ask) + "\r\n").encode()
                via_proxy = c.call_text(gets)
                self.assertEqual(normalize_cas(via_proxy), normalize_cas(r.call_text(gets)))
                gat = ("gat 1000 " + " ".join(ask) + "\r\n").encode()
                self.assertEqual(c.call_text(gat), r.call_text(gat))
            # Every cas unique is the owner's own.
            owners = self.fleet.owners(ks)
            for m in re.finditer(rb"^VALUE (\S+) \d+ \d+ (\d+)\r\n", via_proxy, re.M):
                key = m.group(1).decode()
                self.assertEqual(direct(owners[key], f"mg {key} c\r\n"), b"HD c%s\r\n" % m.group(2))
            # Extra spaces between keys, all misses, one shard only, a single key.
            self.assertEqual(c.call_text(f"get   {present[0]}    {present[1]}  \r\n"),
                             item(present[0], values[present[0]][1], values[present[0]][0]) +
                             item(present[1], values[present[1]][1], values[present[1]][0]) + b"END\r\n")
            missing = [k for k in ks if k not in values]
            self.assertEqual(c.call_text(("get " + " ".join(missing) + "\r\n").encode()), b"END\r\n")
            one = [k for k in self.by_port[self.ports[1]] if k in values][:5]
            self.assertEqual(c.call_text(("get " + " ".join(one) + "\r\n").encode()),
                             b"".join(item(k, values[k][1], values[k][0]) for k in one) + b"END\r\n")
            for k in present[:9]:
                self.assert_ttl(owners[k], k, 1000)
        self.assert_placement(set(present))

    def test_multiget_2000_keys_on_a_long_line(self):
        ks = [f"long-line-key:{i:05d}" for i in range(2000)]  # a 44 KB line: over 2048, under 64 KiB
        with McConn(self.port) as c:
            c.send("".join(f"set {k} 0 0 {len(k)} noreply\r\n{k}\r\n" for k in ks[::2]).encode())
            reply = c.call_text(("get " + " ".join(ks) + "\r\n").encode())
            self.assertEqual(reply, b"".join(item(k, k) for k in ks[::2]) + b"END\r\n")
        placed = self.assert_placement(set(ks[::2]))
        self.assertEqual(set(placed.values()), set(self.ports))

    # --- big values, local commands -----------------------------------------------------------
    def test_one_mib_values(self):
        rnd = random.Random(3)
        a, b = self.by_port[self.ports[0]][0], self.by_port[self.ports[2]][0]
        va = bytes(rnd.getrandbits(8) for _ in range(MiB))
        vb = (b"\r\nEND\r\n" * (MiB // 7 + 1))[:MiB]
        with McConn(self.port) as c:
            # Sent in pieces, with pauses: the proxy waits for the whole block.
            msg = b"set %s 42 0 %d\r\n" % (a.encode(), MiB) + va + b"\r\n"
            for i in range(0, len(msg), 300000):
                c.send(msg[i:i + 300000])
                time.sleep(0.02)
            self.assertEqual(c.read_text(), b"STORED\r\n")
            c.send(b"set %s 0 0 %d\r\n" % (b.encode(), MiB) + vb + b"\r\n")
            self.assertEqual(c.read_text(), b"STORED\r\n")
            self.assertEqual(c.call_text(f"get {a} {b} {a}\r\n"),
                             item(a, va, 42) + item(b, vb) + item(a, va, 42) + b"END\r\n")
            # Over the servers' 2 MiB item limit: memcached's error, and the connection goes on.
            big, k3 = b"y" * (3 * MiB), self.by_port[self.ports[1]][0]
            self.assertEqual(c.call_text(b"set %s 0 0 %d\r\n" % (k3.encode(), len(big)) + big + b"\r\n"),
                             b"SERVER_ERROR object too large for cache\r\n")
            self.assertEqual(c.call_text(f"get {a}\r\n"), item(a, va, 42) + b"END\r\n")
        c = Client(("127.0.0.1", self.port))
        try:
            self.assertEqual(c.get_many([a, b]), {a: va, b: vb})
        finally:
            c.close()
        self.assertEqual(direct(self.owner(a), f"get {a}\r\n"), item(a, va, 42) + b"END\r\n")
        self.assert_placement({a, b})

    def test_version_and_quit(self):
        k = self.keys[0]
        with McConn(self.port) as c:
            self.assertRegex(c.call_text(b"version\r\n"), rb"^VERSION [!-~]+\r\n$")
            c.send(f"set {k} 0 0 2\r\nok\r\nget {k}\r\nquit\r\nset {self.keys[1]} 0 0 1\r\nz\r\nget {k}\r\n".encode())
            self.assertEqual(c.wait_closed(5.0), b"STORED\r\n" + item(k, "ok") + b"END\r\n")
        client = Client(("127.0.0.1", self.port))
        try:
            self.assertRegex(client.version(), rb"^[!-~]+$")
            self.assertIsNone(client.get(self.keys[1]), "a request after quit ran")
            client.quit()
        finally:
            client.close()
        self.assert_placement({k})

    def test_stats_and_verbosity_refused_cleanly(self):
        with McConn(self.port) as c:
            for request in (b"stats\r\n", b"stats items\r\n", b"stats slabs\r\n", b"stats reset\r\n",
                            b"verbosity 1\r\n"):
                with self.subTest(request=request):
                    reply = c.call_text(request)
                    self.assertTrue(reply.startswith(b"SERVER_ERROR "), reply)
                    self.assertEqual(reply.count(b"\r\n"), 1)
                    self.assertEqual(c.call_text(b"get nothing-here\r\n"), b"END\r\n")
            c.send(b"verbosity 1 noreply\r\nget nothing-here\r\n")
            self.assertEqual(c.read_text(), b"END\r\n")
            self.assertEqual(c.drain(0.2), b"")

    def test_flush_all_clears_every_server(self):
        ks = self.keys[:30]
        with McConn(self.port) as c:
            for round_, flush in enumerate((b"flush_all\r\n", b"flush_all 0\r\n", b"flush_all noreply\r\n")):
                c.send("".join(f"set {k} 0 0 1 noreply\r\n{round_}\r\n" for k in ks).encode())
                self.assertEqual(c.call_text(f"get {ks[0]}\r\n"), item(ks[0], str(round_)) + b"END\r\n")
                placed = self.assert_placement(ks)
                self.assertEqual(set(placed.values()), set(self.ports))
                c.send(flush)
                if b"noreply" not in flush:
                    self.assertEqual(c.read_text(), b"OK\r\n")
                self.assertEqual(c.call_text(("get " + " ".join(ks) + "\r\n").encode()), b"END\r\n")
                for port in self.ports:
                    self.assertEqual(harness.mc_keys(port), {}, f"flush_all left items on {port}")
        client = Client(("127.0.0.1", self.port))
        try:
            client.set(ks[0], "x")
            self.assertTrue(client.flush_all(noreply=False))
            self.assertIsNone(client.get(ks[0]))
        finally:
            client.close()

    # --- key rules and malformed input --------------------------------------------------------
    def test_key_rules(self):
        good = self.keys[0]
        k250, k251 = "k" * 250, "k" * 251
        with McConn(self.port) as c:
            self.assertEqual(c.call_text(f"set {good} 0 0 1\r\ng\r\n"), b"STORED\r\n")
            self.assertEqual(c.call_text(f"set {k250} 0 0 3\r\n250\r\n"), b"STORED\r\n")
            self.assertEqual(c.call_text(f"get {k250}\r\n"), item(k250, "250") + b"END\r\n")
            bad_keys = [k251, "a\x01b", "tab\tkey", "del\x7f", "nul\x00key", "\x1bescape"]
            for bad in bad_keys:
                b = bad.encode()
                # the data block says "version": if it were not skipped, a VERSION would follow
                for request in (b"get %s\r\n" % b, b"gets %s %s\r\n" % (good.encode(), b),
                                b"get %s %s\r\n" % (b, good.encode()), b"gat 10 %s\r\n" % b,
                                b"set %s 0 0 7\r\nversion\r\n" % b, b"add %s 0 0 7\r\nversion\r\n" % b,
                                b"cas %s 0 0 7 1\r\nversion\r\n" % b, b"delete %s\r\n" % b,
                                b"incr %s 1\r\n" % b, b"touch %s 1\r\n" % b):
                    with self.subTest(request=request[:40]):
                        self.assertEqual(c.call_text(request), b"CLIENT_ERROR bad command line format\r\n")
                        self.assertEqual(c.call_text(f"get {good}\r\n"), item(good, "g") + b"END\r\n")
                # With noreply, memcached says nothing: neither does the proxy.
                c.send(b"set %s 0 0 7 noreply\r\nversion\r\nget %s\r\n" % (b, good.encode()))
                self.assertEqual(c.read_text(), item(good, "g") + b"END\r\n")
            self.assertEqual(c.drain(0.2), b"")
        self.assert_placement({good, k250})

    def test_garbage_lines_answer_error_and_continue(self):
        good = self.keys[0]
        with McConn(self.port) as c, McConn(self.ref.port) as ref:
            for conn in (c, ref):
                self.assertEqual(conn.call_text(f"set {good} 0 0 1\r\ng\r\n"), b"STORED\r\n")
            cases = [b"hello world\r\n", b"\r\n", b"GET x\r\n", b"get\r\n", b"incr x\r\n",
                     b"\x01\x02\x03\r\n", b"gibberish\n", b"touch x\r\n", b"verbosity\r\n",
                     b"incr x abc\r\n", b"incr x -1\r\n", b"decr x 18446744073709551616\r\n", b"touch x soon\r\n",
                     b"gat later x\r\n", b"delete x 5\r\n", b"flush_all later\r\n", b"mx key\r\n"]
            for request in cases:
                with self.subTest(request=request):
                    got = c.call_text(request)
                    self.assertEqual(got, ref.call_text(request))
                    self.assertTrue(got == b"ERROR\r\n" or got.startswith(b"CLIENT_ERROR "), got)
                    self.assertEqual(c.call_text(f"get {good}\r\n"), item(good, "g") + b"END\r\n")
        self.assert_placement({good})

    def unframeable(self, request, reply_prefix=b"CLIENT_ERROR "):
        """`request` makes the victim's stream unframeable: the victim gets the replies of what
        came before it and an error, then is closed; a bystander mid-request is unaffected."""
        good = self.keys[0]
        with McConn(self.port) as setup:
            self.assertEqual(setup.call_text(f"set {good} 0 0 4\r\ngood\r\n"), b"STORED\r\n")
            setup.call_text(f"delete {self.keys[1]}\r\n")
        bystander = McConn(self.port)
        victim = McConn(self.port)
        try:
            bystander.send(f"get {good} {self.keys[1]}".encode())  # half a request
            victim.send(f"get {good}\r\n".encode() + request)
            before = victim.wait_closed(5.0)
            self.assertTrue(before.startswith(item(good, "good") + b"END\r\n" + reply_prefix), before)
            self.assertEqual(before.count(b"\r\n"), 4, before)
            bystander.send(f" {self.keys[2]}\r\n".encode())
            self.assertEqual(bystander.read_text(), item(good, "good") + b"END\r\n")
            self.assertEqual(bystander.call_text(f"set {self.keys[1]} 0 0 1\r\nb\r\n"), b"STORED\r\n")
        finally:
            bystander.close()
            victim.close()
        self.assert_placement({good, self.keys[1]})
        return before

    def test_bad_byte_counts_close_only_that_client(self):
        k = self.keys[3]
        for count in (b"abc", b"-1", b"1x", b"99999999999999999999", b"100000000", b""):
            with self.subTest(count=count):
                self.unframeable(b"set %s 0 0 %s\r\nversion\r\n" % (k.encode(), count))
        # Also when the count is fine but the line is cut short of it.
        self.unframeable(b"append %s 0\r\nversion\r\n" % k.encode())

    def test_missing_data_block_terminator_closes_only_that_client(self):
        k = self.keys[3]
        # A data block longer than announced, and a forgotten data block (the next command is
        # taken as data, and its terminator is not where the count says).
        self.assertIn(b"bad data chunk", self.unframeable(b"set %s 0 0 1\r\nxyz\r\n" % k.encode()))
        self.assertIn(b"bad data chunk", self.unframeable(b"set %s 0 0 3\r\nget %s\r\n" % (k.encode(), k.encode())))
        self.assertIn(b"bad data chunk", self.unframeable(b"cas %s 0 0 2 1\r\nab\n\n" % k.encode()))

    def test_long_line_without_newline_closes_only_that_client(self):
        self.unframeable(b"set " + b"x" * 5000)
        self.unframeable(b"get " + b"k " * 40000)  # over 64 KiB even for a get

    def test_data_block_still_to_come_waits(self):
        k, other = self.keys[0], self.keys[1]
        with McConn(self.port) as c, McConn(self.port) as bystander:
            c.send(f"set {k} 3 0 10\r\n01234".encode())
            self.assertEqual(c.drain(0.3), b"")
            self.assertEqual(bystander.call_text(f"set {other} 0 0 1\r\no\r\n"), b"STORED\r\n")
            self.assertEqual(bystander.call_text(f"get {k}\r\n"), b"END\r\n")
            c.send(b"56789\r")
            self.assertEqual(c.drain(0.2), b"")
            c.send(b"\nget " + k.encode() + b"\r\n")
            self.assertEqual(c.read_text(), b"STORED\r\n")
            self.assertEqual(c.read_text(), item(k, "0123456789", 3) + b"END\r\n")
        self.assert_placement({k, other})


class MemcacheTextBackendFailure(MemcacheTextBase):
    """One memcached stopped (by pid) under the proxy; then all of them."""

    def test_dead_backend(self):
        ks = self.keys[:30]
        dead_port = self.ports[1]
        dead = [k for k in ks if self.owner(k) == dead_port]
        live = [k for k in ks if k not in dead]
        self.assertEqual(len(dead), 10)
        with McConn(self.port) as c:
            c.send("".join(f"set {k} 1 0 {len(k)} noreply\r\n{k}\r\n" for k in ks).encode())
            self.assertEqual(c.call_text(("get " + " ".join(ks) + "\r\n").encode()),
                             b"".join(item(k, k, 1) for k in ks) + b"END\r\n")
            self.fleet.backends[1].stop()
            for k in dead[:3]:
                reply = c.call_text(f"get {k}\r\n")
                self.assertTrue(reply.startswith(b"SERVER_ERROR "), reply)
                self.assertEqual(reply.count(b"\r\n"), 1, reply)
                self.assertTrue(b"mc1" in reply or b":%d" % dead_port in reply, f"backend not named: {reply!r}")
            # A multi-get over all shards: the live shards' items, the dead shard's keys left out.
            ask = ks + ks[:4]
            self.assertEqual(c.call_text(("get " + " ".join(ask) + "\r\n").encode()),
                             b"".join(item(k, k, 1) for k in ask if k in live) + b"END\r\n")
            self.assertTrue(c.call_text(f"set {dead[0]} 0 0 1\r\nx\r\n").startswith(b"SERVER_ERROR "))
            self.assertEqual(c.call_text(f"set {live[0]} 0 0 1\r\nx\r\n"), b"STORED\r\n")
            # noreply to the dead shard: still silent, and nothing stalls.
            c.send(f"set {dead[1]} 0 0 1 noreply\r\nx\r\ndelete {dead[2]} noreply\r\nget {live[0]}\r\n".encode())
            self.assertEqual(c.read_text(), item(live[0], "x") + b"END\r\n")
            self.assertTrue(c.call_text(f"incr {dead[3]} 1\r\n").startswith(b"SERVER_ERROR "))
            self.assertTrue(c.call_text(f"mg {dead[3]} v\r\n").startswith(b"SERVER_ERROR "))
            self.assertRegex(c.call_text(b"version\r\n"), rb"^VERSION ")
            reply = c.call_text(b"flush_all\r\n")
            self.assertTrue(reply.startswith(b"SERVER_ERROR "), reply)
            # Every server down: the multi-get itself fails.
            self.fleet.backends[0].stop()
            self.fleet.backends[2].stop()
            reply = c.call_text(("get " + " ".join(ks) + "\r\n").encode())
            self.assertTrue(reply.startswith(b"SERVER_ERROR "), reply)
            self.assertEqual(reply.count(b"\r\n"), 1, reply)
            self.assertRegex(c.call_text(b"version\r\n"), rb"^VERSION ")

    def setUp(self):
        pass  # backends are stopped by the test; nothing to flush between tests


if __name__ == "__main__":
    unittest.main(verbosity=2)
