"""Hot reload through ringproxy (2 workers) over real redis-servers.

1. A client on one persistent connection (SET/GET of its own keys, every value checked) while
   the config goes through 20 reloads by four triggers (SIGHUP, the file rewritten in place,
   a file renamed over it, POST /reload): nodes added, removed, reweighted and renamed, a second
   pool added, used and removed, and bad files in between. Zero errors, zero disconnects, no
   wrong value; a nil only for a key whose owner changed in the generations the request could
   have seen.
2. Adding a 4th equal node to 3: the share of keys that then miss matches the logged moved
   share, and the missing keys are exactly the new node's (ketama and vnode; vnode near 25%).
3. A bad file changes nothing (routing, generation) and counts a failure; `-t` names file:line.
4. The file watch reloads without a signal, unchanged content does not; POST /reload reloads
   (and names file:line when refusing).
5. A reload that removes a backend while a deep pipeline of 100 KiB GETs is in flight.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402
from harness import ErrorReply, RawConn, encode_command  # noqa: E402


def value_of(key):
    """The only value a client ever writes to `key`: re-SETs after a miss write the same bytes,
    so a stale copy on a former owner can never be told from the latest one, and any other
    value read is a real misrouting (another key's value, another request's reply)."""
    return b"v:" + key.encode() + b":" + hashlib.sha1(key.encode()).hexdigest()[:16].encode()


def keyset(prefix, n):
    """n key names that hash like random ones: fnv1a over a run like "k:0".."k:2999" is far from
    uniform (a sample can put 8% of its keys on a node that owns 26% of the keyspace)."""
    return [f"{prefix}:{hashlib.sha1(b'%d' % i).hexdigest()[:16]}" for i in range(n)]


def big_value_of(key, size=100 * 1024):
    head = value_of(key) + b"|"
    return (head * (size // len(head) + 1))[:size]


class GenerationWindow:
    """Which routing generations a request may meet. The test raises `hi` before it triggers a
    reload and raises `lo` only once every worker has applied the new generation, so a request
    sent at time t is routed by a generation >= lo(t), and one answered at time u by a
    generation <= hi(u)."""

    def __init__(self, gen):
        self.lo = self.hi = gen


class LoopClient(threading.Thread):
    """SET/GET of its own keys in small pipelines on one persistent connection, until stopped.
    Counts error replies, wrong values and disconnects strictly; records every nil GET with the
    window of generations between the key's last SET and the nil, for the caller to judge."""

    def __init__(self, port, prefix, nkeys=300, window=None, batch=6):
        super().__init__(daemon=True)
        self.keys = keyset(prefix, nkeys)
        self.window = window
        self.batch = batch
        self.conn = RawConn(port, timeout=10.0)
        self.stopping = threading.Event()
        self.ops = 0
        self.errors, self.wrong, self.misses = [], [], []
        self.disconnect = None
        self.finished = False
        self.written = {}  # key -> window.lo when its last (confirmed) SET was sent

    def gen_lo(self):
        return self.window.lo if self.window else 0

    def gen_hi(self):
        return self.window.hi if self.window else 0

    def run(self):
        i = 0
        try:
            while not self.stopping.is_set():
                cmds = []
                for _ in range(self.batch):
                    k = self.keys[i % len(self.keys)]
                    i += 1
                    cmds.append(("SET" if k not in self.written or i % 13 == 0 else "GET", k))
                sent_lo = self.gen_lo()
                self.conn.send(b"".join(encode_command("SET", k, value_of(k)) if op == "SET" else encode_command("GET", k)
                                        for op, k in cmds))
                for op, k in cmds:
                    reply = self.conn.read()
                    self.ops += 1
                    if isinstance(reply, ErrorReply):
                        self.errors.append((op, k, str(reply)))
                    elif op == "SET":
                        if reply == b"OK":
                            self.written[k] = sent_lo
                        else:
                            self.wrong.append((op, k, reply))
                    elif reply is None:
                        self.misses.append((k, self.written.pop(k), self.gen_hi()))
                    elif reply != value_of(k):
                        self.wrong.append((op, k, reply[:80] if isinstance(reply, bytes) else reply))
        except Exception as e:  # noqa: BLE001 - any failure of the connection is a disconnect
            self.disconnect = repr(e)

    def wait_ops(self, more, timeout=5.0):
        """Waits until the client has done `more` further operations (it is still running)."""
        target = self.ops + more
        harness.wait_for(lambda: self.ops >= target or self.disconnect is not None or not self.is_alive(),
                         timeout, what=f"{more} more client operations")

    def finish(self):
        if self.finished:
            return True
        self.stopping.set()
        self.join(15)
        alive = self.is_alive()
        self.finished = not alive
        if not alive and self.disconnect is None:
            try:  # the connection is still good after everything
                if self.conn.call("PING") != b"PONG":
                    self.wrong.append(("PING", "", "not PONG"))
            except Exception as e:  # noqa: BLE001
                self.disconnect = "after the run: " + repr(e)
        self.conn.close()
        return not alive


