// redis_pubsub.h: one Redis client's pub/sub subscriptions, held by its session once it
// subscribes (redis_pubsub.cc has the behaviour).
//
// A channel lives on the ring owner of its name (hash tags apply), where PUBLISH sends it;
// a pattern is subscribed on every server of the pool, and a message is published on one
// server only, so it matches there once. The client gets one subscriber connection per
// server it needs, each in push mode (UpstreamConn::setPushSink): every frame the server
// sends comes here.
//
// What the client sees is the proxy's: subscription counts are the client's own totals (a
// server only knows the part it holds), a SUBSCRIBE is confirmed only once its server has
// confirmed it (so a message published right after the confirmation is not missed), and
// frames leave in order: a message that arrives behind a confirmation still owed waits for
// it. A message for a channel or pattern the client has left is dropped, so an UNSUBSCRIBE
// is confirmed at once.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/upstream/upstream_link.h"

namespace proxy {

class RedisSession;

enum class SubKind : uint8_t { Channel, Pattern, Shard };

struct PubSubState final : backends::upstream::ReplySink {
  explicit PubSubState(RedisSession& s) : session(s) {}
  PubSubState(const PubSubState&) = delete;
  PubSubState& operator=(const PubSubState&) = delete;

  // From the subscriber connections (cookie unused).
  void onReply(uint64_t cookie, const char* data, size_t len, bool isError) override;
  void onFailure(uint64_t cookie, std::string_view why) override;

  // A subscriber connection, named by its backend's identity across reloads
  // (BackendSpec::key); `backend` is that backend's index in the current snapshot.
  struct Link {
    std::string key;
    uint32_t backend;
    backends::upstream::UpstreamLink* link;
  };
  // The client's subscriptions: channel and shard channel -> the backend key it is
  // subscribed on; patterns are on every link.
  std::unordered_map<std::string, std::string> channels, shards;
  std::unordered_map<std::string, bool> patterns;

  // What the client will see, in order: a confirmation waiting for `awaiting` server
  // confirmations of (kind, name), or a frame ready to go (awaiting 0).
  struct Out {
    std::string bytes;
    uint32_t awaiting = 0;
    SubKind kind = SubKind::Channel;
    std::string name;
  };
  std::deque<Out> out;
  std::vector<Link> links;
  struct PoolGauges* gauges = nullptr;  // where the links are counted (max_blocking_connections)

  size_t count(SubKind k) const {  // Redis's count: shard channels apart from the others
    return k == SubKind::Shard ? shards.size() : channels.size() + patterns.size();
  }
  bool subscribed() const { return !channels.empty() || !patterns.empty() || !shards.empty(); }

  RedisSession& session;
};

}  // namespace proxy
