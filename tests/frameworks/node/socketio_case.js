// Two socket.io servers (A and B, in this one process, on their own loopback ports), each
// with @socket.io/redis-adapter over the Redis endpoint on 127.0.0.1:PORT, set up exactly as
// the adapter's README shows (node-redis createClient, pubClient.duplicate() for sub), and one
// socket.io-client connected to A. Run by tests/frameworks/test_socketio.py:
//   node socketio_case.js CASE PORT
// CASE: broadcast     B emits to everyone and to a room A's client joined: the client gets both
//       fetchsockets  B's serverCount() is 2 (PUBSUB NUMSUB), B's fetchSockets() returns A's
//                     socket with its rooms and data, B makes it join a room remotely, and
//                     serverSideEmit with an acknowledgement reaches A
//       sharded       as broadcast, with createShardedAdapter (SSUBSCRIBE/SPUBLISH), and
//                     serverCount() (PUBSUB SHARDNUMSUB)
// Prints "PASS" and exits 0, or prints the error and exits 1; Redis errors are printed as
// "redis error: ...".
'use strict';
const http = require('http');
const { createClient } = require('redis');
const { Server } = require('socket.io');
const { createAdapter, createShardedAdapter } = require('@socket.io/redis-adapter');
const { io: ioClient } = require('socket.io-client');

const [caseName, portArg] = process.argv.slice(2);
const url = `redis://127.0.0.1:${Number(portArg)}`;
const sharded = caseName === 'sharded';
const cleanup = [];

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function within(ms, what, promise) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}

async function startServer(name) {
  const pubClient = createClient({ url });
  const subClient = pubClient.duplicate();
  for (const [role, c] of [['pub', pubClient], ['sub', subClient]]) {
    c.on('error', (err) => console.log(`redis error: ${name}/${role}: ${err && err.message}`));
  }
  await Promise.all([pubClient.connect(), subClient.connect()]);
  cleanup.push(async () => { await Promise.allSettled([pubClient.quit(), subClient.quit()]); });
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: sharded ? createShardedAdapter(pubClient, subClient) : createAdapter(pubClient, subClient),
  });
  cleanup.push(async () => { io.close(); });
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  io.name = name;
  io.port = httpServer.address().port;
  return io;
}

async function main() {
  const a = await startServer('A');
  const b = await startServer('B');
  const got = [];
  let serverSideFromB = null;
  a.on('connection', (socket) => {
    socket.join('room-1');
    socket.data.user = 'alice';
  });
  a.on('hello-from-b', (arg, ack) => {
    serverSideFromB = arg;
    if (typeof ack === 'function') ack(`A got ${arg}`);
  });
  const client = ioClient(`http://127.0.0.1:${a.port}`, { transports: ['websocket'], reconnection: false });
  cleanup.unshift(async () => { client.close(); });
  await within(5000, 'client connects to A', new Promise((resolve, reject) => {
    client.on('connect', resolve);
    client.on('connect_error', reject);
  }));
  const received = (event, count) => new Promise((resolve) => {
    client.on(event, (...args) => {
      got.push([event, ...args]);
      if (got.filter((g) => g[0] === event).length >= count) resolve();
    });
  });
  // Let A's adapter finish subscribing before B publishes: pub/sub has no backlog.
  await new Promise((r) => setTimeout(r, 300));

  if (caseName === 'broadcast' || caseName === 'sharded') {
    const toAll = received('all', 1);
    const toRoom = received('room', 1);
    b.emit('all', { from: 'B', n: 1 });
    b.to('room-1').emit('room', 'to room-1 from B');
    b.to('room-nobody').emit('room', 'must not arrive');
    await within(8000, 'broadcasts from B reach the client on A', Promise.all([toAll, toRoom]));
    await new Promise((r) => setTimeout(r, 300));
    const rooms = got.filter((g) => g[0] === 'room').map((g) => g[1]);
    assert(JSON.stringify(rooms) === '["to room-1 from B"]', `room messages ${JSON.stringify(rooms)}`);
    const all = got.filter((g) => g[0] === 'all').map((g) => g[1]);
    assert(all.length === 1 && all[0].from === 'B' && all[0].n === 1, `'all' messages ${JSON.stringify(all)}`);
    if (sharded) {
      const count = await within(8000, 'serverCount() on B', b.of('/').adapter.serverCount());
      assert(count === 2, `serverCount() on B is ${count}`);
    }
  } else if (caseName === 'fetchsockets') {
    const count = await within(8000, 'serverCount() on B', b.of('/').adapter.serverCount());
    assert(count === 2, `serverCount() on B is ${count}`);
    const sockets = await within(8000, 'fetchSockets() on B', b.fetchSockets());
    assert(sockets.length === 1, `fetchSockets() on B found ${sockets.length} sockets`);
    assert(sockets[0].id === client.id, `remote socket id ${sockets[0].id}, client id ${client.id}`);
    assert(sockets[0].rooms.has('room-1'), `remote socket rooms ${[...sockets[0].rooms]}`);
    assert(sockets[0].data.user === 'alice', `remote socket data ${JSON.stringify(sockets[0].data)}`);
    b.in(client.id).socketsJoin('room-2');
    const joined = await within(5000, 'socketsJoin from B takes effect on A', (async () => {
      for (;;) {
        const s = [...a.of('/').sockets.values()][0];
        if (s && s.rooms.has('room-2')) return true;
        await new Promise((r) => setTimeout(r, 50));
      }
    })());
    assert(joined, 'room-2 joined');
    const inRoom2 = await within(8000, 'fetchSockets() of room-2 on B', b.in('room-2').fetchSockets());
    assert(inRoom2.length === 1, `sockets in room-2 seen from B: ${inRoom2.length}`);
    const acks = await within(8000, 'serverSideEmit with ack from B',
      b.serverSideEmitWithAck('hello-from-b', 'ping-1'));
    assert(serverSideFromB === 'ping-1', `A received ${serverSideFromB}`);
    assert(JSON.stringify(acks) === '["A got ping-1"]', `acks ${JSON.stringify(acks)}`);
  } else {
    throw new Error(`unknown case ${caseName}`);
  }
  console.log('PASS');
}

async function closeAll() {
  await Promise.race([
    (async () => { for (const f of cleanup) await f().catch(() => {}); })(),
    new Promise((r) => setTimeout(r, 3000)),
  ]);
}

within(30000, `case ${caseName}`, main()).then(async () => {
  await closeAll();
  process.exit(0);
}, async (err) => {
  console.log(`FAIL: ${err && err.stack ? err.stack : err}`);
  await closeAll();
  process.exit(1);
});
