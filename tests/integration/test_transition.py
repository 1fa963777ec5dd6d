"""Resharding that moves the data (a transition), end to end with real servers: 4 redis-servers
holding keys of every type (strings, hashes, lists, sets, sorted sets, streams; a third with
TTLs), two ringproxy processes on the same config, and a checker that reads, writes and deletes
through both while `ringctl migrate` runs, comparing every value it reads with what it wrote.

A 5th server is added by the transition procedure (`ringctl plan` OLD NEW, deploy the plan to
both proxies, migrate, deploy NEW), then a server is removed the same way. At the end of each:
zero lost keys, zero wrong values, zero deleted keys back, every key on its ring owner (read on
each backend directly), TTLs kept within 1 s. The migrator is also killed halfway and run again,
and a new server is SIGSTOPped during a migration: the migrator reports it, resumes when it is
back, and nothing is lost. During a transition SCAN, DBSIZE, KEYS and FLUSHDB cover the servers
the data is still on."""
import os
import random
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402

KEYS = int(os.environ.get("TRANSITION_KEYS", "12000"))
TTL_S = 3600


def pool_text(port, ports):
    return harness.redis_pool_config("data", port, [f"127.0.0.1:{p}:1" for p in ports], hash_name="murmur")


class Model:
    """What the checker wrote: key -> (type, value), plus absolute expiries and deleted keys."""

    def __init__(self):
        self.values, self.expires, self.deleted = {}, {}, set()
        self.lock = threading.Lock()


def write_initial(client, model, keys):
    pipe = client.pipeline(transaction=False)
    expiring = []  # their expiry is set when their batch has run
    for i, k in enumerate(keys):
        kind = i % 6
        if kind == 0:
            pipe.set(k, f"v{i}")
            value = ("string", f"v{i}")
        elif kind == 1:
            pipe.hset(k, mapping={"a": str(i), "b": "x"})
            value = ("hash", {"a": str(i), "b": "x"})
        elif kind == 2:
            pipe.rpush(k, "1", "2", str(i))
            value = ("list", ["1", "2", str(i)])
        elif kind == 3:
            pipe.sadd(k, "m1", str(i))
            value = ("set", {"m1", str(i)})
        elif kind == 4:
            pipe.zadd(k, {"z": float(i)})
            value = ("zset", [("z", float(i))])
        else:
            pipe.xadd(k, {"f": str(i)}, id="1-1")
            value = ("stream", [("1-1", {"f": str(i)})])
        if i % 3 == 0:
            pipe.expire(k, TTL_S)
            expiring.append(k)
        model.values[k] = value
        if len(pipe) >= 1000 or i == len(keys) - 1:
            start = time.time()
            pipe.execute()
            at = (start + time.time()) / 2 + TTL_S
            for e in expiring:
                model.expires[e] = at
            expiring.clear()


def read_value(r, key, kind):
    if kind == "string":
        v = r.get(key)
        return None if v is None else v.decode()
    if kind == "hash":
        v = r.hgetall(key)
        return {a.decode(): b.decode() for a, b in v.items()} or None
    if kind == "list":
        return [x.decode() for x in r.lrange(key, 0, -1)] or None
    if kind == "set":
        return {x.decode() for x in r.smembers(key)} or None
    if kind == "zset":
        return [(m.decode(), s) for m, s in r.zrange(key, 0, -1, withscores=True)] or None
    entries = r.xrange(key)
    return [(i.decode(), {a.decode(): b.decode() for a, b in f.items()}) for i, f in entries] or None


class Checker(threading.Thread):
    """Reads, overwrites and deletes keys through the proxies, in turn, and counts every read
    that disagrees with what it wrote."""

    def __init__(self, ports, model, keys):
        super().__init__(daemon=True)
        self.clients = [redis.Redis(host="127.0.0.1", port=p) for p in ports]
        self.model, self.keys = model, keys
        self.stop_flag = threading.Event()
        self.ops = self.wrong = self.errors = 0
        self.first_wrong = None
        self.rng = random.Random(7)

    def run(self):
        while not self.stop_flag.is_set():
            r = self.clients[self.ops % len(self.clients)]
            key = self.rng.choice(self.keys)
            action = self.rng.random()
            try:
                with self.model.lock:
                    if key in self.model.deleted:
                        got = r.exists(key)
                        if got != 0:
                            self.note_wrong(key, "deleted key is back")
                    elif action < 0.75:
                        kind, want = self.model.values[key]
                        got = read_value(r, key, kind)
                        if got != want:
                            self.note_wrong(key, f"read {got!r}, wrote {want!r}")
                    elif action < 0.93:
                        kind, _ = self.model.values[key]
                        if kind == "string":
                            v = f"w{self.ops}"
                            r.set(key, v, keepttl=True)
                            self.model.values[key] = ("string", v)
                        elif kind == "hash":
                            r.hset(key, "b", f"w{self.ops}")
                            self.model.values[key][1]["b"] = f"w{self.ops}"
                        elif kind == "list":
                            r.rpush(key, f"w{self.ops}")
                            self.model.values[key][1].append(f"w{self.ops}")
                    else:
                        r.delete(key)
                        self.model.deleted.add(key)
                        self.model.expires.pop(key, None)
            except redis.exceptions.RedisError as e:
                self.errors += 1
                if self.first_wrong is None:
                    self.first_wrong = f"{key}: error {e}"
            self.ops += 1

    def note_wrong(self, key, what):
        self.wrong += 1
        if self.first_wrong is None:
            self.first_wrong = f"{key}: {what}"


