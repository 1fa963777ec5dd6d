// Pub/sub for a Redis session: SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE and their UN- forms, the
// client's side of the messages, and the reload that moves a channel. PUBLISH and SPUBLISH
// are ordinary keyed commands (the channel is the key); PUBSUB is answered from every server
// of the pool (redis_session.cc, EveryBackendMerge). See redis_pubsub.h for the model.
//
// RESP2: a client with a subscription may only (un)subscribe, PING (answered as the
// ["pong", arg] array Redis sends in that mode), QUIT and RESET, as Redis enforces; every
// frame it gets is written in order through the state's output queue. RESP3: the client may
// run any command meanwhile; pub/sub frames are RESP3 pushes, written between whole replies.
//
// A subscriber connection that breaks takes its subscriptions with it: the client is closed
// (its library reconnects and subscribes again) rather than left waiting for messages that
// will never come.
#include <algorithm>
#include <map>

#include "proxy/redis/redis_pubsub.h"
#include "proxy/redis/redis_session.h"
#include "proxy/runtime/log.h"

namespace proxy {

namespace resp = backends::resp;

namespace {

// The kind a command or a server's confirmation word is about.
SubKind kindOf(std::string_view word) {
  if (word == "psubscribe" || word == "punsubscribe") return SubKind::Pattern;
  if (word == "ssubscribe" || word == "sunsubscribe") return SubKind::Shard;
  return SubKind::Channel;
}

std::string_view subscribeWord(SubKind k) {
  switch (k) {
    case SubKind::Channel: return "subscribe";
    case SubKind::Pattern: return "psubscribe";
    case SubKind::Shard: return "ssubscribe";
  }
  return "";
}

std::string_view unsubscribeWord(SubKind k) {
  switch (k) {
    case SubKind::Channel: return "unsubscribe";
    case SubKind::Pattern: return "punsubscribe";
    case SubKind::Shard: return "sunsubscribe";
  }
  return "";
}

// The text of a bulk or simple string element ("$7\r\nmessage\r\n" -> "message").
std::string_view textOf(std::string_view e) {
  if (e.size() >= 3 && e[0] == '+') return e.substr(1, e.size() - 3);
  if (e.size() < 4 || e[0] != '$') return {};
  const size_t header = e.find("\r\n");
  if (header == std::string_view::npos || e.size() < header + 4) return {};
  return e.substr(header + 2, e.size() - header - 4);
}

// `*<1 + names>` CMD name...: one request to one server.
std::string subscriberCommand(std::string_view word, const std::vector<std::string_view>& names) {
  std::string out;
  resp::appendArrayHeader(out, 1 + names.size());
  resp::appendBulk(out, word);
  for (std::string_view n : names) resp::appendBulk(out, n);
  return out;
}

}  // namespace

void PubSubState::onReply(uint64_t, const char* data, size_t len, bool) { session.onPubSubFrame(data, len); }

void PubSubState::onFailure(uint64_t, std::string_view why) { session.onPubSubFailure(why); }

PubSubState& RedisSession::pubsub() {
  if (!rare().pubsub) rare().pubsub = std::make_unique<PubSubState>(*this);
  return *rare_->pubsub;
}

bool RedisSession::inSubscribedMode() const {
  return rare_ && rare_->pubsub && rare_->pubsub->subscribed() && protocol_ == resp::Protocol::Resp2;
}

void RedisSession::appendSubscriptionFrame(std::string& out, std::string_view word, const std::string* name,
                                           size_t count) {
  if (protocol_ == resp::Protocol::Resp3) out += ">3\r\n";
  else out += "*3\r\n";
  resp::appendBulk(out, word);
  if (name != nullptr) resp::appendBulk(out, *name);
  else resp::appendNull(out, protocol_);
  resp::appendInteger(out, static_cast<int64_t>(count));
}

backends::upstream::UpstreamLink* RedisSession::subscriberLink(uint32_t backend) {
  PubSubState& ps = pubsub();
  for (const PubSubState::Link& l : ps.links)
    if (l.backend == backend) return l.link;
  PoolGauges* gauges = reserveOwnConnections(1);
  if (gauges == nullptr) return nullptr;
  if (ps.gauges == nullptr) ps.gauges = gauges;
  backends::upstream::UpstreamLink* link = host_.openSubscriber(backend, channel(), &ps);
  ps.links.push_back({host_.snapshot().backends[backend].key, backend, link});
  return link;
}

void RedisSession::cmdSubscribe(const CommandSpec& spec, const char* req) {
  if (hasQueued()) {  // confirmations must not overtake the replies the client waits for
    deferred_ = true;
    return;
  }
  const SubKind kind = kindOf(spec.name);
  PubSubState& ps = pubsub();
  const Placement& pl = host_.placement(pool());
  // Which servers each new name needs: its owner, or every server for a pattern.
  std::vector<uint32_t> every;
  for (uint32_t node = 0; node < pl.nodeCount(); ++node) {
    const uint32_t b = pl.nodeBackend[node];
    if (std::find(every.begin(), every.end(), b) == every.end()) every.push_back(b);
  }
  std::map<uint32_t, std::vector<std::string_view>> batches;
  for (size_t i = 1; i < argc(); ++i) {
    const std::string_view name = arg(req, i);
    if (kind == SubKind::Pattern) {
      if (ps.patterns.count(std::string(name)) == 0)
        for (uint32_t b : every) batches[b];
    } else {
      auto& set = kind == SubKind::Shard ? ps.shards : ps.channels;
      if (set.count(std::string(name)) == 0) batches[pl.backendOf(name)];
    }
  }
  // Open every connection needed first, so that a refusal leaves nothing half subscribed.
  for (auto& [backend, names] : batches) {
    if (subscriberLink(backend) == nullptr) {
      replyOverOwnConnections("blocking commands and subscriptions");
      return;
    }
  }
  for (size_t i = 1; i < argc(); ++i) {
    const std::string name(arg(req, i));
    uint32_t awaiting = 0;
    if (kind == SubKind::Pattern) {
      if (ps.patterns.emplace(name, true).second) {
        for (uint32_t b : every) batches[b].push_back(arg(req, i));
        awaiting = static_cast<uint32_t>(every.size());
      }
    } else {
      auto& set = kind == SubKind::Shard ? ps.shards : ps.channels;
      const uint32_t owner = pl.backendOf(name);
      if (set.emplace(name, host_.snapshot().backends[owner].key).second) {
        batches[owner].push_back(arg(req, i));
        awaiting = 1;
      }
    }
    PubSubState::Out o;
    appendSubscriptionFrame(o.bytes, subscribeWord(kind), &name, ps.count(kind));
    o.awaiting = awaiting;
    o.kind = kind;
    o.name = name;
    ps.out.push_back(std::move(o));
  }
  for (auto& [backend, names] : batches) {
    if (names.empty()) continue;
    const std::string bytes = subscriberCommand(subscribeWord(kind), names);
    if (subscriberLink(backend)->send(bytes.data(), bytes.size(), nullptr, 0, 0) == 0) {
      onPubSubFailure("backend " + host_.snapshot().backends[backend].endpoint.label + ": cannot subscribe");
      return;
    }
  }
  noteSubscriptionCounts();
  flushPubSub();
}

void RedisSession::cmdUnsubscribe(const CommandSpec& spec, const char* req) {
  if (hasQueued()) {
    deferred_ = true;
    return;
  }
  const SubKind kind = kindOf(spec.name);
  PubSubState& ps = pubsub();
  std::vector<std::string> names;
  if (argc() > 1) {
    for (size_t i = 1; i < argc(); ++i) names.emplace_back(arg(req, i));
  } else if (kind == SubKind::Pattern) {
    for (const auto& [p, unused] : ps.patterns) names.push_back(p);
  } else {
    for (const auto& [c, key] : kind == SubKind::Shard ? ps.shards : ps.channels) names.push_back(c);
  }
  std::map<std::string, std::vector<std::string_view>> batches;  // by backend key
  for (const std::string& name : names) {
    if (kind == SubKind::Pattern) {
      if (ps.patterns.erase(name) > 0)
        for (const PubSubState::Link& l : ps.links) batches[l.key].push_back(name);
    } else {
      auto& set = kind == SubKind::Shard ? ps.shards : ps.channels;
      auto it = set.find(name);
      if (it != set.end()) {
        batches[it->second].push_back(name);
        set.erase(it);
      }
    }
    // Confirmed at once: messages for what the client left are dropped from now on.
    PubSubState::Out o;
    appendSubscriptionFrame(o.bytes, unsubscribeWord(kind), &name, ps.count(kind));
    ps.out.push_back(std::move(o));
  }
  if (names.empty()) {  // nothing to leave: one confirmation with no name, as Redis sends
    PubSubState::Out o;
    appendSubscriptionFrame(o.bytes, unsubscribeWord(kind), nullptr, ps.count(kind));
    ps.out.push_back(std::move(o));
  }
  for (const PubSubState::Link& l : ps.links) {
    auto it = batches.find(l.key);
    if (it == batches.end()) continue;
    const std::string bytes = subscriberCommand(unsubscribeWord(kind), it->second);
    (void)l.link->send(bytes.data(), bytes.size(), nullptr, 0, 0);  // a dead link has unsubscribed
  }
  noteSubscriptionCounts();
  flushPubSub();
  // The subscriber connections stay open when the last subscription goes: clients such as
  // Celery's result consumer subscribe and unsubscribe in quick succession, and a
  // SUBSCRIBE's confirmation may still be on its way on them. They close with the client
  // (or RESET).
}

void RedisSession::onPubSubFrame(const char* data, size_t len) {
  PubSubState& ps = *rare_->pubsub;
  if (s_.elementSpans.empty()) s_.elementSpans.emplace_back();
  std::vector<resp::ByteSpan>& spans = s_.elementSpans[0];
  if (resp::splitAggregate(data, len, spans) != resp::ParseStatus::Complete || spans.size() < 3) return;
  auto element = [&](size_t i) { return textOf(std::string_view(data + spans[i].offset, spans[i].length)); };
  const std::string_view word = element(0);
  bool deliver = false;
  if (word == "message") {
    deliver = ps.channels.count(std::string(element(1))) > 0;
  } else if (word == "pmessage") {
    deliver = ps.patterns.count(std::string(element(1))) > 0;
  } else if (word == "smessage") {
    deliver = ps.shards.count(std::string(element(1))) > 0;
  } else if (word == "subscribe" || word == "psubscribe" || word == "ssubscribe") {
    // A server confirms: the client's confirmation waiting for it may go. One that matches
    // nothing is a re-subscription the proxy made after a reload.
    const SubKind kind = kindOf(word);
    const std::string_view name = element(1);
    for (PubSubState::Out& o : ps.out) {
      if (o.awaiting > 0 && o.kind == kind && o.name == name) {
        o.awaiting--;
        break;
      }
    }
    flushPubSub();
    return;
  }
  if (!deliver) return;  // unsubscribe confirmations, and messages for what the client left
  if (ps.out.empty()) {
    writeOutOfBand(data, len);
    return;
  }
  PubSubState::Out o;
  o.bytes.assign(data, len);
  ps.out.push_back(std::move(o));
}

void RedisSession::noteSubscriptionCounts() {
  const PubSubState& ps = *rare_->pubsub;
  entry_.subscriptions.store(static_cast<uint32_t>(ps.channels.size()), std::memory_order_relaxed);
  entry_.patterns.store(static_cast<uint32_t>(ps.patterns.size()), std::memory_order_relaxed);
  entry_.shardSubscriptions.store(static_cast<uint32_t>(ps.shards.size()), std::memory_order_relaxed);
}

void RedisSession::flushPubSub() {
  PubSubState& ps = *rare_->pubsub;
  while (!ps.out.empty() && ps.out.front().awaiting == 0) {
    writeOutOfBand(ps.out.front().bytes.data(), ps.out.front().bytes.size());
    ps.out.pop_front();
  }
}

void RedisSession::onPubSubFailure(std::string_view why) {
  LOG_NOTICE("closing a subscribed client: its subscriber connection failed (%.*s)", static_cast<int>(why.size()),
             why.data());
  stats().clientErr++;
  closeNow();  // the links are closed with the session
}

void RedisSession::closeSubscriberLinks() {
  if (!rare_ || !rare_->pubsub) return;
  PubSubState& ps = *rare_->pubsub;
  for (PubSubState::Link& l : ps.links) {
    l.link->close();
    releaseOwnConnections(ps.gauges, 1);
  }
  ps.links.clear();
}

void RedisSession::endPubSub() {
  closeSubscriberLinks();
  if (rare_ && rare_->pubsub) {
    PubSubState& ps = *rare_->pubsub;
    ps.channels.clear();
    ps.patterns.clear();
    ps.shards.clear();
    ps.out.clear();
    noteSubscriptionCounts();
  }
}

void RedisSession::pubsubRoutingChanged() {
  PubSubState& ps = *rare_->pubsub;
  const RoutingSnapshot& snap = host_.snapshot();
  // Links follow their backend's identity; one whose backend left the pool is closed below.
  for (PubSubState::Link& l : ps.links) {
    l.backend = UINT32_MAX;
    for (uint32_t b = 0; b < snap.backends.size(); ++b)
      if (snap.backends[b].key == l.key && snap.backends[b].pool == pool()) l.backend = b;
  }
  const Placement& pl = host_.placement(pool());
  std::map<uint32_t, std::vector<std::string_view>> subscribe[3];
  std::map<std::string, std::vector<std::string_view>> unsubscribe[3];  // by old backend key
  auto move = [&](std::unordered_map<std::string, std::string>& set, SubKind kind) {
    for (auto& [name, key] : set) {
      const uint32_t owner = pl.backendOf(name);
      if (snap.backends[owner].key == key) continue;
      subscribe[size_t(kind)][owner].push_back(name);
      unsubscribe[size_t(kind)][key].push_back(name);
      key = snap.backends[owner].key;
    }
  };
  move(ps.channels, SubKind::Channel);
  move(ps.shards, SubKind::Shard);
  // Patterns: on every live server, and on no other.
  std::vector<bool> live(snap.backends.size(), false);
  for (uint32_t node = 0; node < pl.nodeCount(); ++node) live[pl.nodeBackend[node]] = true;
  if (!ps.patterns.empty()) {
    for (uint32_t b = 0; b < live.size(); ++b) {
      if (!live[b]) continue;
      bool has = false;
      for (const PubSubState::Link& l : ps.links) has = has || l.backend == b;
      if (!has)
        for (const auto& [p, unused] : ps.patterns) subscribe[size_t(SubKind::Pattern)][b].push_back(p);
    }
  }
  // New subscriptions first, so a channel is never subscribed nowhere; then leave the old.
  for (size_t k = 0; k < 3; ++k)
    for (auto& [backend, names] : subscribe[k]) {
      backends::upstream::UpstreamLink* link = subscriberLink(backend);
      const std::string bytes = subscriberCommand(subscribeWord(SubKind(k)), names);
      if (link == nullptr || link->send(bytes.data(), bytes.size(), nullptr, 0, 0) == 0) {
        onPubSubFailure("cannot subscribe on the channel's new owner after a reload");
        return;
      }
    }
  for (size_t k = 0; k < 3; ++k)
    for (const PubSubState::Link& l : ps.links) {
      auto it = unsubscribe[k].find(l.key);
      if (it == unsubscribe[k].end() || l.backend == UINT32_MAX) continue;
      const std::string bytes = subscriberCommand(unsubscribeWord(SubKind(k)), it->second);
      (void)l.link->send(bytes.data(), bytes.size(), nullptr, 0, 0);
    }
  // Close the links nothing needs any more (their servers left the pool or the ring).
  std::vector<PubSubState::Link> kept;
  for (PubSubState::Link& l : ps.links) {
    bool needed = l.backend != UINT32_MAX && !ps.patterns.empty() && live[l.backend];
    for (const auto& [name, key] : ps.channels) needed = needed || key == l.key;
    for (const auto& [name, key] : ps.shards) needed = needed || key == l.key;
    if (needed) {
      kept.push_back(l);
      continue;
    }
    l.link->close();
    releaseOwnConnections(ps.gauges, 1);
    // A confirmation still owed on it will not come: let what waits for one go.
    for (PubSubState::Out& o : ps.out) o.awaiting = 0;
  }
  ps.links = std::move(kept);
  flushPubSub();
}

}  // namespace proxy
