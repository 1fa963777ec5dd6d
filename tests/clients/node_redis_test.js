// node-redis (npm package `redis`), in its default settings and used as its README shows,
// against ringproxy:
//   node node_redis_test.js PORT [KEYS_JSON]
// Defaults that matter here (redis 6): RESP3 (HELLO 3 on connect, maps arrive as maps),
// CLIENT SETINFO LIB-VER/LIB-NAME and CLIENT MAINT_NOTIFICATIONS ON in the handshake (failures
// of those are ignored by the library), auto-pipelining of commands issued in one tick. Every
// reply is checked; the connection must stay up (one connect, one ready, no error, no reconnect).
"use strict";

const { createClient, RESP_TYPES, WatchError } = require("redis");
const { parseArgs, keysToReset, Checker, countEvents, binaryValue, plain, run } = require("./common");

const LIB = "node-redis";
const { port, keys } = parseArgs("node_redis");
const c = new Checker(LIB);

async function scenario() {
  c.at("connect");
  const client = createClient({ url: `redis://127.0.0.1:${port}` });
  const ev = countEvents(client, ["connect", "ready", "error", "reconnecting", "end"]);
  await client.connect();
  c.eq("isReady", client.isReady, true);
  const p = `node_redis:${process.pid}`;

  c.at("clean slate");
  c.ok("DEL of the fixed keys", Number.isInteger(await client.del(keysToReset(keys))));

  c.at("SET/GET");
  c.eq("SET", await client.set(`${p}:str`, "hello"), "OK");
  c.eq("GET", await client.get(`${p}:str`), "hello");
  c.eq("GET missing", await client.get(`${p}:missing`), null);

  c.at("auto-pipelining: Promise.all over keys on all shards");
  {
    const replies = await Promise.all([
      ...keys.spread.map((k, i) => client.set(k, `p${i}`)),
      ...keys.spread.map((k) => client.get(k)),
      client.incr(keys.spread[0] + ":n"),
      client.incr(keys.spread[1] + ":n"),
      client.get(`${p}:missing`),
    ]);
    c.eq("replies", replies, [
      ...keys.spread.map(() => "OK"), ...keys.spread.map((_, i) => `p${i}`), 1, 1, null,
    ]);
    // A deeper burst: 10 rounds of APPEND + GET on every key, all issued in one tick.
    const promises = [];
    const expected = [];
    for (let round = 0; round < 10; round++) {
      keys.spread.forEach((k, i) => {
        promises.push(client.append(`${k}:log`, `${round}.`));
        expected.push(2 * (round + 1));
        promises.push(client.get(k));
        expected.push(`p${i}`);
      });
    }
    c.eq("burst replies", await Promise.all(promises), expected);
  }

  c.at("MGET over keys on all shards");
  c.eq("mGet", await client.mGet([...keys.spread, `${p}:missing`]), [...keys.spread.map((_, i) => `p${i}`), null]);

  c.at("multi() over keys on several shards");
  c.eq("exec", await client.multi()
    .set(keys.txn[0], "m0").set(keys.txn[1], "m1").set(keys.txn[2], "m2")
    .incr(keys.txn[3]).incr(keys.txn[3])
    .get(keys.txn[0]).get(keys.txn[1]).get(keys.txn[2])
    .exec(), ["OK", "OK", "OK", 1, 2, "m0", "m1", "m2"]);

  c.at("multi() in the same tick as other commands (one write, replies in order)");
  c.eq("replies", await Promise.all([
    client.get(keys.spread[0]),
    client.multi().incr(keys.txn[4]).get(keys.txn[0]).incr(keys.txn[5]).get(keys.txn[1]).exec(),
    client.get(keys.spread[1]),
    client.multi().incr(keys.txn[4]).incr(keys.txn[5]).exec(),
    client.mGet([keys.spread[2], keys.spread[3], keys.spread[4]]),
  ]), ["p0", [1, "m0", 1, "m1"], "p1", [2, 2], ["p2", "p3", "p4"]]);

  c.at("WATCH: another connection changes the key -> exec() throws WatchError");
  {
    const other = await createClient({ url: `redis://127.0.0.1:${port}` }).on("error", () => {}).connect();
    c.eq("SET", await client.set(`${p}:w`, "start"), "OK");
    c.eq("WATCH", await client.watch(`${p}:w`), "OK");
    c.eq("other SET", await other.set(`${p}:w`, "changed"), "OK");
    let err = null;
    try {
      await client.multi().set(`${p}:w`, "mine").exec();
    } catch (e) {
      err = e;
    }
    c.ok("exec threw WatchError", err instanceof WatchError, err);
    c.eq("value", await client.get(`${p}:w`), "changed");
    c.eq("WATCH again", await client.watch(`${p}:w`), "OK");
    c.eq("exec untouched", await client.multi().set(`${p}:w`, "mine").exec(), ["OK"]);
    c.eq("value after", await other.get(`${p}:w`), "mine");
    await other.close();
  }

  c.at("INCR");
  c.eq("INCR", await client.incr(`${p}:counter`), 1);
  c.eq("INCRBY", await client.incrBy(`${p}:counter`, 41), 42);
  c.eq("GET counter", await client.get(`${p}:counter`), "42");

  c.at("DEL of keys on several shards");
  await Promise.all(keys.dels.map((k) => client.set(k, "x")));
  c.eq("DEL count", await client.del([...keys.dels, `${p}:missing`]), keys.dels.length);
  c.eq("EXISTS after DEL", await client.exists(keys.dels), 0);

  c.at("binary values (withTypeMapping BLOB_STRING -> Buffer, as the README shows)");
  {
    const bin = binaryValue();
    const binClient = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    c.eq("SET binary", await client.set(`${p}:bin`, bin), "OK");
    const got = await binClient.get(`${p}:bin`);
    c.ok("GET returns a Buffer", Buffer.isBuffer(got), got);
    c.eq("GET binary", got, bin);
    c.eq("STRLEN", await client.strLen(`${p}:bin`), bin.length);
    const binKey = Buffer.from([0x62, 0x00, 0x0d, 0x0a, 0xff, 0x6b]);
    c.eq("SET binary key", await client.set(binKey, bin.subarray(0, 40)), "OK");
    c.eq("GET binary key", await binClient.get(binKey), bin.subarray(0, 40));
    c.eq("DEL binary key", await client.del(binKey), 1);
  }

  c.at("SET EX / TTL");
  c.eq("SET EX", await client.set(`${p}:exp`, "data", { EX: 100 }), "OK");
  {
    const ttl = await client.ttl(`${p}:exp`);
    c.ok("0 < TTL <= 100", ttl > 0 && ttl <= 100, ttl);
  }

  c.at("hashes (HGETALL arrives as a RESP3 map)");
  {
    const fields = { f1: "a", f2: "b", "f\r\n3": "c\r\n" };
    c.eq("hSet", await client.hSet(`${p}:h`, fields), 3);
    c.eq("hGetAll", plain(await client.hGetAll(`${p}:h`)), fields);
    // sendCommand returns the decoded reply untransformed: an array under RESP2, a map
    // (object) under RESP3. The README's default client speaks RESP3.
    const raw = await client.sendCommand(["HGETALL", `${p}:h`]);
    c.ok("raw HGETALL is a map, not an array (RESP3)", raw !== null && typeof raw === "object" && !Array.isArray(raw), raw);
    c.eq("raw HGETALL", plain(raw), fields);
    c.eq("hGetAll missing", plain(await client.hGetAll(`${p}:missing`)), {});
  }

  c.at("sorted set score (a RESP3 double)");
  c.eq("zAdd", await client.zAdd(`${p}:z`, { score: 1.5, value: "m" }), 1);
  c.eq("zScore", await client.zScore(`${p}:z`, "m"), 1.5);

  c.at("lists");
  c.eq("lPush", await client.lPush(`${p}:l`, ["a", "b", "c"]), 3);
  c.eq("lRange", await client.lRange(`${p}:l`, 0, -1), ["c", "b", "a"]);

  c.at("connection stayed up");
  c.eq("isReady", client.isReady, true);
  c.eq("events before close", ev.counts, { connect: 1, ready: 1, error: 0, reconnecting: 0, end: 0 });
  c.eq("error events", ev.errors, []);

  // Last, so that a failure here leaves every other check above already done.
  c.at("INFO and DBSIZE over all shards (on this RESP3 connection)");
  {
    const info = await client.info();
    const dbsize = await client.dbSize();
    c.ok("DBSIZE counts the keys written above", dbsize >= 20, dbsize);
    c.ok("INFO names the backends' redis_version", /^redis_version:\d+\.\d+/m.test(info), info);
    const m = /^db0:keys=(\d+)/m.exec(info);
    c.ok(`INFO keyspace has db0:keys=${dbsize} like DBSIZE`, m !== null && Number(m[1]) === dbsize, info);
  }

  c.at("close");
  await client.close();
  c.eq("end events", ev.counts.end, 1);
  return `${c.checks} checks, events ${JSON.stringify(ev.counts)}, redis ${require("redis/package.json").version}`;
}

run(c, scenario);
