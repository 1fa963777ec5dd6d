// BullMQ in its default settings (ioredis driver, connection { host, port } only) against the
// Redis endpoint on 127.0.0.1:PORT. Run by tests/frameworks/test_bullmq.py:
//   node bullmq_case.js CASE PORT
// CASE: hashtag          Queue + Worker + QueueEvents with prefix '{bull}': 5 jobs, return values
//       hashtag_delayed  the same prefix: a job added with { delay: 2000 } runs no earlier
//       default_prefix   as 'hashtag' with BullMQ's default prefix 'bull' (keys of one queue
//                        hash to different servers unless the proxy hashes on a key prefix)
// Prints "PASS" and exits 0, or prints the error and exits 1. Every Redis error any BullMQ
// object emits is printed as "redis error: ..." (the Python side picks the first one).
'use strict';
const { Queue, Worker, QueueEvents } = require('bullmq');

const [caseName, portArg] = process.argv.slice(2);
const port = Number(portArg);
const connection = { host: '127.0.0.1', port };
const prefix = caseName === 'default_prefix' ? undefined : '{bull}';
const withPrefix = (o) => (prefix === undefined ? o : { ...o, prefix });
const queueName = `fw-${caseName}`;

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function deadline(ms, what) {
  let t;
  const p = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  p.cancel = () => clearTimeout(t);
  return p;
}

async function main() {
  const objects = [];
  const onError = (who) => (err) => console.log(`redis error: ${who}: ${err && err.message}`);
  const queue = new Queue(queueName, withPrefix({ connection }));
  queue.on('error', onError('queue'));
  objects.push(queue);
  const events = new QueueEvents(queueName, withPrefix({ connection }));
  events.on('error', onError('queueEvents'));
  objects.push(events);
  const completed = new Map();
  const worker = new Worker(queueName, async (job) => {
    if (job.name === 'double') return { doubled: job.data.x * 2, at: Date.now() };
    throw new Error(`unknown job ${job.name}`);
  }, withPrefix({ connection }));
  worker.on('error', onError('worker'));
  worker.on('failed', (job, err) => console.log(`job failed: ${job && job.id}: ${err && err.message}`));
  worker.on('completed', (job, value) => completed.set(job.id, value));
  objects.push(worker);
  try {
    const timeout = deadline(25000, `case ${caseName}`);
    await Promise.race([timeout, (async () => {
      await queue.waitUntilReady();
      await worker.waitUntilReady();
      await events.waitUntilReady();
      if (caseName === 'hashtag_delayed') {
        const t0 = Date.now();
        const job = await queue.add('double', { x: 50 }, { delay: 2000 });
        const state = await job.getState();
        assert(state === 'delayed', `state right after add is ${state}`);
        const value = await job.waitUntilFinished(events, 20000);
        assert(value.doubled === 100, `return value ${JSON.stringify(value)}`);
        assert(value.at - t0 >= 2000 - 20, `ran ${value.at - t0} ms after add with delay 2000`);
        const done = await queue.getJob(job.id);
        assert(done.returnvalue.doubled === 100, `stored returnvalue ${JSON.stringify(done.returnvalue)}`);
        assert((await done.getState()) === 'completed', 'stored state');
      } else {
        const jobs = [];
        for (let i = 0; i < 5; i++) jobs.push(await queue.add('double', { x: i + 1 }));
        const values = await Promise.all(jobs.map((j) => j.waitUntilFinished(events, 20000)));
        assert(JSON.stringify(values.map((v) => v.doubled)) === '[2,4,6,8,10]',
          `return values ${JSON.stringify(values)}`);
        for (const j of jobs) {
          const again = await queue.getJob(j.id);
          assert(again.returnvalue.doubled === j.data.x * 2, `stored returnvalue of job ${j.id}`);
        }
        const counts = await queue.getJobCounts('completed', 'waiting', 'active', 'failed');
        assert(counts.completed === 5 && counts.waiting === 0 && counts.active === 0 && counts.failed === 0,
          `job counts ${JSON.stringify(counts)}`);
        assert(completed.size === 5, `worker 'completed' events: ${completed.size}`);
      }
    })()]);
    timeout.cancel();
    console.log('PASS');
  } finally {
    // Close within a bound: against a server that refuses BullMQ, close() can wait forever.
    const closing = Promise.allSettled(objects.reverse().map((o) => o.close()));
    await Promise.race([closing, new Promise((r) => setTimeout(r, 3000))]);
  }
}

main().then(() => process.exit(0), (err) => {
  console.log(`FAIL: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
