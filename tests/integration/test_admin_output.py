"""What the admin endpoints and the stats port write, whatever a config names its pools and
servers, and what that costs when many clients ask at once.

1. /metrics with server and pool names over 2,000 bytes holding quotes, backslashes, line
   feeds, carriage returns and tabs (all of which YAML lets a name carry): the whole scrape
   parses with a strict line parser (every line a comment or `name{labels} value`, label
   values using only the format's three escapes), and every label reads back as the config
   had it. Before, lines were cut at 1023 bytes and glued to the next sample.
2. Names holding bytes that are not UTF-8 (raw in the YAML file: overlong forms, an encoded
   surrogate, sequences cut short, 0xFF) and control characters: /stats, /status, /ring, the
   stats port and both replies of POST /reload are JSON that a strict reader (Python's
   json.loads on the bytes) accepts, each bad byte read back as U+FFFD, valid multibyte UTF-8
   as it was; /metrics carries U+FFFD too.
3. 5,000 servers (never connected: nothing listens there, and servers are connected on
   demand) named so that the stats JSON is 5.6 MB, and 200 clients that connect to the stats
   port and never read: the proxy's RSS grows by less than 40 MiB (one shared rendering
   instead of one per client), at most 64 of them stay open, those are closed by the 10 s
   write deadline, and a client that reads gets the whole JSON meanwhile. The same for 30
   clients asking /stats, and (5,000 unnamed servers) /metrics (13 MB) and /status over HTTP
   without reading; a 65th idle connection closes the oldest.
"""
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402

REPLACEMENT = "\ufffd"


