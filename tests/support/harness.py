"""Process launcher for integration tests: real redis-server, memcached, nutcracker and
ringproxy on free loopback ports, each stopped by pid when the test ends.

Every server binds 127.0.0.1 only. Ports come from the kernel (bind to port 0), so tests can
run in parallel and beside anything else on the machine.
"""
import atexit
import faulthandler
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BUILD = os.environ.get("RINGPROXY_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
_procs = []


_handed_out = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A loopback port nobody listens on, never the same one twice in this process (a config
    with two pools on one port is invalid). Probed below the kernel's ephemeral range: a port
    the kernel hands out by bind(0) can be given to an outgoing connection before the server
    we start binds it (tests that open 10,000 connections use up much of that range), while a
    port below it is never handed out implicitly."""
    low, _ = _ephemeral_range()
    if low > 12000:
        rng = random.Random()
        for _ in range(200):
            port = rng.randrange(10000, low)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    for _ in range(100):  # no room below the range: let the kernel pick
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port")


def binary(name):
    """Path of one of our binaries in the build tree."""
    for sub in ("proxy", "."):
        p = os.path.join(BUILD, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not built under {BUILD}")


class Proc:
    def __init__(self, argv, port, name, cwd=None, log=None):
        self.argv, self.port, self.name = argv, port, name
        self.log = log or tempfile.NamedTemporaryFile(prefix=name + "-", suffix=".log", delete=False).name
        self.popen = subprocess.Popen(argv, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, cwd=cwd)
        self.pid = self.popen.pid
        _procs.append(self)

    def wait_port(self, timeout=10.0, port=None):
        """Waits until the process accepts connections on its port (or another of its ports)."""
        port = port or self.port
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not listen on {port}: {self.output()}")

    def output(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def signal(self, sig):
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, timeout=5.0):
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        if self in _procs:
            _procs.remove(self)
        return self.popen.returncode


def _cleanup():
    for p in list(_procs):
        try:
            p.stop(2.0)
        except Exception:
            pass


atexit.register(_cleanup)


def start_redis(port=None, extra=()):
    port = port or free_port()
    argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no", *extra]
    return Proc(argv, port, f"redis-{port}").wait_port()


def start_memcached(port=None, extra=()):
    port = port or free_port()
    argv = [shutil.which("memcached") or "/usr/bin/memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0",
            "-m", "64", *extra]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    return Proc(argv, port, f"memcached-{port}").wait_port()


def write_config(text, directory=None):
    fd, path = tempfile.mkstemp(prefix="ringproxy-", suffix=".yml", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def start_nutcracker(config_path, listen_port, stats_port=None):
    stats_port = stats_port or free_port()
    argv = [shutil.which("nutcracker") or "/usr/sbin/nutcracker", "-c", config_path, "-s", str(stats_port),
            "-a", "127.0.0.1", "-v", "4"]
    return Proc(argv, listen_port, f"nutcracker-{listen_port}").wait_port()


def start_ringproxy(config_path, listen_port, extra=()):
    # ringproxy opens twemproxy's stats port (22222) unless told otherwise, and a port it cannot
    # bind stops it at start: tests that do not ask for one run without it, so that tests
    # running side by side never compete for 22222.
    if not any(a in ("-s", "--stats-port") or str(a).startswith("--stats-port=") for a in extra):
        extra = ["-s", "0", *extra]
    argv = [binary("ringproxy"), "-c", config_path, *extra]
    proc = Proc(argv, listen_port, f"ringproxy-{listen_port}").wait_port()
    # A pool's socket accepts (into its backlog) as soon as it is bound, a moment before the
    # admin listener is: wait for that one too, so a test can use it at once.
    args = [str(a) for a in extra]
    for i, a in enumerate(args):
        admin = args[i + 1] if a == "--admin" and i + 1 < len(args) else (a[8:] if a.startswith("--admin=") else None)
        if admin and admin.rsplit(":", 1)[-1].isdigit():
            proc.wait_port(port=int(admin.rsplit(":", 1)[-1]))
    return proc


def run_ringctl(*args, stdin=None):
    return subprocess.run([binary("ringctl"), *args], input=stdin, capture_output=True, text=True)


# ---------------------------------------------------------------------------------------------
# Raw RESP over a socket, for tests where the exact bytes matter (added for the Redis data-path
# tests; nothing above depends on it).

class ErrorReply(str):
    """A RESP error reply ("-ERR ..." / "!..."), parsed: the text without '-' and CRLF."""


class Incomplete(Exception):
    """The buffer does not hold a whole reply yet."""


def encode_command(*args):
    """The RESP multibulk encoding of one command; str args are UTF-8 encoded."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def parse_reply(buf, pos=0):
    """Parses one RESP2/RESP3 reply starting at buf[pos]. Returns (value, end). Raises
    Incomplete when more bytes are needed. Simple strings and bulk strings are bytes, errors
    ErrorReply, integers int, null None, arrays/sets/pushes lists, maps lists of pairs."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        raise Incomplete()
    kind, line = buf[pos:pos + 1], bytes(buf[pos + 1:nl])
    after = nl + 2
    if kind == b"+":
        return line, after
    if kind == b"-":
        return ErrorReply(line.decode(errors="replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"_":
        return None, after
    if kind == b",":
        return float(line), after
    if kind == b"#":
        return line == b"t", after
    if kind == b"(":
        return int(line), after
    if kind in (b"$", b"!", b"="):
        n = int(line)
        if n < 0:
            return None, after
        if len(buf) < after + n + 2:
            raise Incomplete()
        if buf[after + n:after + n + 2] != b"\r\n":
            raise ValueError(f"bad bulk terminator at {after + n}")
        data = bytes(buf[after:after + n])
        return (ErrorReply(data.decode(errors="replace")) if kind == b"!" else data), after + n + 2
    if kind in (b"*", b"~", b">", b"%", b"|"):
        n = int(line)
        if n < 0:
            return None, after
        items = []
        count = n * 2 if kind in (b"%", b"|") else n
        for _ in range(count):
            v, after = parse_reply(buf, after)
            items.append(v)
        if kind in (b"%", b"|"):
            items = list(zip(items[0::2], items[1::2]))
        return items, after
    raise ValueError(f"unknown RESP type {kind!r} at {pos}: {bytes(buf[pos:pos + 40])!r}")


class RawConn:
    """A plain socket to a RESP server, with a reply reader that keeps the exact bytes."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(4 << 20)
        if not chunk:
            raise ConnectionError("connection closed by peer")
        if self.pos > (1 << 20) and self.pos > len(self.buf) // 2:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += chunk

    def read_raw(self):
        """The exact bytes of the next reply."""
        while True:
            try:
                _, end = parse_reply(self.buf, self.pos)
            except Incomplete:
                self._fill()
                continue
            raw = bytes(self.buf[self.pos:end])
            self.pos = end
            return raw

    def read(self):
        """The next reply, parsed."""
        while True:
            try:
                value, end = parse_reply(self.buf, self.pos)
            except Incomplete:
                self._fill()
                continue
            self.pos = end
            return value

    def call(self, *args):
        self.send(encode_command(*args))
        return self.read()

    def call_raw(self, *args):
        self.send(encode_command(*args))
        return self.read_raw()

    def pending(self):
        """Bytes received but not yet read as replies."""
        return bytes(self.buf[self.pos:])

    def wait_closed(self, timeout=5.0):
        """Reads until the peer closes. Returns the bytes that came before the close, or
        raises TimeoutError if the connection is still open after `timeout` seconds."""
        data = bytearray(self.buf[self.pos:])
        self.buf, self.pos = bytearray(), 0
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        deadline = time.time() + timeout
        try:
            while True:
                try:
                    chunk = self.sock.recv(1 << 20)
                except ConnectionResetError:
                    return bytes(data)
                except socket.timeout:
                    raise TimeoutError(f"connection still open after {timeout}s; received {bytes(data[:200])!r}")
                if not chunk:
                    return bytes(data)
                data += chunk
                if time.time() > deadline:
                    raise TimeoutError(f"connection still open after {timeout}s; received {bytes(data[:200])!r}")
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass

    def close(self, reset=False):
        """Closes the socket; reset=True sends an RST (SO_LINGER 0) instead of a FIN."""
        if reset:
            import struct
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def redis_pool_config(name, listen_port, servers, hash_name="fnv1a_64", distribution="ketama", extra=""):
    """One twemproxy pool section with `redis: true`. `servers` are "host:port:weight [name]"
    strings; `extra` is more indented "  key: value\\n" lines."""
    lines = "".join(f"    - {s}\n" for s in servers)
    return (f"{name}:\n  listen: 127.0.0.1:{listen_port}\n  hash: {hash_name}\n  distribution: {distribution}\n"
            f"  redis: true\n{extra}  servers:\n{lines}")


def ringctl_owners(config_path, pool, keys):
    """{key: owner label} from `ringctl owner`, for text keys without newlines."""
    keys = list(keys)
    out = run_ringctl("owner", "-c", config_path, "--pool", pool, stdin="\n".join(keys) + "\n")
    if out.returncode != 0:
        raise RuntimeError(f"ringctl owner failed: {out.stderr}")
    owners = {}
    for line in out.stdout.splitlines():
        key, label = line.rsplit("\t", 1)
        owners[key] = label
    if len(owners) != len(set(keys)):
        raise RuntimeError(f"ringctl owner answered {len(owners)} keys for {len(set(keys))}")
    return owners


def label_port(label):
    """The port of an unnamed server label ("127.0.0.1:6379" or "127.0.0.1:6379:1")."""
    parts = label.split(":")
    return int(parts[1])


# ---------------------------------------------------------------------------------------------
# Admin HTTP and Prometheus text, for the reload and admin tests (nothing above depends on it).

def http_request(port, method="GET", path="/", raw=None, host="127.0.0.1", timeout=10.0):
    """One HTTP/1.1 exchange on a fresh connection, read until the server closes. `raw`
    replaces the whole request with exact bytes. Returns (status, {lower-case header: value},
    body bytes). A reset after the answer arrived (the server closing with unread request
    bytes) still returns the answer."""
    request = raw if raw is not None else (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                                           f"Content-Length: 0\r\nConnection: close\r\n\r\n").encode()
    data = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before taking everything
        try:
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            if not data:
                raise
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no HTTP header in answer {bytes(data[:200])!r}")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers and int(headers["content-length"]) != len(body):
        raise ValueError(f"Content-Length {headers['content-length']} but {len(body)} body bytes")
    return int(parts[1]), headers, body


def parse_prometheus(text):
    """Strictly parses Prometheus text exposition (0.0.4): every sample line is
    `name{label="v",...} value` or `name value`, and each family's HELP and TYPE lines come
    before its first sample. Returns {(name, ((label, value), ...)): float}; raises ValueError."""
    import re
    name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
    sample_re = re.compile(rf'^({name_re})(\{{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\}})? '
                           r'([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|[-+]?Inf))( -?[0-9]+)?$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
    helped, typed, seen_families, samples = set(), {}, set(), {}
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({name_re}) (.*)$", line)
            if m is None:
                if line.startswith("# HELP") or line.startswith("# TYPE"):
                    raise ValueError(f"line {n}: malformed {line!r}")
                continue
            kind, fam, rest = m.groups()
            if fam in seen_families:
                raise ValueError(f"line {n}: {kind} for {fam} after its samples")
            if kind == "HELP":
                helped.add(fam)
            else:
                if rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise ValueError(f"line {n}: bad type {rest!r}")
                typed[fam] = rest
            continue
        m = sample_re.match(line)
        if m is None:
            raise ValueError(f"line {n}: not a sample line: {line!r}")
        name, _, labels, value = m.group(1), m.group(2), m.group(3), m.group(4)
        fam = name
        for suffix in ("_sum", "_count", "_bucket"):
            if name.endswith(suffix) and name[:-len(suffix)] in typed and typed[name[:-len(suffix)]] in (
                    "histogram", "summary"):
                fam = name[:-len(suffix)]
        if fam not in helped or fam not in typed:
            raise ValueError(f"line {n}: sample of {fam} without HELP and TYPE before it")
        seen_families.add(fam)
        key = (name, tuple(sorted(label_re.findall(labels or ""))))
        if key in samples:
            raise ValueError(f"line {n}: duplicate sample {line!r}")
        samples[key] = float(value)
    return samples


def get_metrics(admin_port):
    """The proxy's /metrics, parsed by parse_prometheus."""
    status, _, body = http_request(admin_port, "GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}: {body[:200]!r}")
    return parse_prometheus(body.decode())


def metric_value(samples, name, **labels):
    """One sample's value from parse_prometheus output (KeyError when absent)."""
    return samples[(name, tuple(sorted(labels.items())))]


def wait_for(predicate, timeout=5.0, interval=0.02, what="condition"):
    """Polls predicate() until it returns a true value, which is returned; TimeoutError after
    `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# memcached: a pool section, a raw connection that reads text, meta and binary replies with
# their exact bytes, binary packets, and what a memcached server holds (added for the
# memcached tests; nothing above depends on it).

def memcache_pool_config(name, listen_port, servers, hash_name="fnv1a_64", distribution="ketama", extra=""):
    """One twemproxy pool section without `redis: true` (a memcached pool). `servers` are
    "host:port:weight [name]" strings; `extra` is more indented "  key: value\\n" lines."""
    lines = "".join(f"    - {s}\n" for s in servers)
    return (f"{name}:\n  listen: 127.0.0.1:{listen_port}\n  hash: {hash_name}\n  distribution: {distribution}\n"
            f"{extra}  servers:\n{lines}")


MC_BIN_REQUEST, MC_BIN_RESPONSE = 0x80, 0x81
MC_OP = {
    "GET": 0x00, "SET": 0x01, "ADD": 0x02, "REPLACE": 0x03, "DELETE": 0x04, "INCREMENT": 0x05, "DECREMENT": 0x06,
    "QUIT": 0x07, "FLUSH": 0x08, "GETQ": 0x09, "NOOP": 0x0a, "VERSION": 0x0b, "GETK": 0x0c, "GETKQ": 0x0d,
    "APPEND": 0x0e, "PREPEND": 0x0f, "STAT": 0x10, "SETQ": 0x11, "ADDQ": 0x12, "REPLACEQ": 0x13, "DELETEQ": 0x14,
    "INCREMENTQ": 0x15, "DECREMENTQ": 0x16, "QUITQ": 0x17, "FLUSHQ": 0x18, "APPENDQ": 0x19, "PREPENDQ": 0x1a,
    "TOUCH": 0x1c, "GAT": 0x1d, "GATQ": 0x1e, "GATK": 0x23, "GATKQ": 0x24,
}


def mc_bin_request(opcode, key=b"", value=b"", extras=b"", opaque=0, cas=0, vbucket=0, magic=MC_BIN_REQUEST,
                   body_length=None):
    """One binary protocol request packet; `opcode` is a number or a name of MC_OP.
    `body_length` overrides the header's total body length (for hostile frames)."""
    import struct
    if isinstance(opcode, str):
        opcode = MC_OP[opcode]
    key = key.encode() if isinstance(key, str) else key
    value = value.encode() if isinstance(value, str) else value
    body = len(extras) + len(key) + len(value) if body_length is None else body_length
    return struct.pack(">BBHBBHIIQ", magic, opcode, len(key), len(extras), 0, vbucket, body, opaque,
                       cas) + extras + key + value


def mc_store_extras(flags=0, exptime=0):
    """The extras of SET/ADD/REPLACE: flags and expiration."""
    import struct
    return struct.pack(">II", flags, exptime)


def mc_counter_extras(delta, initial=0, exptime=0):
    """The extras of INCREMENT/DECREMENT. exptime 0xffffffff: fail on a miss."""
    import struct
    return struct.pack(">QQI", delta, initial, exptime)


class BinResponse(tuple):
    """A parsed binary response: magic, opcode, status, opaque, cas, extras, key, value, raw."""
    __slots__ = ()
    _fields = ("magic", "opcode", "status", "opaque", "cas", "extras", "key", "value", "raw")

    def __new__(cls, *values):
        return tuple.__new__(cls, values)

    def __getattr__(self, name):
        try:
            return self[self._fields.index(name)]
        except ValueError:
            raise AttributeError(name) from None

    def without_cas(self):
        """(opcode, status, opaque, extras, key, value): what two servers' answers share."""
        return (self.opcode, self.status, self.opaque, self.extras, self.key, self.value)

    def __repr__(self):
        return (f"BinResponse(op=0x{self.opcode:02x}, status=0x{self.status:04x}, opaque={self.opaque}, "
                f"cas={self.cas}, extras={self.extras!r}, key={self.key!r}, value={self.value[:60]!r})")


def parse_bin_response(buf, pos=0):
    """One binary response packet at buf[pos]: (BinResponse, end); Incomplete if short."""
    import struct
    if len(buf) < pos + 24:
        raise Incomplete()
    magic, opcode, keylen, extlen, _dt, status, body, opaque, cas = struct.unpack_from(">BBHBBHIIQ", buf, pos)
    if magic != MC_BIN_RESPONSE:
        raise ValueError(f"bad response magic 0x{magic:02x} at {pos}: {bytes(buf[pos:pos + 40])!r}")
    end = pos + 24 + body
    if len(buf) < end:
        raise Incomplete()
    p = pos + 24
    extras = bytes(buf[p:p + extlen])
    key = bytes(buf[p + extlen:p + extlen + keylen])
    value = bytes(buf[p + extlen + keylen:end])
    return BinResponse(magic, opcode, status, opaque, cas, extras, key, value, bytes(buf[pos:end])), end


def parse_mc_text_reply(buf, pos=0):
    """The end of one text or meta reply at buf[pos] (Incomplete if short): a line, or VALUE
    items up to END, or `VA <n> ...` and its data block."""
    nl = buf.find(b"\n", pos)
    if nl < 0:
        raise Incomplete()
    line = bytes(buf[pos:nl + 1])
    if line.startswith(b"VA "):
        n = int(line.split()[1])
        end = nl + 1 + n + 2
        if len(buf) < end:
            raise Incomplete()
        return end
    if not line.startswith(b"VALUE "):
        return nl + 1
    p = pos
    while True:
        nl = buf.find(b"\n", p)
        if nl < 0:
            raise Incomplete()
        line = bytes(buf[p:nl + 1])
        if line == b"END\r\n":
            return nl + 1
        if not line.startswith(b"VALUE "):
            return p  # an error line after items: not part of this reply
        n = int(line.split()[3])
        p = nl + 1 + n + 2
        if len(buf) < p:
            raise Incomplete()


class McConn(RawConn):
    """A plain socket to a memcached speaker (memcached or the proxy), reading text, meta and
    binary replies with their exact bytes (a reply starting with 0x81 is binary)."""

    def _read_with(self, parse):
        while True:
            try:
                end = parse(self.buf, self.pos)
            except Incomplete:
                self._fill()
                continue
            raw = bytes(self.buf[self.pos:end])
            self.pos = end
            return raw

    def read_text(self):
        """The exact bytes of the next text/meta reply (a get's items with their END)."""
        return self._read_with(parse_mc_text_reply)

    def read_line(self):
        return self._read_with(lambda b, p: (b.index(b"\n", p) + 1) if b.find(b"\n", p) >= 0 else _incomplete())

    def read_exact(self, n):
        return self._read_with(lambda b, p: p + n if len(b) >= p + n else _incomplete())

    def read_bin(self):
        """The next binary response, parsed."""
        raw = self._read_with(lambda b, p: parse_bin_response(b, p)[1])
        return parse_bin_response(raw)[0]

    def read_reply(self):
        """The next reply of either kind: a BinResponse, or the exact bytes of a text one."""
        while len(self.buf) <= self.pos:
            self._fill()
        return self.read_bin() if self.buf[self.pos] == MC_BIN_RESPONSE else self.read_text()

    def call_text(self, data):
        self.send(data.encode() if isinstance(data, str) else data)
        return self.read_text()

    def call_bin(self, *args, **kwargs):
        self.send(mc_bin_request(*args, **kwargs))
        return self.read_bin()

    def drain(self, wait=0.2):
        """Bytes that arrive within `wait` seconds beyond those already read (b"" for none);
        b"<CLOSED>" is appended if the peer closed."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        data = bytearray(self.buf[self.pos:])
        self.buf, self.pos = bytearray(), 0
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    data += b"<CLOSED>"
                    break
                data += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            data += b"<CLOSED>"
        finally:
            self.sock.settimeout(old)
        return bytes(data)


def _incomplete():
    raise Incomplete()


def mc_exchange(port, data, timeout=10.0):
    """Sends `data` on a fresh connection, half-closes it, and returns every byte the server
    sent before closing (for sessions that end with quit or a close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                return bytes(out)
            out += chunk


def mc_keys(port):
    """{key bytes: {field: value}} of every live item on the memcached at `port`, from
    `lru_crawler metadump all` (keys come back URL-encoded and are decoded here)."""
    from urllib.parse import unquote_to_bytes
    with McConn(port) as c:
        c.send(b"lru_crawler metadump all\r\n")
        items = {}
        while True:
            line = c.read_line()
            if line == b"END\r\n":
                return items
            if line.startswith(b"ERROR") or line.startswith(b"BUSY"):
                raise RuntimeError(f"metadump on {port}: {line!r}")
            fields = dict(f.split(b"=", 1) for f in line.split())
            key = unquote_to_bytes(fields.pop(b"key"))
            items[key] = {k.decode(): v.decode() for k, v in fields.items()}


class McFleet:
    """`n` memcached servers behind one ringproxy memcached pool (servers named mc0, mc1, ...
    unless names=False), with the reference placement from `ringctl owner`."""

    def __init__(self, pool="mc", n=3, hash_name="fnv1a_64", distribution="ketama", workers=2, names=True,
                 memcached_extra=(), extra=""):
        self.pool = pool
        self.backends = [start_memcached(extra=memcached_extra) for _ in range(n)]
        self.ports = [b.port for b in self.backends]
        servers = [f"127.0.0.1:{p}:1" + (f" mc{i}" if names else "") for i, p in enumerate(self.ports)]
        self.label_to_port = {(f"mc{i}" if names else f"127.0.0.1:{p}"): p for i, p in enumerate(self.ports)}
        self.port = free_port()
        self.config = write_config(memcache_pool_config(pool, self.port, servers, hash_name, distribution, extra))
        self.proxy = start_ringproxy(self.config, self.port, extra=["--workers", str(workers)])

    def owners(self, keys):
        """{key: backend port} by `ringctl owner` (keys: str or bytes without a newline; the
        JSON output is read by position, so any other byte, NUL included, is fine)."""
        import json
        keys = list(dict.fromkeys(keys))
        raw = [k if isinstance(k, bytes) else k.encode() for k in keys]
        if any(b"\n" in k for k in raw):
            raise ValueError("ringctl owner reads one key per line")
        out = subprocess.run([binary("ringctl"), "owner", "-c", self.config, "--pool", self.pool, "--json"],
                             input=b"".join(k + b"\n" for k in raw), capture_output=True)
        if out.returncode != 0:
            raise RuntimeError(f"ringctl owner failed: {out.stderr!r}")
        rows = json.loads(out.stdout.decode("utf-8", errors="replace"))["owners"]
        if len(rows) != len(keys):
            raise RuntimeError(f"ringctl owner answered {len(rows)} keys for {len(keys)}")
        return {k: self.label_to_port[r["node"]] if r["node"] in self.label_to_port else label_port(r["node"])
                for k, r in zip(keys, rows)}

    def keys_by_port(self, prefix, per_port, candidates=3000):
        """{port: [per_port keys "<prefix><i>" that the port owns]}."""
        names = [f"{prefix}{i}" for i in range(candidates)]
        owners = self.owners(names)
        by_port = {p: [k for k in names if owners[k] == p][:per_port] for p in self.ports}
        for p, ks in by_port.items():
            if len(ks) < per_port:
                raise RuntimeError(f"backend {p} owns only {len(ks)} of {candidates} keys")
        return by_port

    def live_ports(self):
        return [b.port for b in self.backends if b.popen.poll() is None]

    def locate(self, keys):
        """{key bytes: [ports of the live backends holding it]}, asked of every backend with
        `mg <key>` (`mg <base64 key> b` for keys a text line cannot carry)."""
        import base64
        keys = [k.encode() if isinstance(k, str) else k for k in keys]
        found = {k: [] for k in keys}
        for port in self.live_ports():
            with McConn(port) as c:
                c.send(b"".join(b"mg %s\r\n" % k if _text_key(k) else b"mg %s b\r\n" % base64.b64encode(k)
                                for k in keys))
                for k in keys:
                    reply = c.read_text()
                    if reply.startswith(b"HD"):
                        found[k].append(port)
                    elif not reply.startswith(b"EN"):
                        raise RuntimeError(f"mg {k!r} on {port}: {reply!r}")
        return found

    def stored_keys(self):
        """Every key the live backends list in `lru_crawler metadump all`. memcached's crawler
        skips an item it finds busy, so a key may rarely be missing: use locate() to prove a
        key is there, this to find keys that should not be."""
        keys = set()
        for port in self.live_ports():
            keys |= set(mc_keys(port))
        return keys

    def placement_problems(self, expected_keys):
        """What is wrong with where the keys are: each of expected_keys must be on exactly one
        live backend, the one `ringctl owner` names, and no backend may hold any other key.
        Returns ([problem, ...], {key bytes: owner port})."""
        expected = {k.encode() if isinstance(k, str) else k for k in expected_keys}
        owners = self.owners(sorted(expected)) if expected else {}
        found = self.locate(sorted(expected))
        problems = [f"{k!r} is on {found[k]}, its owner is {owners[k]}" for k in sorted(expected)
                    if found[k] != [owners[k]]]
        problems += [f"unexpected key {k!r} on a backend" for k in sorted(self.stored_keys() - expected)]
        return problems, owners

    def flush_backends(self):
        for b in self.backends:
            if b.popen.poll() is None:
                with McConn(b.port) as c:
                    if c.call_text(b"flush_all\r\n") != b"OK\r\n":
                        raise RuntimeError(f"flush_all on {b.port} failed")

    def stop(self):
        self.proxy.stop()
        for b in self.backends:
            b.stop()
        try:
            os.unlink(self.config)
        except OSError:
            pass


class McFleetCase(unittest.TestCase):
    """Base of the memcached protocol suites: a McFleet (3 memcached -I 2m, room for 1 MiB
    values, whose default limit counts the item header too) behind pool POOL; `keys` cycle over
    the servers' owners, KEYS_PER_SERVER each, named KEY_PREFIX...; with REFERENCE, a lone
    memcached (`ref`) to compare replies with. Every server is flushed before each test, and a
    proxy that has exited fails it."""
    POOL = KEY_PREFIX = None
    KEYS_PER_SERVER = 40
    REFERENCE = False

    @classmethod
    def setUpClass(cls):
        faulthandler.dump_traceback_later(240, exit=True)  # a stalled reply must not hang ctest silently
        cls.fleet = McFleet(pool=cls.POOL, memcached_extra=("-I", "2m"))
        cls.port, cls.ports = cls.fleet.port, cls.fleet.ports
        cls.ref = start_memcached(extra=("-I", "2m")) if cls.REFERENCE else None
        cls.by_port = cls.fleet.keys_by_port(cls.KEY_PREFIX, cls.KEYS_PER_SERVER)
        cls.keys = [cls.by_port[p][i] for i in range(cls.KEYS_PER_SERVER) for p in cls.ports]

    @classmethod
    def tearDownClass(cls):
        faulthandler.cancel_dump_traceback_later()
        if cls.ref is not None:
            cls.ref.stop()
        cls.fleet.stop()

    def setUp(self):
        self.fleet.flush_backends()
        if self.ref is not None:
            with McConn(self.ref.port) as c:
                self.assertEqual(c.call_text(b"flush_all\r\n"), b"OK\r\n")

    def tearDown(self):
        self.assertIsNone(self.fleet.proxy.popen.poll(), f"proxy exited: {self.fleet.proxy.output()}")

    def owner(self, key):
        return self.fleet.owners([key])[key]


def _text_key(key):
    return 0 < len(key) <= 250 and all(0x20 < b < 0x7f or b > 0x7f for b in key)


# ---------------------------------------------------------------------------------------------
# Failure and limit tests: a process's resident memory, the stats port's JSON, keys grouped by
# owner, a misbehaving RESP server and a client with a small receive window (added for
# test_failures / test_limits; nothing above depends on it).

def rss_kb(pid):
    """VmRSS of a live process, in KiB (from /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def read_until_close(port, timeout=5.0):
    """Everything a server writes to a new connection before it closes it."""
    data = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                return bytes(data)
            data += chunk


def read_stats_port(port, timeout=5.0):
    """The JSON a twemproxy-style stats port writes before it closes, parsed."""
    import json
    return json.loads(read_until_close(port, timeout).decode())


def hashlike_keys(prefix, n):
    """n key names that hash like random ones ("<prefix>:<hex>"); runs such as "k:0".."k:999"
    spread unevenly under fnv1a."""
    import hashlib
    return [f"{prefix}:{hashlib.sha1(b'%d' % i).hexdigest()[:16]}" for i in range(n)]


def keys_by_owner(config_path, pool, keys):
    """{owner label: [keys, in the given order]} by `ringctl owner`."""
    owners = ringctl_owners(config_path, pool, keys)
    grouped = {}
    for k in keys:
        grouped.setdefault(owners[k], []).append(k)
    return grouped


class FakeRedis:
    """A small RESP server that can misbehave as no real redis-server will: it answers
    `GET key` with b"fake:" + key (MGET likewise), `PING` with PONG and anything else with
    +OK, and once cut_after(n) is armed it answers n more requests, then sends the first half
    of the next reply and closes that connection (after which it behaves again until
    re-armed). Every request it reads is recorded in `received` (lists of bytes). Listens on
    127.0.0.1."""

    def __init__(self, port=None):
        import threading
        self.lock = threading.Lock()
        self.received = []
        self.cuts = 0
        self._cut = None
        self._conns = []
        self._closed = False
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port or 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def value_of(key):
        return b"fake:" + (key.encode() if isinstance(key, str) else key)

    @staticmethod
    def reply_for(args):
        name = args[0].upper() if args else b""
        if name == b"GET" and len(args) == 2:
            v = FakeRedis.value_of(args[1])
            return b"$%d\r\n%s\r\n" % (len(v), v)
        if name == b"MGET":
            vs = [FakeRedis.value_of(k) for k in args[1:]]
            return b"*%d\r\n" % len(vs) + b"".join(b"$%d\r\n%s\r\n" % (len(v), v) for v in vs)
        if name == b"PING":
            return b"+PONG\r\n"
        return b"+OK\r\n"

    def cut_after(self, n):
        """The next n requests (on any connection) are answered; the one after gets half a
        reply and its connection is closed."""
        with self.lock:
            self._cut = n

    def _accept(self):
        import threading
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self._closed:
                    conn.close()
                    return
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf, pos = bytearray(), 0
        try:
            while True:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    return
                buf += chunk
                out = bytearray()
                while True:
                    try:
                        args, end = parse_reply(buf, pos)
                    except Incomplete:
                        break
                    pos = end
                    reply = self.reply_for(args)
                    with self.lock:
                        self.received.append(args)
                        cut = self._cut == 0
                        if self._cut is not None:
                            self._cut = None if cut else self._cut - 1
                        if cut:
                            self.cuts += 1
                    if cut:
                        conn.sendall(bytes(out) + reply[:len(reply) // 2])
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    out += reply
                if out:
                    conn.sendall(bytes(out))
        except OSError:
            return
        finally:
            conn.close()

    def stop(self):
        with self.lock:
            self._closed = True
            conns = list(self._conns)
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# Process memory and descriptor limits, for the churn test (nothing above depends on it).

def proc_status_kb(pid, field="VmRSS"):
    """A kB figure of /proc/PID/status (VmRSS, VmHWM, ...); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def raise_nofile():
    """Raises this process's RLIMIT_NOFILE soft limit to its hard limit (children started
    afterwards inherit it). Returns (soft, hard) after the change."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class SmallWindowConn(RawConn):
    """A RawConn whose receive buffer is set small before it connects, so a client that does
    not read stops the sender's kernel buffers from absorbing much."""

    def __init__(self, port, rcvbuf=65536, host="127.0.0.1", timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
