// Shared by the client-library scripts: argument parsing, checked steps and connection-event
// bookkeeping. Each script is run as `node SCRIPT PORT [KEYS_JSON]` by
// tests/integration/test_client_libraries.py and exits non-zero with a clear message on the
// first reply that differs from what a Redis server gives.
"use strict";

const util = require("node:util");

function parseArgs(lib) {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error(`usage: node ${lib}_test.js PORT [KEYS_JSON]`);
    process.exit(2);
  }
  // KEYS_JSON (chosen by the Python driver with `ringctl owner` so that they span all shards):
  //   {"spread": [9 keys, any 3 consecutive ones on 3 different servers],
  //    "dels":   [6 keys, 2 per server],
  //    "txn":    [6 keys, 2 per server]}
  // Without it (a manual run) plain names are used and the spread over shards is unchecked.
  let keys;
  if (process.argv[3]) {
    keys = JSON.parse(process.argv[3]);
  } else {
    const names = (what, n) => Array.from({ length: n }, (_, i) => `${lib}:${what}${i}`);
    keys = { spread: names("s", 9), dels: names("d", 6), txn: names("t", 6) };
  }
  for (const group of ["spread", "dels", "txn"]) {
    if (!Array.isArray(keys[group]) || keys[group].length < 6) {
      console.error(`KEYS_JSON: "${group}" must list at least 6 keys`);
      process.exit(2);
    }
  }
  return { port, keys };
}

// Every fixed key a script writes, so that it can start from a clean slate (a rerun against
// the same servers must not see the previous run's counters).
function keysToReset(keys) {
  return [...keys.spread, ...keys.spread.map((k) => `${k}:n`), ...keys.spread.map((k) => `${k}:log`),
    ...keys.dels, ...keys.txn];
}

class Checker {
  constructor(lib) {
    this.lib = lib;
    this.step = "start";
    this.checks = 0;
  }

  // Names the scenario step for the messages of the checks that follow.
  at(step) {
    this.step = step;
  }

  eq(what, actual, expected) {
    this.checks++;
    if (!util.isDeepStrictEqual(actual, expected)) {
      this.fail(`${what}: expected ${util.inspect(expected, { depth: 6 })}, got ${util.inspect(actual, { depth: 6 })}`);
    }
  }

  ok(what, condition, detail) {
    this.checks++;
    if (!condition) this.fail(`${what}${detail === undefined ? "" : ": " + util.inspect(detail, { depth: 6 })}`);
  }

  fail(message) {
    const err = new Error(`step "${this.step}": ${message}`);
    err.checkFailure = true;
    throw err;
  }
}

// Counts a client's connection events so the script can assert the connection stayed up: one
// connect, one ready, no error, no reconnect, no close before the script closes it.
function countEvents(emitter, names) {
  const counts = Object.fromEntries(names.map((n) => [n, 0]));
  const errors = [];
  for (const name of names) {
    emitter.on(name, (arg) => {
      counts[name]++;
      if (name === "error") errors.push(arg && arg.stack ? arg.stack : String(arg));
    });
  }
  return { counts, errors };
}

// Bytes that trip up a careless RESP implementation: CR, LF, CRLF, NUL, RESP type markers at
// line starts, and every byte value.
function binaryValue() {
  const parts = [
    Buffer.from([0x00, 0x0d, 0x0a, 0x00]),
    Buffer.from("\r\n$5\r\nhello\r\n*2\r\n:1\r\n-ERR no\r\n+OK\r\n_\r\n%1\r\n"),
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    Buffer.from([0x0d]),  // a lone CR right before the bulk terminator
  ];
  return Buffer.concat(parts);
}

// A plain object with the same own enumerable entries (node-redis may build null-prototype
// objects for maps; the comparison is about content).
function plain(obj) {
  return obj === null || typeof obj !== "object" ? obj : Object.fromEntries(Object.entries(obj));
}

// Runs the scenario; any thrown error (a failed check, a rejected command, a timeout) exits 1.
function run(c, scenario, timeoutMs = 30000) {
  const lib = c.lib;
  const timer = setTimeout(() => {
    console.error(`[${lib}] FAIL: step "${c.step}" did not finish within ${timeoutMs} ms (a reply never came?)`);
    process.exit(1);
  }, timeoutMs);
  scenario().then(
    (summary) => {
      clearTimeout(timer);
      console.log(`[${lib}] OK ${summary}`);
      process.exit(0);
    },
    (err) => {
      clearTimeout(timer);
      if (err && err.checkFailure) console.error(`[${lib}] FAIL: ${err.message}`);
      else console.error(`[${lib}] FAIL: step "${c.step}": ${err && err.stack ? err.stack : err}`);
      process.exit(1);
    },
  );
}

module.exports = { parseArgs, keysToReset, Checker, countEvents, binaryValue, plain, run };
