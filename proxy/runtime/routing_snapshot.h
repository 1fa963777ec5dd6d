// routing_snapshot.h: the immutable routing state every worker reads. Built on the control
// thread from a validated Topology and published to workers as shared_ptr<const>, so a worker
// never locks to route a request and a reload swaps the whole picture at once.
//
// Backends are listed once per snapshot with a stable `key`: a worker keeps the connections of
// every backend whose key survives a reload, opens the new ones, and closes the rest once
// they have answered what they owe.
#pragma once

#include <atomic>
#include <mutex>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/upstream/upstream_conn.h"
#include "config/topology.h"
#include "proxy/runtime/tls_server.h"
#include "ring/ring.h"

namespace proxy {

struct BackendSpec {
  std::string key;  // identity across reloads: pool, endpoint and connection options
  backends::upstream::Endpoint endpoint;
  backends::upstream::Options options;
  uint32_t connections = 1;
  bool preconnect = false;
  config::Protocol protocol = config::Protocol::Redis;
  size_t pool = 0;              // the pool it serves (a backend key includes the pool)
  bool autoEject = false;       // twemproxy's auto_eject_hosts
  uint32_t failureLimit = 2;    // server_failure_limit
  int retryTimeoutMs = 30000;   // server_retry_timeout
};

// Gauges of one pool shared by every worker (atomics: read and written on any worker).
struct PoolGauges {
  std::atomic<uint32_t> clients{0};   // client connections open (client_connections)
  std::atomic<uint32_t> blocking{0};  // backend connections held by one client (max_blocking_connections)

  // The backends' version as an INFO reply last gave it (HELLO reports it); empty until then.
  // Read and written once per HELLO or INFO, never per request: a mutex is cheap enough.
  std::string backendVersion() {
    std::lock_guard<std::mutex> lock(versionMutex_);
    return backendVersion_;
  }
  void setBackendVersion(std::string_view v) {
    std::lock_guard<std::mutex> lock(versionMutex_);
    backendVersion_.assign(v);
  }

 private:
  std::mutex versionMutex_;
  std::string backendVersion_;
};

struct PoolRoute {
  config::Pool config;
  ring::Ring ring;
  std::vector<uint32_t> nodeBackend;  // ring node index -> index into RoutingSnapshot::backends
  // Shared by every snapshot that has a pool of this name, so a reload does not reset them.
  std::shared_ptr<PoolGauges> gauges;
  // TLS for the pool's clients (tls_cert_file): sessions accepted under this snapshot use it.
  std::shared_ptr<ServerTlsContext> clientTls;
  // A transition (previous_servers): the ring the data is still on, and each of its nodes'
  // backend. Null outside a transition, so a request pays one pointer test.
  std::shared_ptr<const ring::Ring> previousRing;
  std::vector<uint32_t> previousNodeBackend;
  // The backend that owned `key` before the transition (only when previousRing is set).
  uint32_t previousOwner(std::string_view key) const { return previousNodeBackend[previousRing->ownerOf(key)]; }
};

// One RESP command; and the AUTH command the proxy logs in to pool's backends with ("" when
// none: no backend_auth_* and no redis_auth).
std::string redisCommand(const std::vector<std::string>& args);
std::string backendAuthCommand(const config::Pool& pool);

// A pool's TLS, made from its tls_* and backend_tls_* settings when a config is loaded.
struct BackendTls {
  std::shared_ptr<ServerTlsContext> listener;  // for its clients; null: plain
  std::shared_ptr<backends::upstream::ClientTlsContext> context;  // to its backends; null: plain TCP
  // The settings and the files' contents: backend connections are kept across a reload only
  // while this stays the same, so changed certificates are used by new connections.
  std::string fingerprint;
};

struct RoutingSnapshot {
  uint64_t generation = 0;
  std::string file;
  std::vector<PoolRoute> pools;
  std::vector<BackendSpec> backends;

  // `previous` (may be null) lends its per-pool gauges to pools of the same name.
  // `tls` (per pool, from prepareTls): null for a topology without backend_tls.
  static std::shared_ptr<const RoutingSnapshot> build(const config::Topology& topology, uint64_t generation,
                                                      const RoutingSnapshot* previous = nullptr,
                                                      const std::vector<BackendTls>* tls = nullptr);
  // Reads every pool's certificates and keys (backend_tls_*): false, with `error` naming the
  // pool, the key and the file, if one cannot be used. Runs on the control thread.
  static bool prepareTls(const config::Topology& topology, std::vector<BackendTls>& tls, std::string& error);
};

}  // namespace proxy
