"""memcached meta commands (mg, ms, md, ma, mn, me) through ringproxy (2 workers) over 3
memcached servers (named mc0..mc2, ketama fnv1a_64), compared with a lone memcached where the
semantics do not depend on sharding:

- forwarded by key with their flags and opaque tokens intact (O123 echoed, k returns the key,
  f/t/s/c/v as memcached gives them; cas uniques are the owner's own), every key on exactly
  the server `ringctl owner` names;
- base64 keys (flag b) hashed on their decoded bytes: they land on the server the plain key
  written in text lands on, binary key bytes included;
- quiet mode across shards: a pipeline of ms/mg/md/ma with q over keys on all 3 servers, mn
  last, answers exactly what one memcached answers (only what memcached itself sends, in
  order, mn after everything before it); the cases memcached 1.6 answers although q is set
  (a miss echoing O/k flags is dropped; an auto-created ma item is answered) are checked on
  their own;
- errors: memcached's own CLIENT_ERROR/ERROR texts, and the connection continues; an
  unframeable ms closes that client only.
"""
import base64
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
from harness import McConn  # noqa: E402

MiB = 1 << 20
META_HEAD = re.compile(rb"^(HD|VA|EN|NF|NS|EX|MN|ME)\b")


def normalize(reply):
    """A meta reply with what differs between two servers blanked: cas uniques (c<N>, cas=N),
    last access (la=N), and a TTL of ~1000 s read a second apart (t999 / t1000)."""
    nl = reply.index(b"\n") + 1
    head, rest = reply[:nl], reply[nl:]
    head = re.sub(rb"(?<= )c\d+", b"c<cas>", head)
    head = re.sub(rb"(?<= )t(99[0-9]|1000)\b", b"t~1000", head)
    head = re.sub(rb"\bcas=\d+", b"cas=<cas>", head)
    head = re.sub(rb"\bla=\d+", b"la=<la>", head)
    head = re.sub(rb"\bexp=(99[0-9]|1000)\b", b"exp=~1000", head)
    return head + rest


def run_session(port, requests):
    """Sends the requests in one write; returns the replies (exact bytes, one per element) up
    to and including the answer to the last request, which must be mn."""
    data = b"".join(r.encode() if isinstance(r, str) else r for r in requests)
    assert data.endswith(b"mn\r\n")
    barriers = sum(1 for r in requests if (r.encode() if isinstance(r, str) else r).startswith(b"mn"))
    replies = []
    with McConn(port) as c:
        c.send(data)
        while barriers:
            replies.append(c.read_text())
            if replies[-1] == b"MN\r\n":
                barriers -= 1
        extra = c.drain(0.15)
    if extra:
        replies.append(b"<after the last mn>" + extra)
    return replies


def direct(port, request):
    with McConn(port) as c:
        return c.call_text(request)


def b64(key):
    return base64.b64encode(key.encode() if isinstance(key, str) else key).decode()


