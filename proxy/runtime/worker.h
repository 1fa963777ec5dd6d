// worker.h: one thread, one libuv loop, and everything that loop serves: the listeners of
// every pool (SO_REUSEPORT sockets opened by the control thread, so the kernel spreads
// connections over workers), the client sessions accepted on them, and this worker's own
// connections to every backend. Nothing here is shared with other workers: no locks on the
// hot path. The control thread talks to a worker only through post() (a uv_async_send).
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backends/io/flush_scheduler.h"
#include "backends/upstream/backend_pool.h"
#include "proxy/runtime/request.h"
#include "proxy/runtime/session_scratch.h"
#include "proxy/runtime/routing_snapshot.h"
#include "ring/ring.h"
#include "proxy/runtime/stats.h"

namespace proxy {

class ClientSession;


// Where a pool's keys go right now: the snapshot's ring, or, while backends are ejected
// (auto_eject_hosts), a ring over the live ones. Owners are snapshot backend indexes.
struct Placement {
  const ring::Ring* ring = nullptr;
  const uint32_t* nodeBackend = nullptr;
  uint32_t backendOf(std::string_view key) const { return nodeBackend[ring->ownerOf(key)]; }
};

struct WorkerOptions {
  int drainTimeoutMs = 5000;  // on shutdown, how long in-flight requests may take
};

class Worker {
 public:
  // Listening sockets handed to a worker, by pool name.
  using ListenFds = std::unordered_map<std::string, int>;

  Worker(int id, std::shared_ptr<const RoutingSnapshot> snapshot, ListenFds listenFds, WorkerOptions options);
  ~Worker();

  void start();
  // Control thread: ask the worker to stop accepting, finish in-flight work (bounded), exit.
  void requestStop();
  void join();

  // Any thread: runs `fn` on the worker's thread, soon.
  void post(std::function<void(Worker&)> fn);
  // Ejections are process-wide. A worker that ejects a backend calls this listener (set by
  // Control before start(), called on that worker's thread) so the others eject it too:
  // every worker then routes around it at once, not only the one that saw the failures
  // (twemproxy, one process, has one ejection state).
  using EjectionListener = std::function<void(int fromWorker, uint64_t generation, uint32_t backend)>;
  void setEjectionListener(EjectionListener fn) { ejectionListener_ = std::move(fn); }
  // Worker thread: another worker ejected `backend` of snapshot `generation` (ignored once a
  // reload has replaced that snapshot, or if it is ejected here already).
  void ejectFromPeer(uint64_t generation, uint32_t backend);
  // Control thread: switch to a new snapshot (a reload). `newListeners` holds sockets for
  // pools that are new or listen somewhere new; pools absent from `next` stop listening and
  // their clients drain; backends absent from `next` finish their in-flight work and close.
  void publish(std::shared_ptr<const RoutingSnapshot> next, ListenFds newListeners);

  // Worker thread only.
  int id() const { return id_; }
  uv_loop_t* loop() { return &loop_; }
  backends::io::FlushScheduler& flusher() { return flusher_; }
  const RoutingSnapshot& snapshot() const { return *snapshot_; }
  // Where pool `pool`'s keys go now (ejections taken into account).
  const Placement& placement(size_t pool) const { return live_[pool].placement; }
  // This worker's connections to backend `index` of the current snapshot. `alternate` picks a
  // second set opened on demand: for Redis, connections speaking RESP3 (for RESP3 clients);
  // for memcached, connections speaking the binary protocol (memcached fixes a connection's
  // protocol at its first byte).
  backends::upstream::BackendPool& backend(uint32_t index, bool alternate = false);
  // A connection to backend `index` for one client alone (WATCH needs one: watched keys
  // belong to a connection). The caller owns it and ends it with close()/closeWhenIdle().
  backends::upstream::UpstreamConn* openDedicated(uint32_t index, bool resp3);
  // The counters of pool `name` on this worker (kept across reloads, by name).
  PoolStats& poolStats(const std::string& name);
  RequestPool& requests() { return requests_; }
  // The connected-clients counter of pool `pool` (shared by all workers); the worker keeps it
  // alive for its own lifetime, so a session may hold the raw pointer across reloads.
  std::atomic<uint32_t>* clientCounter(size_t pool);
  SessionScratch& scratch() { return scratch_; }
  LendingPool<backends::resp::RequestParser>& respParsers() { return respParsers_; }
  LendingPool<backends::memcache::RequestParser>& memcacheParsers() { return memcacheParsers_; }
  // Worker thread: this worker's counters and backend health, for the control thread.
  WorkerReport report() const;
  void addSession(ClientSession* s);
  void removeSession(ClientSession* s);

