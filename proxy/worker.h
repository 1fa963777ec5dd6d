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
#include "proxy/routing_snapshot.h"
#include "proxy/stats.h"

namespace proxy {

class ClientSession;

// Limits that bound what one client may hold (see README "Limits").
struct SessionLimits {
  size_t maxPendingRequests = 16 * 1024;      // reading pauses beyond this many unanswered requests
  size_t maxOutputBytes = 64u * 1024 * 1024;  // reading pauses while this much reply data is unsent
  size_t maxRequestBytes = 512u * 1024 * 1024;
  size_t maxMultibulkCount = 1024 * 1024;
};

struct WorkerOptions {
  SessionLimits limits;
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

  // Control thread: runs `fn` on the worker's thread, soon.
  void post(std::function<void(Worker&)> fn);
  // Control thread: switch to a new snapshot (a reload). `newListeners` holds sockets for
  // pools that are new or listen somewhere new; pools absent from `next` stop listening and
  // their clients drain; backends absent from `next` finish their in-flight work and close.
  void publish(std::shared_ptr<const RoutingSnapshot> next, ListenFds newListeners);

  // Worker thread only.
  int id() const { return id_; }
  uv_loop_t* loop() { return &loop_; }
  backends::io::FlushScheduler& flusher() { return flusher_; }
  const RoutingSnapshot& snapshot() const { return *snapshot_; }
  // This worker's connections to backend `index` of the current snapshot; RESP3 clients use a
  // second set of connections that speak RESP3.
  backends::upstream::BackendPool& backend(uint32_t index, bool resp3 = false);
  // A connection to backend `index` for one client alone (WATCH needs one: watched keys
  // belong to a connection). The caller owns it and ends it with close()/closeWhenIdle().
  backends::upstream::UpstreamConn* openDedicated(uint32_t index, bool resp3);
  const SessionLimits& limits() const { return options_.limits; }
  // The counters of pool `name` on this worker (kept across reloads, by name).
  PoolStats& poolStats(const std::string& name);
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
};

}  // namespace proxy
