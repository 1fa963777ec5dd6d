"""memcached binary protocol through ringproxy (2 workers) over 3 memcached servers (named
mc0..mc2, ketama fnv1a_64):

- memjs from npm (tests/clients/memjs_test.js), default options: set/get over all servers, a
  miss, add/replace/append/touch, delete, increment/decrement with an initial value,
  binary-safe values (NUL, CR LF, every byte), expiry; then every key is checked on the
  backends directly;
- raw sessions covering every opcode (GET/GETQ/GETK/GETKQ, SET/ADD/REPLACE and their quiet
  forms, APPEND/PREPEND(Q), DELETE(Q), INCREMENT/DECREMENT(Q) with initial value and expiry,
  TOUCH/GAT/GATQ/GATK/GATKQ, NOOP, VERSION, QUIT(Q), FLUSH(Q)) answered exactly as a lone
  memcached answers (cas uniques aside, which are checked against the owner's own);
- a quiet multi-get of 50 keys over all shards ended by NOOP: only the hits, in order, each
  with the client's opaque, then the NOOP;
- text, meta and binary requests mixed on one connection;
- hostile frames: a truncated header or body then close, a body length past the limit and a
  bad magic byte close that connection only; an unknown opcode answers 0x0081 with the
  opaque and the connection continues;
- a key reaches the same server whether written in text, meta (b) or binary.
"""
import base64
import json
import os
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import node_clients  # noqa: E402
from harness import McConn, mc_bin_request as req, mc_counter_extras as counter, mc_store_extras as store  # noqa: E402

MiB = 1 << 20
OK, NOT_FOUND, EXISTS, TOO_LARGE, INVALID, NOT_STORED, NON_NUMERIC = 0, 1, 2, 3, 4, 5, 6
UNKNOWN_COMMAND = 0x81


def exptime(seconds):
    return struct.pack(">I", seconds)


def u64(n):
    return struct.pack(">Q", n)


def run_binary(port, requests, barrier_opaque=0xB0B0):
    """Sends the requests and a NOOP in one write; returns the responses up to the NOOP's."""
    with McConn(port) as c:
        c.send(b"".join(requests) + req("NOOP", opaque=barrier_opaque))
        out = []
        while True:
            r = c.read_bin()
            out.append(r)
            if r.opcode == harness.MC_OP["NOOP"] and r.opaque == barrier_opaque:
                return out


def memjs_binary_value(i):
    """memjs_test.js's binaryValue(i)."""
    return (b"\x00\r\n\x00" + b"\r\nEND\r\nVALUE x 0 1\r\n%d\r\n" % i + bytes(range(256)) + b"\x80\x81\r")


