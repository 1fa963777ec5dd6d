#include "proxy/control/stats_format.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <string_view>
#include <type_traits>

#include "backends/io/memory_budget.h"
#include "proxy/common/json_writer.h"
#include "proxy/common/utf8.h"

namespace proxy {
namespace {

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

// Prometheus text exposition: a label value is escaped as the format says (backslash, double
// quote and line feed, as \\, \" and \n); the format has no other escape and requires UTF-8, so
// a byte that is not part of a well-formed UTF-8 sequence becomes U+FFFD (written as its UTF-8
// bytes), one per byte, as the JSON writer replaces it. Everything else passes through: a
// label of any length stays whole on its line.
void appendLabelValue(std::string& out, std::string_view v) {
  for (size_t i = 0; i < v.size();) {
    size_t plain = i;  // a run of ASCII that needs no escape goes out in one append
    for (; plain < v.size(); ++plain) {
      const auto b = static_cast<unsigned char>(v[plain]);
      if (b >= 0x80 || b == '\\' || b == '"' || b == '\n') break;
    }
    out.append(v.substr(i, plain - i));
    i = plain;
    if (i == v.size()) break;
    const char c = v[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else if (const size_t n = utf8SequenceLength(v, i); n > 0) {
      out.append(v.substr(i, n));
      i += n;
      continue;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
    }
    i += 1;
  }
}

struct Label {
  const char* name;
  std::string_view value;
};

// `name{a="x",b="y"}` (or just `name` without labels), the start of a sample line.
void appendSeries(std::string& out, std::string_view name, std::initializer_list<Label> labels) {
  out += name;
  if (labels.size() == 0) return;
  char sep = '{';
  for (const Label& l : labels) {
    out += sep;
    out += l.name;
    out += "=\"";
    appendLabelValue(out, l.value);
    out += '"';
    sep = ',';
  }
  out += '}';
}

void appendValue(std::string& out, uint64_t v) {
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

void appendValue(std::string& out, int64_t v) {
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

// A float with `digits` after the point; the format's own spellings for what is not finite.
void appendValue(std::string& out, double v, int digits) {
  out += ' ';
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char number[64];  // one number, at most about 30 characters either way
    if (std::fabs(v) < 1e15) std::snprintf(number, sizeof number, "%.*f", digits, v);
    else std::snprintf(number, sizeof number, "%.17g", v);
    out += number;
  }
  out += '\n';
}

void appendFamily(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;  // our own text: no backslash or line feed to escape
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

}  // namespace

std::string twemproxyStatsJson(const WorkerReport& report, const RoutingSnapshot& snapshot) {
  uint64_t total = 0, current = 0;
  for (const PoolReport& p : report.pools) {
    total += p.stats.clientConnections;
    current += p.stats.clientConnections - p.stats.clientsClosed;
  }
  JsonWriter j;
  j.beginObject();
  j.key("service").value("nutcracker").key("source").value(hostName()).key("version").value("0.5.0");
  j.key("uptime").value(int64_t(processUptimeSeconds())).key("timestamp").value(int64_t(std::time(nullptr)));
  j.key("total_connections").value(total).key("curr_connections").value(current);
  for (const PoolRoute& pool : snapshot.pools) {
    PoolStats s;
    for (const PoolReport& p : report.pools)
      if (p.name == pool.config.name) s = p.stats;
    j.key(pool.config.name).beginObject();
    j.key("client_eof").value(s.clientEof).key("client_err").value(s.clientErr);
    j.key("client_connections").value(s.clientConnections - s.clientsClosed);
    j.key("server_ejects").value(s.serverEjects).key("forward_error").value(s.forwardErrors);
    j.key("fragments").value(s.fragments);
    for (const BackendReport& b : report.backends) {
      if (b.pool != pool.config.name) continue;
      j.key(b.identity).beginObject();
      j.key("server_eof").value(b.conn.eofs).key("server_err").value(b.conn.errors);
      j.key("server_timedout").value(b.conn.timeouts).key("server_connections").value(b.connected);
      j.key("server_ejected_at").value(b.ejectedAtUsec);
      j.key("requests").value(b.conn.requests).key("request_bytes").value(b.conn.bytesOut);
      j.key("responses").value(b.conn.replies).key("response_bytes").value(b.conn.bytesIn);
      j.key("in_queue").value(uint64_t(0)).key("in_queue_bytes").value(b.queuedBytes);
      j.key("out_queue").value(b.inflight).key("out_queue_bytes").value(uint64_t(0));
      j.endObject();
    }
    j.endObject();
  }
  j.endObject();
  return j.str();
}

namespace {

// Every ringproxy_pool_* series carries the one label `pool`.
void appendPoolMetrics(std::string& out, const WorkerReport& report, const RoutingSnapshot& snapshot) {
  struct PoolMetric {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const PoolStats&);
  };
  static const PoolMetric kPool[] = {
      {"ringproxy_pool_clients", "gauge", "Client connections open.",
       [](const PoolStats& s) { return s.clientConnections - s.clientsClosed; }},
      {"ringproxy_pool_client_connections_total", "counter", "Client connections accepted.",
       [](const PoolStats& s) { return s.clientConnections; }},
      {"ringproxy_pool_clients_rejected_total", "counter", "Clients refused for client_connections.",
       [](const PoolStats& s) { return s.clientsRejected; }},
      {"ringproxy_pool_requests_total", "counter", "Requests received from clients.",
       [](const PoolStats& s) { return s.requests; }},
      {"ringproxy_pool_fragments_total", "counter", "Sub-requests made by splitting multi-key requests.",
       [](const PoolStats& s) { return s.fragments; }},
      {"ringproxy_pool_errors_total", "counter", "Error replies produced by the proxy.",
       [](const PoolStats& s) { return s.errorsReplied; }},
      {"ringproxy_pool_protocol_errors_total", "counter", "Clients closed for unframeable input.",
       [](const PoolStats& s) { return s.protocolErrors; }},
      {"ringproxy_pool_forward_errors_total", "counter", "Requests a backend could not take or answer.",
       [](const PoolStats& s) { return s.forwardErrors; }},
      {"ringproxy_pool_ejections_total", "counter", "Backends ejected from the ring (auto_eject_hosts).",
       [](const PoolStats& s) { return s.serverEjects; }},
      {"ringproxy_pool_limit_errors_total", "counter", "Requests refused because the process was over --max-buffered-bytes.",
       [](const PoolStats& s) { return s.limitErrors; }},
      {"ringproxy_pool_idle_closed_total", "counter", "Clients closed by client_idle_timeout.",
       [](const PoolStats& s) { return s.clientsIdleClosed; }},
      {"ringproxy_pool_auth_failures_total", "counter", "AUTH and HELLO AUTH attempts with wrong credentials.",
       [](const PoolStats& s) { return s.authFailures; }},
      {"ringproxy_pool_permission_denied_total", "counter",
       "Commands refused to a user (commands: read-only, key_prefix).",
       [](const PoolStats& s) { return s.permissionDenied; }},
      {"ringproxy_pool_blocking_connections", "gauge",
       "Backend connections held by one client alone (blocking commands, pub/sub).",
       [](const PoolStats& s) { return s.blockingOpened - s.blockingClosed; }},
      {"ringproxy_pool_blocking_requests_total", "counter", "Blocking commands sent on a client's own connection.",
       [](const PoolStats& s) { return s.blockingRequests; }},
      {"ringproxy_pool_blocking_refused_total", "counter", "Blocking commands refused for max_blocking_connections.",
       [](const PoolStats& s) { return s.blockingRefused; }},
      {"ringproxy_pool_transition_checks_total", "counter",
       "Keys on moved arcs checked on their previous owner (MIGRATE) before a request (previous_servers).",
       [](const PoolStats& s) { return s.transitionChecks; }},
      {"ringproxy_pool_transition_moves_total", "counter", "Keys moved to their new owner by a request.",
       [](const PoolStats& s) { return s.transitionMoves; }},
      {"ringproxy_pool_transition_stale_total", "counter",
       "Old copies deleted because the new owner already had the key.",
       [](const PoolStats& s) { return s.transitionStale; }},
      {"ringproxy_pool_transition_failures_total", "counter", "Moves that failed (the request failed with them).",
       [](const PoolStats& s) { return s.transitionFailures; }},
  };
  for (const PoolMetric& m : kPool) {
    appendFamily(out, m.name, m.type, m.help);
    for (const PoolRoute& pool : snapshot.pools) {
      PoolStats s;
      for (const PoolReport& p : report.pools)
        if (p.name == pool.config.name) s = p.stats;
      appendSeries(out, m.name, {{"pool", pool.config.name}});
      appendValue(out, m.get(s));
    }
  }
}

// Every ringproxy_backend_* series carries the same labels in the same order, pool, backend
// (the server's name, else host:port) and address, so that series of one backend match in a
// query (`on (pool, backend, address)`) without relabelling; a histogram bucket adds `le`.
void appendBackendSeries(std::string& out, std::string_view name, std::string_view pool, std::string_view backend,
                         std::string_view address) {
  appendSeries(out, name, {{"pool", pool}, {"backend", backend}, {"address", address}});
}

void appendBackendCounters(std::string& out, const WorkerReport& report) {
  struct BackendMetric {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const BackendReport&);
  };
  static const BackendMetric kBackend[] = {
      {"ringproxy_backend_requests_total", "counter", "Requests sent to the backend.",
       [](const BackendReport& b) { return b.conn.requests; }},
      {"ringproxy_backend_responses_total", "counter", "Replies received from the backend.",
       [](const BackendReport& b) { return b.conn.replies; }},
      {"ringproxy_backend_error_responses_total", "counter", "Error replies from the backend.",
       [](const BackendReport& b) { return b.conn.errorReplies; }},
      {"ringproxy_backend_failures_total", "counter", "Requests failed by the connection (refused, closed, timed out).",
       [](const BackendReport& b) { return b.conn.failures; }},
      {"ringproxy_backend_timeouts_total", "counter", "Requests that timed out.",
       [](const BackendReport& b) { return b.conn.timeouts; }},
      {"ringproxy_backend_request_bytes_total", "counter", "Bytes sent to the backend.",
       [](const BackendReport& b) { return b.conn.bytesOut; }},
      {"ringproxy_backend_response_bytes_total", "counter", "Bytes received from the backend.",
       [](const BackendReport& b) { return b.conn.bytesIn; }},
      {"ringproxy_backend_inflight", "gauge", "Requests sent and not yet answered.",
       [](const BackendReport& b) { return b.inflight; }},
      {"ringproxy_backend_connections", "gauge", "Connections to the backend that are open.",
       [](const BackendReport& b) { return b.connected; }},
      {"ringproxy_backend_connects_total", "counter", "Connection attempts.",
       [](const BackendReport& b) { return b.conn.connects; }},
      {"ringproxy_backend_ejected", "gauge", "1 while the backend is ejected from its pool's ring.",
       [](const BackendReport& b) { return uint64_t(b.ejected ? 1 : 0); }},
  };
  for (const BackendMetric& m : kBackend) {
    appendFamily(out, m.name, m.type, m.help);
    for (const BackendReport& b : report.backends) {
      appendBackendSeries(out, m.name, b.pool, b.label, b.address);
      appendValue(out, m.get(b));
    }
  }
}

void appendLatencyHistogram(std::string& out, const WorkerReport& report) {
  namespace up = backends::upstream;
  appendFamily(out, "ringproxy_backend_latency_seconds", "histogram", "Time from sending a request to its reply.");
  for (const BackendReport& b : report.backends) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < up::kLatencyBuckets; ++i) {
      cumulative += b.conn.latency[i];
      char le[32];
      if (i + 1 < up::kLatencyBuckets) std::snprintf(le, sizeof le, "%g", double(up::kLatencyBucketsUs[i]) / 1e6);
      else std::snprintf(le, sizeof le, "+Inf");
      appendSeries(out, "ringproxy_backend_latency_seconds_bucket",
                   {{"pool", b.pool}, {"backend", b.label}, {"address", b.address}, {"le", le}});
      appendValue(out, cumulative);
    }
    appendBackendSeries(out, "ringproxy_backend_latency_seconds_sum", b.pool, b.label, b.address);
    appendValue(out, double(b.conn.latencySumUs) / 1e6, 6);
    appendBackendSeries(out, "ringproxy_backend_latency_seconds_count", b.pool, b.label, b.address);
    appendValue(out, cumulative);
  }
}

// What the ring gives each backend (ring::computeShares, as `ringctl shares` and /ring say).
// The ring is the configured one: while a backend is ejected its keys go to others, which
// ringproxy_backend_ejected says.
void appendKeyShares(std::string& out, const RoutingSnapshot& snapshot, const KeyShares& shares) {
  appendFamily(out, "ringproxy_backend_key_share_ratio", "gauge",
               "Fraction of its pool's keyspace the configured ring gives the backend.");
  for (size_t p = 0; p < snapshot.pools.size() && p < shares.size(); ++p) {
    for (const ring::NodeShare& n : shares[p].nodes) {
      appendBackendSeries(out, "ringproxy_backend_key_share_ratio", snapshot.pools[p].config.name, n.label, n.address);
      appendValue(out, n.share, 9);
    }
  }
}

void appendReloadMetrics(std::string& out, const ReloadStats& reloads) {
  appendFamily(out, "ringproxy_reload_generation", "gauge", "Generation of the configuration being served.");
  appendSeries(out, "ringproxy_reload_generation", {});
  appendValue(out, reloads.generation);
  appendFamily(out, "ringproxy_reloads_total", "counter", "Successful reloads.");
  appendSeries(out, "ringproxy_reloads_total", {});
  appendValue(out, reloads.reloads);
  appendFamily(out, "ringproxy_reload_failures_total", "counter", "Reloads refused because the new file was invalid.");
  appendSeries(out, "ringproxy_reload_failures_total", {});
  appendValue(out, reloads.failures);
  // Fractions (0..1) end in _ratio, as Prometheus names them.
  appendFamily(out, "ringproxy_reload_moved_ratio", "gauge",
               "Fraction of the pool's keyspace whose owner the last reload changed.");
  for (const auto& [pool, moved] : reloads.lastMoved) {
    appendSeries(out, "ringproxy_reload_moved_ratio", {{"pool", pool}});
    appendValue(out, moved.first, 9);
  }
  appendFamily(out, "ringproxy_reload_ideal_moved_ratio", "gauge",
               "The least fraction of the keyspace any placement could have moved in the last reload.");
  for (const auto& [pool, moved] : reloads.lastMoved) {
    appendSeries(out, "ringproxy_reload_ideal_moved_ratio", {{"pool", pool}});
    appendValue(out, moved.second, 9);
  }
}

// A family of one sample without labels.
template <typename Integer>
void appendSingle(std::string& out, const char* name, const char* type, const char* help, Integer value) {
  static_assert(std::is_same_v<Integer, uint64_t> || std::is_same_v<Integer, int64_t>);
  appendFamily(out, name, type, help);
  appendSeries(out, name, {});
  appendValue(out, value);
}

void appendSingle(std::string& out, const char* name, const char* type, const char* help, double value, int digits) {
  appendFamily(out, name, type, help);
  appendSeries(out, name, {});
  appendValue(out, value, digits);
}

// The names and meanings the Prometheus client libraries give these on Linux. A figure that
// could not be read is left out, family and all.
void appendProcessMetrics(std::string& out, const ProcessSample& p) {
  if (p.cpuSeconds)
    appendSingle(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.",
                 *p.cpuSeconds, 6);
  if (p.residentBytes)
    appendSingle(out, "process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.", *p.residentBytes);
  if (p.virtualBytes)
    appendSingle(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes.", *p.virtualBytes);
  if (p.openFds) appendSingle(out, "process_open_fds", "gauge", "Open file descriptors.", *p.openFds);
  if (p.maxFds) appendSingle(out, "process_max_fds", "gauge", "Limit on open file descriptors.", *p.maxFds);
  if (p.startTimeSeconds)
    appendSingle(out, "process_start_time_seconds", "gauge", "Start time of the process, in seconds since the epoch.",
                 *p.startTimeSeconds, 2);
}

std::string compilerName() {
#if defined(__clang__)
  return "clang " + std::to_string(__clang_major__) + "." + std::to_string(__clang_minor__) + "." +
         std::to_string(__clang_patchlevel__);
#elif defined(__GNUC__)
  return "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

// The usual *_build_info: a constant 1 whose labels say what is running, for joining onto
// other series (e.g. to see which version a fleet is on).
void appendBuildInfo(std::string& out) {
#ifdef RINGPROXY_BUILD_TYPE
  constexpr std::string_view kBuildType = RINGPROXY_BUILD_TYPE;
#else
  constexpr std::string_view kBuildType;
#endif
  appendFamily(out, "ringproxy_build_info", "gauge", "Always 1; the labels say which build is running.");
  appendSeries(out, "ringproxy_build_info",
               {{"version", RINGPROXY_VERSION},
                {"compiler", compilerName()},
                {"build_type", kBuildType.empty() ? std::string_view("unknown") : kBuildType}});
  appendValue(out, uint64_t(1));
}

}  // namespace

KeyShares keySharesOf(const RoutingSnapshot& snapshot) {
  KeyShares shares;
  for (const PoolRoute& pool : snapshot.pools) shares.push_back(ring::computeShares(pool.ring));
  return shares;
}

std::string prometheusText(const WorkerReport& report, const RoutingSnapshot& snapshot, const ReloadStats& reloads,
                           const KeyShares& shares, const ProcessSample& process) {
  std::string out;
  appendPoolMetrics(out, report, snapshot);
  appendBackendCounters(out, report);
  appendLatencyHistogram(out, report);
  appendKeyShares(out, snapshot, shares);
  appendReloadMetrics(out, reloads);
  appendSingle(out, "ringproxy_buffered_bytes", "gauge", "Bytes held by socket buffers across the process.",
               backends::io::bufferedBytes().load(std::memory_order_relaxed));
  appendSingle(out, "ringproxy_uptime_seconds", "gauge", "Seconds since the process started.",
               processUptimeSeconds());
  appendBuildInfo(out);
  appendProcessMetrics(out, process);
  return out;
}

std::string prometheusText(const WorkerReport& report, const RoutingSnapshot& snapshot, const ReloadStats& reloads) {
  return prometheusText(report, snapshot, reloads, keySharesOf(snapshot), readProcessSample());
}

std::string ringJson(const RoutingSnapshot& snapshot, const std::string& poolName) {
  for (const PoolRoute& pool : snapshot.pools) {
    if (pool.config.name != poolName) continue;
    const ring::ShareReport rep = ring::computeShares(pool.ring);
    JsonWriter j;
    j.beginObject().key("pool").value(pool.config.name).key("generation").value(snapshot.generation);
    j.key("distribution").value(ring::distributionName(pool.config.distribution));
    j.key("hash").value(ring::hashKindName(pool.config.hash)).key("points").value(uint64_t(pool.ring.positions().size()));
    j.key("peak_over_mean").value(rep.peakOverMean).key("nodes").beginArray();
    for (const auto& n : rep.nodes) {
      j.beginObject().key("node").value(n.label).key("address").value(n.address).key("weight").value(n.weight);
      j.key("points").value(uint64_t(n.points)).key("share").value(n.share).key("ideal").value(n.ideal).endObject();
    }
    j.endArray().endObject();
    return j.str();
  }
  return "";
}

std::string statusJson(const WorkerReport& report, const RoutingSnapshot& snapshot, const ReloadStats& reloads,
                       int workers) {
  JsonWriter j;
  j.beginObject().key("service").value("ringproxy").key("version").value(RINGPROXY_VERSION);
  j.key("pid").value(int64_t(getpid())).key("uptime").value(int64_t(processUptimeSeconds()));
  j.key("workers").value(workers).key("config").value(snapshot.file).key("generation").value(reloads.generation);
  j.key("reloads").value(reloads.reloads).key("reload_failures").value(reloads.failures);
  j.key("last_reload_error").value(reloads.lastError);
  j.key("pools").beginArray();
  for (const PoolRoute& pool : snapshot.pools) {
    PoolStats s;
    for (const PoolReport& p : report.pools)
      if (p.name == pool.config.name) s = p.stats;
    j.beginObject().key("name").value(pool.config.name).key("listen").value(pool.config.listen.str());
    j.key("protocol").value(pool.config.protocol == config::Protocol::Redis ? "redis" : "memcache");
    j.key("distribution").value(ring::distributionName(pool.config.distribution));
    j.key("clients").value(s.clientConnections - s.clientsClosed).key("requests").value(s.requests);
    j.key("errors").value(s.errorsReplied);
    if (pool.previousRing != nullptr) {
      // A transition: where the data still is, and what requests moved so far.
      j.key("transition").beginObject().key("previous_servers").beginArray();
      for (const ring::NodeSpec& n : pool.previousRing->spec().nodes) j.value(n.labelOrIdentity());
      j.endArray().key("checks").value(s.transitionChecks).key("moves").value(s.transitionMoves);
      j.key("stale").value(s.transitionStale).key("failures").value(s.transitionFailures).endObject();
    }
    j.key("backends").beginArray();
    for (const BackendReport& b : report.backends) {
      if (b.pool != pool.config.name) continue;
      j.beginObject().key("name").value(b.label).key("address").value(b.address);
      j.key("connected").value(b.connected).key("connections").value(b.connections);
      j.key("requests").value(b.conn.requests).key("responses").value(b.conn.replies);
      j.key("failures").value(b.conn.failures).key("timeouts").value(b.conn.timeouts);
      j.key("inflight").value(b.inflight).key("ejected").value(b.ejected);
      j.key("last_error").value(b.lastError).endObject();
    }
    j.endArray().endObject();
  }
  j.endArray().endObject();
  return j.str();
}

}  // namespace proxy

namespace proxy {
namespace {

// A name or message as one field of a tab-separated line: a tab or line break in it (a config
// may hold them) becomes a space, so the line keeps its columns.
std::string tsvField(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return out;
}

}  // namespace

std::string statusTsv(const WorkerReport& report, const RoutingSnapshot& snapshot, const ReloadStats& reloads) {
  std::string out = "generation\t" + std::to_string(reloads.generation) + "\n";
  out += "reloads\t" + std::to_string(reloads.reloads) + "\t" + std::to_string(reloads.failures) + "\n";
  for (const PoolRoute& pool : snapshot.pools) {
    PoolStats s;
    for (const PoolReport& p : report.pools)
      if (p.name == pool.config.name) s = p.stats;
    out += "pool\t" + tsvField(pool.config.name) + "\t" + pool.config.listen.str() + "\t" +
           std::to_string(s.clientConnections - s.clientsClosed) + "\t" + std::to_string(s.requests) + "\t" +
           std::to_string(s.errorsReplied) + "\n";
    if (pool.previousRing != nullptr) {
      std::string previous;
      for (const ring::NodeSpec& n : pool.previousRing->spec().nodes)
        previous.append(previous.empty() ? "" : ",").append(tsvField(n.labelOrIdentity()));
      out += "transition\t" + tsvField(pool.config.name) + "\t" + previous + "\t" +
             std::to_string(s.transitionChecks) + "\t" + std::to_string(s.transitionMoves) + "\t" +
             std::to_string(s.transitionStale) + "\t" + std::to_string(s.transitionFailures) + "\n";
    }
  }
  for (const BackendReport& b : report.backends) {
    out += "backend\t" + tsvField(b.pool) + "\t" + tsvField(b.label) + "\t" + tsvField(b.address) + "\t" +
           std::to_string(b.connected) + "\t" + std::to_string(b.connections) + "\t" +
           std::to_string(b.conn.requests) + "\t" + std::to_string(b.conn.replies) + "\t" +
           std::to_string(b.conn.failures) + "\t" + std::to_string(b.conn.timeouts) + "\t" +
           std::to_string(b.inflight) + "\t" + tsvField(b.lastError) + "\n";
  }
  return out;
}

}  // namespace proxy
