// MULTI / EXEC / DISCARD / WATCH / UNWATCH / RESET for a Redis session.
//
// Commands between MULTI and EXEC are queued here, in the proxy (+QUEUED), each checked to
// have all its keys on one server; a command that cannot be queued is answered with an error
// and dooms the EXEC (EXECABORT), as Redis does. At EXEC the queue is grouped by server and
// each group is sent as MULTI ... EXEC on ONE connection in one go (nothing can interleave
// within a worker's write), so each server runs its part atomically; the per-server EXEC
// replies are merged back into the client's order.
//
// Atomicity across servers is not offered: with `transactions: per_server` (the default) a
// transaction whose keys span servers commits on each server independently. With
// `transactions: strict`, queueing a command for a second server is refused with a
// CROSSSLOT error (Redis Cluster's rule), so EXEC only ever runs on one server.
//
// WATCH pins the client to a dedicated backend connection (watched keys belong to a
// connection) until EXEC, DISCARD or UNWATCH; every command of that client for that server
// travels on it meanwhile. Watching keys of two servers is refused.
#include "proxy/redis/redis_session.h"

#include "backends/io/memory_budget.h"

namespace proxy {

namespace resp = backends::resp;

namespace {
constexpr std::string_view kMultiCmd = "*1\r\n$5\r\nMULTI\r\n";
constexpr std::string_view kExecCmd = "*1\r\n$4\r\nEXEC\r\n";
constexpr std::string_view kUnwatch = "*1\r\n$7\r\nUNWATCH\r\n";
}  // namespace

void RedisSession::abortMulti(std::string_view error) {
  rare().multiAborted = true;
  replyError(error);
}

void RedisSession::cmdMulti(const CommandSpec&, const char*) {
  if (rare().inMulti) {
    replyError("ERR MULTI calls can not be nested");
    return;
  }
  rare().inMulti = true;
  entry_.inMulti.store(true, std::memory_order_relaxed);
  rare().multiAborted = false;
  rare().multiBackend = -1;
  rare().queued.clear();
  setQueuedBytes(0);
  replyLocal("+OK\r\n");
}

void RedisSession::setQueuedBytes(size_t bytes) {
  // Commands queued in MULTI are held by the proxy like any buffer: they count against
  // --max-buffered-bytes, so many clients' transactions cannot take the process past it.
  backends::io::accountBuffer(static_cast<int64_t>(bytes) - static_cast<int64_t>(rare().queuedBytes));
  rare().queuedBytes = bytes;
}

void RedisSession::queueInMulti(const CommandSpec& spec, const char* req) {
  const PoolRoute& route = *poolRoute();
  if (rare().multiAborted) {  // EXEC will answer EXECABORT: as Redis, say QUEUED, but keep nothing
    replyLocal("+QUEUED\r\n");
    return;
  }
  // The queue lives in the proxy until EXEC: bounded by the pool's limits, max_pending_requests
  // commands and max_request_bytes in all. Beyond them the transaction is aborted (EXEC answers
  // EXECABORT, as Redis does after a refused command) and what was queued is freed at once.
  // The process over --max-buffered-bytes discards the transaction too (its queue counts
  // against that budget): EXEC and DISCARD still end it, whatever the budget.
  const size_t size = parser_->isInline() ? parser_->size() * 2 : parser_->size();  // inline: re-encoded
  const bool overBudget = backends::io::overBufferLimit();
  if (rare().queued.size() >= route.config.maxPendingRequests ||
      rare().queuedBytes + size > route.config.maxRequestBytes || overBudget) {
    stats().limitErrors++;
    rare().queued.clear();
    rare().queued.shrink_to_fit();
    setQueuedBytes(0);
    abortMulti(overBudget ? std::string("ERR ringproxy is over its buffer limit (--max-buffered-bytes); the "
                                        "transaction is discarded")
                          : "ERR ringproxy: the transaction is over its limits (max_pending_requests " +
                                std::to_string(route.config.maxPendingRequests) + " commands, max_request_bytes " +
                                std::to_string(route.config.maxRequestBytes) + " bytes queued); it is discarded");
    return;
  }
  Queued q;
  switch (spec.route) {
    case Route::Unsupported:
      abortMulti("ERR " + refusalOf(spec, argc(), [&](size_t i) { return arg(req, i); }));
      return;
    case Route::Local:
      if (!spec.has(kPure) || !(this->*spec.pure)(req, q.bytes)) {
        abortMulti("ERR ringproxy cannot run '" + std::string(spec.name) + "' inside MULTI");
        return;
      }
      q.backend = -1;
      rare().queued.push_back(std::move(q));
      replyLocal("+QUEUED\r\n");
      return;
    default:
      break;
  }
  uint32_t node = 0;
  if (!singleOwner(spec, req, node)) {  // replied with the reason
    rare().multiAborted = true;
    return;
  }
  if (rare().watchLink != nullptr && node != rare().watchBackend) {
    abortMulti("CROSSSLOT this transaction watches keys of one server; '" + std::string(spec.name) +
               "' touches keys of another (use a common hash tag)");
    return;
  }
  if (route.config.transactions == config::TransactionMode::Strict && rare().multiBackend >= 0 &&
      static_cast<uint32_t>(rare().multiBackend) != node) {
    abortMulti("CROSSSLOT Keys in transaction don't hash to the same server (transactions: strict); "
               "give them a common hash tag, e.g. {user1}:a and {user1}:b");
    return;
  }
  if (rare().multiBackend < 0) rare().multiBackend = static_cast<int32_t>(node);
  q.bytes.assign(asResp(req));
  q.backend = static_cast<int32_t>(node);
  setQueuedBytes(rare().queuedBytes + q.bytes.size());
  rare().queued.push_back(std::move(q));
  replyLocal("+QUEUED\r\n");
}

void RedisSession::cmdExec(const CommandSpec&, const char*) {
  if (!rare().inMulti) {
    replyError("ERR EXEC without MULTI");
    return;
  }
  rare().inMulti = false;
  entry_.inMulti.store(false, std::memory_order_relaxed);
  if (rare().multiAborted) {
    rare().queued.clear();
    setQueuedBytes(0);
    releaseWatch();
    replyError("EXECABORT Transaction discarded because of previous errors.");
    return;
  }
  RedisRequest* r = newRedisRequest();
  ExecMerge& m = r->begin<ExecMerge>();
  const size_t queued = rare().queued.size();
  m.slots.assign(queued, ReplySlot{ExecMerge::kLocal, 0});
  m.localReplies.resize(queued);
  // Group by server in order of first appearance; each group is one MULTI ... EXEC.
  s_.fragmentOfBackend.assign(host_.snapshot().backends.size(), -1);
  std::vector<uint32_t> nodes;
  for (const Queued& q : rare().queued)
    if (q.backend >= 0 && s_.fragmentOfBackend[q.backend] < 0) {
      s_.fragmentOfBackend[q.backend] = 0;
      nodes.push_back(static_cast<uint32_t>(q.backend));
    }
  for (uint32_t node : nodes) {
    // One link for the whole group, so MULTI, the commands and EXEC stay together.
    backends::upstream::UpstreamLink& link = linkFor(node);
    bool ok = sendFragment(*r, r->addFragment(), node, link, kMultiCmd.data(), kMultiCmd.size());
    uint32_t position = 0;
    std::vector<size_t> members;
    for (size_t i = 0; i < queued && ok; ++i) {
      if (rare().queued[i].backend != static_cast<int32_t>(node)) continue;
      ok = sendFragment(*r, r->addFragment(), node, link, rare().queued[i].bytes.data(), rare().queued[i].bytes.size());
      m.slots[i].position = position++;
      members.push_back(i);
    }
    const uint32_t execFrag = r->addFragment();
    if (ok) sendFragment(*r, execFrag, node, link, kExecCmd.data(), kExecCmd.size());
    else r->fragment(execFrag).failed = true;
    for (size_t i : members) m.slots[i].fragment = execFrag;
  }
  for (size_t i = 0; i < queued; ++i) {
    if (rare().queued[i].backend >= 0) continue;
    m.localReplies[i] = std::move(rare().queued[i].bytes);
    r->extraHeldBytes += static_cast<int64_t>(m.localReplies[i].size());
  }
  rare().queued.clear();
  setQueuedBytes(0);
  releaseWatch();  // the WATCH link closes once EXEC has been answered
  enqueue(r);
  if (r->waiting == 0) fragmentsDone(*r);
}

void RedisSession::mergeExec(RedisRequest& r, const ExecMerge& m) {
  const size_t n = m.slots.size();
  // A null EXEC reply means a watched key changed: nothing ran (WATCH keeps the whole
  // transaction on one server, so this is exact).
  std::vector<std::vector<resp::ByteSpan>> spans(r.fragmentCount());
  std::vector<bool> usable(r.fragmentCount(), false);
  size_t groups = 0, failedGroups = 0, nullGroups = 0;
  std::string firstError;
  for (uint32_t f = 0; f < r.fragmentCount(); ++f) {
    bool isExec = false;
    for (size_t i = 0; i < n && !isExec; ++i) isExec = m.slots[i].fragment == f;
    if (!isExec) continue;
    groups++;
    const Fragment& frag = r.fragment(f);
    resp::ReplyParser p;
    if (frag.failed || frag.reply.empty()) {
      failedGroups++;
      if (firstError.empty()) firstError = r.error.empty() ? "ERR backend did not answer EXEC" : r.error;
      continue;
    }
    if (frag.reply[0] == '-') {
      failedGroups++;
      if (firstError.empty()) firstError = frag.reply.substr(1, frag.reply.size() - 3);
      continue;
    }
    if (p.parse(frag.reply.data(), frag.reply.size()) == resp::ParseStatus::Complete && p.frame().isNull()) {
      nullGroups++;
      continue;
    }
    usable[f] = resp::splitAggregate(frag.reply.data(), frag.reply.size(), spans[f]) == resp::ParseStatus::Complete;
    if (!usable[f]) {
      failedGroups++;
      if (firstError.empty()) firstError = "ERR backend sent a malformed EXEC reply";
    }
  }
  if (groups > 0 && failedGroups == groups) {
    resp::appendError(r.reply, firstError);
    return;
  }
  if (nullGroups > 0) {
    resp::appendNullArray(r.reply, protocol_);
    return;
  }
  resp::appendArrayHeader(r.reply, n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t f = m.slots[i].fragment;
    if (f == ExecMerge::kLocal) {
      r.reply += m.localReplies[i];
    } else if (!usable[f] || m.slots[i].position >= spans[f].size()) {
      // This server's part failed while others committed: say so for each of its commands.
      resp::appendError(r.reply, firstError.empty() ? "ERR transaction part failed" : firstError);
    } else {
      const resp::ByteSpan s = spans[f][m.slots[i].position];
      r.reply.append(r.fragment(f).reply, s.offset, s.length);
    }
  }
}

void RedisSession::cmdDiscard(const CommandSpec&, const char*) {
  if (!rare().inMulti) {
    replyError("ERR DISCARD without MULTI");
    return;
  }
  rare().inMulti = false;
  entry_.inMulti.store(false, std::memory_order_relaxed);
  rare().queued.clear();
  setQueuedBytes(0);
  releaseWatch();
  replyLocal("+OK\r\n");
}

void RedisSession::cmdWatch(const CommandSpec& spec, const char* req) {
  if (rare().inMulti) {
    replyError("ERR WATCH inside MULTI is not allowed");
    return;
  }
  uint32_t node = 0;
  if (!singleOwner(spec, req, node)) return;
  if (rare().watchLink != nullptr && node != rare().watchBackend) {
    replyError("CROSSSLOT ringproxy can only WATCH keys of one server per transaction; these keys belong to "
               "another server than the ones already watched (use a common hash tag)");
    return;
  }
  if (rare().watchLink == nullptr) {
    rare().watchLink = host_.openDedicated(node, channel(), db_);
    rare().watchBackend = node;
    rare().watchKey = host_.snapshot().backends[node].key;
  }
  RedisRequest* r = newRedisRequest();
  r->begin<RelayMerge>();
  const uint32_t frag = r->addFragment();
  const std::string_view bytes = asResp(req);
  if (!sendFragment(*r, frag, node, *rare().watchLink, bytes.data(), bytes.size())) {
    std::string err = std::move(r->error);
    freeRequest(r);
    releaseWatch();
    replyError(err);
    return;
  }
  enqueue(r);
}

void RedisSession::cmdUnwatch(const CommandSpec&, const char*) {
  if (rare().watchLink == nullptr) {
    replyLocal("+OK\r\n");
    return;
  }
  RedisRequest* r = newRedisRequest();
  r->begin<RelayMerge>();
  const uint32_t frag = r->addFragment();
  if (!sendFragment(*r, frag, rare().watchBackend, *rare().watchLink, kUnwatch.data(), kUnwatch.size())) {
    freeRequest(r);
    releaseWatch();
    replyLocal("+OK\r\n");  // the connection is gone, and its watches with it
    return;
  }
  enqueue(r);
  releaseWatch();
}

void RedisSession::releaseWatch() {
  if (rare().watchLink == nullptr) return;
  rare().watchLink->closeWhenIdle();
  rare().watchLink = nullptr;
}

void RedisSession::cmdReset(const CommandSpec&, const char*) {
  // RESET: back to a fresh connection's state (Redis 6.2).
  rare().inMulti = false;
  entry_.inMulti.store(false, std::memory_order_relaxed);
  rare().multiAborted = false;
  rare().queued.clear();
  setQueuedBytes(0);
  releaseWatch();
  endPubSub();  // RESET leaves pub/sub too
  db_ = SessionHost::kPoolDb;
  protocol_ = resp::Protocol::Resp2;
  if (!entry_.name.empty()) ClientDirectory::instance().setName(&entry_, std::string());
  entry_.resp.store(2, std::memory_order_relaxed);
  entry_.db.store(poolRoute()->config.redisDb, std::memory_order_relaxed);
  authenticated_ = false;
  replyLocal("+RESET\r\n");
}

}  // namespace proxy