class MemcacheBinary(harness.McFleetCase):
    POOL, KEY_PREFIX, KEYS_PER_SERVER, REFERENCE = "bin", "b:", 40, True

    def owner_cas(self, key):
        key = key.encode() if isinstance(key, str) else key
        with McConn(self.owner(key)) as c:
            reply = c.call_text(b"mg %s b c\r\n" % base64.b64encode(key))
        self.assertTrue(reply.startswith(b"HD c"), reply)
        return int(reply.split()[1][1:])

    def owner_ttl(self, key):
        with McConn(self.owner(key)) as c:
            reply = c.call_text(f"mg {key} t\r\n")
        self.assertTrue(reply.startswith(b"HD t"), reply)
        return int(reply.split()[1][1:])

    def assert_placement(self, keys):
        problems, owners = self.fleet.placement_problems(keys)
        self.assertEqual(problems, [])
        return owners

    # --- memjs --------------------------------------------------------------------------------
    def test_memjs_default_client(self):
        problem = node_clients.ensure_installed()
        self.assertIsNone(problem, problem)
        self.assertEqual(node_clients.package_version("memjs").split(".")[0], "1")
        keys = {"spread": self.keys[:9], "binary": self.keys[9:12], "counter": self.keys[12], "ttl": self.keys[13],
                "expire": self.keys[14]}
        out = node_clients.run_script("memjs_test.js", self.port, json.dumps(keys))
        self.assertEqual(out.returncode, 0, f"memjs_test.js failed:\n{out.stdout}\n{out.stderr}")
        self.assertIn("[memjs] OK", out.stdout)
        left = self.keys[:6] + self.keys[9:14]
        owners = self.assert_placement(left)
        self.assertEqual(set(owners.values()), set(self.ports))
        # What memjs wrote, read from the owners directly.
        for k in self.keys[:6]:
            with McConn(self.owner(k)) as c:
                self.assertEqual(c.call_text(f"mg {k} v\r\n"), b"VA %d\r\n%s\r\n" % (len(k) + 6, f"memjs:{k}".encode()))
        for i, k in enumerate(self.keys[9:12]):
            v = memjs_binary_value(i)
            with McConn(self.owner(k)) as c:
                self.assertEqual(c.call_text(f"mg {k} v\r\n"), b"VA %d\r\n%s\r\n" % (len(v), v))
        with McConn(self.owner(self.keys[12])) as c:
            self.assertEqual(c.call_text(f"mg {self.keys[12]} v\r\n"), b"VA 2\r\n0 \r\n")
        self.assertIn(self.owner_ttl(self.keys[13]), range(95, 101))
        self.assertEqual(self.owner_ttl(self.keys[0]), -1)

    # --- every opcode -------------------------------------------------------------------------
    def test_every_opcode_answers_as_memcached(self):
        a, b, n = self.keys[0:3]  # three owners
        m = self.keys[3]
        session = [
            req("SET", a, b"hello", store(5, 0), opaque=1), req("GET", a, opaque=2), req("GETK", a, opaque=3),
            req("GETQ", f"{a}x", opaque=4), req("GETKQ", a, opaque=5), req("GETK", f"{b}x", opaque=6),
            req("ADD", a, b"x", store(0, 0), opaque=7), req("ADDQ", a, b"x", store(0, 0), opaque=8),
            req("ADDQ", b, b"added", store(7, 0), opaque=9), req("ADD", m, b"m", store(1, 0), opaque=10),
            req("REPLACE", f"{n}x", b"x", store(0, 0), opaque=11), req("REPLACEQ", b, b"replaced", store(8, 0), opaque=12),
            req("REPLACEQ", f"{n}x", b"x", store(0, 0), opaque=13), req("REPLACE", m, b"mm", store(2, 0), opaque=14),
            req("SETQ", n, b"quiet", store(9, 0), opaque=15), req("SETQ", n, b"quiet2", store(9, 0), cas=12345, opaque=16),
            req("APPEND", a, b"++", opaque=17), req("PREPENDQ", a, b"--", opaque=18), req("APPENDQ", f"{n}x", b"x", opaque=19),
            req("PREPEND", f"{n}x", b"x", opaque=20), req("APPENDQ", b, b"!", opaque=21), req("PREPEND", b, b"<", opaque=22),
            req("GET", a, opaque=23), req("GETK", b, opaque=24), req("GETKQ", n, opaque=25), req("GETQ", m, opaque=26),
            req("DELETE", f"{n}x", opaque=27), req("DELETEQ", m, opaque=28), req("DELETEQ", m, opaque=29),
            req("GETK", m, opaque=30),
            req("INCREMENT", f"{n}c", extras=counter(5, 10, 0), opaque=31),
            req("INCREMENT", f"{n}c", extras=counter(5, 10, 0), opaque=32),
            req("DECREMENTQ", f"{n}c", extras=counter(1, 0, 0), opaque=33),
            req("DECREMENT", f"{n}c", extras=counter(100, 0, 0), opaque=34),
            req("INCREMENTQ", f"{n}c", extras=counter(7, 0, 0), opaque=35),
            req("INCREMENT", f"{b}c", extras=counter(1, 0, 0xFFFFFFFF), opaque=36),  # a miss, no create
            req("INCREMENT", a, extras=counter(1, 0, 0), opaque=37),  # non-numeric
            req("INCREMENT", f"{a}c", extras=counter(2 ** 64 - 1, 2 ** 64 - 2, 1000), opaque=38),
            req("INCREMENT", f"{a}c", extras=counter(3, 0, 0), opaque=39),  # wraps
            req("GET", f"{n}c", opaque=40),
            req("TOUCH", a, extras=exptime(1000), opaque=41), req("TOUCH", f"{a}x", extras=exptime(1), opaque=42),
            req("GAT", b, extras=exptime(1000), opaque=43), req("GATQ", f"{b}x", extras=exptime(1), opaque=44),
            req("GATQ", b, extras=exptime(1000), opaque=45), req("GATK", n, extras=exptime(1000), opaque=46),
            req("GATKQ", n, extras=exptime(1000), opaque=47), req("GATKQ", f"{n}x", extras=exptime(1000), opaque=48),
            req("GATK", f"{n}x", extras=exptime(1000), opaque=49),
            req("SET", m, b"", store(0, 0), opaque=50), req("GETK", m, opaque=51),
            req("NOOP", opaque=52),
        ]
        via_proxy = run_binary(self.port, session)
        via_memcached = run_binary(self.ref.port, session)
        self.assertEqual([r.without_cas() for r in via_proxy], [r.without_cas() for r in via_memcached])
        self.assertEqual([bool(r.cas) for r in via_proxy], [bool(r.cas) for r in via_memcached])
        by_opaque = {r.opaque: r for r in via_proxy}
        self.assertEqual(by_opaque[2].value, b"hello")
        self.assertNotIn(4, by_opaque)  # GETQ miss: silent
        self.assertNotIn(9, by_opaque)  # ADDQ success: silent
        self.assertEqual(by_opaque[8].status, EXISTS)  # ADDQ failure: answered
        self.assertEqual(by_opaque[16].status, EXISTS)  # SETQ with a stale cas: answered
        self.assertEqual(by_opaque[40].value, b"7 ")  # 10 +5 -1 -100 (floor 0, padded) +7
        self.assertEqual(by_opaque[39].value, u64(1))  # 2**64-2 + 3 wraps to 1
        self.assertEqual(by_opaque[52].opcode, harness.MC_OP["NOOP"])
        # cas uniques: the owners' own.
        self.assertEqual(by_opaque[23].cas, self.owner_cas(a))
        self.assertEqual(by_opaque[24].cas, self.owner_cas(b))
        self.assertEqual(by_opaque[46].cas, self.owner_cas(n))
        # Expirations given in binary extras reached the owners.
        for k in (a, b, n, f"{a}c"):
            self.assertIn(self.owner_ttl(k), range(995, 1001), k)
        self.assertEqual(self.owner_ttl(f"{n}c"), -1)
        owners = self.assert_placement([a, b, n, m, f"{n}c", f"{a}c"])
        self.assertEqual(set(owners.values()), set(self.ports))

    def test_cas_returned_and_checked(self):
        k = self.keys[4]
        with McConn(self.port) as c:
            r = c.call_bin("SET", k, b"v1", store(1, 0), opaque=0xDEADBEEF)
            self.assertEqual((r.status, r.opaque), (OK, 0xDEADBEEF))
            self.assertNotEqual(r.cas, 0)
            self.assertEqual(r.cas, self.owner_cas(k))
            got = c.call_bin("GETK", k, opaque=0xFFFFFFFF)
            self.assertEqual((got.status, got.cas, got.key, got.value, got.opaque), (OK, r.cas, k.encode(), b"v1", 0xFFFFFFFF))
            self.assertEqual(c.call_bin("SET", k, b"v2", store(0, 0), cas=r.cas + 100, opaque=5).status, EXISTS)
            self.assertEqual(c.call_bin("REPLACE", k, b"v2", store(0, 0), cas=r.cas + 100, opaque=5).status, EXISTS)
            self.assertEqual(c.call_bin("DELETE", k, cas=r.cas + 100, opaque=5).status, EXISTS)
            r2 = c.call_bin("SET", k, b"v2", store(2, 0), cas=r.cas, opaque=6)
            self.assertEqual(r2.status, OK)
            self.assertNotEqual(r2.cas, r.cas)
            self.assertEqual(r2.cas, self.owner_cas(k))
            self.assertEqual(c.call_bin("APPEND", k, b"+", cas=r.cas, opaque=7).status, EXISTS)
            r3 = c.call_bin("APPEND", k, b"+", cas=r2.cas, opaque=8)
            self.assertEqual(r3.status, OK)
            self.assertEqual(c.call_bin("GET", k, opaque=9).value, b"v2+")
            self.assertEqual(c.call_bin("DELETE", k, cas=r3.cas, opaque=10).status, OK)
        self.assert_placement([])

    def test_quiet_multiget_of_50_keys_ended_by_noop(self):
        ks = self.keys[:50]
        present = {k: (b"value of %s" % k.encode()) * (1 + i % 4) for i, k in enumerate(ks) if i % 5 not in (1, 3)}
        present[ks[0]] = bytes(range(256)) * (MiB // 256)  # one 1 MiB value
        writes = [req("SETQ", k, v, store(i, 0), opaque=i) for i, (k, v) in enumerate(present.items())]
        for port in (self.port, self.ref.port):
            self.assertEqual([(r.opcode, r.opaque) for r in run_binary(port, writes)], [(harness.MC_OP["NOOP"], 0xB0B0)])
        flags = {k: i for i, k in enumerate(present)}
        for opcode in ("GETKQ", "GETQ"):
            with self.subTest(opcode=opcode):
                gets = [req(opcode, k, opaque=0x10000 + i) for i, k in enumerate(ks)]
                via_proxy = run_binary(self.port, gets, barrier_opaque=77)
                want_keys = [k for k in ks if k in present]
                self.assertEqual(len(via_proxy), len(want_keys) + 1)
                for r, k in zip(via_proxy, want_keys):
                    self.assertEqual((r.opcode, r.status, r.opaque), (harness.MC_OP[opcode], OK, 0x10000 + ks.index(k)))
                    self.assertEqual(r.key, k.encode() if opcode == "GETKQ" else b"")
                    self.assertEqual(r.value, present[k])
                    self.assertEqual(r.extras, struct.pack(">I", flags[k]))
                self.assertEqual((via_proxy[-1].opcode, via_proxy[-1].opaque), (harness.MC_OP["NOOP"], 77))
                via_memcached = run_binary(self.ref.port, gets, barrier_opaque=77)
                self.assertEqual([r.without_cas() for r in via_proxy], [r.without_cas() for r in via_memcached])
        for k in list(present)[:5]:
            with McConn(self.port) as c:
                self.assertEqual(c.call_bin("GET", k).cas, self.owner_cas(k))
        owners = self.assert_placement(present)
        self.assertEqual(set(owners.values()), set(self.ports))

    def test_local_opcodes_version_noop_quit_flush(self):
        with McConn(self.port) as c:
            v = c.call_bin("VERSION", opaque=11)
            self.assertEqual((v.opcode, v.status, v.opaque), (harness.MC_OP["VERSION"], OK, 11))
            self.assertRegex(v.value, rb"^[!-~]+$")
            n = c.call_bin("NOOP", opaque=12)
            self.assertEqual((n.opcode, n.status, n.opaque, n.value), (harness.MC_OP["NOOP"], OK, 12, b""))
            s = c.call_bin("STAT", opaque=13)  # the proxy does not merge stats: refused, connection goes on
            self.assertEqual((s.opcode, s.opaque), (harness.MC_OP["STAT"], 13))
            self.assertNotEqual(s.status, OK)
            self.assertEqual(c.call_bin("NOOP", opaque=14).opaque, 14)
        ks = self.keys[:12]
        for flush in (req("FLUSH", opaque=21), req("FLUSH", extras=exptime(0), opaque=22), req("FLUSHQ", opaque=23)):
            replies = run_binary(self.port, [req("SETQ", k, b"x", store(0, 0)) for k in ks] + [flush])
            if flush[1] == harness.MC_OP["FLUSHQ"]:
                self.assertEqual([r.opcode for r in replies], [harness.MC_OP["NOOP"]])
            else:
                self.assertEqual([(r.opcode, r.status, r.opaque) for r in replies[:1]],
                                 [(harness.MC_OP["FLUSH"], OK, struct.unpack(">I", flush[12:16])[0])])
            self.assertEqual(self.fleet.locate(ks), {k.encode(): [] for k in ks}, "FLUSH left items behind")
            self.assertEqual(self.fleet.stored_keys(), set())
        # QUIT: earlier replies first, then the QUIT's, then close; nothing after it runs.
        with McConn(self.port) as c:
            c.send(req("SET", ks[0], b"q", store(0, 0), opaque=31) + req("GET", ks[0], opaque=32) +
                   req("QUIT", opaque=33) + req("SET", ks[1], b"after", store(0, 0), opaque=34))
            self.assertEqual([(r.opcode, r.opaque) for r in (c.read_bin(), c.read_bin(), c.read_bin())],
                             [(1, 31), (0, 32), (harness.MC_OP["QUIT"], 33)])
            self.assertEqual(c.wait_closed(5.0), b"")
        with McConn(self.port) as c:
            c.send(req("GET", ks[0], opaque=41) + req("QUITQ", opaque=42) + req("DELETE", ks[0], opaque=43))
            self.assertEqual((c.read_bin().value), b"q")
            self.assertEqual(c.wait_closed(5.0), b"")
        self.assert_placement([ks[0]])

    # --- dialects mixed -----------------------------------------------------------------------
    def mixed_session(self, pipelined):
        """Text, meta and binary requests on one connection, one after the other or all in
        one write; either way each must see the effects of the ones before it."""
        k1, k2, k3 = self.keys[:3]  # three owners
        chunks = [  # each ends with the one request that is answered
            req("SET", k1, b"bin", store(3, 0), opaque=1), f"get {k1} {k2}\r\n".encode(), req("GETK", k2, opaque=2),
            f"set {k2} 4 0 4\r\ntext\r\n".encode(), req("GETKQ", k2, opaque=3), f"mg {k1} v f\r\n".encode(),
            f"ms {k3} 4 F5 q\r\nmeta\r\nmn\r\n".encode(), req("GETQ", f"{k3}x", opaque=4) + req("GETK", k3, opaque=5),
            b"version\r\n", req("NOOP", opaque=6), b"mn\r\n", f"get {k3} {k2} {k1}\r\n".encode(),
        ]
        with McConn(self.port) as c:
            if pipelined:
                c.send(b"".join(chunks))
                got = []
                while got.count(b"MN\r\n") < 2:  # replies may be missing or extra if run out of order
                    got.append(c.read_reply())
                got.append(c.read_reply())
            else:
                got = []
                for chunk in chunks:
                    c.send(chunk)
                    got.append(c.read_reply())
            self.assertEqual(c.drain(0.2), b"")
        summary = [(r.opcode, r.status, r.opaque, r.key, r.value, r.extras) if isinstance(r, tuple)
                   else b"VERSION" if r.startswith(b"VERSION ") else r for r in got]
        self.assertEqual(summary, [
            (1, OK, 1, b"", b"", b""),
            b"VALUE %s 3 3\r\nbin\r\nEND\r\n" % k1.encode(),
            (0x0C, NOT_FOUND, 2, k2.encode(), b"", b""),
            b"STORED\r\n",
            (0x0D, OK, 3, k2.encode(), b"text", struct.pack(">I", 4)),
            b"VA 3 f3\r\nbin\r\n",
            b"MN\r\n",
            (0x0C, OK, 5, k3.encode(), b"meta", struct.pack(">I", 5)),
            b"VERSION",
            (0x0A, OK, 6, b"", b"", b""),
            b"MN\r\n",
            b"VALUE %s 5 4\r\nmeta\r\nVALUE %s 4 4\r\ntext\r\nVALUE %s 3 3\r\nbin\r\nEND\r\n"
            % (k3.encode(), k2.encode(), k1.encode()),
        ])
        owners = self.assert_placement([k1, k2, k3])
        self.assertEqual(set(owners.values()), set(self.ports))

    def test_text_meta_and_binary_on_one_connection(self):
        self.mixed_session(pipelined=False)

    def test_text_meta_and_binary_pipelined_run_in_order(self):
        # A write in one dialect must be seen by a later read in another, as on one server.
        self.mixed_session(pipelined=True)

    def test_binary_write_then_text_read_pipelined(self):
        # The smallest form of the ordering problem the pipelined mixed session shows.
        k = self.keys[5]
        stale = []
        for i in range(20):
            with McConn(self.port) as c:
                v = b"v%d" % i
                c.send(req("SET", k, v, store(0, 0), opaque=i) + f"get {k}\r\n".encode())
                self.assertEqual(c.read_bin().status, OK)
                got = c.read_text()
                if got != b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k.encode(), len(v), v):
                    stale.append((i, got))
        self.assertEqual(stale, [], "a text get pipelined after a binary SET of the same key did not see it")

    def test_same_server_whatever_dialect_wrote_the_key(self):
        ks = self.keys[:60]
        odd = [b"\x00nul%d" % i for i in range(8)] + [b"spa ce\r%d\xff" % i for i in range(8)]
        with McConn(self.port) as c:
            replies = run_binary(self.port, [req("SETQ", k, k.encode(), store(1, 0)) for k in ks[:30]] +
                                 [req("SETQ", k, k, store(2, 0)) for k in odd])
            self.assertEqual(len(replies), 1)
            c.send("".join(f"set {k} 3 0 {len(k)} noreply\r\n{k}\r\n" for k in ks[30:45]).encode())
            c.send("".join(f"ms {base64.b64encode(k.encode()).decode()} {len(k)} b F4 q\r\n{k}\r\n"
                           for k in ks[45:]).encode() + b"mn\r\n")
            self.assertEqual(c.read_text(), b"MN\r\n")
            # Every key read back in the other dialects.
            self.assertEqual(c.call_text(("get " + " ".join(ks) + "\r\n").encode()),
                             b"".join(b"VALUE %s %d %d\r\n%s\r\n" % (k.encode(), 1 if i < 30 else 3 if i < 45 else 4,
                                                                    len(k), k.encode()) for i, k in enumerate(ks))
                             + b"END\r\n")
        got = run_binary(self.port, [req("GETKQ", k, opaque=i) for i, k in enumerate(ks)])
        self.assertEqual([(r.opaque, r.key, r.value) for r in got[:-1]], [(i, k.encode(), k.encode()) for i, k in enumerate(ks)])
        with McConn(self.port) as c:
            for k in odd:
                self.assertEqual(c.call_text(b"mg %s b v f\r\n" % base64.b64encode(k)), b"VA %d f2\r\n%s\r\n" % (len(k), k))
        owners = self.assert_placement(ks + odd)
        self.assertEqual(set(owners.values()), set(self.ports))

    # --- hostile frames -----------------------------------------------------------------------
    def bystander_works(self, conn, key, opaque):
        conn.send(req("SET", key, b"still here", store(0, 0), opaque=opaque) + req("GET", key, opaque=opaque + 1))
        r1, r2 = conn.read_bin(), conn.read_bin()
        self.assertEqual((r1.status, r1.opaque), (OK, opaque))
        self.assertEqual((r2.status, r2.opaque, r2.value), (OK, opaque + 1, b"still here"))

    def test_hostile_frames_close_only_their_connection(self):
        k = self.keys[0]
        closing = {
            "truncated header then close": (req("GET", k, opaque=1)[:10], None),
            "truncated body then close": (req("SET", k, b"x" * 100, store(0, 0), opaque=2)[:60], None),
            "body length past the limit": (req("SET", k, b"", store(0, 0), opaque=3, body_length=0x7FFFFFF0), 3),
            "body length 4 GiB - 1": (req("GET", k, opaque=4, body_length=0xFFFFFFFF), 4),
            "bad magic 0x81": (req("GET", k, opaque=5, magic=0x81), None),
            "bad magic 0xff": (req("GET", k, opaque=6, magic=0xFF), None),
        }
        for name, (frame, opaque) in closing.items():
            with self.subTest(frame=name):
                bystander = McConn(self.port)
                victim = McConn(self.port)
                try:
                    pending = req("GETK", k, opaque=99)
                    bystander.send(pending[:30])  # mid-packet while the victim misbehaves
                    victim.send(req("NOOP", opaque=50) + frame)
                    noop = victim.read_bin()
                    self.assertEqual((noop.opcode, noop.opaque), (harness.MC_OP["NOOP"], 50))
                    if opaque is None and name.startswith("truncated"):
                        victim.sock.shutdown(socket.SHUT_WR)  # ... then close
                        self.assertEqual(victim.wait_closed(5.0), b"")
                    else:
                        rest = victim.wait_closed(5.0)  # the proxy closes it
                        if opaque is not None and rest:
                            r, end = harness.parse_bin_response(rest)
                            self.assertEqual((r.opaque, end), (opaque, len(rest)))
                            self.assertNotEqual(r.status, OK)
                        else:
                            self.assertEqual(rest, b"")
                    bystander.send(pending[30:])
                    r = bystander.read_bin()
                    self.assertEqual((r.opaque, r.key), (99, k.encode()))
                    self.bystander_works(bystander, k, 100)
                finally:
                    bystander.close()
                    victim.close()

    def test_unknown_opcode_and_invalid_packets_are_answered(self):
        k = self.keys[1]
        with McConn(self.port) as c:
            for opcode in (0x50, 0x1b, 0x20, 0xFE):
                with self.subTest(opcode=opcode):
                    r = c.call_bin(opcode, k, b"value", opaque=0xABC000 + opcode)
                    self.assertEqual((r.opcode, r.status, r.opaque), (opcode, UNKNOWN_COMMAND, 0xABC000 + opcode))
                    self.bystander_works(c, k, 10)
            # Framed but malformed: answered with "Invalid arguments", the frame skipped.
            for name, frame in {"GET with extras": req("GET", k, extras=b"\0\0\0\0", opaque=61),
                                "SET without extras": req("SET", k, b"v", opaque=62),
                                "key past the body": req("GET", k, opaque=63, body_length=1)[:25],
                                "key over 250 bytes": req("GET", b"k" * 251, opaque=64),
                                "TOUCH with a value": req("TOUCH", k, b"v", exptime(1), opaque=65)}.items():
                with self.subTest(frame=name):
                    c.send(frame)
                    r = c.read_bin()
                    self.assertEqual((r.opcode, r.status, r.opaque), (frame[1], INVALID, struct.unpack(">I", frame[12:16])[0]))
                    self.bystander_works(c, k, 20)
        self.assert_placement([k])


if __name__ == "__main__":
    unittest.main(verbosity=2)
