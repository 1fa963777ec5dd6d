// Blocking commands for a Redis session: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
// BZPOPMAX, BZMPOP, and XREAD/XREADGROUP with BLOCK.
//
// A blocked command holds its connection until data arrives, so it never travels on the
// shared pipelined connection (every other client's requests would wait behind it). Each
// blocking client gets a connection of its own to the owner of its keys, as it would have
// without the proxy, and keeps it for its next blocking command: job workers block in a loop
// on the same keys, and reopening a connection each time would cost the backend a connect
// per poll. The connection is closed when the client leaves, at once if it leaves while
// blocked (Redis then stops waiting for it), or when its next blocking command goes to
// another server. max_blocking_connections bounds how many the pool's clients hold.
//
// Order is kept as Redis keeps it for one connection: a blocking command waits until the
// client's earlier requests are answered before it is sent (it must not overtake them on its
// own connection), and the client's later requests wait until it is answered (a blocked
// Redis client runs nothing else). Between MULTI and EXEC a blocking command is queued like
// any other and, as in Redis, does not block there.
//
// The reply timeout is the command's own timeout plus the pool's `timeout` (none when either
// is forever), so a slow answer to a 30 s BLPOP is not mistaken for a dead server. Keys of a
// multi-key form (BLPOP a b, BLMOVE src dst) must have one owner: CROSSSLOT otherwise.
#include <algorithm>

#include "proxy/redis/redis_session.h"

namespace proxy {

void RedisSession::cmdBlocking(const CommandSpec& spec, const char* req) {
  const int64_t waitMs = blockingTimeoutMs(spec, argc(), [&](size_t i) { return arg(req, i); });
  if (waitMs == kNotBlocking) {  // XREAD without BLOCK: an ordinary keyed read
    forwardKeyed(spec, req);
    return;
  }
  uint32_t owner = 0;
  if (!singleOwner(spec, req, owner)) return;
  if (hasQueued()) {
    deferred_ = true;
    return;
  }
  backends::upstream::UpstreamLink* link = blockingLink(owner);
  if (link == nullptr) return;
  const int poolTimeout = poolRoute()->config.timeoutMs;
  int replyTimeout = poolTimeout;  // a timeout the backend refuses is answered at once
  if (waitMs == kForever || (waitMs > 0 && poolTimeout < 0)) replyTimeout = -1;
  else if (waitMs > 0) replyTimeout = static_cast<int>(std::min<int64_t>(waitMs + poolTimeout, INT32_MAX));
  link->setReplyTimeout(replyTimeout);

  RedisRequest* r = newRedisRequest();
  r->begin<RelayMerge>();
  const std::string_view bytes = asResp(req);
  if (!sendFragment(*r, r->addFragment(), owner, *link, bytes.data(), bytes.size())) {
    std::string err = std::move(r->error);
    freeRequest(r);
    replyError(err);
    return;
  }
  stats().blockingRequests++;
  enqueue(r);
  holdInputWhileBlocked();
}

backends::upstream::UpstreamLink* RedisSession::blockingLink(uint32_t backend) {
  RareState& st = rare();
  const std::string& key = host_.snapshot().backends[backend].key;
  if (st.blockLink != nullptr && st.blockKey == key && st.blockChannel == channel() && st.blockDb == db_)
    return st.blockLink;
  if (st.blockLink != nullptr) releaseBlockingLink(false);
  PoolGauges* gauges = host_.gauges(pool());
  const uint32_t limit = poolRoute()->config.maxBlockingConnections;
  if (gauges->blocking.fetch_add(1, std::memory_order_relaxed) >= limit) {
    gauges->blocking.fetch_sub(1, std::memory_order_relaxed);
    stats().blockingRefused++;
    replyError("ERR ringproxy: the pool's clients already hold max_blocking_connections (" + std::to_string(limit) +
               ") backend connections for blocking commands; retry later");
    return nullptr;
  }
  st.blockLink = host_.openDedicated(backend, channel(), db_);
  st.blockDb = db_;
  st.blockKey = key;
  st.blockChannel = channel();
  st.blockGauges = gauges;
  stats().blockingOpened++;
  return st.blockLink;
}

void RedisSession::releaseBlockingLink(bool now) {
  RareState& st = rare();
  if (st.blockLink == nullptr) return;
  if (now) st.blockLink->close();
  else st.blockLink->closeWhenIdle();
  st.blockLink = nullptr;
  st.blockGauges->blocking.fetch_sub(1, std::memory_order_relaxed);
  st.blockGauges = nullptr;
  stats().blockingClosed++;
}

}  // namespace proxy
