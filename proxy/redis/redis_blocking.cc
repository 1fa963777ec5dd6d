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
#include <charconv>

#include "proxy/redis/redis_session.h"

namespace proxy {

namespace resp = backends::resp;

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
  PoolGauges* gauges = reserveOwnConnections(1);
  if (gauges == nullptr) {
    replyOverOwnConnections("blocking commands");
    return nullptr;
  }
  st.blockLink = host_.openDedicated(backend, channel(), db_);
  st.blockDb = db_;
  st.blockKey = key;
  st.blockChannel = channel();
  st.blockGauges = gauges;
  return st.blockLink;
}

PoolGauges* RedisSession::reserveOwnConnections(uint32_t n) {
  PoolGauges* gauges = host_.gauges(pool());
  if (gauges->blocking.fetch_add(n, std::memory_order_relaxed) + n > poolRoute()->config.maxBlockingConnections) {
    gauges->blocking.fetch_sub(n, std::memory_order_relaxed);
    stats().blockingRefused++;
    return nullptr;
  }
  stats().blockingOpened += n;
  return gauges;
}

void RedisSession::releaseOwnConnections(PoolGauges* gauges, uint32_t n) {
  gauges->blocking.fetch_sub(n, std::memory_order_relaxed);
  stats().blockingClosed += n;
}

void RedisSession::replyOverOwnConnections(std::string_view what) {
  replyError("ERR ringproxy: the pool's clients already hold max_blocking_connections (" +
             std::to_string(poolRoute()->config.maxBlockingConnections) + ") backend connections for " +
             std::string(what) + "; retry later");
}

void RedisSession::releaseBlockingLink(bool now) {
  RareState& st = rare();
  if (st.blockLink == nullptr) return;
  if (now) st.blockLink->close();
  else st.blockLink->closeWhenIdle();
  st.blockLink = nullptr;
  releaseOwnConnections(st.blockGauges, 1);
  st.blockGauges = nullptr;
}


// WAIT numreplicas timeout / WAITAOF numlocal numreplicas timeout.
//
// WAIT counts the replicas that have acknowledged the writes of *this connection* (Redis
// remembers, per connection, the replication offset after its last propagated command). A
// client's writes travel on connections shared with other clients, so WAIT cannot simply be
// forwarded. Instead, once the client's earlier requests are answered (their writes are in
// each server's replication stream), every server of the pool gets, on a connection of its
// own, a PUBLISH to a channel nobody listens to (it is propagated, so that connection's
// offset becomes the server's current one, at or past the client's writes) followed by the
// client's WAIT. The answer is the smallest count over the servers: what holds for every
// write of the client, wherever it went. Stronger than Redis's (it covers other clients'
// earlier writes too), never weaker.
namespace {
constexpr std::string_view kWaitMarker = "*3\r\n$7\r\nPUBLISH\r\n$16\r\n__ringproxy:wait\r\n$0\r\n\r\n";
}  // namespace

void RedisSession::cmdWait(const CommandSpec& spec, const char* req) {
  const bool aof = spec.name == "waitaof";
  int64_t waitMs = 0;
  const std::string_view t = arg(req, aof ? 3 : 2);
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), waitMs);
  if (ec != std::errc() || p != t.data() + t.size() || waitMs < 0) {
    replyError(waitMs < 0 && ec == std::errc() ? "ERR timeout is negative" : "ERR timeout is not an integer or out of range");
    return;
  }
  if (hasQueued()) {  // the client's earlier writes first
    deferred_ = true;
    return;
  }
  const Placement& pl = host_.placement(pool());
  std::vector<uint32_t> servers;
  for (uint32_t node = 0; node < pl.nodeCount(); ++node)
    if (std::find(servers.begin(), servers.end(), pl.nodeBackend[node]) == servers.end())
      servers.push_back(pl.nodeBackend[node]);
  const auto n = static_cast<uint32_t>(servers.size());
  PoolGauges* gauges = reserveOwnConnections(n);
  if (gauges == nullptr) {
    replyOverOwnConnections("blocking commands");
    return;
  }
  const int poolTimeout = poolRoute()->config.timeoutMs;
  const int replyTimeout = waitMs == 0 || poolTimeout < 0 ? -1 : static_cast<int>(std::min<int64_t>(waitMs + poolTimeout, INT32_MAX));
  RedisRequest* r = newRedisRequest();
  WaitMerge& m = r->begin<WaitMerge>();
  m.gauge = &gauges->blocking;
  m.links = n;  // given back when the request is done (WaitMerge::reset)
  stats().blockingClosed += n;  // they close themselves once answered (or when the client leaves)
  const std::string_view bytes = asResp(req);
  for (uint32_t backend : servers) {
    backends::upstream::UpstreamLink* link = host_.openDedicated(backend, channel(), db_);
    link->setReplyTimeout(replyTimeout);
    const uint32_t frag = r->addFragment();
    if (link->send(kWaitMarker.data(), kWaitMarker.size(), nullptr, 0, 0) == 0) {
      r->fragment(frag).failed = true;
      if (r->error.empty()) r->error = "ERR backend " + link->label() + ": " + link->lastError();
    } else {
      sendFragment(*r, frag, backend, *link, bytes.data(), bytes.size());
    }
    link->closeWhenIdle();  // it closes once it has answered, or at once if the client leaves
  }
  stats().blockingRequests++;
  enqueue(r);
  if (r->waiting == 0) {
    fragmentsDone(*r);
    return;
  }
  holdInputWhileBlocked();
}

void RedisSession::mergeWait(RedisRequest& r) {
  if (!r.error.empty()) {
    resp::appendError(r.reply, r.error);
    return;
  }
  // WAIT: integers; WAITAOF: [numlocal, numreplicas] arrays. The smallest, element by element.
  std::vector<int64_t> least;
  bool array = false;
  if (s_.elementSpans.empty()) s_.elementSpans.emplace_back();
  std::vector<resp::ByteSpan>& spans = s_.elementSpans[0];
  for (uint32_t f = 0; f < r.fragmentCount(); ++f) {
    const std::string& reply = r.fragment(f).reply;
    std::vector<std::string_view> values;
    if (!reply.empty() && reply[0] == ':') {
      values.push_back(reply);
    } else if (resp::splitAggregate(reply.data(), reply.size(), spans) == resp::ParseStatus::Complete) {
      array = true;
      for (const resp::ByteSpan& s : spans) values.emplace_back(reply.data() + s.offset, s.length);
    }
    for (size_t i = 0; i < values.size(); ++i) {
      int64_t v = 0;
      const std::string_view e = values[i];
      if (e.size() < 3 || e[0] != ':' || std::from_chars(e.data() + 1, e.data() + e.size() - 2, v).ec != std::errc()) {
        resp::appendError(r.reply, "ERR backend sent a malformed WAIT reply");
        return;
      }
      if (least.size() <= i) least.push_back(v);
      else least[i] = std::min(least[i], v);
    }
  }
  if (!array) {
    resp::appendInteger(r.reply, least.empty() ? 0 : least[0]);
    return;
  }
  resp::appendArrayHeader(r.reply, least.size());
  for (int64_t v : least) resp::appendInteger(r.reply, v);
}

}  // namespace proxy
