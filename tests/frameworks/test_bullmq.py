#!/usr/bin/python3
"""BullMQ (npm bullmq, ioredis driver) in its default settings, against TARGET=direct (one
redis-server) or TARGET=ringproxy (ringproxy over three redis-servers, hash_tag "{}"). The
Queue, Worker and QueueEvents run in node/bullmq_case.js.

Cases (python3 test_bullmq.py CASE [--target direct|ringproxy]):
  bullmq_hashtag          prefix '{bull}' (every key of the queue on one server): 5 jobs,
                          waitUntilFinished via QueueEvents, return values, job counts
  bullmq_hashtag_delayed  prefix '{bull}': a job added with { delay: 2000 } is 'delayed',
                          runs no earlier than 2 s later, its return value comes back
  bullmq_default_prefix   BullMQ's default prefix 'bull': the keys of one queue (bull:NAME:wait,
                          bull:NAME:meta, ...) share a server through the pool's key-prefix rule
                          (hash_key_separator ":", hash_key_parts 2: "bull:NAME" is hashed)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CASES = ("bullmq_hashtag", "bullmq_hashtag_delayed", "bullmq_default_prefix")

if __name__ == "__main__":
    target = common.target_from_args()
    args = [a for a in sys.argv[1:] if not a.startswith("--target") and a not in common.TARGETS]
    case = args[0] if args else CASES[0]
    if case not in CASES:
        raise SystemExit(f"unknown case {case!r}; one of {', '.join(CASES)}")
    # The default prefix needs the pool to hash "bull:QUEUE" of every key (the key-prefix rule):
    # a queue's keys then share a server, and queues spread over the fleet.
    extra = '  hash_key_separator: ":"\n  hash_key_parts: 2\n' if case == "bullmq_default_prefix" else ""
    common.run_node_case("bullmq_case.js", case, target, pool_extra=extra)
