// worker.h: one thread, one libuv loop, and everything that loop serves: the listeners of
// every pool (SO_REUSEPORT sockets opened by the control thread, so the kernel spreads
// connections over workers), the client sessions accepted on them, and this worker's own
// connections to every backend. Nothing here is shared with other workers: no locks on the
// hot path. The control thread talks to a worker only through post() (a uv_async_send).
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <tuple>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backends/upstream/backend_pool.h"
#include "proxy/runtime/backend_event_log.h"
#include "proxy/runtime/frontend.h"
#include "proxy/runtime/routing_snapshot.h"
#include "proxy/runtime/session_host.h"
#include "proxy/runtime/stats.h"
#include "ring/ring.h"

namespace proxy {

class ClientSession;

struct WorkerOptions {
  int drainTimeoutMs = 5000;  // on shutdown, how long in-flight requests may take
  FrontendFactory makeFrontend = nullptr;  // a protocol's sessions (control/frontends.cc)
};

// The SessionHost of the sessions accepted on this worker.
class Worker final : public SessionHost {
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

  // SessionHost, worker thread only. This worker's connections to backend `index` of the
  // current snapshot: Channel::Default is the set every pool has; Resp3 and Binary are a
  // second set opened on first use.
  backends::upstream::UpstreamLink& upstream(uint32_t backend, Channel channel) override;
  backends::upstream::UpstreamLink& upstreamInDb(uint32_t backend, Channel channel, int db) override;
  backends::upstream::UpstreamLink* openDedicated(uint32_t backend, Channel channel, int db) override;
  PoolStats& poolStats(const std::string& name) override;
  PoolGauges* gauges(size_t pool) override;
  backends::upstream::UpstreamLink* openSubscriber(uint32_t backend, Channel channel,
                                                   backends::upstream::ReplySink* sink) override;
  void addSession(ClientSession* s) override;
  void removeSession(ClientSession* s) override;

  // Worker thread: this worker's counters and backend health, for the control thread.
  WorkerReport report() const;

 private:
  struct Listener;
  void run();
  void applySnapshot(std::shared_ptr<const RoutingSnapshot> next, ListenFds newListeners);
  void startListening(size_t pool, int fd);
  void onAccept(Listener& l);
  // Ejection (twemproxy's auto_eject_hosts): a backend with server_failure_limit consecutive
  // failures leaves its pool's ring for server_retry_timeout ms; its keys go to the next owners.
  static void onBackendEvent(void* ctx, backends::upstream::BackendPool& pool,
                             const backends::upstream::UpstreamConn& conn, backends::upstream::LinkEvent event);
  void maybeEject(uint32_t index, const backends::upstream::BackendPool& pool);
  void eject(uint32_t backend);  // out of its pool's ring for server_retry_timeout ms
  // The connection options for backend `index` on `channel` in database `db` (kPoolDb: redis_db).
  backends::upstream::Options optionsFor(uint32_t index, Channel channel, int db) const;
  void notifyRoutingChanged();  // every session's onRoutingChanged
  void rebuildPlacement(size_t pool);
  void armRejoinTimer();
  void onRejoinTimer();
  void sweepIdleClients();
  void beginStop();
  void maybeFinishStop();
  static void onAsync(uv_async_t* a);

  backends::upstream::BackendPool& backend(uint32_t index, bool alternate);
  Frontend& frontend(config::Protocol protocol);

  ListenFds initialFds_;
  WorkerOptions options_;
  std::thread workerThread_;
  uv_async_t async_{};
  uv_timer_t stopTimer_{};
  std::mutex mutex_;
  std::vector<std::function<void(Worker&)>> inbox_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_map<std::string, std::unique_ptr<backends::upstream::BackendPool>> backendsByKey_;
  std::vector<backends::upstream::BackendPool*> backends_;  // by snapshot backend index
  std::unordered_map<std::string, std::unique_ptr<backends::upstream::BackendPool>> backends3ByKey_;
  // Connections in databases other than the pool's (clients that said SELECT n), opened on
  // first use, by (backend key, db, RESP3); a reload keeps those whose backend stays.
  struct DbPoolKey {
    std::string backend;
    int db;
    bool resp3;
    bool operator<(const DbPoolKey& o) const {
      return std::tie(backend, db, resp3) < std::tie(o.backend, o.db, o.resp3);
    }
  };
  std::map<DbPoolKey, std::unique_ptr<backends::upstream::BackendPool>> dbPools_;
  std::vector<backends::upstream::BackendPool*> backends3_;  // RESP3 sets, opened on demand
  BackendEventLog eventLog_;  // by snapshot backend index
  ClientSession* sessions_ = nullptr;  // intrusive list
  size_t sessionCount_ = 0;
  bool stopping_ = false;
  bool stopped_ = false;
  bool ready_ = false;   // guarded by mutex_: the loop and async handle exist
  bool closed_ = false;  // guarded by mutex_: the async handle is closed, post() drops work
  std::unordered_map<std::string, std::unique_ptr<PoolStats>> poolStats_;
  std::unordered_map<std::string, std::shared_ptr<PoolGauges>> gauges_;
  // Per protocol (config::Protocol), made on first use. Declared after everything sessions
  // hold pointers into, and destroyed only after every session is gone (run() returns then).
  std::unique_ptr<Frontend> frontends_[2];
  // The storage of placements_ (in SessionHost) while some of a pool's backends are ejected.
  struct LivePool {
    std::unique_ptr<ring::Ring> liveRing;
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
