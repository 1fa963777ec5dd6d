// memjs (binary protocol), in its default options, against ringproxy's memcached pool. Run as
// `node memjs_test.js PORT KEYS_JSON` by tests/integration/test_memcache_binary.py, which
// picks the keys with `ringctl owner` and afterwards checks on the memcached servers directly
// where they landed. KEYS_JSON:
//   {"spread":  [9 keys, any 3 consecutive ones on 3 different servers],
//    "binary":  [3 keys, one per server], "counter": key, "ttl": key, "expire": key}
// Leaves behind: spread[0..5] = "memjs:<key>" (spread[6..8] deleted), binary[i] = binaryValue(i),
// counter = "0 " (decremented from "11"), ttl = "ttl" expiring in 100 s; expire has expired.
// Exits non-zero with a message on the first reply that differs from what memcached gives, or
// if the client saw a connection error (memjs would otherwise retry silently).
"use strict";

const util = require("node:util");
const memjs = require("memjs");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !process.argv[3]) {
  console.error("usage: node memjs_test.js PORT KEYS_JSON");
  process.exit(2);
}
const keys = JSON.parse(process.argv[3]);

let step = "start";
let checks = 0;
function eq(what, actual, expected) {
  checks++;
  if (!util.isDeepStrictEqual(actual, expected)) {
    throw new Error(`step "${step}": ${what}: expected ${util.inspect(expected)}, got ${util.inspect(actual)}`);
  }
}

// memjs turns some statuses into errors (APPEND to a missing key: "Item not stored").
async function rejects(what, promise, pattern) {
  checks++;
  try {
    const value = await promise;
    throw new Error(`step "${step}": ${what}: expected an error matching ${pattern}, got ${util.inspect(value)}`);
  } catch (err) {
    if (!pattern.test(String(err && err.message))) throw err;
  }
}

// Bytes a careless framer trips on: NUL, CR, LF, text protocol lines, every byte value.
function binaryValue(i) {
  return Buffer.concat([
    Buffer.from([0x00, 0x0d, 0x0a, 0x00]),
    Buffer.from(`\r\nEND\r\nVALUE x 0 1\r\n${i}\r\n`),
    Buffer.from(Array.from({ length: 256 }, (_, b) => b)),
    Buffer.from([0x80, 0x81, 0x0d]),
  ]);
}

// Connection errors are counted, not changed: memjs retries failed requests by default, which
// would hide a proxy that drops connections.
const connectionErrors = [];
const originalError = memjs.Server.prototype.error;
memjs.Server.prototype.error = function (err) {
  connectionErrors.push(String(err && err.message ? err.message : err));
  return originalError.call(this, err);
};

async function scenario() {
  const client = memjs.Client.create(`127.0.0.1:${port}`);  // default options
  try {
    step = "set and get over all servers";
    for (const k of keys.spread) eq(`set ${k}`, await client.set(k, `memjs:${k}`), true);
    for (const k of keys.spread) {
      const { value } = await client.get(k);
      eq(`get ${k}`, value && value.toString(), `memjs:${k}`);
    }
    const socket = client.servers[0]._socket;

    step = "a miss";
    eq("get missing", await client.get(`${keys.spread[0]}:missing`), { value: null, flags: null });

    step = "add, replace, append, touch";
    eq("add existing", await client.add(keys.spread[0], "other"), false);
    eq("replace missing", await client.replace(`${keys.spread[1]}:missing`, "x"), false);
    eq("replace existing", await client.replace(keys.spread[1], "replaced"), true);
    eq("append", await client.append(keys.spread[1], "+tail"), true);
    // No prepend: memjs 1.3.2 sends APPEND (0x0e) for it. The raw binary tests cover PREPEND.
    await rejects("append missing", client.append(`${keys.spread[2]}:missing`, "x"), /APPEND: Item not stored/);
    eq("get", (await client.get(keys.spread[1])).value.toString(), "replaced+tail");
    eq("replace back", await client.replace(keys.spread[1], `memjs:${keys.spread[1]}`), true);
    eq("touch", await client.touch(keys.spread[2], 0), true);
    eq("touch missing", await client.touch(`${keys.spread[2]}:missing`, 10), false);

    step = "delete";
    for (const k of keys.spread.slice(6)) eq(`delete ${k}`, await client.delete(k), true);
    for (const k of keys.spread.slice(6)) {
      eq(`delete again ${k}`, await client.delete(k), false);
      eq(`get deleted ${k}`, (await client.get(k)).value, null);
    }

    step = "increment and decrement";
    eq("increment a missing counter: its initial value", await client.increment(keys.counter, 5, { initial: 10 }),
      { success: true, value: 10 });
    // `{}` given: memjs 1.3.2's promise form of decrement throws without an options object.
    eq("increment", await client.increment(keys.counter, 5, {}), { success: true, value: 15 });
    eq("decrement", await client.decrement(keys.counter, 4, {}), { success: true, value: 11 });
    eq("decrement below zero stops at 0", await client.decrement(keys.counter, 100, {}), { success: true, value: 0 });
    // memcached keeps the length of a decremented value, padding with spaces.
    eq("counter as text", (await client.get(keys.counter)).value.toString(), "0 ");

    step = "binary-safe values";
    for (let i = 0; i < keys.binary.length; i++) {
      eq(`set ${keys.binary[i]}`, await client.set(keys.binary[i], binaryValue(i)), true);
    }
    for (let i = 0; i < keys.binary.length; i++) {
      const { value } = await client.get(keys.binary[i]);
      eq(`get ${keys.binary[i]}`, Buffer.compare(value, binaryValue(i)), 0);
    }
    const empty = `${keys.binary[0]}:empty`;
    eq("set empty", await client.set(empty, ""), true);
    eq("get empty", (await client.get(empty)).value.length, 0);
    eq("delete empty", await client.delete(empty), true);

    step = "expiry";
    eq("set with expires 100", await client.set(keys.ttl, "ttl", { expires: 100 }), true);
    eq("set with expires 1", await client.set(keys.expire, "soon gone", { expires: 1 }), true);
    eq("before expiry", (await client.get(keys.expire)).value.toString(), "soon gone");
    await new Promise((resolve) => setTimeout(resolve, 2100));
    eq("after expiry", (await client.get(keys.expire)).value, null);
    eq("not expired", (await client.get(keys.ttl)).value.toString(), "ttl");

    step = "the connection stayed up";
    eq("connection errors", connectionErrors, []);
    eq("same socket as at the start", client.servers[0]._socket === socket, true);
  } finally {
    client.close();
  }
  return `${checks} checks`;
}

const timer = setTimeout(() => {
  console.error(`[memjs] FAIL: step "${step}" did not finish within 30 s (a reply never came?)`);
  process.exit(1);
}, 30000);
scenario().then(
  (summary) => {
    clearTimeout(timer);
    console.log(`[memjs] OK ${summary}`);
    process.exit(0);
  },
  (err) => {
    clearTimeout(timer);
    console.error(`[memjs] FAIL: ${err && err.stack ? err.stack : err}; connection errors: ${connectionErrors}`);
    process.exit(1);
  },
);
