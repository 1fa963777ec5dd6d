// stats_format.h: the ways the proxy's counters are shown: twemproxy's stats JSON (same
// layout and names as nutcracker 0.5.0, so existing exporters keep working), Prometheus text
// for /metrics, and the JSON behind /ring and `ringctl status`.
#pragma once

#include <string>
#include <vector>

#include "proxy/control/control.h"
#include "proxy/control/process_metrics.h"
#include "proxy/runtime/stats.h"
#include "ring/ring_diff.h"

namespace proxy {

std::string twemproxyStatsJson(const WorkerReport& report, const RoutingSnapshot& snapshot);
// Per pool of a snapshot, in its order, each ring node's exact share of the keyspace. Exact
// shares walk every point of a ring (5.1 million for 5,000 vnode servers: ~0.1 s), so the
// admin server computes them once per snapshot, not per scrape.
using KeyShares = std::vector<ring::ShareReport>;
KeyShares keySharesOf(const RoutingSnapshot& snapshot);

// /metrics: the counters, the ring's key shares and the process's own figures (process_*).
std::string prometheusText(const WorkerReport& report, const RoutingSnapshot& snapshot, const ReloadStats& reloads,
                           const KeyShares& shares, const ProcessSample& process);
// The same with the shares computed and the process read now (on the control thread).
std::string prometheusText(const WorkerReport& report, const RoutingSnapshot& snapshot, const ReloadStats& reloads);
// Nodes, points and exact shares of one pool's ring; empty when there is no such pool.
std::string ringJson(const RoutingSnapshot& snapshot, const std::string& pool);
std::string statusJson(const WorkerReport& report, const RoutingSnapshot& snapshot, const ReloadStats& reloads,
                       int workers);

}  // namespace proxy

namespace proxy {
// The same as statusJson, as tab-separated lines for tools (ringctl status):
//   generation <TAB> N, then per backend:
//   backend <TAB> pool <TAB> name <TAB> address <TAB> connected <TAB> connections <TAB>
//   requests <TAB> responses <TAB> failures <TAB> timeouts <TAB> inflight <TAB> last error
std::string statusTsv(const WorkerReport& report, const RoutingSnapshot& snapshot, const ReloadStats& reloads);
}  // namespace proxy