class ReloadTestBase(unittest.TestCase):
    NBACKENDS = 5

    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(cls.NBACKENDS)]
        cls.ports = [b.port for b in cls.backends]
        cls.direct = {p: redis.Redis(host="127.0.0.1", port=p) for p in cls.ports}

    @classmethod
    def tearDownClass(cls):
        for b in cls.backends:
            b.stop()

    def setUp(self):
        for d in self.direct.values():
            d.flushall()
        self.tmp = tempfile.mkdtemp(prefix="ringproxy-reload-")
        self.confdir = os.path.join(self.tmp, "conf")
        self.staging = os.path.join(self.tmp, "staging")
        os.mkdir(self.confdir)
        os.mkdir(self.staging)
        self.path = os.path.join(self.confdir, "nutcracker.yml")
        self.proxies = []
        self.nsaved = 0
        self.last_write = 0.0

    def tearDown(self):
        for p in self.proxies:
            self.assertIsNone(p.popen.poll(), f"proxy exited: {p.output()}")
            p.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the proxy and its config ---------------------------------------------------------------
    def start_proxy(self, text, watch=True):
        with open(self.path, "w") as f:
            f.write(text)
        self.port = int(re.search(r"listen: 127\.0\.0\.1:(\d+)", text).group(1))
        self.admin = harness.free_port()
        extra = ["--workers", "2", "--admin", f"127.0.0.1:{self.admin}", "-s", str(harness.free_port()),
                 "-a", "127.0.0.1"] + ([] if watch else ["--no-watch"])
        self.proxy = harness.start_ringproxy(self.path, self.port, extra=extra)
        self.proxies.append(self.proxy)
        self.proxy.wait_port(port=self.admin)
        return self.proxy

    def log(self):
        with open(self.proxy.log, "rb") as f:
            return f.read().decode(errors="replace")

    def metrics(self):
        return harness.get_metrics(self.admin)

    def generation(self):
        return int(harness.metric_value(self.metrics(), "ringproxy_reload_generation"))

    def failures(self):
        return int(harness.metric_value(self.metrics(), "ringproxy_reload_failures_total"))

    def wait_generation(self, gen, timeout=5.0):
        """Waits until /metrics shows `gen`; one more /metrics after that has gone through every
        worker's queue behind the new snapshot, so every worker routes by it."""
        harness.wait_for(lambda: self.generation() >= gen, timeout, what=f"generation {gen}")
        self.assertEqual(self.generation(), gen)

    def save(self, text):
        """A copy of a config (for ringctl), outside the watched directory."""
        self.nsaved += 1
        p = os.path.join(self.staging, f"saved-{self.nsaved}.yml")
        with open(p, "w") as f:
            f.write(text)
        return p

    def pace_writes(self):
        """Keeps writes 350 ms apart. The watch reads the file 200 ms after the last event; a
        timer still running from the previous write can fire just as an in-place rewrite has
        truncated the file, and read it empty (a refused reload that the test did not make)."""
        wait = self.last_write + 0.35 - time.time()
        if wait > 0:
            time.sleep(wait)
        self.last_write = time.time()

    def write_in_place(self, text):
        self.pace_writes()
        with open(self.path, "w") as f:
            f.write(text)

    def write_replace(self, text):
        self.pace_writes()
        tmp = os.path.join(self.staging, "next.yml")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def post_reload(self):
        status, _, body = harness.http_request(self.admin, "POST", "/reload")
        return status, json.loads(body)

    def owners(self, config_path, keys, pool="alpha", names=None):
        """{key: backend port} by `ringctl owner`; `names` maps server names to ports."""
        names = names or {}
        return {k: names[lbl] if lbl in names else harness.label_port(lbl)
                for k, lbl in harness.ringctl_owners(config_path, pool, keys).items()}

    def servers(self, *specs):
        """Server lines from (backend index, weight[, name]) tuples."""
        out = []
        for spec in specs:
            idx, weight = spec[0], spec[1]
            line = f"127.0.0.1:{self.ports[idx]}:{weight}"
            if len(spec) > 2:
                line += f" {spec[2]}"
            out.append(line)
        return out


