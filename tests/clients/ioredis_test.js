// ioredis, in its default settings and used as its README shows, against ringproxy:
//   node ioredis_test.js PORT [KEYS_JSON]
// Defaults that matter here (ioredis 6): RESP3 (HELLO 3 on connect, replies mapped to the
// RESP2 shapes), CLIENT SETINFO LIB-NAME/LIB-VER, then INFO as the ready check. Every reply is
// checked; the connection must stay up (one connect, one ready, no error, no reconnect).
"use strict";

const Redis = require("ioredis");
const { parseArgs, keysToReset, Checker, countEvents, binaryValue, run } = require("./common");

const LIB = "ioredis";
const { port, keys } = parseArgs(LIB);
const c = new Checker(LIB);

async function scenario() {
  c.at("connect");
  const redis = new Redis(port, "127.0.0.1");  // README: new Redis(6379, "192.168.1.1")
  const ev = countEvents(redis, ["connect", "ready", "error", "close", "reconnecting", "end"]);
  await new Promise((resolve, reject) => {
    redis.once("ready", resolve);
    redis.once("end", () => reject(new Error("connection ended before ready")));
  });
  c.eq("status after ready", redis.status, "ready");
  // A proxy that rejected HELLO 3 would make ioredis fall back to RESP2 silently.
  c.eq("negotiated protocol", redis.condition && redis.condition.protocol, 3);
  const p = `${LIB}:${process.pid}`;

  c.at("clean slate");
  c.ok("DEL of the fixed keys", Number.isInteger(await redis.del(...keysToReset(keys))));

  c.at("SET/GET");
  c.eq("SET", await redis.set(`${p}:str`, "hello"), "OK");
  c.eq("GET", await redis.get(`${p}:str`), "hello");
  c.eq("GET missing", await redis.get(`${p}:missing`), null);

  c.at("pipeline() over keys on all shards");
  {
    const pipe = redis.pipeline();
    keys.spread.forEach((k, i) => pipe.set(k, `p${i}`));
    keys.spread.forEach((k) => pipe.get(k));
    pipe.incr(keys.spread[0] + ":n").incr(keys.spread[1] + ":n").get(`${p}:missing`);
    const results = await pipe.exec();
    const expected = [
      ...keys.spread.map(() => [null, "OK"]),
      ...keys.spread.map((_, i) => [null, `p${i}`]),
      [null, 1], [null, 1], [null, null],
    ];
    c.eq("pipeline results", results, expected);
  }

  c.at("MGET over keys on all shards");
  c.eq("MGET", await redis.mget(...keys.spread, `${p}:missing`), [...keys.spread.map((_, i) => `p${i}`), null]);

  c.at("multi() over keys on several shards");
  {
    const results = await redis
      .multi()
      .set(keys.txn[0], "m0").set(keys.txn[1], "m1").set(keys.txn[2], "m2")
      .incr(keys.txn[3]).incr(keys.txn[3])
      .get(keys.txn[0]).get(keys.txn[1]).get(keys.txn[2])
      .exec();
    c.eq("multi results", results,
      [[null, "OK"], [null, "OK"], [null, "OK"], [null, 1], [null, 2], [null, "m0"], [null, "m1"], [null, "m2"]]);
  }

  c.at("multi() with a syntax error (README example) -> EXECABORT");
  {
    let err = null;
    try {
      await redis.multi().set(keys.txn[4]).set(keys.txn[4], "new value").exec();
    } catch (e) {
      err = e;
    }
    c.ok("exec rejected", err !== null);
    c.ok("EXECABORT error", /^EXECABORT/.test(err.message), err.message);
    c.eq("nothing ran", await redis.get(keys.txn[4]), null);
  }

  c.at("a transaction inside a pipeline (README: inline transactions)");
  c.eq("results", await redis.pipeline()
    .get(keys.spread[0])
    .multi().set(keys.txn[4], "i4").get(keys.txn[4]).set(keys.txn[5], "i5").exec()
    .get(keys.spread[2])
    .exec(), [[null, "p0"], [null, "OK"], [null, "QUEUED"], [null, "QUEUED"], [null, "QUEUED"],
    [null, ["OK", "i4", "OK"]], [null, "p2"]]);
  c.eq("MGET after", await redis.mget(keys.txn[4], keys.txn[5]), ["i4", "i5"]);

  c.at("multi() while other commands are in flight (replies in order)");
  c.eq("replies", await Promise.all([
    redis.get(keys.spread[0]),
    redis.multi().incr(keys.txn[3]).get(keys.txn[0]).get(keys.txn[1]).exec(),
    redis.get(keys.spread[1]),
    redis.multi().decr(keys.txn[3]).exec(),
    redis.mget(keys.spread[2], keys.spread[3], keys.spread[4]),
  ]), ["p0", [[null, 3], [null, "m0"], [null, "m1"]], "p1", [[null, 2]], ["p2", "p3", "p4"]]);

  c.at("WATCH: another connection changes the key -> exec() gives null");
  {
    const other = new Redis(port, "127.0.0.1");
    c.eq("SET", await redis.set(`${p}:w`, "start"), "OK");
    c.eq("WATCH", await redis.watch(`${p}:w`), "OK");
    c.eq("other SET", await other.set(`${p}:w`, "changed"), "OK");
    c.eq("exec after the change", await redis.multi().set(`${p}:w`, "mine").exec(), null);
    c.eq("value", await redis.get(`${p}:w`), "changed");
    c.eq("WATCH again", await redis.watch(`${p}:w`), "OK");
    c.eq("exec untouched", await redis.multi().set(`${p}:w`, "mine").exec(), [[null, "OK"]]);
    c.eq("value after", await other.get(`${p}:w`), "mine");
    c.eq("other QUIT", await other.quit(), "OK");
  }

  c.at("many commands at once (Promise.all, no explicit pipeline)");
  {
    const promises = [];
    const expected = [];
    for (let round = 0; round < 10; round++) {
      keys.spread.forEach((k, i) => {
        promises.push(redis.append(`${k}:log`, `${round}.`));
        expected.push(2 * (round + 1));
        promises.push(redis.get(k));
        expected.push(`p${i}`);
      });
    }
    c.eq("Promise.all replies", await Promise.all(promises), expected);
  }

  c.at("INCR");
  c.eq("INCR 1", await redis.incr(`${p}:counter`), 1);
  c.eq("INCRBY", await redis.incrby(`${p}:counter`, 41), 42);
  c.eq("GET counter", await redis.get(`${p}:counter`), "42");

  c.at("DEL of keys on several shards");
  {
    const pipe = redis.pipeline();
    keys.dels.forEach((k) => pipe.set(k, "x"));
    await pipe.exec();
    c.eq("DEL count", await redis.del(...keys.dels, `${p}:missing`), keys.dels.length);
    c.eq("EXISTS after DEL", await redis.exists(...keys.dels), 0);
  }

  c.at("binary values");
  {
    const bin = binaryValue();
    c.eq("SET binary", await redis.set(`${p}:bin`, bin), "OK");
    c.eq("getBuffer", await redis.getBuffer(`${p}:bin`), bin);
    c.eq("STRLEN", await redis.strlen(`${p}:bin`), bin.length);
    const binKey = Buffer.from([0x62, 0x00, 0x0d, 0x0a, 0xff, 0x6b]);
    c.eq("SET binary key", await redis.set(binKey, bin.subarray(0, 40)), "OK");
    c.eq("getBuffer binary key", await redis.getBuffer(binKey), bin.subarray(0, 40));
    c.eq("DEL binary key", await redis.del(binKey), 1);
  }

  c.at("SET EX / TTL");
  c.eq("SET EX", await redis.set(`${p}:exp`, "data", "EX", 100), "OK");
  {
    const ttl = await redis.ttl(`${p}:exp`);
    c.ok("0 < TTL <= 100", ttl > 0 && ttl <= 100, ttl);
  }

  c.at("hashes");
  c.eq("HSET", await redis.hset(`${p}:h`, { f1: "a", f2: "b", "f\r\n3": "c\r\n" }), 3);
  c.eq("HGETALL", await redis.hgetall(`${p}:h`), { f1: "a", f2: "b", "f\r\n3": "c\r\n" });
  c.eq("HGETALL missing", await redis.hgetall(`${p}:missing`), {});

  c.at("lists");
  c.eq("LPUSH", await redis.lpush(`${p}:l`, "a", "b", "c"), 3);
  c.eq("LRANGE", await redis.lrange(`${p}:l`, 0, -1), ["c", "b", "a"]);

  c.at("connection stayed up");
  c.eq("events before quit", ev.counts, { connect: 1, ready: 1, error: 0, close: 0, reconnecting: 0, end: 0 });
  c.eq("error events", ev.errors, []);

  // Last, so that a failure here leaves every other check above already done.
  c.at("INFO and DBSIZE over all shards (on this RESP3 connection)");
  {
    const info = await redis.info();
    const dbsize = await redis.dbsize();
    c.ok("DBSIZE counts the keys written above", dbsize >= 20, dbsize);
    c.ok("INFO names the backends' redis_version", /^redis_version:\d+\.\d+/m.test(info), info);
    const m = /^db0:keys=(\d+)/m.exec(info);
    c.ok(`INFO keyspace has db0:keys=${dbsize} like DBSIZE`, m !== null && Number(m[1]) === dbsize, info);
  }

  c.at("QUIT");
  const ended = new Promise((resolve) => redis.once("end", resolve));
  c.eq("QUIT", await redis.quit(), "OK");
  await ended;
  return `${c.checks} checks, events ${JSON.stringify(ev.counts)}, ioredis ${require("ioredis/package.json").version}`;
}

run(c, scenario);
