#include "proxy/redis/redis_session.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <utility>
#include <unordered_set>

#include "backends/io/memory_budget.h"
#include "proxy/runtime/log.h"

namespace proxy {

using backends::resp::ParseStatus;
namespace resp = backends::resp;

namespace {

std::atomic<uint64_t> gNextClientId{1};

// An MGET whose parts hold more than this is streamed to the client rather than merged whole.
constexpr size_t kStreamMergeBytes = 256 * 1024;
// A reply relayed as it is and at least this large is streamed from the link's buffer.
constexpr size_t kStreamRelayBytes = 1024 * 1024;

bool parseInt64(std::string_view s, int64_t& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

RedisSession::RedisSession(SessionHost& host, RedisFrontend& frontend, size_t pool)
    : ClientSession(host, frontend.requests, pool),
      frontend_(frontend),
      s_(frontend.scratch),
      clientId_(gNextClientId.fetch_add(1, std::memory_order_relaxed)) {}

ClientSession* RedisFrontend::newSession(SessionHost& host, size_t pool) { return new RedisSession(host, *this, pool); }

bool RedisSession::authRequired() const {
  const PoolRoute* route = poolRoute();
  return !authenticated_ && route != nullptr && (!route->config.redisAuth.empty() || !route->config.users.empty());
}

RedisSession::~RedisSession() {
  if (entry_.session != nullptr) ClientDirectory::instance().remove(&entry_);
  // Requests were cancelled when the session closed; the WATCH link has nothing owed, and a
  // blocking connection is closed now, so its backend stops waiting for this client.
  if (watchLink() != nullptr) watchLink()->close();
  if (rare_ && rare_->blockLink != nullptr) releaseBlockingLink(true);
  closeSubscriberLinks();
  if (rare_ && rare_->queuedBytes != 0) setQueuedBytes(0);  // a transaction left queued
  frontend_.parsers.giveBack(parser_);
}

void RedisSession::processInput() {
  if (input().empty()) return;
  if (parser_ == nullptr) {
    parser_ = frontend_.parsers.get();
    const PoolRoute* route = poolRoute();
    if (route != nullptr)
      parser_->setLimits(resp::RequestLimits{route->config.maxRequestArgs, route->config.maxRequestBytes, 64 * 1024,
                                             route->config.maxRequestBytes});
  }
  frameRequests();
  // Nothing half-framed is left: give the parser back (idle connections hold none).
  if (input().empty()) frontend_.parsers.giveBack(parser_);
}

void RedisSession::frameRequests() {
  backends::io::Buffer& in = input();
  entry_.activeMs.store(uv_now(host_.loop()), std::memory_order_relaxed);
  while (!finishing() && !in.empty() && wantsMoreInput()) {
    char* req = in.readable();
    const ParseStatus st = parser_->parse(req, in.readableSize());
    if (st == ParseStatus::NeedMore) break;
    if (st == ParseStatus::Error) {
      // The stream can no longer be framed: say why, then close this client only.
      stats().protocolErrors++;
      stats().clientErr++;
      std::string msg = "ERR Protocol error: ";
      msg += parser_->errorMessage();
      const PoolRoute* route = poolRoute();
      if (parser_->errorMessage() == "request too large" && route != nullptr)
        msg += " (its arguments exceed max_request_bytes, " + std::to_string(route->config.maxRequestBytes) + ")";
      replyError(msg);
      closeAfterFlush();
      return;
    }
    const size_t size = parser_->size();
    if (parser_->argc() > 0) {
      if (backends::io::overBufferLimit() && !inMulti()) {  // MULTI: queueInMulti decides
        // The process holds --max-buffered-bytes already: refuse new work, not memory.
        stats().limitErrors++;
        replyError("ERR ringproxy is over its buffer limit (--max-buffered-bytes); retry later");
      } else {
        dispatch(req);
      }
      if (deferred_) {  // runs again, from the start, once the queue has drained
        deferred_ = false;
        parser_->reset();
        holdInputUntilDrained();
        return;
      }
      stats().requests++;
    }
    parser_->reset();
    in.consume(size);
  }
}

void RedisSession::replyError(std::string_view text) {
  s_.bytes.clear();
  resp::appendError(s_.bytes, text);
  stats().errorsReplied++;
  replyLocal(s_.bytes);
}

void RedisSession::replyUnknownCommand(const char* req) {
  // Redis's own wording, which client libraries match on.
  std::string msg = "ERR unknown command '";
  const std::string_view name = arg(req, 0);
  msg.append(name.substr(0, 128));
  msg += "', with args beginning with: ";
  for (size_t i = 1; i < argc() && msg.size() < 256; ++i) {
    msg += '\'';
    msg.append(arg(req, i).substr(0, 64));
    msg += "' ";
  }
  replyError(msg);
}

void RedisSession::dispatch(char* req) {
  const PoolRoute* route = poolRoute();
  if (route == nullptr) {  // a reload removed this client's pool
    replyError("ERR this pool was removed from the configuration");
    closeAfterFlush();
    return;
  }
  const CommandSpec* spec = findCommand(arg(req, 0));
  if (spec == nullptr) {
    if (inMulti()) rare().multiAborted = true;  // as Redis: a rejected command dooms the EXEC
    replyUnknownCommand(req);
    return;
  }
  if (!route->config.denyCommands.empty() && denied(*spec)) {
    if (inMulti()) rare().multiAborted = true;
    replyError("ERR ringproxy: '" + std::string(spec->name) + "' is disabled for this pool (deny_commands)");
    return;
  }
  if (!authenticated_ && !spec->has(kNoAuth) && (!route->config.redisAuth.empty() || !route->config.users.empty())) {
    replyError("NOAUTH Authentication required.");
    return;
  }
  if (user_ != nullptr && !permitted(*spec, req)) {
    if (inMulti()) rare().multiAborted = true;
    return;
  }
  entry_.lastCommand.store(spec->name.data(), std::memory_order_relaxed);
  if (!arityAccepts(*spec, argc())) {
    if (inMulti()) rare().multiAborted = true;
    replyError("ERR wrong number of arguments for '" + std::string(spec->name) + "' command");
    return;
  }
  if (rare_ != nullptr && !spec->has(kInSubscribed) && inSubscribedMode()) {
    replyError("ERR Can't execute '" + std::string(spec->name) +
               "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
    return;
  }
  if (route->previousRing != nullptr && spec->route != Route::Unsupported &&
      commandHasKeys(*spec)) {
    // A transition: keys whose owner changed are brought to their new owner first.
    if (premigrated_) {
      premigrated_ = false;
      if (rare_ && !rare_->migrateError.empty()) {
        if (inMulti()) rare().multiAborted = true;
        replyError(std::exchange(rare_->migrateError, std::string()));
        return;
      }
    } else if (startMigration(*spec, req, *route)) {
      premigrated_ = true;
      deferred_ = true;  // runs again once the moves are answered
      return;
    }
  }
  if (inMulti() && !spec->has(kRunsInMulti)) {
    queueInMulti(*spec, req);
    return;
  }
  (this->*spec->handler)(*spec, req);
}

bool RedisSession::denied(const CommandSpec& spec) const {
  for (const std::string& name : poolRoute()->config.denyCommands)
    if (name == spec.name) return true;
  return false;
}

void RedisSession::onRoutingChanged() {
  if (!rare_ || poolRoute() == nullptr) return;
  // Snapshot indexes may have been renumbered: what this client holds follows its backend's
  // identity. A WATCH on a backend that left the pool can no longer be honoured by EXEC.
  if (rare_->watchLink != nullptr) {
    const auto& backends = host_.snapshot().backends;
    rare_->watchBackend = UINT32_MAX;
    for (uint32_t b = 0; b < backends.size(); ++b)
      if (backends[b].key == rare_->watchKey) rare_->watchBackend = b;
  }
  if (rare_->pubsub && rare_->pubsub->subscribed()) pubsubRoutingChanged();
}

void RedisSession::cmdRefused(const CommandSpec& spec, const char* req) {
  replyError("ERR " + refusalOf(spec, argc(), [&](size_t i) { return arg(req, i); }));
}

backends::upstream::UpstreamLink& RedisSession::linkFor(uint32_t backend) {
  if (watchLink() != nullptr && backend == rare_->watchBackend) return *rare_->watchLink;
  if (db_ != SessionHost::kPoolDb) return host_.upstreamInDb(backend, channel(), db_);
  return host_.upstream(backend, channel());
}

template <typename M>
M& RedisSession::broadcast(RedisRequest& r, std::string_view bytes) {
  M& m = r.begin<M>();
  const Placement& pl = host_.placement(pool());
  for (uint32_t node = 0; node < pl.nodeCount(); ++node) {
    const uint32_t frag = r.addFragment();
    sendTo(r, frag, pl.nodeBackend[node], bytes.data(), bytes.size());
  }
  // In a transition, the servers the data is still on are part of the pool too: a FLUSHDB
  // that missed them would let flushed keys come back on their first touch, and KEYS, DBSIZE
  // and INFO would miss keys clients can still read.
  const PoolRoute& route = *poolRoute();
  for (size_t i = 0; route.previousRing != nullptr && i < route.previousNodeBackend.size(); ++i) {
    const uint32_t b = route.previousNodeBackend[i];
    bool current = false;
    for (uint32_t node = 0; node < pl.nodeCount() && !current; ++node) current = pl.nodeBackend[node] == b;
    if (!current) sendTo(r, r.addFragment(), b, bytes.data(), bytes.size());
  }
  enqueue(&r);
  return m;
}

void RedisSession::toEveryServer(const char* req, EveryBackendMerge::Combine combine) {
  RedisRequest* r = newRedisRequest();
  broadcast<EveryBackendMerge>(*r, asResp(req)).combine = combine;
  if (r->waiting == 0) fragmentsDone(*r);
}

void RedisSession::cmdDbsize(const CommandSpec&, const char*) {
  RedisRequest* r = newRedisRequest();
  broadcast<SumMerge>(*r, "*1\r\n$6\r\nDBSIZE\r\n");
  if (r->waiting == 0) fragmentsDone(*r);
}

void RedisSession::cmdScript(const CommandSpec&, const char* req) {
  // Scripts live per server and EVALSHA runs on whichever server owns its keys, so the
  // commands that change or inspect the script cache go to every server of the pool.
  const std::string sub = asciiLower(arg(req, 1));
  const bool load = sub == "load" && argc() == 3;
  const bool flush = sub == "flush" && argc() <= 3;
  const bool exists = sub == "exists" && argc() >= 3;
  if (!load && !flush && !exists) {
    if (sub == "load" || sub == "flush" || sub == "exists") {
      replyError("ERR wrong number of arguments for 'script|" + sub + "' command");
    } else {
      replyError("ERR ringproxy does not support 'SCRIPT " + std::string(arg(req, 1)) +
                 "': it answers LOAD, EXISTS and FLUSH, sent to every server of the pool");
    }
    return;
  }
  toEveryServer(req, exists ? EveryBackendMerge::Combine::MinElements : EveryBackendMerge::Combine::Same);
}

void RedisSession::mergeEveryBackend(RedisRequest& r, const EveryBackendMerge& m) {
  using Combine = EveryBackendMerge::Combine;
  if (!r.error.empty()) {  // one server failed: the answer would be wrong or partial
    resp::appendError(r.reply, r.error);
    return;
  }
  if (m.combine == Combine::Same) {
    r.reply = r.fragment(0).reply;  // the same answer from every server (the SHA, OK)
    return;
  }
  if (s_.elementSpans.empty()) s_.elementSpans.emplace_back();
  std::vector<resp::ByteSpan>& spans = s_.elementSpans[0];
  std::vector<int64_t> numbers;           // MinElements, SumPairs: per element; Max: one
  std::vector<std::string_view> elements;  // Union: each once; SumPairs: the names; Concat: all
  std::unordered_set<std::string_view> seen;  // Union
  if (m.combine == Combine::AnyNonNull) {
    // RANDOMKEY: a server that has keys, chosen at random (a null reply: that server is empty).
    std::vector<uint32_t> withKeys;
    for (uint32_t f = 0; f < r.fragmentCount(); ++f) {
      const std::string& reply = r.fragment(f).reply;
      if (!reply.empty() && reply[0] == '$' && reply.compare(0, 3, "$-1") != 0) withKeys.push_back(f);
    }
    if (withKeys.empty()) resp::appendNull(r.reply, protocol_);
    else r.reply = r.fragment(withKeys[static_cast<size_t>(uv_hrtime()) % withKeys.size()]).reply;
    return;
  }
  for (uint32_t f = 0; f < r.fragmentCount(); ++f) {
    const std::string& reply = r.fragment(f).reply;
    if (m.combine == Combine::Max) {
      int64_t v = 0;
      if (reply.size() < 3 || reply[0] != ':' || !parseInt64(std::string_view(reply).substr(1, reply.size() - 3), v)) {
        resp::appendError(r.reply, "ERR backend sent a malformed reply");
        return;
      }
      if (numbers.empty()) numbers.push_back(v);
      else numbers[0] = std::max(numbers[0], v);
      continue;
    }
    if (resp::splitAggregate(reply.data(), reply.size(), spans) != ParseStatus::Complete) {
      resp::appendError(r.reply, "ERR backend sent a malformed reply");
      return;
    }
    if (f == 0 && m.combine == Combine::MinElements) numbers.assign(spans.size(), 1);
    if (f == 0 && m.combine == Combine::SumPairs) numbers.assign(spans.size(), 0);
    for (size_t i = 0; i < spans.size(); ++i) {
      const std::string_view e(reply.data() + spans[i].offset, spans[i].length);
      int64_t v = 0;
      const bool isInt = e.size() >= 3 && e[0] == ':' && parseInt64(e.substr(1, e.size() - 3), v);
      switch (m.combine) {
        case Combine::MinElements:
          if (i < numbers.size()) numbers[i] = std::min(numbers[i], isInt ? v : 0);
          break;
        case Combine::SumPairs:
          if (i < numbers.size() && isInt) numbers[i] += v;
          if (f == 0 && !isInt) elements.push_back(e);
          break;
        case Combine::Union:
          if (seen.insert(e).second) elements.push_back(e);
          break;
        case Combine::Concat:
          elements.push_back(e);
          break;
        default:
          break;
      }
    }
  }
  switch (m.combine) {
    case Combine::Max:
      resp::appendInteger(r.reply, numbers.empty() ? 0 : numbers[0]);
      break;
    case Combine::MinElements:
      resp::appendArrayHeader(r.reply, numbers.size());
      for (int64_t v : numbers) resp::appendInteger(r.reply, v);
      break;
    case Combine::Union:
    case Combine::Concat:
      resp::appendArrayHeader(r.reply, elements.size());
      for (std::string_view e : elements) r.reply += e;
      break;
    case Combine::SumPairs: {
      // The first server's [name, count, ...], with every server's counts added.
      const std::string& first = r.fragment(0).reply;
      (void)resp::splitAggregate(first.data(), first.size(), spans);
      resp::appendArrayHeader(r.reply, spans.size());
      for (size_t i = 0; i < spans.size(); ++i) {
        const std::string_view e(first.data() + spans[i].offset, spans[i].length);
        if (i % 2 == 1) resp::appendInteger(r.reply, numbers[i]);
        else r.reply += e;
      }
      break;
    }
    default:
      break;
  }
}

void RedisSession::cmdPubsub(const CommandSpec&, const char* req) {
  // PUBSUB asks each server about the subscriptions it holds: a channel's subscribers are
  // on its owner, patterns on every server.
  using Combine = EveryBackendMerge::Combine;
  const std::string sub = asciiLower(arg(req, 1));
  Combine combine;
  if ((sub == "channels" || sub == "shardchannels") && argc() <= 3) combine = Combine::Union;
  else if (sub == "numsub" || sub == "shardnumsub") combine = Combine::SumPairs;
  else if (sub == "numpat" && argc() == 2) combine = Combine::Max;
  else {
    replyError("ERR unknown subcommand or wrong number of arguments for '" + std::string(arg(req, 1)) +
               "'. Try PUBSUB HELP.");
    return;
  }
  toEveryServer(req, combine);
}

void RedisSession::cmdInfo(const CommandSpec&, const char* req) {
  // Sections as Redis picks them: none, "default", "all" or "everything" give every section
  // the proxy has; otherwise the named ones (any case); a name it lacks adds nothing.
  uint8_t sections = argc() == 1 ? InfoMerge::kAll : 0;
  for (size_t i = 1; i < argc(); ++i) {
    const std::string name = asciiLower(arg(req, i));
    if (name == "default" || name == "all" || name == "everything") sections |= InfoMerge::kAll;
    else if (name == "server") sections |= InfoMerge::kServer;
    else if (name == "proxy") sections |= InfoMerge::kProxy;
    else if (name == "keyspace") sections |= InfoMerge::kKeyspace;
  }
  RedisRequest* r = newRedisRequest();
  broadcast<InfoMerge>(*r, "*3\r\n$4\r\nINFO\r\n$6\r\nserver\r\n$8\r\nkeyspace\r\n").sections = sections;
  if (r->waiting == 0) fragmentsDone(*r);
}

bool RedisSession::singleOwner(const CommandSpec& spec, const char* req, uint32_t& owner) {
  // Forms of a routed command that act beyond its keys (SORT BY weight_*, MEMORY DOCTOR) are
  // refused here, where every path that routes by keys passes, MULTI's queue included.
  if (spec.check != ArgCheck::None) {
    const std::string why = refusalOf(spec, argc(), [&](size_t i) { return arg(req, i); });
    if (!why.empty()) {
      replyError("ERR " + why);
      return false;
    }
  }
  // Most commands have exactly one key, the first argument (GET, SET, HSET, ...): route it
  // without building a key list.
  if (spec.keys.first == 1 && spec.keys.last == 1 && spec.keys.numkeysAt == 0 && spec.keys.optionsFrom == 0 &&
      argc() >= 2) {
    owner = host_.placement(pool()).backendOf(arg(req, 1));
    return true;
  }
  s_.keys.clear();
  if (!keyIndexes(spec, argc(), [&](size_t i) { return arg(req, i); }, s_.keys)) {
    replyError("ERR wrong number of arguments for '" + std::string(spec.name) + "' command");
    return false;
  }
  if (s_.keys.empty()) {
    replyError("ERR " + keylessRefusal(spec));
    return false;
  }
  const Placement& pl = host_.placement(pool());
  owner = pl.backendOf(arg(req, s_.keys[0]));
  for (size_t i = 1; i < s_.keys.size(); ++i) {
    if (pl.backendOf(arg(req, s_.keys[i])) != owner) {
      replyError("CROSSSLOT Keys in request don't hash to the same server: '" + std::string(spec.name) +
                 "' needs all its keys on one server (give them a common hash tag, e.g. {user1}:a and {user1}:b)");
      return false;
    }
  }
  return true;
}

void RedisSession::forwardKeyed(const CommandSpec& spec, const char* req) {
  uint32_t owner = 0;
  if (!singleOwner(spec, req, owner)) return;
  RedisRequest* r = newRedisRequest();
  r->begin<RelayMerge>();
  if (!sendWhole(*r, owner, req)) {
    std::string err = std::move(r->error);
    freeRequest(r);
    replyError(err);
    return;
  }
  enqueue(r);
}

void RedisSession::appendEncodedArg(std::string& out, const char* req, size_t i) {
  // A multibulk request holds its arguments RESP-encoded already: copying those bytes costs
  // one append instead of formatting a length.
  if (parser_->isInline()) resp::appendBulk(out, arg(req, i));
  else out.append(parser_->encodedArg(req, i));
}

bool RedisSession::sendWhole(Request& r, uint32_t owner, const char* req) {
  const uint32_t frag = r.addFragment();
  const std::string_view bytes = asResp(req);
  return sendTo(r, frag, owner, bytes.data(), bytes.size());
}

void RedisSession::fanout(const CommandSpec& spec, const char* req) {
  s_.keys.clear();
  if (!keyIndexes(spec, argc(), [&](size_t i) { return arg(req, i); }, s_.keys)) {
    replyError("ERR wrong number of arguments for '" + std::string(spec.name) + "' command");
    return;
  }
  const bool pairs = spec.route == Route::FanoutMset;
  RedisRequest* r = newRedisRequest();
  MgetMerge* mget = nullptr;
  switch (spec.route) {
    case Route::FanoutMget:
      mget = &r->begin<MgetMerge>();
      mget->keyCount = static_cast<uint32_t>(s_.keys.size());
      break;
    case Route::FanoutMset:
      r->begin<MsetMerge>();
      break;
    default:
      r->begin<SumMerge>();
      break;
  }
  const Placement& pl = host_.placement(pool());
  s_.owners.resize(s_.keys.size());
  bool oneOwner = true;
  for (size_t i = 0; i < s_.keys.size(); ++i) {
    s_.owners[i] = pl.backendOf(arg(req, s_.keys[i]));
    oneOwner = oneOwner && s_.owners[i] == s_.owners[0];
  }
  if (oneOwner && !s_.keys.empty()) {
    // One server owns every key (a one-node pool, or keys sharing a hash tag): it gets the
    // client's bytes as they are and its reply goes back untouched, as for GET; only an error
    // or a failure is merged. No sub-request built, no reply split.
    r->wholeReply = true;
    const bool sent = sendWhole(*r, s_.owners[0], req);
    stats().fragments++;
    enqueue(r);
    if (!sent) fragmentsDone(*r);
    return;
  }
  if (mget != nullptr) mget->slots.resize(s_.keys.size());
  s_.fragmentOfBackend.assign(host_.snapshot().backends.size(), -1);
  s_.subKeyCounts.clear();
  // Group the keys by owner, keeping each group in the client's order.
  for (size_t i = 0; i < s_.keys.size(); ++i) {
    const uint32_t backend = s_.owners[i];
    int32_t frag = s_.fragmentOfBackend[backend];
    if (frag < 0) {
      frag = static_cast<int32_t>(r->addFragment());
      s_.fragmentOfBackend[backend] = frag;
      r->fragment(frag).backend = backend;
      s_.subKeyCounts.push_back(0);
      if (s_.subRequests.size() <= size_t(frag)) s_.subRequests.emplace_back();
      s_.subRequests[frag].clear();
    }
    if (mget != nullptr) mget->slots[i] = ReplySlot{static_cast<uint32_t>(frag), s_.subKeyCounts[frag]};
    s_.subKeyCounts[frag]++;
    appendEncodedArg(s_.subRequests[frag], req, s_.keys[i]);
    if (pairs) appendEncodedArg(s_.subRequests[frag], req, s_.keys[i] + 1);
  }
  // Send one sub-request per owner: "<CMD> k1 k2 ..." (MSET: k1 v1 k2 v2 ...).
  bool anySent = false;
  for (uint32_t frag = 0; frag < r->fragmentCount(); ++frag) {
    s_.bytes.clear();
    resp::appendArrayHeader(s_.bytes, 1 + s_.subKeyCounts[frag] * (pairs ? 2 : 1));
    appendEncodedArg(s_.bytes, req, 0);
    s_.bytes += s_.subRequests[frag];
    if (sendTo(*r, frag, r->fragment(frag).backend, s_.bytes.data(), s_.bytes.size())) anySent = true;
    stats().fragments++;
  }
  enqueue(r);
  if (!anySent) fragmentsDone(*r);  // every shard refused: answer now
}

void RedisSession::onFragmentReply(Request& base, uint32_t fragment, const char* data, size_t len, bool isError) {
  auto& r = static_cast<RedisRequest&>(base);
  if (r.relays() || (r.wholeReply && !isError)) {
    relayReply(r, data, len);
    return;
  }
  if (MigrateMerge* m = r.as<MigrateMerge>()) {
    onMigrateReply(r, *m, fragment, data, len, isError);
    return;
  }
  Fragment& f = r.fragment(fragment);
  if (isError && r.as<ExecMerge>() != nullptr) {
    f.reply.assign(data, len);  // EXEC keeps each server's answer, errors included
  } else if (isError) {
    f.failed = true;
    if (r.error.empty()) r.error.assign(data + 1, len >= 3 ? len - 3 : 0);  // without '-' and CRLF
  } else if (SumMerge* sum = r.as<SumMerge>()) {
    int64_t v = 0;
    if (len >= 3 && data[0] == ':' && parseInt64(std::string_view(data + 1, len - 3), v)) {
      sum->sum += v;
    } else if (r.error.empty()) {
      r.error = "ERR unexpected reply from backend";
    }
  } else if (r.as<MsetMerge>() == nullptr && f.large.empty()) {
    f.reply.assign(data, len);  // MGET, INFO, EXEC: merged once every part is in
  }
  if (r.fragmentSettled()) fragmentsDone(r);
  else r.accountHeldBytes();  // the parts that came, kept until the others do
}

void RedisSession::onFragmentTaken(Request& base, uint32_t fragment, bool isError) {
  auto& r = static_cast<RedisRequest&>(base);
  if (r.relays() || (r.wholeReply && !isError)) {  // streamed from where it is, never copied
    r.streamed = true;
    r.waiting = 0;
    complete(r);
    return;
  }
  RequestOwner::onFragmentTaken(r, fragment, isError);  // an MGET part: merged like any reply
}

bool RedisSession::keepsFragmentReply(Request& base, uint32_t, size_t len, bool isError) {
  // A large reply is handed over rather than copied while the other parts come (MGET parts),
  // or, when very large, to be streamed to the client from where it is (a relay): a reading
  // client then never waits behind a copy of it, nor is cut off for the copy's size. Smaller
  // relays are copied as before (a client that stops reading them is let go at once).
  // Errors are short.
  auto& r = static_cast<RedisRequest&>(base);
  if (isError) return false;
  if (r.as<MgetMerge>() != nullptr && !r.wholeReply) return true;
  return len >= kStreamRelayBytes && (r.relays() || r.wholeReply);
}

void RedisSession::onFragmentFailure(Request& base, uint32_t fragment, std::string_view why) {
  auto& r = static_cast<RedisRequest&>(base);
  stats().forwardErrors++;
  r.fragment(fragment).failed = true;
  if (r.error.empty()) r.error = "ERR " + std::string(why);
  if (r.relays()) {
    r.waiting = 0;
    s_.bytes.clear();
    resp::appendError(s_.bytes, r.error);
    r.reply = s_.bytes;
    complete(r);
    return;
  }
  if (r.fragmentSettled()) fragmentsDone(r);
}

void RedisSession::fragmentsDone(RedisRequest& r) {
  r.reply.clear();
  if (MgetMerge* m = r.as<MgetMerge>()) {
    mergeMget(r, *m);
  } else if (SumMerge* sum = r.as<SumMerge>()) {
    // One error if any part failed: a partial count would be a wrong answer.
    if (!r.error.empty()) resp::appendError(r.reply, r.error);
    else resp::appendInteger(r.reply, sum->sum);
  } else if (r.as<MsetMerge>() != nullptr) {
    if (!r.error.empty()) resp::appendError(r.reply, r.error);
    else resp::appendSimpleString(r.reply, "OK");
  } else if (InfoMerge* info = r.as<InfoMerge>()) {
    mergeInfo(r, *info);
  } else if (ExecMerge* exec = r.as<ExecMerge>()) {
    mergeExec(r, *exec);
  } else if (EveryBackendMerge* every = r.as<EveryBackendMerge>()) {
    mergeEveryBackend(r, *every);
  } else if (ScanMerge* scan = r.as<ScanMerge>()) {
    mergeScan(r, *scan);
  } else if (r.as<WaitMerge>() != nullptr) {
    mergeWait(r);
  } else if (r.as<MigrateMerge>() != nullptr) {
    // Silent: the client's request runs next (or fails with this error).
    if (!r.error.empty()) rare().migrateError = std::move(r.error);
    r.error.clear();
  }
  if (!r.error.empty()) stats().errorsReplied++;
  complete(r);
}

void RedisSession::mergeMget(RedisRequest& r, MgetMerge& m) {
  // Each shard answered an array for its keys; put the elements back in the client's order.
  // A failed shard's keys get per-key error elements, so the other keys still arrive. A
  // request sent whole comes here only when its one reply is an error or a failure.
  const std::string_view failure =
      r.error.empty() ? std::string_view("ERR backend sent a malformed MGET reply") : std::string_view(r.error);
  if (m.slots.empty()) {
    resp::appendArrayHeader(r.reply, m.keyCount);
    for (uint32_t i = 0; i < m.keyCount; ++i) resp::appendError(r.reply, failure);
    return;
  }
  const uint32_t frags = r.fragmentCount();
  if (s_.elementSpans.size() < frags) s_.elementSpans.resize(frags);
  for (uint32_t f = 0; f < frags; ++f) {
    Fragment& frag = r.fragment(f);
    s_.elementSpans[f].clear();
    if (frag.failed) continue;
    const std::string_view part = frag.bytes();
    if (resp::splitAggregate(part.data(), part.size(), s_.elementSpans[f]) != ParseStatus::Complete) {
      frag.failed = true;
    }
  }
  size_t parts = 0;
  for (uint32_t f = 0; f < frags; ++f) parts += r.fragment(f).bytes().size();
  if (parts > kStreamMergeBytes) {
    // Large: written a piece at a time from the parts as the client takes it (streamReply),
    // instead of a whole merged copy here and another in the output buffer.
    m.elements.clear();
    m.elements.reserve(m.slots.size());
    for (const ReplySlot& slot : m.slots) {
      const auto& spans = s_.elementSpans[slot.fragment];
      const bool missing = r.fragment(slot.fragment).failed || slot.position >= spans.size();
      m.elements.push_back(missing ? resp::ByteSpan{} : spans[slot.position]);
    }
    m.nextElement = 0;
    m.headerWritten = false;
    if (r.error.empty() && std::find_if(m.elements.begin(), m.elements.end(),
                                        [](const resp::ByteSpan& e) { return e.length == 0; }) != m.elements.end())
      r.error = failure;
    r.streamed = true;
    return;
  }
  resp::appendArrayHeader(r.reply, m.slots.size());
  for (const ReplySlot& slot : m.slots) {
    Fragment& frag = r.fragment(slot.fragment);
    const auto& spans = s_.elementSpans[slot.fragment];
    if (frag.failed || slot.position >= spans.size()) {
      resp::appendError(r.reply, failure);
      continue;
    }
    const resp::ByteSpan sp = spans[slot.position];
    r.reply.append(frag.bytes().data() + sp.offset, sp.length);
  }
}

bool RedisRequest::streamReply(backends::io::Buffer& out, size_t upTo) {
  MgetMerge* m = as<MgetMerge>();
  if (m == nullptr || m->elements.empty()) return Request::streamReply(out, upTo);  // a relay
  const size_t start = out.readableSize();
  std::string header;
  if (!m->headerWritten) {
    resp::appendArrayHeader(header, m->elements.size());
    out.append(header.data(), header.size());
    m->headerWritten = true;
  }
  while (m->nextElement < m->elements.size() && out.readableSize() - start < upTo) {
    const resp::ByteSpan e = m->elements[m->nextElement];
    const uint32_t fragmentIndex = m->slots[m->nextElement].fragment;
    ++m->nextElement;
    if (e.length == 0) {
      header.clear();
      resp::appendError(header, error);
      out.append(header.data(), header.size());
    } else {
      out.append(fragment(fragmentIndex).bytes().data() + e.offset, e.length);
    }
  }
  return m->nextElement == m->elements.size();
}

}  // namespace proxy