def with_unknown_key(text):
    """`text` with an unknown key in its first pool; returns (text, line of the key)."""
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("  listen:")) + 1
    lines.insert(at, "  bogus_key: 1")
    return "\n".join(lines), at + 1


def with_syntax_error(text):
    """`text` with a mis-indented sequence item after the first pool's first server (a YAML
    syntax error); returns (text, line of the bad item)."""
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("    - ")) + 1
    lines.insert(at, "   - 127.0.0.1:1:1")
    return "\n".join(lines), at + 1


class ReloadUnderLoad(ReloadTestBase):
    # 1 ---------------------------------------------------------------------------------------
    def test_twenty_reloads_under_a_persistent_client(self):
        A, B, C, D, E = range(5)
        port, beta_port = harness.free_port(), harness.free_port()
        names = {"cache-c": self.ports[C]}

        def alpha(*specs, extra=""):
            return harness.redis_pool_config("alpha", port, self.servers(*specs), extra=extra)

        beta = harness.redis_pool_config("beta", beta_port, self.servers((B, 1), (E, 1)))
        base = alpha((A, 1), (B, 1), (C, 1))
        bad_syntax, bad_syntax_line = with_syntax_error(base)
        bad_unknown, bad_unknown_line = with_unknown_key(alpha((A, 1), (B, 2), (C, 1, "cache-c")) + beta)
        bad_port = alpha((A, 1), (B, 1), (C, 1), (D, 1)).replace(f":{self.ports[D]}:1", ":70000:1")
        bad_port_line = bad_port.split("\n").index("    - 127.0.0.1:70000:1") + 1
        bad_unknown2, bad_unknown2_line = with_unknown_key(alpha((A, 1), (B, 1), (C, 1)))
        four = alpha((A, 1), (B, 1), (C, 1), (D, 1))
        steps = [  # (config text, trigger, bad file's line or None, pool beta after this step)
            (four, "inplace", None, False),
            (base, "sighup", None, False),
            (bad_syntax, "replace", bad_syntax_line, False),
            (alpha((A, 1), (B, 2), (C, 1)), "post", None, False),
            (alpha((A, 1), (B, 2), (C, 1, "cache-c")), "inplace", None, False),
            (alpha((A, 1), (B, 2), (C, 1, "cache-c")) + beta, "replace", None, True),
            (bad_unknown, "sighup", bad_unknown_line, True),
            (alpha((A, 1), (B, 2), (C, 1, "cache-c")), "post", None, False),
            (alpha((A, 1), (B, 2), (C, 1, "cache-c"), (D, 1)), "sighup", None, False),
            (alpha((A, 1), (B, 2), (C, 1), (D, 1)), "inplace", None, False),
            (four, "replace", None, False),
            (alpha((B, 1), (C, 1), (D, 1)), "post", None, False),
            (four, "sighup", None, False),
            (bad_port, "inplace", bad_port_line, False),
            (alpha((A, 1), (B, 1), (C, 1), (D, 1), extra="  timeout: 4000\n"), "replace", None, False),
            (alpha((A, 1), (B, 1), (C, 1), (D, 1), extra="  timeout: 4000\n") + beta, "post", None, True),
            (alpha((A, 1), (B, 1), (C, 1), (D, 1), extra="  timeout: 4000\n"), "sighup", None, False),
            (alpha((A, 1), (B, 1), (C, 1), extra="  timeout: 4000\n"), "inplace", None, False),
            (bad_unknown2, "post", bad_unknown2_line, False),
            (alpha((A, 1), (B, 1), (C, 1), extra="  server_connections: 2\n"), "replace", None, False),
        ]
        self.assertEqual(len(steps), 20)
        self.start_proxy(base)
        gen_configs = {1: self.save(base)}
        window = GenerationWindow(1)
        client = LoopClient(port, "rl", window=window)
        client.start()
        beta_clients = []
        try:
            client.wait_ops(200)
            gen, failures = 1, 0
            for n, (text, trigger, bad_line, beta_after) in enumerate(steps, 1):
                with self.subTest(step=n, trigger=trigger):
                    beta_before = n > 1 and steps[n - 2][3]
                    idle_beta = None
                    if beta_before and not beta_after:  # an idle client of the pool about to go
                        idle_beta = RawConn(beta_port, timeout=10.0)
                        self.assertEqual(idle_beta.call("PING"), b"PONG")
                    if bad_line is None:
                        window.hi = gen + 1
                    if trigger == "inplace":
                        self.write_in_place(text)
                    elif trigger == "replace":
                        self.write_replace(text)
                    elif trigger == "sighup":
                        self.write_in_place(text)
                        self.proxy.signal(signal.SIGHUP)
                    else:
                        self.write_in_place(text)
                        status, body = self.post_reload()
                    if bad_line is None:
                        gen += 1
                        gen_configs[gen] = self.save(text)
                        if trigger == "post":
                            self.assertEqual((status, body), (200, {"ok": True, "generation": gen}))
                        self.wait_generation(gen)
                        window.lo = gen
                        source = {"sighup": "SIGHUP", "post": "POST /reload"}.get(trigger, "config file changed")
                        self.assertIn(f"reload ({source}): generation {gen} is live", self.log())
                    else:
                        failures += 1
                        where = f"{self.path}:{bad_line}:"
                        if trigger == "post":
                            self.assertEqual(status, 422, body)
                            self.assertIs(body["ok"], False)
                            self.assertIn(where, body["error"])
                        harness.wait_for(lambda: self.failures() >= failures, 5.0, what=f"{failures} failures")
                        self.assertEqual(self.failures(), failures)
                        self.assertEqual(self.generation(), gen)
                        source = {"sighup": "SIGHUP", "post": "POST /reload"}.get(trigger, "config file changed")
                        self.assertRegex(self.log(), re.escape(f"reload ({source}) failed, still serving generation {gen}: ")
                                         + re.escape(where))
                    if beta_after and not beta_before:  # the new pool serves at once
                        bc = LoopClient(beta_port, "beta", nkeys=100)
                        bc.start()
                        beta_clients.append(bc)
                        bc.wait_ops(300)
                    if beta_after and beta_before:  # it survived the (bad) reload
                        beta_clients[-1].wait_ops(100)
                    if beta_before and not beta_after:
                        # The client of the removed pool is closed once idle; the port refuses.
                        idle_beta.wait_closed(5.0)
                        idle_beta.close()
                        harness.wait_for(lambda: not self.accepts(beta_port), 5.0, what="beta listener closed")
                    client.wait_ops(60)
                # A busy beta client is stopped before its pool goes away (the step after next).
                if n < len(steps) and beta_after and not steps[n][3] and beta_clients:
                    self.assertTrue(beta_clients[-1].finish(), "beta client did not stop")
            self.assertEqual(self.generation(), 17)
            self.assertEqual(self.failures(), 4)
        finally:
            stopped = client.finish()
            for bc in beta_clients:
                bc.finish()
        self.assertTrue(stopped, "client thread did not stop")
        self.assertIsNone(client.disconnect, "the persistent connection broke")
        self.assertEqual(client.errors, [])
        self.assertEqual(client.wrong, [])
        self.assertGreater(client.ops, 3000)
        for i, bc in enumerate(beta_clients):
            self.assertIsNone(bc.disconnect, f"beta client {i}")
            self.assertEqual((bc.errors, bc.wrong, bc.misses), ([], [], []), f"beta client {i}")
        # Every nil is for a key whose owner changed between its last SET and the GET.
        owners = {g: self.owners(p, client.keys, names=names) for g, p in gen_configs.items()}
        unexplained = [(k, lo, hi) for k, lo, hi in client.misses
                       if len({owners[g][k] for g in range(lo, hi + 1)}) == 1]
        self.assertEqual(unexplained, [], "nil for keys whose owner never changed")
        self.assertGreater(len(client.misses), 0, "the topology changes should have moved some keys")

    @staticmethod
    def accepts(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    # 5 ---------------------------------------------------------------------------------------
    def test_reload_removing_a_backend_with_a_deep_pipeline_in_flight(self):
        port = harness.free_port()
        four = harness.redis_pool_config("alpha", port, self.servers((0, 1), (1, 1), (2, 1), (3, 1)))
        three = harness.redis_pool_config("alpha", port, self.servers((0, 1), (1, 1), (2, 1)))
        self.start_proxy(four)
        keys = keyset("big", 200)
        owner = self.owners(self.save(four), keys)
        gone = self.ports[3]
        on_gone = {k for k in keys if owner[k] == gone}
        self.assertGreater(len(on_gone), 10)
        loader = redis.Redis(host="127.0.0.1", port=port)
        pipe = loader.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, big_value_of(k))
        self.assertTrue(all(pipe.execute()))
        loader.close()
        self.assertEqual(self.direct[gone].dbsize(), len(on_gone))

        order = [keys[i % len(keys)] for i in range(2000)]
        first, second = order[:1000], order[1000:]
        c = RawConn(port, timeout=30.0)
        c.send(b"".join(encode_command("GET", k) for k in first))
        replies = [c.read() for _ in range(50)]
        # Now 950 replies of 100 KiB are owed on this connection (most of them queued in the
        # proxy, the client reads nothing): remove the 4th backend.
        self.write_in_place(three)
        self.proxy.signal(signal.SIGHUP)
        self.wait_generation(2)
        c.send(b"".join(encode_command("GET", k) for k in second))
        replies += [c.read() for _ in range(1950)]
        self.assertEqual(c.call("PING"), b"PONG", "the connection stays up")
        c.close()
        self.assertEqual(len(replies), 2000)
        bad, d_values, d_nils = [], 0, 0
        for i, (k, r) in enumerate(zip(order, replies)):
            if r == big_value_of(k):
                if k in on_gone:
                    d_values += 1
                    if i >= 1000:
                        bad.append((i, k, "value from the removed backend after the reload was live"))
            elif r is None and k in on_gone:
                d_nils += 1
            else:
                bad.append((i, k, r if not isinstance(r, bytes) else r[:40]))
        self.assertEqual(bad, [])
        # Requests sent after the reload go to the new owners, which do not have those keys.
        self.assertGreater(d_nils, 0)
        m = self.metrics()
        self.assertEqual(harness.metric_value(m, "ringproxy_pool_forward_errors_total", pool="alpha"), 0)
        self.assertEqual(harness.metric_value(m, "ringproxy_pool_errors_total", pool="alpha"), 0)


