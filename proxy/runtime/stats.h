// stats.h: what the proxy counts. Each worker keeps plain counters for the pools it serves
// (PoolStats, one per pool name) and its backend connections keep theirs (ConnStats); no
// counter is shared between threads. To read them, the control thread asks every worker for
// a WorkerReport (built on the worker's own thread) and sums the reports: the same numbers
// feed twemproxy's stats JSON, /metrics and `ringctl status`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/upstream/upstream_conn.h"

namespace proxy {

// Seconds since the process started (for INFO and the stats JSON).
int64_t processUptimeSeconds();

struct PoolStats {
  uint64_t clientConnections = 0;  // accepted, total
  uint64_t clientsClosed = 0;
  uint64_t clientsRejected = 0;    // refused for client_connections
  uint64_t clientEof = 0;          // clients that closed their end
  uint64_t clientErr = 0;          // clients closed for an error (protocol, socket)
  uint64_t requests = 0;
  uint64_t fragments = 0;          // sub-requests made by splitting multi-key requests
  uint64_t errorsReplied = 0;      // error replies the proxy produced itself
  uint64_t protocolErrors = 0;
  uint64_t forwardErrors = 0;      // requests a backend could not take or answer
  uint64_t serverEjects = 0;       // backends ejected from the ring (auto_eject_hosts)
  uint64_t limitErrors = 0;        // requests refused for --max-buffered-bytes
  uint64_t clientsIdleClosed = 0;  // clients closed by client_idle_timeout
  uint64_t authFailures = 0;       // AUTH / HELLO AUTH with wrong credentials
  uint64_t permissionDenied = 0;   // commands refused to a user (read-only, key_prefix)
  uint64_t blockingRequests = 0;   // requests that went out on a client's own connection (BLPOP, ...)
  uint64_t blockingOpened = 0;     // backend connections opened for one client alone
  uint64_t blockingClosed = 0;
  uint64_t blockingRefused = 0;    // refused for max_blocking_connections
  // A transition (previous_servers): keys checked on their previous owner before a request,
  // moved by that (MIGRATE answered OK), already on the new owner (BUSYKEY: the old copy is
  // deleted), and moves that failed (the request then failed too).
  uint64_t transitionChecks = 0;
  uint64_t transitionMoves = 0;
  uint64_t transitionStale = 0;
  uint64_t transitionFailures = 0;

  void add(const PoolStats& o);
};

void addConnStats(backends::upstream::ConnStats& into, const backends::upstream::ConnStats& from);

struct BackendReport {
  std::string pool;
  std::string identity;  // the server's name in twemproxy's stats (name, host:port or host)
  std::string label;
  std::string address;
  backends::upstream::ConnStats conn;
  uint64_t inflight = 0;
  uint64_t queuedBytes = 0;  // request bytes not yet accepted by the kernel
  uint64_t connected = 0;  // connections currently open
  uint64_t connections = 0;
  bool ejected = false;
  uint64_t ejectedAtUsec = 0;
  std::string lastError;
};

struct PoolReport {
  std::string name;
  PoolStats stats;
};

struct WorkerReport {
  std::vector<PoolReport> pools;
  std::vector<BackendReport> backends;

  // Adds `o` into this report, matching pools by name and backends by (pool, identity).
  void merge(const WorkerReport& o);
};

}  // namespace proxy
