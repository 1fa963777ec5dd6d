// session_host.h: everything a client session may ask of the runtime it lives in, and nothing
// more: where a key goes (the routing snapshot and the live placement of each pool), a link to
// a backend to send a fragment on, the loop and the once-per-turn flusher, counters.
//
// Worker is the real host. Session unit tests use a fake one whose upstream links answer
// out of order and fail on demand (tests/support/fake_host.h), with a real routing snapshot
// built from a config: the ring is pure math and needs no faking.
//
// What sessions read on every request is plain data held here and kept current by the host
// (no virtual call on the hot path); what a test replaces is virtual.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backends/io/debug_assert.h"
#include "backends/io/flush_scheduler.h"
#include "backends/upstream/upstream_link.h"
#include "proxy/runtime/routing_snapshot.h"
#include "proxy/runtime/stats.h"
#include "ring/ring.h"

namespace proxy {

class ClientSession;

// Where a pool's keys go right now: the snapshot's ring, or, while backends are ejected
// (auto_eject_hosts), a ring over the live ones. Owners are snapshot backend indexes.
struct Placement {
  const ring::Ring* ring = nullptr;
  const uint32_t* nodeBackend = nullptr;
  uint32_t backendOf(std::string_view key) const { return nodeBackend[ring->ownerOf(key)]; }
  uint32_t nodeCount() const { return static_cast<uint32_t>(ring->nodeCount()); }
};

// In a transition (route.previousRing set): whether `key`'s owner on the previous ring differs
// from its owner in `pl`; `from` and `to` are those owners. Both rings hash keys the same way
// (the same pool settings): one hash, two lookups.
inline bool movedKey(const PoolRoute& route, const Placement& pl, std::string_view key, uint32_t& from, uint32_t& to) {
  const uint64_t hash = route.previousRing->hashOf(key);
  from = route.previousNodeBackend[route.previousRing->ownerOfHash(hash)];
  to = pl.nodeBackend[pl.ring->ownerOfHash(hash)];
  return from != to;
}

// Which set of connections to a backend a request travels on. Redis clients that said
// HELLO 3 get connections speaking RESP3 (their replies then need no translation); memcached
// binary requests get connections speaking binary (memcached fixes a connection's protocol
// at its first byte).
enum class Channel : uint8_t { Default, Resp3, Binary };

class SessionHost {
 public:
  SessionHost(const SessionHost&) = delete;
  SessionHost& operator=(const SessionHost&) = delete;

  // --- read on the hot path: plain data, owned here, kept current by the host ---
  uv_loop_t* loop() { return &loop_; }
  backends::io::FlushScheduler& flusher() { return flusher_; }
  const RoutingSnapshot& snapshot() const { return *snapshot_; }
  // Where pool `pool`'s keys go now (ejections taken into account).
  const Placement& placement(size_t pool) const {
    DEBUG_ASSERT(pool < placements_.size());
    return placements_[pool];
  }
  int id() const { return id_; }
  // Sessions, their requests and the links are single-threaded: only the host's thread may
  // touch them (checked by DEBUG_ASSERT in the places that matter).
  bool onOwnThread() const { return std::this_thread::get_id() == thread_; }

  // --- the upstream side: what a test fakes ---
  // A link to backend `backend` (a snapshot backend index) on `channel`, shared by every
  // client of this host (pipelined).
  virtual backends::upstream::UpstreamLink& upstream(uint32_t backend, Channel channel) = 0;
  // The same, for a Redis client that selected database `db` (SELECT): shared by the clients
  // of this host in that database, opened on first use.
  virtual backends::upstream::UpstreamLink& upstreamInDb(uint32_t backend, Channel channel, int db) = 0;
  // A link for one client alone (WATCH needs one: watched keys belong to a connection), in
  // database `db` (kPoolDb: the pool's redis_db). The caller ends it with closeWhenIdle().
  static constexpr int kPoolDb = -1;
  virtual backends::upstream::UpstreamLink* openDedicated(uint32_t backend, Channel channel, int db) = 0;
  // A link for one client's pub/sub subscriptions: every frame the backend sends (after the
  // connection's handshake) goes to `sink` as onReply(0, ...); a broken connection calls
  // onFailure(0, why) once. No reply timeout. The caller ends it with close().
  virtual backends::upstream::UpstreamLink* openSubscriber(uint32_t backend, Channel channel,
                                                           backends::upstream::ReplySink* sink) = 0;

  // --- bookkeeping at a session's start and end ---
  // The counters of pool `name` on this host (kept across reloads, by name).
  virtual PoolStats& poolStats(const std::string& name) = 0;
  // The gauges of pool `pool` (shared by all workers); alive as long as the host, so a
  // session may keep the pointer across reloads.
  virtual PoolGauges* gauges(size_t pool) = 0;
  virtual void addSession(ClientSession* s) = 0;
  virtual void removeSession(ClientSession* s) = 0;
  // Sessions in their lingering close (see ClientSession::beginLinger): the host's sweep
  // looks at its sessions while any linger, to end those that linger too long.
  void lingerChanged(int delta) { lingering_ = static_cast<size_t>(static_cast<long>(lingering_) + delta); }
  size_t lingering() const { return lingering_; }
  // Sessions whose TLS handshake is not done: the sweep ends those that take too long.
  void handshakesChanged(int delta) { handshakes_ = static_cast<size_t>(static_cast<long>(handshakes_) + delta); }
  size_t handshakes() const { return handshakes_; }

 protected:
  SessionHost(int id, std::shared_ptr<const RoutingSnapshot> snapshot) : snapshot_(std::move(snapshot)), id_(id) {}
  ~SessionHost() = default;

  uv_loop_t loop_{};
  backends::io::FlushScheduler flusher_;
  std::shared_ptr<const RoutingSnapshot> snapshot_;
  std::vector<Placement> placements_;  // per snapshot pool
  int id_;
  size_t lingering_ = 0;
  size_t handshakes_ = 0;
  std::thread::id thread_;  // set by the host when its loop starts
};

}  // namespace proxy