 private:
  struct Listener;
  void run();
  void applySnapshot(std::shared_ptr<const RoutingSnapshot> next, ListenFds newListeners);
  void startListening(size_t pool, int fd);
  void onAccept(Listener& l);
  // Ejection (twemproxy's auto_eject_hosts): a backend with server_failure_limit consecutive
  // failures leaves its pool's ring for server_retry_timeout ms; its keys go to the next owners.
  static void onBackendFailure(void* ctx, backends::upstream::BackendPool& pool, uint32_t consecutive);
  void eject(uint32_t backend);  // out of its pool's ring for server_retry_timeout ms
  void rebuildPlacement(size_t pool);
  void armRejoinTimer();
  void onRejoinTimer();
  void sweepIdleClients();
  void beginStop();
  void maybeFinishStop();
  static void onAsync(uv_async_t* a);

  int id_;
  std::shared_ptr<const RoutingSnapshot> snapshot_;
  ListenFds initialFds_;
  WorkerOptions options_;
  std::thread thread_;
  uv_loop_t loop_{};
  uv_async_t async_{};
  uv_timer_t stopTimer_{};
  backends::io::FlushScheduler flusher_;
  std::mutex mutex_;
  std::vector<std::function<void(Worker&)>> inbox_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<std::string, std::unique_ptr<backends::upstream::BackendPool>> backendsByKey_;
  std::vector<backends::upstream::BackendPool*> backends_;  // by snapshot backend index
  std::unordered_map<std::string, std::unique_ptr<backends::upstream::BackendPool>> backends3ByKey_;
  std::vector<backends::upstream::BackendPool*> backends3_;  // RESP3 sets, opened on demand
  ClientSession* sessions_ = nullptr;  // intrusive list
  size_t sessionCount_ = 0;
  bool stopping_ = false;
  bool stopped_ = false;
  bool ready_ = false;   // guarded by mutex_: the loop and async handle exist
  bool closed_ = false;  // guarded by mutex_: the async handle is closed, post() drops work
  std::unordered_map<std::string, std::unique_ptr<PoolStats>> poolStats_;
  RequestPool requests_;
  std::unordered_map<std::string, std::shared_ptr<std::atomic<uint32_t>>> clientCounters_;
  SessionScratch scratch_;
  LendingPool<backends::resp::RequestParser> respParsers_;
  LendingPool<backends::memcache::RequestParser> memcacheParsers_;
  struct LivePool {
    Placement placement;
    std::unique_ptr<ring::Ring> liveRing;  // set while some of the pool's backends are ejected
    std::vector<uint32_t> liveNodeBackend;
  };
  std::vector<LivePool> live_;                 // per snapshot pool
  std::vector<uint64_t> ejectedUntilMs_;       // per snapshot backend; 0: in the ring
  std::vector<uint64_t> ejectedAtUsec_;        // per snapshot backend: when last ejected
  EjectionListener ejectionListener_;
  uv_timer_t rejoinTimer_{};
  uv_timer_t idleTimer_{};  // client_idle_timeout sweep, once a second
};

}  // namespace proxy