def yaml_quoted(text):
    """`text` as a YAML double-quoted scalar (escapes for quote, backslash and controls)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# A strict reader of Prometheus text exposition 0.0.4, written from the format's rules.
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
VALUE = re.compile(r"^(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|NaN|[-+]Inf)$")


def parse_label_value(line, i):
    """Reads a label value starting after its opening quote; returns (value, index after the
    closing quote). Only \\\\, \\" and \\n are escapes; a raw line feed cannot occur (lines
    are split on it)."""
    out = []
    while True:
        if i >= len(line):
            raise ValueError("unterminated label value")
        ch = line[i]
        i += 1
        if ch == '"':
            return "".join(out), i
        if ch != "\\":
            out.append(ch)
            continue
        if i >= len(line):
            raise ValueError("label value ends in a backslash")
        esc = line[i]
        i += 1
        if esc not in '\\"n':
            raise ValueError(f"unknown escape \\{esc}")
        out.append("\n" if esc == "n" else esc)


def parse_sample(line):
    """`name{a="x",...} value` -> (name, {label: value}, float); ValueError otherwise."""
    m = re.match(NAME, line)
    if m is None:
        raise ValueError("no metric name")
    name, i, labels = m.group(0), m.end(), {}
    if i < len(line) and line[i] == "{":
        i += 1
        while line[i:i + 1] != "}":
            lm = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*=\"").match(line, i)
            if lm is None:
                raise ValueError(f"bad label at {i}")
            label = lm.group(0)[:-2]
            value, i = parse_label_value(line, lm.end())
            if label in labels:
                raise ValueError(f"label {label} twice")
            labels[label] = value
            if line[i:i + 1] == ",":
                i += 1
            elif line[i:i + 1] != "}":
                raise ValueError(f"',' or '}}' expected at {i}")
        i += 1
    if line[i:i + 1] != " " or not VALUE.match(line[i + 1:]):
        raise ValueError(f"' value' expected at {i}")
    return name, labels, float(line[i + 1:])


def parse_scrape(body):
    """A whole scrape: UTF-8, every line a comment or a sample. Returns [(name, labels, value)]."""
    text = body.decode("utf-8")  # strict: a byte that is not UTF-8 fails the scrape
    if not text.endswith("\n"):
        raise ValueError("scrape does not end in a line feed")
    samples = []
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            if not re.match(rf"^# (HELP|TYPE) {NAME} .+$", line):
                raise ValueError(f"line {n}: bad comment {line[:80]!r}")
            continue
        try:
            samples.append(parse_sample(line))
        except (ValueError, IndexError) as e:
            raise ValueError(f"line {n}: {e}: {line[:120]!r}...") from None
    return samples


def strict_json(raw):
    """json.loads on the bytes as they came: UTF-8 and no control character in a string."""
    return json.loads(raw.decode("utf-8"), strict=True)


class ProxyCase(unittest.TestCase):
    """One proxy per class, from a config written as bytes."""
    config_bytes = None  # set by setUpClass of each subclass

    @classmethod
    def start(cls, config_bytes, extra=()):
        cls.tmp = tempfile.mkdtemp(prefix="ringproxy-admin-output-")
        cls.config = os.path.join(cls.tmp, "proxy.yml")
        with open(cls.config, "wb") as f:
            f.write(config_bytes)
        cls.admin, cls.stats_port = harness.free_port(), harness.free_port()
        cls.proxy = harness.start_ringproxy(cls.config, cls.listen, extra=[
            "--admin", f"127.0.0.1:{cls.admin}", "-s", str(cls.stats_port), "-a", "127.0.0.1", *extra])
        cls.proxy.wait_port(port=cls.admin)
        cls.proxy.wait_port(port=cls.stats_port)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def get(self, path, method="GET"):
        status, headers, body = harness.http_request(self.admin, method, path)
        self.assertEqual(status, 200, body[:300])
        return headers, body


# 1 -------------------------------------------------------------------------------------------
class MetricsWithLongNames(ProxyCase):
    @classmethod
    def setUpClass(cls):
        cls.listen = harness.free_port()
        unused = [harness.free_port() for _ in range(4)]  # nothing listens there
        tail = "x" * 2100
        cls.names = [
            'quote"d\\back\\slash\nline\rcr\ttab"' + tail,
            "\\\\\\n" + "\\" * 50 + '"' * 50 + tail + "\n",
            "plain-" + "y" * 2500,
        ]
        cls.pool = 'pool"with\\odd\nname-' + "p" * 2100
        servers = [f"127.0.0.1:{p}:1 {n}" for p, n in zip(unused, cls.names)] + [f"127.0.0.1:{unused[3]}:1"]
        cls.labels = cls.names + [f"127.0.0.1:{unused[3]}"]
        cls.addresses = [f"127.0.0.1:{p}" for p in unused]
        # An explicit key ("? "): YAML limits an implicit key to one line of 1024 characters.
        text = (f"? {yaml_quoted(cls.pool)}\n:\n  listen: 127.0.0.1:{cls.listen}\n  redis: true\n  servers:\n"
                + "".join(f"    - {yaml_quoted(s)}\n" for s in servers))
        cls.start(text.encode())

    def test_every_line_parses_and_every_label_round_trips(self):
        _, body = self.get("/metrics")
        self.assertGreater(max(len(line) for line in body.split(b"\n")), 4000)  # long lines, not cut
        samples = parse_scrape(body)
        per_backend = [s for s in samples if s[0] == "ringproxy_backend_requests_total"]
        self.assertEqual(len(per_backend), 4)
        self.assertEqual(sorted(s[1]["backend"] for s in per_backend), sorted(self.labels))
        self.assertEqual({s[1]["pool"] for s in per_backend}, {self.pool})
        self.assertEqual(sorted(s[1]["address"] for s in per_backend), sorted(self.addresses))
        self.assertEqual(set(per_backend[0][1]), {"pool", "backend", "address"})
        # Every backend family has one line per backend, every pool family one line: nothing
        # glued together or split apart.
        families = {}
        for name, labels, _ in samples:
            families.setdefault(name, []).append(labels)
        for name, rows in families.items():
            if name.startswith("ringproxy_backend_latency_seconds_bucket"):
                self.assertEqual(len(rows) % 4, 0, name)
            elif name.startswith("ringproxy_backend_"):
                self.assertEqual(len(rows), 4, name)
                self.assertEqual(sorted(r["backend"] for r in rows), sorted(self.labels), name)
            elif name.startswith("ringproxy_pool_"):
                self.assertEqual([r["pool"] for r in rows], [self.pool], name)
        self.assertIn("ringproxy_pool_requests_total", families)
        self.assertIn("ringproxy_uptime_seconds", families)

    def test_the_json_outputs_carry_the_same_names(self):
        _, body = self.get("/status")
        st = strict_json(body)
        self.assertEqual([p["name"] for p in st["pools"]], [self.pool])
        self.assertEqual(sorted(b["name"] for b in st["pools"][0]["backends"]), sorted(self.labels))
        stats = strict_json(harness.read_until_close(self.stats_port))
        self.assertEqual(set(stats[self.pool]) - {"client_eof", "client_err", "client_connections",
                                                   "server_ejects", "forward_error", "fragments"},
                         set(self.names) | {self.addresses[3]})


# 2 -------------------------------------------------------------------------------------------
BAD_SERVER_NAMES = [
    (b"over\xc0\xaf", "over" + REPLACEMENT * 2),            # overlong '/'
    (b"over3\xe0\x80\xaf", "over3" + REPLACEMENT * 3),     # overlong, three bytes
    (b"sur\xed\xa0\x80", "sur" + REPLACEMENT * 3),          # encoded surrogate U+D800
    (b"cut\xe2\x82", "cut" + REPLACEMENT * 2),              # truncated at the end
    (b"cut4\xf0\x9f\x98-", "cut4" + REPLACEMENT * 3 + "-"),  # truncated before ASCII
    (b"ff\xff\xfe", "ff" + REPLACEMENT * 2),
    (b"big\xf4\x90\x80\x80", "big" + REPLACEMENT * 4),      # past U+10FFFF
    (b"stray\x80", "stray" + REPLACEMENT),
    (b"caf\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "caf\u00e9\u20ac\U0001F600"),  # valid: kept
]
BAD_POOL = (b"pool\xff\xc0", "pool" + REPLACEMENT * 2)


class JsonWithNonUtf8Names(ProxyCase):
    @classmethod
    def setUpClass(cls):
        cls.listen = harness.free_port()
        cls.unused = [harness.free_port() for _ in BAD_SERVER_NAMES]
        cls.good_config = cls.config_text(BAD_SERVER_NAMES)
        cls.start(cls.good_config)

    @classmethod
    def config_text(cls, names, control_name=True):
        # Raw bytes in the YAML file, in plain scalars; a control character through a
        # double-quoted scalar's escape (a raw one is not allowed in YAML).
        lines = [BAD_POOL[0] + b":\n", b"  listen: 127.0.0.1:%d\n" % cls.listen, b"  redis: true\n",
                 b"  servers:\n"]
        for port, (raw, _) in zip(cls.unused, names):
            lines.append(b"    - 127.0.0.1:%d:1 %s\n" % (port, raw))
        if control_name:
            lines.append(b'    - "127.0.0.1:%d:1 ctl\\x01\\x1f\\x7f"\n' % harness.free_port())
        return b"".join(lines)

    def expected_names(self):
        return {decoded for _, decoded in BAD_SERVER_NAMES} | {"ctl\x01\x1f\x7f"}

    def test_stats_port_and_http_stats_are_strict_json(self):
        pool = BAD_POOL[1]
        for what, raw in (("stats port", harness.read_until_close(self.stats_port)),
                          ("/stats", self.get("/stats")[1])):
            with self.subTest(what):
                stats = strict_json(raw)
                self.assertIn(pool, stats)
                servers = set(stats[pool]) - {"client_eof", "client_err", "client_connections", "server_ejects",
                                              "forward_error", "fragments"}
                self.assertEqual(servers, self.expected_names())
        # Valid UTF-8 is sent as it is, not escaped.
        self.assertIn("caf\u00e9\u20ac\U0001F600".encode(), self.get("/stats")[1])

    def test_status_and_ring_are_strict_json(self):
        st = strict_json(self.get("/status")[1])
        self.assertEqual([p["name"] for p in st["pools"]], [BAD_POOL[1]])
        self.assertEqual({b["name"] for b in st["pools"][0]["backends"]}, self.expected_names())
        # The pool's name in the query, percent-encoded as a client would send it.
        quoted = "".join("%%%02X" % b for b in BAD_POOL[0])
        ring = strict_json(self.get(f"/ring?pool={quoted}")[1])
        self.assertEqual(ring["pool"], BAD_POOL[1])
        self.assertEqual({n["node"] for n in ring["nodes"]}, self.expected_names())

    def test_metrics_replace_bad_bytes(self):
        samples = parse_scrape(self.get("/metrics")[1])
        backends = {s[1]["backend"] for s in samples if s[0] == "ringproxy_backend_requests_total"}
        self.assertEqual(backends, self.expected_names())

    def test_reload_replies_are_strict_json(self):
        # A config refused with a message that quotes bad bytes and a control character: two
        # servers with the same name.
        dup = (b"dup\xff\xed\xa0\x80", None)
        with open(self.config, "wb") as f:
            f.write(self.config_text([dup, dup], control_name=False))
        try:
            status, headers, body = harness.http_request(self.admin, "POST", "/reload")
            self.assertEqual(status, 422, body)
            self.assertIn("json", headers["content-type"])
            reply = strict_json(body)
            self.assertIs(reply["ok"], False)
            self.assertIn("dup" + REPLACEMENT * 4, reply["error"])
            st = strict_json(self.get("/status")[1])
            self.assertIn("dup" + REPLACEMENT * 4, st["last_reload_error"])
            self.assertGreaterEqual(st["reload_failures"], 1)
        finally:
            with open(self.config, "wb") as f:
                f.write(self.good_config)
        status, _, body = harness.http_request(self.admin, "POST", "/reload")
        self.assertEqual(status, 200, body)
        reply = strict_json(body)
        self.assertIs(reply["ok"], True)
        self.assertGreaterEqual(reply["generation"], 2)


# 3 -------------------------------------------------------------------------------------------
SERVERS = 5000
MAX_CONNECTIONS = 64        # AdminServer::kMaxConnections
WRITE_TIMEOUT = 10.0        # AdminServer::kWriteTimeoutMs
RSS_GROWTH_BOUND_KB = 40 * 1024


def open_fds(pid):
    """The number of descriptors process `pid` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def connections_to(port):
    """Established TCP connections whose local end is 127.0.0.1:`port`: the proxy's side of
    each client connection it holds (accepted or in its backlog), from /proc/net/tcp. A
    connection the proxy has closed leaves this state at once, whatever the client does."""
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and int(local.split(":")[1], 16) == port:
                count += 1
    return count