class MovedShare(ReloadTestBase):
    # 2 ---------------------------------------------------------------------------------------
    def moved_share_case(self, distribution):
        port = harness.free_port()
        # vnode with its own default hash; ketama with twemproxy's usual fnv1a_64.
        hash_name = "xxh3" if distribution == "vnode" else "fnv1a_64"
        three = harness.redis_pool_config("alpha", port, self.servers((0, 1), (1, 1), (2, 1)), hash_name=hash_name,
                                          distribution=distribution)
        four = harness.redis_pool_config("alpha", port, self.servers((0, 1), (1, 1), (2, 1), (3, 1)),
                                         hash_name=hash_name, distribution=distribution)
        self.start_proxy(three)
        keys = keyset("ms", 3000)
        r = redis.Redis(host="127.0.0.1", port=port)
        for i in range(0, len(keys), 500):
            self.assertTrue(r.mset({k: value_of(k) for k in keys[i:i + 500]}))
        self.assertEqual(sum(self.direct[p].dbsize() for p in self.ports[:3]), 3000)
        self.write_in_place(four)
        self.proxy.signal(signal.SIGHUP)
        self.wait_generation(2)
        got = []
        for i in range(0, len(keys), 500):
            got += r.mget(keys[i:i + 500])
        missing = [k for k, v in zip(keys, got) if v is None]
        for k, v in zip(keys, got):
            if v is not None:
                self.assertEqual(v, value_of(k))
        m = re.search(r"reload generation 2: pool alpha: \+1 -0 ~0 nodes \(0 renamed\); moved ([0-9.]+)% of the "
                      r"keyspace, ideal minimum ([0-9.]+)%", self.log())
        self.assertIsNotNone(m, self.log())
        logged, ideal = float(m.group(1)), float(m.group(2))
        self.assertAlmostEqual(ideal, 25.0, places=3)
        self.assertAlmostEqual(harness.metric_value(self.metrics(), "ringproxy_reload_moved_ratio", pool="alpha"),
                               logged / 100, places=5)
        observed = 100.0 * len(missing) / len(keys)
        self.assertLessEqual(abs(observed - logged), 3.0, f"{observed:.2f}% of keys miss, log says {logged}%")
        # Exactly the keys the new ring gives the new node are the ones missing.
        new_owner = self.owners(self.save(four), keys)
        new_port = self.ports[3]
        self.assertEqual(set(missing), {k for k in keys if new_owner[k] == new_port})
        self.assertEqual(self.direct[new_port].exists(*missing), 0)
        # Written again through the proxy, they land on the new node and nowhere else new.
        self.assertTrue(r.mset({k: value_of(k) for k in missing}))
        self.assertEqual(self.direct[new_port].dbsize(), len(missing))
        r.close()
        return logged, observed

    def test_add_fourth_node_ketama(self):
        logged, observed = self.moved_share_case("ketama")
        self.assertGreater(logged, 10.0)

    def test_add_fourth_node_vnode(self):
        logged, observed = self.moved_share_case("vnode")
        self.assertLessEqual(abs(logged - 25.0), 3.0, f"vnode moved {logged}%, ideal 25%")
        self.assertLessEqual(abs(observed - 25.0), 5.0)


