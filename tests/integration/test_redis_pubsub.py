"""Pub/sub through ringproxy (2 workers) over 3 real redis-servers, with redis-py in its default
settings (RESP2) and with protocol=3: a message published through the proxy reaches the
subscribers of its channel whichever server owns it; a pattern subscription gets each message
once although it is subscribed on every server; subscription counts are the client's own;
PUBSUB NUMSUB/CHANNELS/NUMPAT merge what the servers hold; a reload that moves channels to a
new server re-subscribes them there and no message is lost afterwards; a subscriber that
stops reading is cut off at max_client_output_bytes while the others keep receiving; a killed
subscriber frees its backend connections."""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402


def config_text(port, ports, extra=""):
    return harness.redis_pool_config("ps", port, [f"127.0.0.1:{p}:1" for p in ports],
                                     extra='  hash_tag: "{}"\n  max_client_output_bytes: 65536\n' + extra)


class RedisPubSub(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(4)]
        cls.ports = [b.port for b in cls.backends]
        cls.port = harness.free_port()
        cls.admin = harness.free_port()
        cls.config = harness.write_config(config_text(cls.port, cls.ports[:3]))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=[
            "--workers", "2", "--admin", f"127.0.0.1:{cls.admin}", "-s", str(harness.free_port()), "--no-watch"])
        cls.direct = {p: redis.Redis(host="127.0.0.1", port=p) for p in cls.ports}
        channels = harness.hashlike_keys("chan", 300)
        grouped = harness.keys_by_owner(cls.config, "ps", channels)
        cls.by_port = {harness.label_port(lbl): ks for lbl, ks in grouped.items()}
        assert sorted(cls.by_port) == sorted(cls.ports[:3])

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.config)

    def setUp(self):
        self.client = redis.Redis(host="127.0.0.1", port=self.port)

    def tearDown(self):
        self.client.close()
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def messages(self, pubsub, n, timeout=5.0):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = pubsub.get_message(timeout=0.1)
            if m is not None and m["type"] in ("message", "pmessage", "smessage"):
                got.append(m)
        return got

    def subscribers_on(self, port, channel):
        return self.direct[port].pubsub_numsub(channel)[0][1]

    def test_messages_reach_subscribers_on_every_server_with_the_clients_own_counts(self):
        chans = [self.by_port[p][0] for p in self.ports[:3]]
        p = self.client.pubsub()
        p.subscribe(*chans)
        confirmations = [p.get_message(timeout=2) for _ in chans]
        self.assertEqual([(m["type"], m["channel"].decode(), m["data"]) for m in confirmations],
                         [("subscribe", c, i + 1) for i, c in enumerate(chans)])
        for port, c in zip(self.ports, chans):  # each channel lives on its owner only
            self.assertEqual(self.subscribers_on(port, c), 1)
        publisher = redis.Redis(host="127.0.0.1", port=self.port)
        for i, c in enumerate(chans):
            self.assertEqual(publisher.publish(c, f"m{i}"), 1)
        got = self.messages(p, 3)
        # Channels on different servers arrive over different connections: no order between
        # them (as with Redis Cluster's sharded channels); one channel's messages keep theirs.
        self.assertEqual(sorted((m["channel"].decode(), m["data"]) for m in got),
                         sorted((c, f"m{i}".encode()) for i, c in enumerate(chans)))
        for i in range(20):
            publisher.publish(chans[1], f"seq{i}")
        self.assertEqual([m["data"] for m in self.messages(p, 20)], [f"seq{i}".encode() for i in range(20)])
        p.unsubscribe(chans[0])
        m = p.get_message(timeout=2)
        while m is not None and m["type"] != "unsubscribe":
            m = p.get_message(timeout=2)
        self.assertEqual((m["channel"].decode(), m["data"]), (chans[0], 2))
        self.assertEqual(publisher.publish(chans[0], "gone"), 0)
        p.close()
        publisher.close()

    def test_a_pattern_gets_each_message_once_and_pubsub_merges_the_servers(self):
        p = self.client.pubsub()
        p.psubscribe("news.*")
        self.assertEqual(p.get_message(timeout=2)["type"], "psubscribe")
        sub = redis.Redis(host="127.0.0.1", port=self.port).pubsub()
        chans = [self.by_port[port][1] for port in self.ports[:3]]
        sub.subscribe(*chans)
        for _ in chans:
            sub.get_message(timeout=2)
        names = [f"news.{i}" for i in range(30)]
        for n in names:
            self.assertEqual(self.client.publish(n, n), 1)  # one pattern subscriber, counted once
        got = self.messages(p, 30)
        self.assertEqual(sorted(m["channel"].decode() for m in got), sorted(names))
        self.assertEqual(self.messages(p, 1, timeout=0.5), [])  # and no duplicates after them
        self.assertEqual(self.client.pubsub_numpat(), 1)
        self.assertEqual(self.client.pubsub_numsub(*chans, "nobody"),
                         [(c.encode(), 1) for c in chans] + [(b"nobody", 0)])
        self.assertEqual(sorted(c.decode() for c in self.client.pubsub_channels("chan:*")), sorted(chans))
        p.close()
        sub.close()

    def test_subscribed_mode_rules_for_resp2_and_pushes_for_resp3(self):
        chan = self.by_port[self.ports[2]][2]
        bulk = lambda s: b"$%d\r\n%s\r\n" % (len(s), s.encode())  # noqa: E731
        with harness.RawConn(self.port) as c:
            c.send(harness.encode_command("SUBSCRIBE", chan))
            self.assertEqual(c.read_raw(), b"*3\r\n" + bulk("subscribe") + bulk(chan) + b":1\r\n")
            self.assertEqual(c.call_raw("GET", "x"),
                             b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
                             b"RESET are allowed in this context\r\n")
            self.assertEqual(c.call_raw("PING", "hi"), b"*2\r\n" + bulk("pong") + bulk("hi"))
            self.assertEqual(c.call_raw("RESET"), b"+RESET\r\n")
            self.assertEqual(c.call_raw("PING"), b"+PONG\r\n")  # out of pub/sub
        with harness.RawConn(self.port) as c:  # RESP3: pushes, and commands keep working
            self.assertIsInstance(c.call("HELLO", "3"), (dict, list))
            c.send(harness.encode_command("SUBSCRIBE", chan))
            self.assertEqual(c.read_raw(), b">3\r\n" + bulk("subscribe") + bulk(chan) + b":1\r\n")
            self.assertEqual(self.client.publish(chan, "push"), 1)
            self.assertEqual(c.read_raw(), b">3\r\n" + bulk("message") + bulk(chan) + bulk("push"))
            self.assertEqual(c.call_raw("SET", "r3key", "v"), b"+OK\r\n")
            self.assertEqual(c.call_raw("GET", "r3key"), bulk("v"))

    def test_a_killed_subscriber_frees_its_connections_and_a_slow_one_is_cut_off(self):
        chan = self.by_port[self.ports[0]][3]
        s = socket.create_connection(("127.0.0.1", self.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(harness.encode_command("SUBSCRIBE", chan) + harness.encode_command("PSUBSCRIBE", "slow.*"))
        harness.wait_for(lambda: self.subscribers_on(self.ports[0], chan) == 1, what="subscribed")
        reader = redis.Redis(host="127.0.0.1", port=self.port).pubsub()
        reader.subscribe(chan)
        reader.get_message(timeout=2)
        payload = "x" * 32768
        received = 0
        for i in range(600):  # 19 MiB to a client that reads nothing: more than the kernel buffers
            self.client.publish(chan, payload)
            received += len(self.messages(reader, 1, timeout=1))
        self.assertEqual(received, 600)  # the reading subscriber got everything
        harness.wait_for(lambda: self.subscribers_on(self.ports[0], chan) == 1, what="slow subscriber cut off")
        metrics = harness.get_metrics(self.admin)
        self.assertGreaterEqual(harness.metric_value(metrics, "ringproxy_pool_limit_errors_total", pool="ps"), 1)
        s.close()
        reader.close()
        harness.wait_for(lambda: self.subscribers_on(self.ports[0], chan) == 0, what="all gone")
        harness.wait_for(lambda: harness.metric_value(harness.get_metrics(self.admin),
                                                      "ringproxy_pool_blocking_connections", pool="ps") == 0,
                         what="subscriber connections closed")

    def test_zz_a_reload_that_moves_channels_resubscribes_them_on_their_new_owner(self):
        chans = [c for p in self.ports[:3] for c in self.by_port[p][10:40]]
        p = self.client.pubsub()
        p.subscribe(*chans)
        for _ in chans:
            p.get_message(timeout=2)
        with open(self.config, "w") as f:
            f.write(config_text(self.port, self.ports))  # a fourth server joins
        before = harness.metric_value(harness.get_metrics(self.admin), "ringproxy_reloads_total")
        status, _, body = harness.http_request(self.admin, "POST", "/reload")
        self.assertEqual(status, 200, body)
        owners = harness.ringctl_owners(self.config, "ps", chans)
        moved = [c for c in chans if harness.label_port(owners[c]) == self.ports[3]]
        self.assertGreater(len(moved), 0, "no channel moved to the new server")
        harness.wait_for(lambda: all(self.subscribers_on(self.ports[3], c) == 1 for c in moved),
                         what="moved channels subscribed on the new owner")
        for c in moved:
            self.assertEqual(sum(self.subscribers_on(port, c) for port in self.ports[:3]), 0, c)
        for c in chans:
            self.assertEqual(self.client.publish(c, "after " + c), 1, c)
        got = self.messages(p, len(chans))
        self.assertEqual(sorted(m["channel"].decode() for m in got), sorted(chans))
        self.assertIsNotNone(before)
        p.close()


if __name__ == "__main__":
    unittest.main()
