"""Client-facing limits of ringproxy, over real redis-server and memcached.

1. client_connections: the limit holds across workers; the client beyond it gets
   `-ERR max number of clients reached` (memcached: `SERVER_ERROR too many open connections`)
   and is closed; when one leaves another gets in; every refusal is counted in /metrics.
2. max_request_bytes / max_request_args: a request whose header announces too big an argument
   (or value) is refused before its payload is sent and that client alone is closed; a value
   just under the limit is accepted; an MGET beyond max_request_args is refused.
3. max_pending_requests: a client that pipelines 10000 GETs and does not read is no longer read
   from (the backend stops seeing its GETs, the proxy's RSS stays flat); when it reads, all
   10000 replies arrive in order.
4. client_idle_timeout: an idle client is closed after 1-2.5 s; one waiting for a reply is not,
   nor right after that reply arrives; an active one stays; closes are counted.
5. --max-buffered-bytes: clients that pipeline large SETs without reading (the last one still
   arriving) push the process over the limit; then new requests get `-ERR ringproxy is over
   its buffer limit` (counted) instead of memory, and once those clients read and leave,
   service is normal. Replies that clients do not read must not take the process far past the
   limit, and one large reply, once delivered, must not leave it over the limit for good.
   Replies held behind a stalled request of the same client count against the limit too.
"""
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402
from harness import ErrorReply, McConn, RawConn, SmallWindowConn, encode_command  # noqa: E402


def pool_metric(admin, name, pool):
    return harness.metric_value(harness.get_metrics(admin), name, pool=pool)


def start_proxy(config_text, port, workers=2, extra=()):
    """ringproxy with an admin port and a stats port of its own; returns (proc, admin port)."""
    admin = harness.free_port()
    path = harness.write_config(config_text)
    proc = harness.start_ringproxy(path, port, extra=["--workers", str(workers), "--admin", f"127.0.0.1:{admin}",
                                                      "-s", str(harness.free_port()), *extra])
    proc.wait_port(port=admin)
    proc.config_path = path
    return proc, admin


def stop_proxy(proc):
    proc.stop()
    os.unlink(proc.config_path)


class ClientConnections(unittest.TestCase):
    LIMIT = 5

    @classmethod
    def setUpClass(cls):
        cls.redis = harness.start_redis()
        cls.mc = harness.start_memcached()
        cls.rport, cls.mport = harness.free_port(), harness.free_port()
        extra = f"  client_connections: {cls.LIMIT}\n"
        text = (harness.redis_pool_config("r", cls.rport, [f"127.0.0.1:{cls.redis.port}:1"], extra=extra)
                + harness.memcache_pool_config("m", cls.mport, [f"127.0.0.1:{cls.mc.port}:1"], extra=extra))
        cls.proxy, cls.admin = start_proxy(text, cls.rport, workers=2)
        cls.proxy.wait_port(port=cls.mport)
        time.sleep(0.2)  # wait_port's own probe connections must be gone before counting

    @classmethod
    def tearDownClass(cls):
        stop_proxy(cls.proxy)
        cls.redis.stop()
        cls.mc.stop()

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"ringproxy exited: {self.proxy.output()}")

    def check(self, pool, port, probe, answer_prefix, refusal):
        rejected_before = pool_metric(self.admin, "ringproxy_pool_clients_rejected_total", pool)
        refusals = 0

        def admitted():
            """A new client: True if it is served; False if refused (and then closed)."""
            nonlocal refusals
            c = McConn(port)
            first = c.drain(0.2)  # a refused client is told at once; an admitted one hears nothing
            if first == b"":
                c.send(probe)
                r = c.read_line()
                self.assertTrue(r.startswith(answer_prefix), r)
                return c
            self.assertEqual(first, refusal + b"<CLOSED>", "the refused client gets the error and is closed")
            refusals += 1
            c.close()
            return None

        clients = []
        for i in range(self.LIMIT):
            c = admitted()
            self.assertIsNotNone(c, f"client {i + 1} of {self.LIMIT} refused")
            clients.append(c)
        for _ in range(3):
            self.assertIsNone(admitted(), f"a client beyond client_connections: {self.LIMIT} was admitted")
        for c in clients:  # the admitted ones are untouched
            c.send(probe)
            self.assertTrue(c.read_line().startswith(answer_prefix))
        # One leaves: a new client gets its place (once the proxy has seen the close).
        clients.pop(0).close()
        newcomer = harness.wait_for(admitted, timeout=3.0, interval=0.05, what="a client admitted after one left")
        clients.append(newcomer)
        self.assertIsNone(admitted(), "full again")
        harness.wait_for(lambda: pool_metric(self.admin, "ringproxy_pool_clients_rejected_total", pool)
                         - rejected_before >= refusals, timeout=2.0, what="rejections counted")
        self.assertEqual(pool_metric(self.admin, "ringproxy_pool_clients_rejected_total", pool) - rejected_before,
                         refusals)
        for c in clients:
            c.close()

    def test_redis_pool(self):
        self.check("r", self.rport, encode_command("PING"), b"+PONG", b"-ERR max number of clients reached\r\n")

    def test_memcache_pool(self):
        self.check("m", self.mport, b"version\r\n", b"VERSION ", b"SERVER_ERROR too many open connections\r\n")


