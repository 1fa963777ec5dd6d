#!/usr/bin/python3
"""socket.io with @socket.io/redis-adapter (node-redis clients, set up as the adapter's README
shows) against TARGET=direct (one redis-server) or TARGET=ringproxy (ringproxy over three
redis-servers). Two socket.io servers, A and B, and a socket.io-client on A run in
node/socketio_case.js.

Cases (python3 test_socketio.py CASE [--target direct|ringproxy]):
  socketio_broadcast     B's io.emit and io.to(room).emit reach the client on A (PUBLISH /
                         PSUBSCRIBE / SUBSCRIBE); a room nobody joined gets nothing
  socketio_fetchsockets  serverCount() == 2 (PUBSUB NUMSUB), fetchSockets() from B finds A's
                         socket with rooms and data, socketsJoin from B, serverSideEmitWithAck
  socketio_sharded       createShardedAdapter (SSUBSCRIBE / SPUBLISH): broadcasts from B reach
                         the client on A; serverCount() == 2 (PUBSUB SHARDNUMSUB)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CASES = ("socketio_broadcast", "socketio_fetchsockets", "socketio_sharded")

if __name__ == "__main__":
    target = common.target_from_args()
    args = [a for a in sys.argv[1:] if not a.startswith("--target") and a not in common.TARGETS]
    case = args[0] if args else CASES[0]
    if case not in CASES:
        raise SystemExit(f"unknown case {case!r}; one of {', '.join(CASES)}")
    common.run_node_case("socketio_case.js", case, target)