class MemcacheMeta(harness.McFleetCase):
    POOL, KEY_PREFIX, KEYS_PER_SERVER, REFERENCE = "meta", "m:", 40, True

    def assert_placement(self, keys):
        problems, owners = self.fleet.placement_problems(keys)
        self.assertEqual(problems, [])
        return owners

    def assert_same_as_memcached(self, requests):
        via_proxy = run_session(self.port, requests)
        via_memcached = run_session(self.ref.port, requests)
        self.assertEqual([normalize(r) for r in via_proxy], [normalize(r) for r in via_memcached])
        return via_proxy

    # ------------------------------------------------------------------------------------------
    def test_flags_and_opaque_tokens_forwarded(self):
        session = []
        for i, k in enumerate(self.keys[:6]):
            session += [
                f"ms {k} 5 T1000 F{33 + i} O{123 + i} k c\r\nhello\r\n",
                f"mg {k} v f t s k O77 c\r\n",
                f"mg {k} s v O{900 + i} q\r\n",  # a hit in quiet mode is answered
                f"mg {k}x v f O5\r\n",  # a miss, loud
                f"ms {k} 3 MA O12 k\r\nabc\r\n", f"ms {k} 1 MP F1\r\n>\r\n", f"ms {k} 1 ME\r\nz\r\n",
                f"mg {k} v f\r\n", f"me {k}\r\n", f"me {k}x\r\n",
                f"md {k}x O1 k\r\n", f"ms {k}n 2 T0\r\n10\r\n", f"ma {k}n O2 k v\r\n",
                f"ma {k}n MD D7 v t\r\n", f"ma {k}n MI D3\r\n", f"mg {k}n v\r\n",
                f"md {k} I T30 O3\r\n", f"mg {k} v c\r\n", f"mg {k} v\r\n", "mn\r\n",
            ]
        replies = self.assert_same_as_memcached(session)
        self.assertIn(b"HD O123 k%s c" % self.keys[0].encode(), replies[0])
        self.assertRegex(replies[1], rb"^VA 5 f33 t(999|1000) s5 k%s O77 c\d+\r\nhello\r\n$" %
                         re.escape(self.keys[0].encode()))
        # The cas uniques the proxy passed on are the owners' own.
        for i, k in enumerate(self.keys[:6]):
            with McConn(self.port) as c:
                via_proxy = c.call_text(f"mg {k}n c v\r\n")
            self.assertEqual(via_proxy, direct(self.owner(f"{k}n"), f"mg {k}n c v\r\n"))
        written = [k for k in self.keys[:6]] + [f"{k}n" for k in self.keys[:6]]
        owners = self.assert_placement(written)
        self.assertEqual(set(owners.values()), set(self.ports))

    def test_cas_and_invalidation_on_the_owner(self):
        k = self.keys[1]
        with McConn(self.port) as c:
            head = c.call_text(f"ms {k} 2 c\r\nv1\r\n")
            cas = int(re.match(rb"^HD c(\d+)\r\n$", head).group(1))
            self.assertEqual(direct(self.owner(k), f"mg {k} c\r\n"), b"HD c%d\r\n" % cas)
            self.assertEqual(c.call_text(f"ms {k} 2 C{cas + 5}\r\nv2\r\n"), b"EX\r\n")
            self.assertEqual(c.call_text(f"ms {k} 2 C{cas} O4\r\nv2\r\n"), b"HD O4\r\n")
            self.assertEqual(c.call_text(f"md {k} C{cas}\r\n"), b"EX\r\n")
            self.assertEqual(c.call_text(f"mg {k} v\r\n"), b"VA 2\r\nv2\r\n")
            self.assertEqual(direct(self.owner(k), f"mg {k} v\r\n"), b"VA 2\r\nv2\r\n")
        self.assert_placement([k])

    def test_base64_keys_land_with_the_plain_key(self):
        ks = self.keys[:60]
        with McConn(self.port) as c:
            # Written in meta with b, read in text; and the other way round.
            c.send("".join(f"ms {b64(k)} {len(k)} b F7 q\r\n{k}\r\n" for k in ks[:30]).encode() + b"mn\r\n")
            self.assertEqual(c.read_text(), b"MN\r\n")
            c.send("".join(f"set {k} 8 0 {len(k)} noreply\r\n{k}\r\n" for k in ks[30:]).encode())
            reply = c.call_text(("get " + " ".join(ks) + "\r\n").encode())
            self.assertEqual(reply, b"".join(b"VALUE %s %d %d\r\n%s\r\n" % (k.encode(), 7 if i < 30 else 8, len(k),
                                                                             k.encode()) for i, k in enumerate(ks))
                             + b"END\r\n")
            for k in ks[25:35]:
                # memcached returns the key (k) in base64 only for an item stored under a b key.
                reply = c.call_text(f"mg {b64(k)} b v k\r\n")
                shown = b"k%s b" % b64(k).encode() if k in ks[:30] else b"k%s" % k.encode()
                self.assertEqual(reply, b"VA %d %s\r\n%s\r\n" % (len(k), shown, k.encode()))
                self.assertEqual(reply, direct(self.owner(k), f"mg {b64(k)} b v k\r\n"))
            self.assertEqual(c.call_text(f"md {b64(ks[0])} b q\r\nmn\r\n"), b"MN\r\n")
            self.assertEqual(c.call_text(f"get {ks[0]}\r\n"), b"END\r\n")
            c.send(f"ms {b64(ks[0])} 2 b\r\n40\r\nma {b64(ks[0])} b v D2\r\n".encode())
            self.assertEqual(c.read_text(), b"HD\r\n")
            self.assertEqual(c.read_text(), b"VA 2\r\n42\r\n")
            self.assertEqual(c.call_text(f"incr {ks[0]} 1\r\n"), b"43\r\n")
        owners = self.assert_placement(ks)  # the decoded key's owner, checked on every backend
        self.assertEqual(set(owners.values()), set(self.ports))

    def test_binary_key_bytes_in_base64(self):
        # Keys a text line cannot carry: NUL, space, CR, high bytes. Their owners by ringctl.
        keys = [b"\x00bin\x00%d" % i for i in range(10)] + [b"sp ace %d\xff\r" % i for i in range(10)]
        with McConn(self.port) as c:
            for i, k in enumerate(keys):
                self.assertEqual(c.call_text(f"ms {b64(k)} 2 b F{i} O{i}\r\nv{i % 10}\r\n"), b"HD O%d\r\n" % i)
            for i, k in enumerate(keys):
                self.assertEqual(c.call_text(f"mg {b64(k)} b v f k\r\n"),
                                 b"VA 2 f%d k%s b\r\nv%d\r\n" % (i, b64(k).encode(), i % 10))
        with McConn(self.port) as binary:
            for i, k in enumerate(keys):
                r = binary.call_bin("GETK", k, opaque=i)
                self.assertEqual((r.status, r.key, r.value, r.opaque), (0, k, b"v%d" % (i % 10), i))
        owners = self.assert_placement(keys)
        self.assertGreater(len(set(owners.values())), 1)

    def test_quiet_pipeline_across_shards_matches_memcached(self):
        session = []
        for i in range(0, 30, 3):
            k1, k2, k3 = self.keys[i:i + 3]  # three owners
            session += [
                f"ms {k1} 3 q\r\none\r\n", f"ms {k2} 3 q T1000 F9\r\ntwo\r\n", f"ms {k3}c 1 q\r\n5\r\n",
                f"mg {k1}missing v q\r\n", f"mg {k1} v q\r\n", f"mg {k2} v f t q\r\n", f"mg {k3}missing v q\r\n",
                f"mg {k2} q\r\n",  # hit without v: HD, answered
                f"ms {k1} 1 q ME\r\nx\r\n",  # add over an existing item: NS, answered
                f"ms {k3} 1 q MR\r\nx\r\n",  # replace of a missing item: NS
                f"ms {k3} 3 q MS\r\nthr\r\n",
                f"ms {k3} 1 q MA\r\n!\r\n", f"ms {k3} 1 q MP\r\n<\r\n",
                f"md {k2} q\r\n", f"md {k2} q\r\n",  # HD dropped, then NF answered
                f"ma {k3}c q\r\n", f"ma {k3}c q MD D2\r\n", f"ma {k1}nope q\r\n", f"ma {k1} q\r\n",
                f"mg {k3}c v q\r\n", f"mg {k3} v q\r\n",
                f"ms {k1} 2 q MZ\r\nzz\r\n",  # invalid mode: CLIENT_ERROR, answered
                "mn\r\n" if i % 9 == 0 else "",
            ]
        session.append("mn\r\n")
        replies = self.assert_same_as_memcached(session)
        self.assertEqual(replies[-1], b"MN\r\n")
        self.assertNotIn(b"EN\r\n", replies)
        self.assertEqual(replies.count(b"MN\r\n"), 5)
        expect_keys = {k for i in range(0, 30, 3) for k in (self.keys[i], f"{self.keys[i + 2]}c", self.keys[i + 2])}
        self.assert_placement(expect_keys)

    def test_quiet_mg_miss_with_return_flags_is_dropped(self):
        # memcached 1.6 drops a quiet mg miss whatever flags it echoes (O, k, b).
        k1, k2, k3 = self.keys[:3]
        session = [f"ms {k2} 2\r\nhi\r\n",
                   f"mg {k1} v q O11\r\n", f"mg {k1} q k\r\n", f"mg {k1} v q k O12\r\n", f"mg {b64(k3)} b v q k\r\n",
                   f"mg {k2} v q O13 k\r\n", "mn\r\n"]
        replies = self.assert_same_as_memcached(session)
        self.assertEqual(replies, [b"HD\r\n", b"VA 2 O13 k%s\r\nhi\r\n" % k2.encode(), b"MN\r\n"])

    def test_quiet_ma_that_creates_the_item_is_answered(self):
        # memcached 1.6: with q, ma drops HD/VA for an existing counter, but an item it
        # auto-created (N flag on a miss) is answered.
        k1, k2, k3 = self.keys[:3]
        session = [f"ma {k1} N0 J5 q\r\n", f"ma {k2} N0 J7 q v O3\r\n", f"ma {k2} q v O4\r\n", f"ma {k3} q O5\r\n",
                   f"ma {k1} q\r\n", f"mg {k1} v\r\n", "mn\r\n"]
        replies = self.assert_same_as_memcached(session)
        self.assertEqual(replies, [b"HD\r\n", b"VA 1 O3\r\n7\r\n", b"NF O5\r\n", b"VA 1\r\n6\r\n", b"MN\r\n"])

    def test_mn_waits_for_slow_quiet_requests(self):
        big = bytes(range(256)) * (MiB // 256)
        a, b, c_ = self.keys[:3]
        with McConn(self.port) as c:
            for k in (a, c_):
                self.assertEqual(c.call_text(b"ms %s %d T0\r\n%s\r\n" % (k.encode(), len(big), big)), b"HD\r\n")
            session = (f"mg {a} v q\r\nmg {b} v q\r\nms {b} 1 q\r\nx\r\nmg {c_} v q\r\nmg {b} v q\r\nmn\r\n"
                       f"mg {a} s q\r\nmn\r\n").encode()
            c.send(session)
            expect = [b"VA %d\r\n%s\r\n" % (MiB, big), b"VA %d\r\n%s\r\n" % (MiB, big), b"VA 1\r\nx\r\n", b"MN\r\n",
                      b"HD s%d\r\n" % MiB, b"MN\r\n"]
            for want in expect:
                got = c.read_text()
                self.assertEqual(got[:40], want[:40])
                self.assertEqual(got, want)
            self.assertEqual(c.drain(0.2), b"")
        self.assert_placement([a, b, c_])

    def test_errors_match_memcached_and_the_connection_continues(self):
        k = self.keys[0]
        cases = ["mg\r\n", f"mg {k} !\r\n", f"mg {k} v v\r\n", f"ms {k} 2 MZ\r\nab\r\n", "mg %%%% b\r\n",
                 f"ma {k} D abc\r\n", f"mg {'k' * 251} v\r\n", f"md {'k' * 251} q\r\n", f"ms {k} 1 S5\r\nx\r\n",
                 f"ms {k} 2 q MZ\r\nab\r\n", f"ms {k} 2 T-1\r\nab\r\n", "mz foo\r\n", "mn\r\n", "mn ignored words\r\n",
                 f"me {k}\r\n", f"ma {k} q MI D1\r\n"]
        for request in cases:
            with self.subTest(request=request[:40]):
                self.assert_same_as_memcached([f"ms {k} 4 T0\r\ntext\r\n", request, f"mg {k} v\r\n", "mn\r\n"])

    def test_unframeable_ms_closes_only_that_client(self):
        k, other = self.keys[0], self.keys[1]
        for bad in (f"ms {k} abc\r\nxyz\r\n", f"ms {k}\r\n", f"ms {k} -1\r\n", f"ms {k} 2\r\nabc\r\n",
                    f"ms {k} 99999999999\r\n"):
            with self.subTest(request=bad), McConn(self.port) as bystander, McConn(self.port) as victim:
                bystander.send(f"mg {other}".encode())
                victim.send(f"ms {other} 2\r\nok\r\n{bad}".encode())
                got = victim.wait_closed(5.0)
                self.assertTrue(got.startswith(b"HD\r\nCLIENT_ERROR "), got)
                self.assertEqual(got.count(b"\r\n"), 2, got)
                bystander.send(b" v\r\n")
                self.assertEqual(bystander.read_text(), b"VA 2\r\nok\r\n")
        self.assert_placement([other])


if __name__ == "__main__":
    unittest.main(verbosity=2)