class RequestSize(unittest.TestCase):
    MAX_BYTES = 1048576

    @classmethod
    def setUpClass(cls):
        cls.redis = harness.start_redis()
        cls.mc = harness.start_memcached(extra=("-I", "4m"))  # memcached's own item limit above ours
        cls.rport, cls.mport = harness.free_port(), harness.free_port()
        extra = f"  max_request_bytes: {cls.MAX_BYTES}\n  max_request_args: 100\n"
        text = (harness.redis_pool_config("r", cls.rport, [f"127.0.0.1:{cls.redis.port}:1"], extra=extra)
                + harness.memcache_pool_config("m", cls.mport, [f"127.0.0.1:{cls.mc.port}:1"], extra=extra))
        cls.proxy, cls.admin = start_proxy(text, cls.rport, workers=2)
        cls.proxy.wait_port(port=cls.mport)
        cls.direct = redis.Redis(port=cls.redis.port)

    @classmethod
    def tearDownClass(cls):
        cls.direct.close()
        stop_proxy(cls.proxy)
        cls.redis.stop()
        cls.mc.stop()

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"ringproxy exited: {self.proxy.output()}")

    def assert_redis_client_works(self, c):
        self.assertEqual(c.call("SET", "other", "fine"), b"OK")
        self.assertEqual(c.call("GET", "other"), b"fine")

    def test_redis_big_argument_refused_from_its_header(self):
        other = RawConn(self.rport)
        self.assert_redis_client_works(other)
        victim = RawConn(self.rport)
        t = time.time()
        victim.send(b"*3\r\n$3\r\nSET\r\n$7\r\nbig-key\r\n$2097152\r\n")  # and not one byte of the payload
        data = victim.wait_closed(timeout=3.0)
        self.assertLess(time.time() - t, 1.0)
        self.assertTrue(data.startswith(b"-ERR ") and data.endswith(b"\r\n") and data.count(b"\r\n") == 1, data)
        self.assertIsNone(self.direct.get("big-key"))
        self.assert_redis_client_works(other)
        self.assert_redis_client_works(RawConn(self.rport))
        other.close()

    def test_redis_request_at_the_limit_is_accepted(self):
        # max_request_bytes bounds the arguments' bytes in all: "SET" + "under" + the value.
        c = RawConn(self.rport)
        value = (b"0123456789abcdef" * (self.MAX_BYTES // 16))[:self.MAX_BYTES - 8]
        self.assertEqual(c.call("SET", "under", value), b"OK")
        self.assertEqual(c.call("GET", "under"), value)
        self.assertEqual(self.direct.get("under"), value)
        c.close()
        over = RawConn(self.rport)
        over.send(encode_command("SET", "under", value + b"x"))
        self.assertTrue(over.wait_closed(timeout=3.0).startswith(b"-ERR Protocol error: request too large"))
        self.assertEqual(self.direct.get("under"), value)

    def test_redis_too_many_arguments(self):
        c = RawConn(self.rport)
        self.direct.mset({f"a{i}": f"v{i}" for i in range(150)})
        reply = c.call("MGET", *[f"a{i}" for i in range(150)])  # 151 arguments
        self.assertIsInstance(reply, ErrorReply)
        fine = RawConn(self.rport)
        self.assertEqual(fine.call("MGET", *[f"a{i}" for i in range(99)]),  # 100 arguments
                         [f"v{i}".encode() for i in range(99)])
        c.close()
        fine.close()

    def test_redis_request_refused_once_its_arguments_pass_the_limit(self):
        # Every argument fits, the request does not: an MSET of 29 pairs of 50 KB values is
        # ~1.45 MB against 1 MiB. It is refused at the header that passes the bound, so the
        # proxy never holds much more than the limit of it, and none of it is written.
        other = RawConn(self.rport)
        self.assert_redis_client_works(other)
        victim = RawConn(self.rport)
        value = b"v" * 50000
        pieces = [b"*59\r\n$4\r\nMSET\r\n"]
        for i in range(29):
            key = b"whole-%d" % i
            pieces.append(b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value))
        sent = 0
        try:
            for p in pieces:
                victim.sock.sendall(p)
                sent += len(p)
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = victim.wait_closed(timeout=3.0)
        self.assertTrue(data.startswith(b"-ERR Protocol error: request too large"), data)
        self.assertIn(b"max_request_bytes", data)
        self.assertEqual(self.direct.exists(*[f"whole-{i}" for i in range(29)]), 0)
        # The same pairs in requests under the limit are fine.
        self.assertEqual(other.call("MSET", *[x for i in range(10) for x in (f"whole-{i}", value)]), b"OK")
        self.assertEqual(self.direct.get("whole-9"), value)
        self.assert_redis_client_works(RawConn(self.rport))
        other.close()

    def test_a_client_refused_while_still_sending_reads_its_error_not_a_reset(self):
        # The proxy refuses a 4 MiB SET at its header while the client is still sending the
        # value. Closing a socket with unread input sends a reset, and a reset makes the
        # client's kernel drop the error it had received but not read; so the proxy shuts its
        # side and reads and drops the rest until the client hangs up.
        for attempt in range(5):
            victim = RawConn(self.rport)
            failures = []

            def send_all():
                try:
                    victim.sock.sendall(encode_command("SET", "sending", b"s" * (4 * self.MAX_BYTES)))
                except OSError as e:
                    failures.append(e)

            sender = threading.Thread(target=send_all)
            sender.start()
            sender.join(timeout=10)
            self.assertFalse(sender.is_alive())
            self.assertEqual(failures, [], f"attempt {attempt}: the proxy reset the connection")
            data = victim.wait_closed(timeout=5.0)
            self.assertTrue(data.startswith(b"-ERR Protocol error: ") and data.endswith(b"\r\n"), f"attempt {attempt}: {data!r}")
            victim.close()
        self.assertIsNone(self.direct.get("sending"))
        self.assert_redis_client_works(RawConn(self.rport))

    def test_memcache_big_value_refused_from_its_header(self):
        other = McConn(self.mport)
        self.assertEqual(other.call_text(b"set other 0 0 4\r\nfine\r\n"), b"STORED\r\n")
        victim = McConn(self.mport)
        t = time.time()
        victim.send(b"set big 0 0 2097152\r\n")
        data = victim.wait_closed(timeout=3.0)
        self.assertLess(time.time() - t, 1.0)
        self.assertRegex(data, rb"^(SERVER_ERROR|CLIENT_ERROR) [^\r\n]+\r\n$")
        self.assertEqual(other.call_text(b"get big other\r\n"), b"VALUE other 0 4\r\nfine\r\nEND\r\n")
        value = (b"0123456789abcdef" * (self.MAX_BYTES // 16))[:self.MAX_BYTES - 1]
        self.assertEqual(other.call_text(b"set under 0 0 %d\r\n%s\r\n" % (len(value), value)), b"STORED\r\n")
        self.assertEqual(other.call_text(b"get under\r\n"), b"VALUE under 0 %d\r\n%s\r\nEND\r\n" % (len(value), value))
        other.close()


class PendingRequests(unittest.TestCase):
    VALUE = 8192
    KEYS = 200
    REQUESTS = 10000

    def setUp(self):
        self.redis = harness.start_redis()
        self.port = harness.free_port()
        text = harness.redis_pool_config("r", self.port, [f"127.0.0.1:{self.redis.port}:1"],
                                         extra="  max_pending_requests: 100\n")
        self.proxy, self.admin = start_proxy(text, self.port, workers=1)
        self.direct = redis.Redis(port=self.redis.port)

    def tearDown(self):
        alive = self.proxy.popen.poll() is None
        self.direct.close()
        stop_proxy(self.proxy)
        self.redis.stop()
        self.assertTrue(alive, f"ringproxy exited: {self.proxy.output()}")

    def value(self, i):
        head = b"%d:" % i
        return (head * (self.VALUE // len(head) + 1))[:self.VALUE]

    def gets_seen_by_backend(self):
        return int(self.direct.info("commandstats").get("cmdstat_get", {}).get("calls", 0))

    def test_a_client_that_does_not_read_is_not_read(self):
        self.direct.mset({f"p{i}": self.value(i) for i in range(self.KEYS)})
        c = SmallWindowConn(self.port)
        self.assertEqual(c.call("GET", "p1"), self.value(1))
        rss0 = harness.rss_kb(self.proxy.pid)
        gets0 = self.gets_seen_by_backend()
        data = b"".join(encode_command("GET", f"p{i % self.KEYS}") for i in range(self.REQUESTS))
        sender = threading.Thread(target=c.sock.sendall, args=(data,), daemon=True)
        sender.start()
        time.sleep(0.7)
        early = self.gets_seen_by_backend() - gets0
        time.sleep(0.8)
        seen = self.gets_seen_by_backend() - gets0
        grown = harness.rss_kb(self.proxy.pid) - rss0
        # 100 pending, plus what the kernel's socket buffers took (a few MB at most).
        self.assertLess(seen, 1500, f"the backend saw {seen} of {self.REQUESTS} GETs of a client that does not read")
        self.assertEqual(seen, early, "the proxy kept reading a client that does not read")
        self.assertLess(grown, 8192, f"proxy RSS grew by {grown} KiB")
        # It reads now: everything, in order.
        for i in range(self.REQUESTS):
            r = c.read()
            if r != self.value(i % self.KEYS):
                self.fail(f"reply {i}: {r[:30]!r}")
        sender.join(5)
        self.assertFalse(sender.is_alive())
        self.assertEqual(self.gets_seen_by_backend() - gets0, self.REQUESTS)
        self.assertEqual(c.call("PING"), b"PONG")
        c.close()


class IdleTimeout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = harness.start_redis()
        cls.direct = redis.Redis(port=cls.redis.port)
        cls.direct.set("slow", "answer")
        cls.port, cls.port2 = harness.free_port(), harness.free_port()
        server = [f"127.0.0.1:{cls.redis.port}:1"]
        text = (harness.redis_pool_config("idle", cls.port, server,
                                          extra="  client_idle_timeout: 1000\n  timeout: 5000\n")
                + harness.redis_pool_config("idle2", cls.port2, server,
                                            extra="  client_idle_timeout: 2000\n  timeout: 5000\n"))
        cls.proxy, cls.admin = start_proxy(text, cls.port, workers=2)
        cls.proxy.wait_port(port=cls.port2)

    @classmethod
    def tearDownClass(cls):
        cls.redis.signal(signal.SIGCONT)
        cls.direct.close()
        stop_proxy(cls.proxy)
        cls.redis.stop()

    def tearDown(self):
        self.redis.signal(signal.SIGCONT)
        self.assertIsNone(self.proxy.popen.poll(), f"ringproxy exited: {self.proxy.output()}")

    def idle_closed(self, pool="idle"):
        return pool_metric(self.admin, "ringproxy_pool_idle_closed_total", pool)

    def stall_backend(self):
        self.redis.signal(signal.SIGSTOP)
        self.addCleanup(self.redis.signal, signal.SIGCONT)

    def assert_open_and_silent(self, c, seconds):
        c.sock.settimeout(seconds)
        try:
            data = c.sock.recv(1 << 16)
        except socket.timeout:
            return
        finally:
            c.sock.settimeout(10.0)
        self.fail(f"the waiting client got {data!r} (b'' means closed)")

    def test_idle_client_is_closed(self):
        before = self.idle_closed()
        c = RawConn(self.port)
        self.assertEqual(c.call("PING"), b"PONG")
        t = time.time()
        data = c.wait_closed(timeout=4.0)
        idle = time.time() - t
        self.assertEqual(data, b"")
        self.assertGreaterEqual(idle, 0.9)
        self.assertLessEqual(idle, 2.5)
        self.assertEqual(self.idle_closed() - before, 1)

    def test_active_client_stays_open(self):
        before = self.idle_closed()
        c = RawConn(self.port)
        for _ in range(11):  # 3.3 s, three times the idle timeout
            self.assertEqual(c.call("PING"), b"PONG")
            time.sleep(0.3)
        self.assertEqual(c.call("GET", "slow"), b"answer")
        self.assertEqual(self.idle_closed(), before)
        c.close()

    def test_client_waiting_for_a_reply_is_not_closed(self):
        c = RawConn(self.port)
        self.assertEqual(c.call("PING"), b"PONG")
        before = self.idle_closed()
        self.stall_backend()
        c.send(encode_command("GET", "slow"))
        self.assert_open_and_silent(c, 3.0)
        self.assertEqual(self.idle_closed(), before)
        self.redis.signal(signal.SIGCONT)
        self.assertEqual(c.read(), b"answer")
        c.close()

    def test_client_is_not_closed_right_after_a_slow_reply(self):
        """client_idle_timeout 2000: a GET waits 3 s for a stalled backend; 1.2 s after its
        reply (idle for 1.2 s, and one sweep has certainly run) the client is still served."""
        c = RawConn(self.port2)
        self.assertEqual(c.call("PING"), b"PONG")
        self.stall_backend()
        c.send(encode_command("GET", "slow"))
        self.assert_open_and_silent(c, 3.0)
        self.redis.signal(signal.SIGCONT)
        self.assertEqual(c.read(), b"answer")
        time.sleep(1.2)
        try:
            reply = c.call("PING")
        except (ConnectionError, OSError) as e:
            reply = repr(e)
        self.assertEqual(reply, b"PONG", "a client idle for 1.2 s (client_idle_timeout 2000) was closed: its "
                                         "idle time was counted from its request, not from its reply")
        c.close()


class BufferLimit(unittest.TestCase):
    LIMIT = 4000000
    HEAVY = 4
    BIG = 512 * 1024
    OVER = "over its buffer limit"

    def setUp(self):
        self.redis = harness.start_redis()
        self.port = harness.free_port()
        text = harness.redis_pool_config("r", self.port, [f"127.0.0.1:{self.redis.port}:1"])
        self.proxy, self.admin = start_proxy(text, self.port, workers=2,
                                             extra=["--max-buffered-bytes", str(self.LIMIT)])
        self.direct = redis.Redis(port=self.redis.port)
        self.probe = RawConn(self.port)
        self.assertEqual(self.probe.call("SET", "small", "s"), b"OK")
        self.limit_errors0 = self.limit_errors()

    def tearDown(self):
        alive = self.proxy.popen.poll() is None
        self.probe.close()
        self.direct.close()
        stop_proxy(self.proxy)
        self.redis.stop()
        self.assertTrue(alive, f"ringproxy exited: {self.proxy.output()}")

    def buffered(self):
        return harness.metric_value(harness.get_metrics(self.admin), "ringproxy_buffered_bytes")

    def limit_errors(self):
        return pool_metric(self.admin, "ringproxy_pool_limit_errors_total", "r")

    def big(self, i, size=None):
        head = b"big%d|" % i
        size = size or self.BIG
        return (head * (size // len(head) + 1))[:size]

    def send_in_background(self, conn, data):
        t = threading.Thread(target=conn.sock.sendall, args=(data,), daemon=True)
        t.start()
        return t

    def read_replies(self, conns, pipelines):
        """Reads every reply of every pipeline: each must be its command's answer or a refusal
        for the limit. Returns the number of refusals."""
        refused = 0
        for c, p in zip(conns, pipelines):
            for cmd in p:
                r = c.read()
                if isinstance(r, ErrorReply):
                    self.assertIn(self.OVER, r, cmd[:2])
                    refused += 1
                elif cmd[0] == "SET":
                    self.assertEqual(r, b"OK")
                else:
                    self.assertEqual(r, self.direct.get(cmd[1]), f"reply to {cmd[:2]} out of place")
        return refused

    def assert_service_resumes(self, refused_elsewhere):
        harness.wait_for(lambda: self.buffered() < self.LIMIT, timeout=5.0,
                         what="ringproxy_buffered_bytes going back under the limit")
        self.assertEqual(self.probe.call("GET", "small"), b"s")
        self.assertEqual(self.probe.call("SET", "after", "ok"), b"OK")
        self.assertEqual(self.probe.call("GET", "big:0"), self.direct.get("big:0"))
        self.assertEqual(self.limit_errors() - self.limit_errors0, refused_elsewhere)

    def test_clients_uploading_large_sets_push_it_over_then_service_resumes(self):
        """Each heavy client pipelines three 512 KiB SETs and most of a 1.5 MB one, without
        reading: the unfinished SETs sit in the proxy's input buffers, over the limit until
        the clients go on."""
        tail_size = 300000
        heavy = [SmallWindowConn(self.port) for _ in range(self.HEAVY)]
        pipelines, rests, senders = [], [], []
        for i, c in enumerate(heavy):
            p = [("SET", f"big:{i}:{j}", self.big(i)) for j in range(3)] + [("SET", f"big:{i}", self.big(i, 1500000))]
            data = b"".join(encode_command(*cmd) for cmd in p)
            pipelines.append(p)
            rests.append(data[-tail_size:])
            senders.append(self.send_in_background(c, data[:-tail_size]))
        harness.wait_for(lambda: self.buffered() > self.LIMIT, timeout=5.0, what="the process over its limit")
        for s in senders:
            s.join(5)
        time.sleep(0.2)
        self.assertGreater(self.buffered(), self.LIMIT)
        probe_refused = 0
        for _ in range(5):
            r = self.probe.call("GET", "small")
            self.assertIsInstance(r, ErrorReply, "a request while over --max-buffered-bytes")
            self.assertIn(self.OVER, r)
            probe_refused += 1
        # The heavy clients finish their SETs, read every reply and leave.
        for c, rest in zip(heavy, rests):
            c.send(rest)
        heavy_refused = self.read_replies(heavy, pipelines)
        for c in heavy:
            c.close()
        self.assert_service_resumes(probe_refused + heavy_refused)
        harness.wait_for(lambda: self.buffered() < 1000000, timeout=5.0, what="the input buffers given back")

    def test_replies_nobody_reads_stay_within_the_limit(self):
        """Each heavy client pipelines 24 GETs of a 512 KiB value and does not read: 48 MiB of
        replies in all. The README says the limit bounds what the process's buffers hold: a
        client that stopped reading while over 1 MiB of replies waits for it is disconnected
        (like Redis's client-output-buffer-limit), so the peak stays near the limit. Every reply
        a heavy client does get is its own, in order; then the proxy serves normally."""
        for i in range(self.HEAVY):
            self.direct.set(f"big:{i}", self.big(i))
        heavy = [SmallWindowConn(self.port) for _ in range(self.HEAVY)]
        pipelines = [[("GET", f"big:{i}")] * 24 for i in range(self.HEAVY)]
        senders = [self.send_in_background(c, b"".join(encode_command(*cmd) for cmd in p))
                   for c, p in zip(heavy, pipelines)]
        peak, start = 0, time.time()
        while time.time() - start < 1.0:
            peak = max(peak, self.buffered())
            time.sleep(0.05)
        for s in senders:
            s.join(5)
        refused, shed = 0, 0
        for c, p in zip(heavy, pipelines):
            try:
                refused += self.read_replies([c], [p])
            except ConnectionError:
                shed += 1  # let go for not reading while the process was over its limit
        for c in heavy:
            c.close()
        self.assertGreater(shed + refused, 0, "the limit never acted")
        self.assertGreaterEqual(self.limit_errors(), 1)
        self.assert_service_resumes(refused + shed)  # each refusal and each let-go client is counted
        # Bounded: the limit, plus what each non-reading client may hold before it is let go
        # (its unread replies pass 1 MiB in a buffer that grows by doubling) and the backend
        # read buffers carrying 512 KiB replies.
        # A sanitized build is several times slower, so more replies arrive before each write.
        per_client = (6 if os.environ.get("RINGPROXY_SANITIZED") else 3) * 2**20
        self.assertLess(peak, self.LIMIT + self.HEAVY * per_client,
                        f"ringproxy_buffered_bytes reached {int(peak)} with --max-buffered-bytes {self.LIMIT} "
                        f"({refused} of {sum(map(len, pipelines))} requests refused)")

    def test_a_transaction_queue_counts_against_the_limit(self):
        """MULTI, then 300 SETs of 100 KB (30 MB) pipelined: the queue lives in the proxy and
        counts against --max-buffered-bytes (4 MB here), so the transaction is discarded once
        the process passes it, what was queued is freed, later commands are answered QUEUED
        without being kept, and EXEC says EXECABORT. RSS stays near the limit (it reached
        302 MB for 3000 such SETs before)."""
        pid = self.proxy.popen.pid
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # VmHWM from now on
        base = harness.proc_status_kb(pid, "VmRSS") / 1024.0
        c = RawConn(self.port)
        value = b"q" * 100000
        data = encode_command("MULTI") + b"".join(encode_command("SET", f"tx{i}", value) for i in range(300))
        sender = self.send_in_background(c, data + encode_command("EXEC"))
        replies = [c.read() for _ in range(302)]
        sender.join(10)
        self.assertEqual(replies[0], b"OK")
        errors = [r for r in replies[1:301] if isinstance(r, ErrorReply)]
        self.assertEqual(len(errors), 1, errors[:3])
        self.assertIn("over its buffer limit", errors[0])
        self.assertTrue(all(r == b"QUEUED" for r in replies[1:301] if not isinstance(r, ErrorReply)))
        self.assertIsInstance(replies[301], ErrorReply)
        self.assertIn("EXECABORT", replies[301])
        self.assertEqual(self.direct.exists(*[f"tx{i}" for i in range(300)]), 0)
        peak = harness.proc_status_kb(pid, "VmHWM") / 1024.0
        self.assertLess(peak - base, self.LIMIT / 2**20 + 16, f"RSS {base:.1f} -> peak {peak:.1f} MiB")
        harness.wait_for(lambda: self.buffered() < self.LIMIT, timeout=5.0, what="the queue freed")
        self.assertEqual(self.probe.call("GET", "small"), b"s")
        c.close()

    def test_one_large_reply_does_not_keep_the_process_over_its_limit(self):
        """A well-behaved client reads one 3 MB value. Once it has it, the buffers that carried
        it must not go on counting against --max-buffered-bytes, or the proxy refuses every
        request from then on."""
        value = self.big(7, 3000000)
        self.direct.set("large", value)
        c = RawConn(self.port)
        self.assertEqual(c.call("GET", "large"), value)
        c.close()
        try:
            harness.wait_for(lambda: self.buffered() < self.LIMIT, timeout=3.0, what="buffers given back")
        except TimeoutError:
            pass  # reported below, with what a client sees
        fresh = RawConn(self.port)
        self.assertEqual(fresh.call("PING"), b"PONG",
                         f"after one 3 MB reply was delivered, ringproxy_buffered_bytes stays at {int(self.buffered())} "
                         f"(limit {self.LIMIT}) and every request is refused")
        self.assertEqual(self.probe.call("GET", "small"), b"s")
        fresh.close()


class HeldReplies(unittest.TestCase):
    """--max-buffered-bytes also counts reply copies the proxy keeps: replies that arrived
    while an earlier request of the same client is still unanswered (a stalled backend) wait
    in the proxy, and enough of them put the process over its limit like any buffer."""
    LIMIT = 4000000
    BIG = 512 * 1024
    OVER = "over its buffer limit"

    def setUp(self):
        self.fast, self.slow = harness.start_redis(), harness.start_redis()
        self.port = harness.free_port()
        # murmur: fnv1a_64 can put every one of a run of keys like held:0..held:199 on one node.
        text = harness.redis_pool_config("h", self.port, [f"127.0.0.1:{b.port}:1" for b in (self.fast, self.slow)],
                                         hash_name="murmur")
        self.proxy, self.admin = start_proxy(text, self.port, workers=1,
                                             extra=["--max-buffered-bytes", str(self.LIMIT)])
        owners = {k: harness.label_port(v) for k, v in
                  harness.ringctl_owners(self.proxy.config_path, "h", [f"held:{i}" for i in range(200)]).items()}
        self.fast_keys = [k for k, p in owners.items() if p == self.fast.port][:12]
        self.slow_key = next(k for k, p in owners.items() if p == self.slow.port)
        self.assertEqual(len(self.fast_keys), 12)
        direct = redis.Redis(port=self.fast.port)
        for i, k in enumerate(self.fast_keys):
            direct.set(k, (b"%d|" % i) * (self.BIG // 3))
        redis.Redis(port=self.slow.port).set(self.slow_key, "slow-value")
        self.values = {k: direct.get(k) for k in self.fast_keys}
        direct.close()

    def tearDown(self):
        self.slow.signal(signal.SIGCONT)
        stop_proxy(self.proxy)
        self.fast.stop()
        self.slow.stop()

    def buffered(self):
        return harness.metric_value(harness.get_metrics(self.admin), "ringproxy_buffered_bytes")

    def test_replies_waiting_behind_a_stalled_request_count_against_the_limit(self):
        before = self.buffered()
        self.slow.signal(signal.SIGSTOP)
        c = RawConn(self.port)
        c.send(encode_command("GET", self.slow_key) + b"".join(encode_command("GET", k) for k in self.fast_keys))
        # 12 x ~512 KiB answered by the fast backend, held behind the stalled first GET.
        harness.wait_for(lambda: self.buffered() > self.LIMIT, timeout=5.0,
                         what="the held replies counted in ringproxy_buffered_bytes")
        with RawConn(self.port) as probe:
            r = probe.call("GET", self.fast_keys[0])
            self.assertIsInstance(r, ErrorReply, "a request while held replies exceed --max-buffered-bytes")
            self.assertIn(self.OVER, r)
            self.slow.signal(signal.SIGCONT)
            self.assertEqual(c.read(), b"slow-value")
            for k in self.fast_keys:
                self.assertEqual(c.read(), self.values[k], f"reply to GET {k} out of place")
            harness.wait_for(lambda: self.buffered() < before + 1000000, timeout=5.0,
                             what="the held replies released once delivered")
            self.assertEqual(probe.call("GET", self.fast_keys[1]), self.values[self.fast_keys[1]])
        c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