class BadFilesAndTriggers(ReloadTestBase):
    # 3 ---------------------------------------------------------------------------------------
    def test_bad_file_changes_nothing(self):
        port = harness.free_port()
        three_text = harness.redis_pool_config("alpha", port, self.servers((0, 1), (1, 1), (2, 1)))
        four_text = harness.redis_pool_config("alpha", port, self.servers((0, 1), (1, 1), (2, 1), (3, 1)))
        self.start_proxy(three_text, watch=True)
        three = self.save(three_text)
        r = redis.Redis(host="127.0.0.1", port=port)
        keys = keyset("bf", 400)
        self.assertTrue(r.mset({k: value_of(k) for k in keys[:200]}))
        cases = [("unknown key", *with_unknown_key(four_text), "sighup"),
                 ("syntax error", *with_syntax_error(four_text), "inplace")]
        for n, (what, text, line, trigger) in enumerate(cases, 1):
            with self.subTest(what):
                if trigger == "sighup":
                    self.write_in_place(text)
                    self.proxy.signal(signal.SIGHUP)
                else:
                    self.write_in_place(text)
                harness.wait_for(lambda: self.failures() >= n, 5.0, what="reload failure counted")
                self.assertEqual(self.failures(), n)
                self.assertEqual(self.generation(), 1)
                status = json.loads(harness.http_request(self.admin, "GET", "/status")[2])
                self.assertIn(f"{self.path}:{line}:", status["last_reload_error"])
                # Old keys still readable; new keys placed by the old ring (nothing on the 4th).
                self.assertEqual(r.mget(keys[:200]), [value_of(k) for k in keys[:200]])
                batch = keys[200 + (n - 1) * 100:200 + n * 100]
                self.assertTrue(r.mset({k: value_of(k) for k in batch}))
                owner = self.owners(three, batch)
                for k in batch:
                    self.assertEqual(self.direct[owner[k]].get(k), value_of(k))
                self.assertEqual(self.direct[self.ports[3]].dbsize(), 0)
                # `-t` refuses the same file, naming it and the line.
                bad = self.save(text)
                t = subprocess.run([harness.binary("ringproxy"), "-t", "-c", bad], capture_output=True, text=True)
                self.assertNotEqual(t.returncode, 0)
                self.assertIn(f"{bad}:{line}:", t.stdout + t.stderr)
        t = subprocess.run([harness.binary("ringproxy"), "-t", "-c", three], capture_output=True, text=True)
        self.assertEqual(t.returncode, 0, t.stderr)
        # A good file afterwards goes live and clears the error /status reports.
        self.write_in_place(three_text)
        self.proxy.signal(signal.SIGHUP)
        self.wait_generation(2, timeout=5.0)
        status = json.loads(harness.http_request(self.admin, "GET", "/status")[2])
        self.assertEqual(status["last_reload_error"], "")
        self.assertEqual(r.mget(keys[:200]), [value_of(k) for k in keys[:200]])
        r.close()

    # 4 ---------------------------------------------------------------------------------------
    def test_file_watch_reloads_without_a_signal(self):
        port = harness.free_port()
        texts = [harness.redis_pool_config("alpha", port, self.servers(*[(i, 1) for i in range(n)])) for n in (2, 3, 4)]
        self.start_proxy(texts[0], watch=True)
        r = redis.Redis(host="127.0.0.1", port=port)
        # The same content written again is not a reload.
        self.write_in_place(texts[0])
        time.sleep(0.6)
        self.assertEqual(self.generation(), 1)
        for gen, (text, how) in enumerate([(texts[1], self.write_in_place), (texts[2], self.write_replace)], 2):
            with self.subTest(how=how.__name__):
                t0 = time.time()
                how(text)
                self.wait_generation(gen, timeout=5.0)
                self.assertLess(time.time() - t0, 5.0)
                self.assertIn(f"reload (config file changed): generation {gen} is live", self.log())
                # The new node takes its keys now.
                newest = self.ports[gen]
                keys = keyset(f"fw{gen}", 200)
                self.assertTrue(r.mset({k: value_of(k) for k in keys}))
                owner = self.owners(self.save(text), keys)
                self.assertEqual(self.direct[newest].dbsize(), sum(1 for k in keys if owner[k] == newest))
                self.assertGreater(self.direct[newest].dbsize(), 0)
        r.close()

    def test_admin_post_reloads_and_refuses_bad_files(self):
        port = harness.free_port()
        two = harness.redis_pool_config("alpha", port, self.servers((0, 1), (1, 1)))
        three = harness.redis_pool_config("alpha", port, self.servers((0, 1), (1, 1), (2, 1)))
        self.start_proxy(two, watch=False)
        self.write_replace(three)
        time.sleep(0.5)
        self.assertEqual(self.generation(), 1, "--no-watch: a changed file alone does not reload")
        status, body = self.post_reload()
        self.assertEqual((status, body), (200, {"ok": True, "generation": 2}))
        self.wait_generation(2)
        r = redis.Redis(host="127.0.0.1", port=port)
        keys = keyset("pr", 200)
        self.assertTrue(r.mset({k: value_of(k) for k in keys}))
        self.assertGreater(self.direct[self.ports[2]].dbsize(), 0, "the added node serves after POST /reload")
        for what, (text, line) in [("syntax", with_syntax_error(three)), ("unknown key", with_unknown_key(three))]:
            with self.subTest(what):
                self.write_in_place(text)
                status, body = self.post_reload()
                self.assertEqual(status, 422, body)
                self.assertIs(body["ok"], False)
                self.assertIn(f"{self.path}:{line}:", body["error"])
                self.assertEqual(self.generation(), 2)
                self.assertEqual(r.mget(keys), [value_of(k) for k in keys])
        self.assertEqual(self.failures(), 2)
        r.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
