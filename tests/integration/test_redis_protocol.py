"""The Redis protocol as ringproxy speaks it to clients, byte for byte, over raw sockets: inline
commands, commands the proxy refuses or does not know (the connection survives), malformed
requests (only the offending client is closed), and the commands the proxy answers itself
(SELECT, ECHO, PING, QUIT, COMMAND, HELLO 3 / RESP3). Where Redis has an exact wording the
proxy's reply is compared with a real redis-server's."""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402
from harness import ErrorReply, RawConn, encode_command, parse_reply  # noqa: E402


class RedisProtocol(unittest.TestCase):
    WORKERS = 1

    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        cls.port = harness.free_port()
        cls.config = harness.write_config(harness.redis_pool_config(
            "proto", cls.port, [f"127.0.0.1:{p}:1" for p in cls.ports], hash_name="murmur"))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=["--workers", str(cls.WORKERS)])
        cls.direct = [redis.Redis(host="127.0.0.1", port=p) for p in cls.ports]

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.config)

    def setUp(self):
        for d in self.direct:
            d.flushall()
        self.client = redis.Redis(host="127.0.0.1", port=self.port)

    def tearDown(self):
        self.client.close()
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def backend_keys(self):
        return sorted(k for d in self.direct for k in d.keys("*"))

    # 5 -----------------------------------------------------------------------------------------
    def test_inline_commands(self):
        with RawConn(self.port) as c:
            c.send(b"PING\r\n")
            self.assertEqual(c.read_raw(), b"+PONG\r\n")
            c.send(b"SET inl:k v\r\n")
            self.assertEqual(c.read_raw(), b"+OK\r\n")
            c.send(b"GET inl:k\n")
            self.assertEqual(c.read_raw(), b"$1\r\nv\r\n")
            # Several in one write, LF or CRLF, blank lines ignored, tabs and repeated spaces.
            c.send(b"\r\n\nPING\nSET  inl:n\t41\r\n\r\nincr inl:n\nGET inl:n\r\nECHO hello\r\n")
            self.assertEqual([c.read_raw() for _ in range(5)],
                             [b"+PONG\r\n", b"+OK\r\n", b":42\r\n", b"$2\r\n42\r\n", b"$5\r\nhello\r\n"])
            # Quotes and escapes, as redis-cli/telnet users type them.
            c.send(b'SET "inl:sp ace" "a b\\r\\n\\x00c"\r\nGET "inl:sp ace"\r\n')
            self.assertEqual(c.read_raw(), b"+OK\r\n")
            self.assertEqual(c.read_raw(), b"$7\r\na b\r\n\x00c\r\n")
            # A multi-key inline command is split over shards like its RESP form.
            c.send(b"MSET inl:a 1 inl:b 2 inl:c 3 inl:d 4\r\nMGET inl:d inl:none inl:a inl:c inl:b\r\nDEL inl:a inl:b inl:zz\r\n")
            self.assertEqual(c.read_raw(), b"+OK\r\n")
            self.assertEqual(c.read_raw(), b"*5\r\n$1\r\n4\r\n$-1\r\n$1\r\n1\r\n$1\r\n3\r\n$1\r\n2\r\n")
            self.assertEqual(c.read_raw(), b":2\r\n")
            # Inline and RESP mixed in one write.
            c.send(b"GET inl:c\r\n" + encode_command("GET", "inl:d") + b"PING x\r\n")
            self.assertEqual([c.read_raw() for _ in range(3)], [b"$1\r\n3\r\n", b"$1\r\n4\r\n", b"$1\r\nx\r\n"])
        self.assertEqual(self.client.get("inl:sp ace"), b"a b\r\n\x00c")
        self.assertEqual(self.backend_keys(), [b"inl:c", b"inl:d", b"inl:k", b"inl:n", b"inl:sp ace"])

    def test_inline_unbalanced_quotes_is_a_protocol_error(self):
        with RawConn(self.port) as c:
            c.send(b'SET "inl:q v\r\n')
            self.assertEqual(c.wait_closed(), b"-ERR Protocol error: unbalanced quotes in request\r\n")

    def test_requests_arriving_one_byte_at_a_time(self):
        pipeline = (encode_command("SET", "slow:k", "a\r\nb") + b"GET slow:k\r\n" + encode_command("MGET", "slow:k", "slow:x")
                    + encode_command("PING"))
        with RawConn(self.port) as c:
            for i in range(len(pipeline)):
                c.send(pipeline[i:i + 1])
                time.sleep(0.001)
            self.assertEqual([c.read_raw() for _ in range(4)],
                             [b"+OK\r\n", b"$4\r\na\r\nb\r\n", b"*2\r\n$4\r\na\r\nb\r\n$-1\r\n", b"+PONG\r\n"])

    # 6 -----------------------------------------------------------------------------------------
    def test_unsupported_commands_are_refused_and_connection_keeps_working(self):
        self.client.set("keep:me", "1")
        refused = [("BGSAVE",), ("DEBUG", "SLEEP", "0"), ("SWAPDB", "0", "1"), ("REPLICAOF", "NO", "ONE"),
                   ("Save",), ("Acl", "LIST"), ("MONITOR",), ("LATENCY", "LATEST"),
                   ("CLUSTER", "INFO"), ("CONFIG", "GET", "*"), ("SLOWLOG", "GET")]
        with RawConn(self.port) as c:
            for cmd in refused:
                with self.subTest(cmd=cmd[0]):
                    reply = c.call(*cmd)
                    self.assertIsInstance(reply, ErrorReply, cmd)
                    self.assertTrue(reply.startswith("ERR "), reply)
                    self.assertIn(f"'{cmd[0].lower()}'", reply.lower())
                    self.assertEqual(c.call_raw("PING"), b"+PONG\r\n")  # not in subscribe/monitor mode
                    self.assertEqual(c.call("GET", "keep:me"), b"1")
            # Refusals pipelined between real commands keep their place in the reply order.
            c.send(encode_command("CONFIG", "GET", "*") + encode_command("GET", "keep:me") + encode_command("MONITOR")
                   + encode_command("PING"))
            got = [c.read() for _ in range(4)]
            self.assertIsInstance(got[0], ErrorReply)
            self.assertEqual(got[1], b"1")
            self.assertIsInstance(got[2], ErrorReply)
            self.assertEqual(got[3], b"PONG")
        self.assertEqual(self.backend_keys(), [b"keep:me"], "SWAPDB must not reach a backend")

    def test_unknown_commands_and_arity_errors_match_redis_wording(self):
        cases = [("FOOBAR",), ("FOOBAR", "a", "b"), ("foobar", "x" * 10), ("GET",), ("get", "a", "b"),
                 ("MSET", "a", "b", "c"), ("SET", "k"), ("MGET",), ("HSET", "h", "f"), ("PING", "a", "b")]
        with RawConn(self.port) as proxied, RawConn(self.ports[0]) as real:
            for cmd in cases:
                with self.subTest(cmd=cmd):
                    expected = real.call_raw(*cmd)
                    self.assertTrue(expected.startswith(b"-ERR "), expected)
                    self.assertEqual(proxied.call_raw(*cmd), expected)
                    self.assertEqual(proxied.call_raw("PING"), b"+PONG\r\n")
            self.assertEqual(proxied.call_raw("FOOBAR"), b"-ERR unknown command 'FOOBAR', with args beginning with: \r\n")

    def test_command_names_are_case_insensitive(self):
        with RawConn(self.port) as c:
            self.assertEqual(c.call_raw("sEt", "ci:k", "v1"), b"+OK\r\n")
            self.assertEqual(c.call_raw("gEt", "ci:k"), b"$2\r\nv1\r\n")
            self.assertEqual(c.call_raw("set", "ci:n", "1"), b"+OK\r\n")
            self.assertEqual(c.call_raw("InCr", "ci:n"), b":2\r\n")
            self.assertEqual(c.call_raw("mGeT", "ci:k", "ci:n", "ci:x"), b"*3\r\n$2\r\nv1\r\n$1\r\n2\r\n$-1\r\n")
            self.assertEqual(c.call_raw("ExIsTs", "ci:k", "ci:n"), b":2\r\n")
            self.assertEqual(c.call_raw("pInG"), b"+PONG\r\n")
            self.assertEqual(c.call_raw("echo", "e"), b"$1\r\ne\r\n")
            self.assertEqual(c.call_raw("DeL", "ci:k", "ci:n"), b":2\r\n")
            self.assertEqual(c.call("kEyS", "ci:*"), [])  # merged over the servers
            self.assertIsInstance(c.call("cOnFiG", "GET", "x"), ErrorReply)

    # 9 -----------------------------------------------------------------------------------------
    def check_malformed(self, payload, expected, half_close=False, close_after_send=False):
        """Sends `payload` on a fresh client while a bystander client is connected; the victim
        must get `expected` (bytes; or a callable check) and then be closed by the proxy; the
        bystander must keep working before and after."""
        with RawConn(self.port) as bystander:
            bystander.send(encode_command("SET", "mal:by", "safe"))
            self.assertEqual(bystander.read_raw(), b"+OK\r\n")
            victim = RawConn(self.port)
            self.assertEqual(victim.call_raw("PING"), b"+PONG\r\n")
            self.assertEqual(bystander.call_raw("PING"), b"+PONG\r\n")
            victim.send(payload)
            if half_close or close_after_send:
                victim.sock.shutdown(socket.SHUT_WR)
            got = victim.wait_closed(5)
            victim.close()
            if callable(expected):
                expected(got)
            else:
                self.assertEqual(got, expected)
            self.assertEqual(bystander.call_raw("GET", "mal:by"), b"$4\r\nsafe\r\n")
            self.assertEqual(bystander.call_raw("PING"), b"+PONG\r\n")
            self.assertEqual(bystander.call_raw("MGET", "mal:by", "mal:none", "mal:by"),
                             b"*3\r\n$4\r\nsafe\r\n$-1\r\n$4\r\nsafe\r\n")
        # A new client after the incident works too.
        with RawConn(self.port) as later:
            self.assertEqual(later.call_raw("GET", "mal:by"), b"$4\r\nsafe\r\n")

    def test_malformed_garbage_multibulk_length(self):
        self.check_malformed(b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n")

    def test_malformed_negative_bulk_length(self):
        self.check_malformed(b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n")

    def test_malformed_huge_bulk_length_refused_at_once(self):
        start = time.time()
        self.check_malformed(b"*1\r\n$99999999999\r\n", b"-ERR Protocol error: invalid bulk length\r\n")
        self.assertLess(time.time() - start, 3.0)

    def test_malformed_bulk_without_dollar(self):
        self.check_malformed(b"*1\r\nx\r\n", b"-ERR Protocol error: expected '$', got 'x'\r\n")

    def test_malformed_too_big_inline_request_like_redis(self):
        with RawConn(self.ports[0]) as real:
            real.send(b"GET " + b"x" * (70 * 1024))
            expected = real.wait_closed(5)
        self.assertEqual(expected, b"-ERR Protocol error: too big inline request\r\n")
        self.check_malformed(b"GET " + b"x" * (70 * 1024), expected)

    def test_malformed_after_good_requests_answers_them_first(self):
        self.client.set("mal:k", "before")
        self.check_malformed(encode_command("GET", "mal:k") + encode_command("MGET", "mal:k", "mal:zz") + b"PING\r\n"
                             + b"*2\r\n$3\r\nGET\r\n$abc\r\n" + encode_command("SET", "mal:k", "after"),
                             b"$6\r\nbefore\r\n*2\r\n$6\r\nbefore\r\n$-1\r\n+PONG\r\n"
                             b"-ERR Protocol error: invalid bulk length\r\n")
        self.assertEqual(self.client.get("mal:k"), b"before", "nothing after the bad frame may run")

    def test_unterminated_frame_then_close(self):
        def closed_without_an_answer(got):
            self.assertTrue(got == b"" or got.startswith(b"-ERR Protocol error: "), got)
        self.check_malformed(b"*3\r\n$3\r\nSET\r\n$5\r\nmal:u\r\n$10\r\nabc", closed_without_an_answer,
                             close_after_send=True)
        self.assertIsNone(self.client.get("mal:u"), "a cut-off SET must not be executed")

    def test_negative_and_zero_multibulk_counts_are_skipped_like_redis(self):
        with RawConn(self.port) as c, RawConn(self.ports[0]) as real:
            payload = b"*-1\r\n*0\r\n*-5\r\nPING\r\n"
            c.send(payload)
            real.send(payload)
            self.assertEqual(c.read_raw(), real.read_raw())
            self.assertEqual(c.call_raw("ECHO", "still"), b"$5\r\nstill\r\n")

    def test_half_close_after_requests_still_gets_the_replies(self):
        self.client.set("hc:k", "v")
        with RawConn(self.port) as c:
            c.send(encode_command("GET", "hc:k") + encode_command("MGET", "hc:k", "hc:k") + b"PING\r\n")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(c.wait_closed(5), b"$1\r\nv\r\n*2\r\n$1\r\nv\r\n$1\r\nv\r\n+PONG\r\n")

    # 10 ----------------------------------------------------------------------------------------
    def test_select_echo_ping(self):
        with RawConn(self.port) as c:
            self.assertEqual(c.call_raw("SELECT", "0"), b"+OK\r\n")
            self.assertEqual(c.call_raw("SELECT", "1"), b"+OK\r\n")  # database 1 on every backend
            self.assertEqual(c.call_raw("SELECT", "16"), b"-ERR DB index is out of range\r\n")
            self.assertEqual(c.call_raw("SELECT", "0"), b"+OK\r\n")
            self.assertIsInstance(c.call("SELECT", "x"), ErrorReply)
            self.assertEqual(c.call_raw("ECHO", "a\r\nb\x00c"), b"$6\r\na\r\nb\x00c\r\n")
            self.assertEqual(c.call_raw("ECHO", ""), b"$0\r\n\r\n")
            self.assertEqual(c.call_raw("PING"), b"+PONG\r\n")
            self.assertEqual(c.call_raw("PING", "hello world"), b"$11\r\nhello world\r\n")
            self.assertEqual(c.call_raw("SET", "sel:k", "v"), b"+OK\r\n")  # still db 0 after the refused SELECT
        self.assertEqual(self.direct[0].get("sel:k") or self.direct[1].get("sel:k") or self.direct[2].get("sel:k"), b"v")

    def test_info_sections_are_picked_as_redis_picks_them(self):
        self.client.mset({f"info:{i}": "x" for i in range(30)})
        version = self.direct[0].info("server")["redis_version"]
        with RawConn(self.port) as c:
            def sections(*args):
                text = c.call("INFO", *args).decode()
                return [line for line in text.split("\r\n") if line.startswith("#")], text
            everything = ["# Server", "# Proxy", "# Keyspace"]
            for args in ((), ("default",), ("ALL",), ("everything",), ("server", "proxy", "keyspace")):
                self.assertEqual(sections(*args)[0], everything, args)
            names, text = sections("Server")
            self.assertEqual(names, ["# Server"])
            self.assertIn(f"redis_version:{version}\r\n", text)
            self.assertTrue(text.endswith("loading:0\r\n"), text)
            names, text = sections("keyspace")
            self.assertEqual(names, ["# Keyspace"])
            self.assertIn("db0:keys=30,", text)
            self.assertEqual(sections("keyspace", "server")[0], ["# Server", "# Keyspace"])  # Redis's order
            names, text = sections("proxy", "nosuchsection")
            self.assertEqual(names, ["# Proxy"])
            self.assertIn("backends_answering:3\r\n", text)
            # A section the proxy does not have: an empty reply, as Redis gives for an unknown one.
            self.assertEqual(c.call_raw("INFO", "commandstats"), b"$0\r\n\r\n")
            self.assertEqual(c.call("PING"), b"PONG")

    def test_quit_replies_ok_and_closes(self):
        with RawConn(self.port) as c:
            c.send(encode_command("QUIT"))
            self.assertEqual(c.wait_closed(5), b"+OK\r\n")

    def test_quit_in_a_pipeline_stops_everything_after_it(self):
        # Redis answers what came before QUIT, then +OK, then closes: commands after QUIT in the
        # same write are not executed.
        self.client.set("quit:k", "v")
        with RawConn(self.port) as c:
            c.send(encode_command("GET", "quit:k") + encode_command("QUIT") + encode_command("SET", "quit:after", "x")
                   + b"PING\r\n")
            self.assertEqual(c.wait_closed(3), b"$1\r\nv\r\n+OK\r\n")
        self.assertIsNone(self.client.get("quit:after"), "SET after QUIT was executed")

    def test_command_count(self):
        with RawConn(self.port) as c:
            n = c.call("COMMAND", "COUNT")
            self.assertIsInstance(n, int)
            self.assertGreater(n, 100)
            listed = c.call("COMMAND", "LIST")
            self.assertEqual(len(listed), n)
            self.assertIn(b"get", listed)
            self.assertNotIn(b"monitor", listed)  # refused commands are not advertised
            info = c.call("COMMAND", "INFO", "get", "mset", "nosuchcmd")
            self.assertEqual(info[0][:2], [b"get", 2])
            self.assertEqual(info[1][:2], [b"mset", -3])
            self.assertIsNone(info[2])
        self.assertGreater(len(self.client.execute_command("COMMAND")), 100)

    def test_hello3_gives_resp3_while_resp2_clients_keep_resp2(self):
        self.client.hset("h3:hash", mapping={"f": "v"})
        self.client.set("h3:s", "1")
        with RawConn(self.port) as r3, RawConn(self.port) as r2:
            hello = r3.call_raw("HELLO", "3")
            self.assertTrue(hello.startswith(b"%"), hello[:40])
            fields = dict(parse_reply(hello)[0])
            self.assertEqual(fields[b"proto"], 3)
            self.assertEqual(fields[b"server"], b"redis")
            self.assertEqual(r3.call_raw("GET", "h3:missing"), b"_\r\n")
            self.assertEqual(r2.call_raw("GET", "h3:missing"), b"$-1\r\n")
            self.assertEqual(r3.call_raw("GET", "h3:s"), b"$1\r\n1\r\n")
            self.assertEqual(r3.call_raw("HGETALL", "h3:hash"), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n")
            self.assertEqual(r2.call_raw("HGETALL", "h3:hash"), b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n")
            # A merged fan-out keeps each client's null.
            keys = ["h3:s"] + [f"h3:none{i}" for i in range(6)]
            self.assertEqual(r3.call_raw("MGET", *keys), b"*7\r\n$1\r\n1\r\n" + b"_\r\n" * 6)
            self.assertEqual(r2.call_raw("MGET", *keys), b"*7\r\n$1\r\n1\r\n" + b"$-1\r\n" * 6)
            self.assertEqual(r3.call_raw("HELLO", "2")[:1], b"*")
            self.assertEqual(r3.call_raw("GET", "h3:missing"), b"$-1\r\n")
            self.assertIsInstance(r2.call("HELLO", "4"), ErrorReply)
            self.assertEqual(r2.call_raw("GET", "h3:missing"), b"$-1\r\n")


    def test_hello_reports_the_backends_version_as_info_does(self):
        # The first HELLO of a pool asks the backends (unless an INFO did already); later ones
        # reuse what they said. Both give the version the backends report, as INFO does.
        real = self.direct[0].info("server")["redis_version"]
        for proto in ("3", "2"):
            with RawConn(self.port) as c:
                fields = dict(parse_reply(c.call_raw("HELLO", proto))[0]) if proto == "3" else None
                if fields is None:
                    flat = c.call("HELLO", proto)
                    fields = dict(zip(flat[0::2], flat[1::2]))
                self.assertEqual(fields[b"version"], real.encode())
                info = c.call("INFO", "server")
                self.assertIn(f"redis_version:{real}".encode(), info)


if __name__ == "__main__":
    unittest.main(verbosity=2)