class Transition(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(5)]
        cls.bports = [b.port for b in cls.backends]
        cls.tmp = os.path.dirname(harness.write_config("x: 1\n"))
        cls.proxy_ports = [harness.free_port(), harness.free_port()]
        cls.admins = [harness.free_port(), harness.free_port()]
        cls.configs = []
        cls.proxies = []
        for i in range(2):
            path = harness.write_config(pool_text(cls.proxy_ports[i], cls.bports[:4]))
            cls.configs.append(path)
            cls.proxies.append(harness.start_ringproxy(path, cls.proxy_ports[i], extra=[
                "--workers", "2", "--admin", f"127.0.0.1:{cls.admins[i]}", "-s", str(harness.free_port()),
                "--no-watch"]))
        cls.direct = {p: redis.Redis(host="127.0.0.1", port=p) for p in cls.bports}

    @classmethod
    def tearDownClass(cls):
        for p in cls.proxies:
            p.stop()
        for b in cls.backends:
            b.signal(signal.SIGCONT)
            b.stop()

    def deploy(self, ports, previous=None):
        """Writes each proxy's config (its own listen port, the same pool) and reloads both."""
        for i in range(2):
            text = pool_text(self.proxy_ports[i], ports)
            if previous is not None:
                text += "  previous_servers:\n" + "".join(f"    - 127.0.0.1:{p}:1\n" for p in previous)
            with open(self.configs[i], "w") as f:
                f.write(text)
            status, _, body = harness.http_request(self.admins[i], "POST", "/reload")
            self.assertEqual(status, 200, body)

    def plan(self, old_ports, new_ports):
        """`ringctl plan` writes the transition config; it must say what deploy() deploys."""
        old = harness.write_config(pool_text(self.proxy_ports[0], old_ports))
        new = harness.write_config(pool_text(self.proxy_ports[0], new_ports))
        out = new + ".transition.yml"
        r = harness.run_ringctl("plan", old, new, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("of the keyspace moves", r.stdout)
        with open(out) as f:
            text = f.read()
        self.assertIn("previous_servers:", text)
        for p in old_ports:
            self.assertIn(f"127.0.0.1:{p}:1", text.split("previous_servers:")[1])
        return out

    def migrate(self, config, extra=(), timeout=240):
        return subprocess.run([harness.binary("ringctl"), "migrate", "-c", config, "--json", *extra],
                              capture_output=True, text=True, timeout=timeout)

    def verify_placement(self, ports):
        """Every key the model holds is on exactly its owner (read directly), with its value and
        TTL; no deleted key anywhere."""
        model = self.model
        where = {}
        for p in self.bports:
            for k in self.direct[p].scan_iter(count=1000):
                k = k.decode()
                self.assertNotIn(k, where, f"{k} on two servers")
                where[k] = p
        final = harness.write_config(pool_text(self.proxy_ports[0], ports))
        owners = {k: harness.label_port(v) for k, v in harness.ringctl_owners(final, "data", list(where)).items()}
        misplaced = [k for k, p in where.items() if owners[k] != p]
        self.assertEqual(misplaced[:5], [], f"{len(misplaced)} keys not on their owner")
        live = [k for k in self.keys if k not in model.deleted]
        lost = [k for k in live if k not in where]
        self.assertEqual(lost[:5], [], f"{len(lost)} keys lost")
        back = [k for k in model.deleted if k in where]
        self.assertEqual(back[:5], [], f"{len(back)} deleted keys came back")
        wrong, ttl_off = [], []
        for k in live:
            r = self.direct[where[k]]
            kind, want = model.values[k]
            if read_value(r, k, kind) != want:
                wrong.append(k)
            if k in model.expires:
                before = time.time()
                pttl = r.pttl(k)
                now = (before + time.time()) / 2
                if abs((now + pttl / 1000.0) - model.expires[k]) > 1.0:
                    ttl_off.append((k, pttl))
            elif r.pttl(k) != -1:
                ttl_off.append((k, r.pttl(k)))
        self.assertEqual(wrong[:5], [], f"{len(wrong)} wrong values")
        self.assertEqual(ttl_off[:5], [], f"{len(ttl_off)} TTLs off by more than 1 s")

    def test_add_a_server_then_remove_one_with_live_traffic_through_two_proxies(self):
        self.model = Model()
        self.keys = harness.hashlike_keys("t", KEYS)
        write_initial(redis.Redis(host="127.0.0.1", port=self.proxy_ports[0]), self.model, self.keys)
        four, five = self.bports[:4], self.bports[:5]

        # Add the 5th server: plan, deploy the transition, migrate under traffic, deploy NEW.
        transition = self.plan(four, five)
        self.deploy(five, previous=four)
        status = harness.run_ringctl("status", f"127.0.0.1:{self.admins[1]}")
        self.assertIn("pool data in transition from", status.stdout)
        checker = Checker(self.proxy_ports, self.model, self.keys)
        checker.start()
        # The migrator is killed halfway, then run again: it finishes the job.
        first = subprocess.Popen([harness.binary("ringctl"), "migrate", "-c", transition, "--rate", "500"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        first.kill()
        first.wait()
        moved_so_far = self.direct[five[4]].dbsize()
        done = self.migrate(transition)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn('"left":0', done.stdout.replace(" ", ""))
        checker.stop_flag.set()
        checker.join(10)
        self.assertGreater(checker.ops, 500)
        self.assertEqual((checker.wrong, checker.errors), (0, 0), checker.first_wrong)
        self.deploy(five)
        self.verify_placement(five)
        self.assertLess(moved_so_far, self.direct[five[4]].dbsize(), "the killed migrator had finished")
        metrics = harness.get_metrics(self.admins[0])
        self.assertGreater(harness.metric_value(metrics, "ringproxy_pool_transition_checks_total", pool="data"), 0)
        status = harness.run_ringctl("status", f"127.0.0.1:{self.admins[0]}")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertNotIn("in transition", status.stdout)  # NEW deployed: the transition is over

        # Remove the 2nd server the same way, with the new server SIGSTOPped for a while during
        # the migration: the migrator reports it and resumes when it is back.
        remaining = [p for p in five if p != five[1]]
        transition = self.plan(five, remaining)
        self.deploy(remaining, previous=five)
        checker = Checker(self.proxy_ports, self.model, self.keys)
        checker.start()
        stopped = self.backends[4]
        stopped.signal(signal.SIGSTOP)
        threading.Timer(3.0, lambda: stopped.signal(signal.SIGCONT)).start()
        done = self.migrate(transition, extra=["--give-up", "60"])
        self.assertEqual(done.returncode, 0, done.stderr)
        checker.stop_flag.set()
        checker.join(10)
        # While a server was stopped the checker may have seen errors naming it; never a wrong value.
        self.assertEqual(checker.wrong, 0, checker.first_wrong)
        self.deploy(remaining)
        self.verify_placement(remaining)
        self.assertEqual(self.direct[five[1]].dbsize(), 0)

    def test_during_a_transition_scan_dbsize_and_flushdb_reach_the_old_servers_too(self):
        for d in self.direct.values():
            d.flushall()
        four, five = self.bports[:4], self.bports[:5]
        self.deploy(four)
        client = redis.Redis(host="127.0.0.1", port=self.proxy_ports[1])
        keys = harness.hashlike_keys("s", 2000)
        pipe = client.pipeline(transaction=False)
        for k in keys:
            pipe.set(k, k)
        pipe.execute()
        self.deploy(five, previous=four)  # nothing migrated yet: every key still on its old server
        self.assertEqual(self.direct[five[4]].dbsize(), 0)
        self.assertEqual(sorted(k.decode() for k in client.scan_iter(count=200)), sorted(keys))
        self.assertEqual(client.dbsize(), len(keys))
        self.assertEqual(len(client.keys("s:*")), len(keys))
        self.assertTrue(client.flushdb())
        for p in five:
            self.assertEqual(self.direct[p].dbsize(), 0, f"server {p} kept keys after FLUSHDB")
        self.assertEqual([client.get(k) for k in keys[:50]], [None] * 50)  # nothing comes back
        client.close()


if __name__ == "__main__":
    unittest.main()
