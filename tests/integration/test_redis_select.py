"""SELECT through ringproxy over 3 real redis-servers, with redis-py as a framework URL uses it
(redis://host:port/3 sends SELECT 3 on connect): the client's keys land in database 3 on their
owners, never in the pool's default database; DBSIZE, MGET, MULTI/EXEC, WATCH and BLPOP stay in
the selected database; clients in different databases do not see each other's keys; an index
the backends do not have is refused as Redis refuses it."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import redis  # noqa: E402


class RedisSelect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backends = [harness.start_redis() for _ in range(3)]
        cls.ports = [b.port for b in cls.backends]
        cls.port = harness.free_port()
        cls.config = harness.write_config(harness.redis_pool_config(
            "sel", cls.port, [f"127.0.0.1:{p}:1" for p in cls.ports], extra="  redis_db: 1\n"))
        cls.proxy = harness.start_ringproxy(cls.config, cls.port, extra=["--workers", "2"])
        cls.keys = harness.hashlike_keys("s", 60)
        cls.owner = {k: harness.label_port(lbl) for k, lbl in harness.ringctl_owners(cls.config, "sel", cls.keys).items()}

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        for b in cls.backends:
            b.stop()
        os.unlink(cls.config)

    def setUp(self):
        for p in self.ports:
            redis.Redis(host="127.0.0.1", port=p).flushall()

    def tearDown(self):
        self.assertIsNone(self.proxy.popen.poll(), f"proxy exited: {self.proxy.output()}")

    def direct(self, port, db):
        return redis.Redis(host="127.0.0.1", port=port, db=db)

    def test_a_url_with_a_database_writes_there_on_every_owner(self):
        c3 = redis.Redis.from_url(f"redis://127.0.0.1:{self.port}/3")
        default = redis.Redis(host="127.0.0.1", port=self.port)  # no SELECT: the pool's redis_db 1
        for k in self.keys:
            c3.set(k, "in3")
        default.set(self.keys[0], "in1")
        for k in self.keys:
            self.assertEqual(self.direct(self.owner[k], 3).get(k), b"in3", k)
            if k != self.keys[0]:
                self.assertIsNone(self.direct(self.owner[k], 1).get(k))
        self.assertEqual(self.direct(self.owner[self.keys[0]], 1).get(self.keys[0]), b"in1")
        self.assertEqual(c3.dbsize(), len(self.keys))  # summed over the servers, database 3 only
        self.assertEqual(default.dbsize(), 1)
        self.assertEqual(c3.mget(self.keys[:10]), [b"in3"] * 10)
        self.assertEqual(default.get(self.keys[0]), b"in1")
        for p in self.ports:
            self.assertEqual(self.direct(p, 0).dbsize(), 0)  # nothing strayed into database 0

    def test_transactions_watch_and_blocking_pops_stay_in_the_selected_database(self):
        c5 = redis.Redis.from_url(f"redis://127.0.0.1:{self.port}/5")
        k = self.keys[1]
        queue = next(q for q in self.keys[2:] if self.owner[q] == self.owner[k])  # WATCH: one server
        with c5.pipeline(transaction=True) as pipe:
            pipe.watch(k)
            pipe.multi()
            pipe.set(k, "tx")
            pipe.rpush(queue, "job")
            self.assertEqual(pipe.execute(), [True, 1])
        self.assertEqual(self.direct(self.owner[k], 5).get(k), b"tx")
        self.assertEqual(self.direct(self.owner[queue], 5).llen(queue), 1)
        self.assertEqual(c5.blpop([queue], timeout=1), (queue.encode(), b"job"))
        self.assertIsNone(c5.blpop([queue], timeout=0.2))

    def test_an_index_the_backends_lack_is_refused_and_select_moves_back(self):
        c = harness.RawConn(self.port)
        self.assertEqual(c.call_raw("SELECT", "16"), b"-ERR DB index is out of range\r\n")
        self.assertEqual(c.call_raw("SELECT", "x"), b"-ERR value is not an integer or out of range\r\n")
        self.assertEqual(c.call_raw("SELECT", "7"), b"+OK\r\n")
        self.assertEqual(c.call_raw("SET", "moved", "7"), b"+OK\r\n")
        self.assertEqual(c.call_raw("SELECT", "1"), b"+OK\r\n")
        self.assertEqual(c.call_raw("GET", "moved"), b"$-1\r\n")
        self.assertEqual(c.call_raw("SELECT", "7"), b"+OK\r\n")
        self.assertEqual(c.call_raw("GET", "moved"), b"$1\r\n7\r\n")
        self.assertEqual(c.call_raw("MOVE", "moved", "2"), b":1\r\n")  # same owner, another database
        self.assertEqual(sum(self.direct(p, 2).dbsize() for p in self.ports), 1)
        c.close()


if __name__ == "__main__":
    unittest.main()
