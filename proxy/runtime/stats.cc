#include "proxy/runtime/stats.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_map>

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
  authFailures += o.authFailures;
  permissionDenied += o.permissionDenied;
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
  // Backends matched through an index, not a scan: with thousands of servers a scan per
  // backend made each stats rendering quadratic, seconds of the control thread's time.
  std::unordered_map<std::string, size_t> index;
  index.reserve(backends.size() + o.backends.size());
  auto keyOf = [](const BackendReport& b) {
    std::string key;
    key.reserve(b.pool.size() + 1 + b.identity.size());
    key.append(b.pool).push_back('\0');
    key.append(b.identity);
    return key;
  };
  for (size_t i = 0; i < backends.size(); ++i) index.emplace(keyOf(backends[i]), i);
  for (const BackendReport& b : o.backends) {
    auto [it, fresh] = index.emplace(keyOf(b), backends.size());
    if (fresh) {
      backends.push_back(b);
      continue;
    }
    BackendReport* mine = &backends[it->second];
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
