#include "proxy/runtime/stats.h"

#include <algorithm>
#include <chrono>

namespace proxy {
namespace {
const auto kStart = std::chrono::steady_clock::now();

void addConn(backends::upstream::ConnStats& a, const backends::upstream::ConnStats& b) {
  a.requests += b.requests;
  a.replies += b.replies;
  a.errorReplies += b.errorReplies;
  a.failures += b.failures;
  a.timeouts += b.timeouts;
  a.connects += b.connects;
  a.eofs += b.eofs;
  a.errors += b.errors;
  a.bytesOut += b.bytesOut;
  a.bytesIn += b.bytesIn;
  for (size_t i = 0; i < backends::upstream::kLatencyBuckets; ++i) a.latency[i] += b.latency[i];
  a.latencySumUs += b.latencySumUs;
}
}  // namespace

int64_t processUptimeSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - kStart).count();
}

void PoolStats::add(const PoolStats& o) {
  clientConnections += o.clientConnections;
  clientsClosed += o.clientsClosed;
  clientsRejected += o.clientsRejected;
  clientEof += o.clientEof;
  clientErr += o.clientErr;
  requests += o.requests;
  fragments += o.fragments;
  errorsReplied += o.errorsReplied;
  protocolErrors += o.protocolErrors;
  forwardErrors += o.forwardErrors;
  serverEjects += o.serverEjects;
  limitErrors += o.limitErrors;
  clientsIdleClosed += o.clientsIdleClosed;
  blockingRequests += o.blockingRequests;
  blockingOpened += o.blockingOpened;
  blockingClosed += o.blockingClosed;
  blockingRefused += o.blockingRefused;
  transitionChecks += o.transitionChecks;
  transitionMoves += o.transitionMoves;
  transitionStale += o.transitionStale;
  transitionFailures += o.transitionFailures;
}

void addConnStats(backends::upstream::ConnStats& a, const backends::upstream::ConnStats& b) { addConn(a, b); }

void WorkerReport::merge(const WorkerReport& o) {
  for (const PoolReport& p : o.pools) {
    PoolReport* mine = nullptr;
    for (PoolReport& q : pools)
      if (q.name == p.name) mine = &q;
    if (mine == nullptr) pools.push_back(p);
    else mine->stats.add(p.stats);
  }
  for (const BackendReport& b : o.backends) {
    BackendReport* mine = nullptr;
    for (BackendReport& c : backends)
      if (c.pool == b.pool && c.identity == b.identity) mine = &c;
    if (mine == nullptr) {
      backends.push_back(b);
      continue;
    }
    addConn(mine->conn, b.conn);
    mine->inflight += b.inflight;
    mine->queuedBytes += b.queuedBytes;
    mine->connected += b.connected;
    mine->connections += b.connections;
    if (mine->lastError.empty()) mine->lastError = b.lastError;
    mine->ejected = mine->ejected || b.ejected;
    mine->ejectedAtUsec = std::max(mine->ejectedAtUsec, b.ejectedAtUsec);
  }
}

}  // namespace proxy
