// control.h: the control thread. It owns the configuration and the workers: it loads and
// validates config files, opens listening sockets, builds routing snapshots and publishes
// them, and it acts on what signals ask (stop, reload: the SignalThread takes the signals
// and wakes this loop), the config-file watch and the admin endpoints. It never touches a
// client or backend connection: workers do.
//
// Start-up is three steps, each of which can fail with a message before the process says it
// is running: prepare() opens the pools' listening sockets, start() binds the stats and admin
// listeners and starts the workers, run() serves until a stop.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/topology.h"
#include "proxy/control/admin_server.h"
#include "proxy/control/config_watch.h"
#include "proxy/runtime/routing_snapshot.h"
#include "proxy/runtime/stats.h"
#include "proxy/runtime/worker.h"

namespace proxy {

class SignalThread;

struct ControlOptions {
  std::string configFile;
  std::string statsAddr = "127.0.0.1";  // twemproxy's -a (twemproxy binds 0.0.0.0)
  int statsPort = 22222;                // twemproxy's -s; 0: off
  std::string adminAddr;                // --admin ADDR:PORT host part; empty: off
  int adminPort = 0;
  // --admin-token-file: every admin request must carry "Authorization: Bearer <token>" (the
  // file's first line). Without it, POST /reload is answered only on a loopback listener.
  std::string adminToken;
  // --admin-tls-cert / --admin-tls-key: the admin listener serves HTTPS.
  std::string adminTlsCert;
  std::string adminTlsKey;
  int workers = 1;
  bool watchConfig = true;
  int watchDebounceMs = 200;
  WorkerOptions worker;
};

// What reloads have done, for the log, /metrics and ringctl status.
struct ReloadStats {
  uint64_t generation = 1;
  uint64_t reloads = 0;
  uint64_t failures = 0;
  std::string lastError;  // file:line: key: message of the last failed reload
  // Per pool, the share of the keyspace the last reload moved and the ideal minimum.
  std::vector<std::pair<std::string, std::pair<double, double>>> lastMoved;
};

class Control {
 public:
  explicit Control(ControlOptions options);
  ~Control();

  // Opens the listeners of `topology` (false with a message when one cannot be opened).
  bool prepare(config::Topology topology, std::string& error);
  // After prepare (and after any daemonizing fork): binds the stats and admin listeners,
  // starts the workers and takes stop and reload requests from `signals` (may be null).
  // False with a message (and every listener closed) when a listener cannot be bound.
  bool start(SignalThread* signals, std::string& error);
  // Runs the control loop until a stop; returns the exit code.
  int run();

  // Loads the config file again; a bad file changes nothing. Returns false on failure (and
  // `error` says why). Control thread only.
  bool reload(const char* trigger, std::string* error = nullptr);
  void requestStop();
  // Control thread: every worker's counters, summed (waits briefly for each worker).
  WorkerReport collectStats();

  uv_loop_t* loop() { return loop_; }
  const ReloadStats& reloadStats() const { return reloadStats_; }
  const config::Topology& topology() const { return topology_; }
  std::shared_ptr<const RoutingSnapshot> snapshot() const { return snapshot_; }
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }

 private:
  void startWatch();
  void logStartup() const;
  void closeListenersAfterFailedStart();
  void onWatchEvent();
  void logDiff(const RoutingSnapshot& before, const RoutingSnapshot& after);
  static std::string fileDigest(const std::string& path);
  static std::string textDigest(const std::string& text);

  ControlOptions options_;
  uv_loop_t* loop_;
  config::Topology topology_;
  std::shared_ptr<const RoutingSnapshot> snapshot_;
  std::vector<Worker::ListenFds> initialFds_;  // per worker
  std::vector<std::unique_ptr<Worker>> workers_;
  ReloadStats reloadStats_;
  std::string loadedDigest_;
  std::string pendingDigest_;  // a changed file seen once, reloaded when seen again unchanged
  // Stop and reload requests from the signal thread: a flag each, and a wake-up.
  SignalThread* signals_ = nullptr;
  uv_async_t signalAsync_{};
  std::atomic<bool> stopAsked_{false};
  std::atomic<bool> reloadAsked_{false};
  ConfigWatch watch_;
  uv_timer_t debounce_{};
  uv_timer_t trimTimer_{};
  bool watching_ = false;
  std::unique_ptr<AdminServer> statsServer_;
  std::unique_ptr<AdminServer> adminServer_;
  bool stopping_ = false;
};

}  // namespace proxy