def non_reader(port, request=b""):
    """A client with a 4 KiB receive window that sends `request` and never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    if request:
        s.sendall(request)
    return s


class ManyServers(ProxyCase):
    """5,000 servers on a few ports nobody listens on. Addresses must differ within a pool:
    one loopback address per server."""
    name_bytes = 0  # each server named with this many bytes (0: unnamed)

    @classmethod
    def setUpClass(cls):
        cls.listen = harness.free_port()
        ports = [harness.free_port() for _ in range(4)]
        servers = []
        for i in range(SERVERS):
            server = f"127.1.{i // 250}.{i % 250 + 1}:{ports[i % 4]}:1"
            if cls.name_bytes:
                server += f" s{i:05d}-" + "n" * (cls.name_bytes - 7)
            servers.append(server)
        cls.start(harness.redis_pool_config("many", cls.listen, servers).encode(), extra=["--workers", "2"])

    def settled_rss(self):
        # The control thread gives freed memory back every 2 s (malloc_trim): measure after.
        time.sleep(2.5)
        return harness.rss_kb(self.proxy.pid)

    def check_full_stats(self):
        stats = strict_json(harness.read_until_close(self.stats_port, timeout=20))
        servers = {k: v for k, v in stats["many"].items() if isinstance(v, dict)}
        self.assertEqual(len(servers), SERVERS)
        return servers

    def never_reading(self, port, count, requests=(b"",), bound_kb=RSS_GROWTH_BOUND_KB):
        """Opens `count` clients that send one of `requests` (in turn) and never read; checks
        the RSS bound, the connection cap, that a reader is served meanwhile, and that the write
        deadline closes them. Returns the RSS growth in KiB."""
        rss = self.settled_rss()
        fds_before = open_fds(self.proxy.pid)
        clients = []
        try:
            for i in range(count):
                clients.append(non_reader(port, requests[i % len(requests)]))
            time.sleep(0.5)
            grown = self.settled_rss() - rss
            # What the proxy holds: its open descriptors, not the established connections on the
            # port, which include those still waiting in the listen backlog (on a loaded machine
            # 200 connects overflow it and complete later, as SYNs are retried).
            held = open_fds(self.proxy.pid) - fds_before
            print(f"\n  {count} non-readers on port {port}: RSS {rss} KiB, +{grown} KiB; {held} held", file=sys.stderr)
            self.assertLess(grown, bound_kb, f"RSS grew by {grown} KiB with {count} non-readers")
            self.assertLessEqual(held, MAX_CONNECTIONS)
            # Still writing to them (else this test would not test much): the kernel could not
            # take the whole answer.
            self.assertGreaterEqual(held, min(count, MAX_CONNECTIONS) // 2)
            # A client that reads still gets the whole JSON, at once.
            started = time.time()
            self.check_full_stats()
            self.assertLess(time.time() - started, 5.0)
            # The write deadline closes the rest.
            harness.wait_for(lambda: connections_to(port) == 0, timeout=WRITE_TIMEOUT + 5, interval=0.2,
                             what="non-readers closed by the write deadline")
            return grown
        finally:
            for c in clients:
                c.close()


class StatsClientsThatNeverRead(ManyServers):
    """Names of 900 bytes make the stats JSON 5.6 MB: more than the kernel's socket buffers
    take (autotuning goes up to tcp_wmem's 4 MiB), as with 10,000 servers and 2.3 MB on a
    link with less buffering. Before, each client held its own copy: 200 of them over 1 GB."""
    name_bytes = 900

    def test_servers_are_connected_on_demand(self):
        servers = self.check_full_stats()
        self.assertEqual(sum(s["server_connections"] for s in servers.values()), 0)
        self.assertEqual(sum(s["requests"] for s in servers.values()), 0)

    def test_stats_port_clients_that_never_read(self):
        size = len(harness.read_until_close(self.stats_port, timeout=20))
        self.assertGreater(size, 5_000_000)
        self.never_reading(self.stats_port, 200)

    def test_http_stats_clients_that_never_read(self):
        self.assertGreater(len(self.get("/stats")[1]), 5_000_000)
        self.never_reading(self.admin, 30, [b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"])


class MetricsClientsThatNeverRead(ManyServers):
    """Unnamed servers: /metrics is 13 MB (before, each client held it, and a second copy
    while its answer was put together)."""

    def test_http_metrics_clients_that_never_read(self):
        samples = parse_scrape(self.get("/metrics")[1])
        self.assertEqual(len([s for s in samples if s[0] == "ringproxy_backend_requests_total"]), SERVERS)
        self.never_reading(self.admin, 30, [b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                                            b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"])

    def test_connection_cap_closes_the_oldest(self):
        idle = [socket.create_connection(("127.0.0.1", self.admin)) for _ in range(MAX_CONNECTIONS + 10)]
        try:
            # The control loop may still be busy with a rendering: wait for it to accept them.
            harness.wait_for(lambda: connections_to(self.admin) == MAX_CONNECTIONS, timeout=5, interval=0.1,
                             what=f"{MAX_CONNECTIONS} connections held")
            time.sleep(0.3)
            self.assertEqual(connections_to(self.admin), MAX_CONNECTIONS)
            # The oldest were closed: they read EOF at once; the newest are still open.
            idle[0].settimeout(2)
            self.assertEqual(idle[0].recv(10), b"")
            idle[-1].settimeout(0.2)
            with self.assertRaises(socket.timeout):
                idle[-1].recv(10)
            # Monitoring still gets through.
            status, _, body = harness.http_request(self.admin, "GET", "/status")
            self.assertEqual(status, 200)
            self.assertEqual(len(strict_json(body)["pools"][0]["backends"]), SERVERS)
        finally:
            for s in idle:
                s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
