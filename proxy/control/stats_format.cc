#include "proxy/control/stats_format.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <string_view>

#include "backends/io/memory_budget.h"
#include "proxy/common/json_writer.h"
#include "proxy/common/utf8.h"
#include "ring/ring_diff.h"

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

std::string prometheusText(const WorkerReport& report, const RoutingSnapshot& snapshot, const ReloadStats& reloads) {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help) { appendFamily(out, name, type, help); };
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
    metric(m.name, m.type, m.help);
    for (const PoolRoute& pool : snapshot.pools) {
      PoolStats s;
      for (const PoolReport& p : report.pools)
        if (p.name == pool.config.name) s = p.stats;
      appendSeries(out, m.name, {{"pool", pool.config.name}});
      appendValue(out, m.get(s));
    }
  }
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
    metric(m.name, m.type, m.help);
    for (const BackendReport& b : report.backends) {
      appendSeries(out, m.name, {{"pool", b.pool}, {"backend", b.label}, {"address", b.address}});
      appendValue(out, m.get(b));
    }
  }
  metric("ringproxy_backend_latency_seconds", "histogram", "Time from sending a request to its reply.");
  for (const BackendReport& b : report.backends) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < backends::upstream::kLatencyBuckets; ++i) {
      cumulative += b.conn.latency[i];
      char le[32];
      if (i + 1 < backends::upstream::kLatencyBuckets)
        std::snprintf(le, sizeof le, "%g", double(backends::upstream::kLatencyBucketsUs[i]) / 1e6);
      else
        std::snprintf(le, sizeof le, "+Inf");
      appendSeries(out, "ringproxy_backend_latency_seconds_bucket", {{"pool", b.pool}, {"backend", b.label}, {"le", le}});
      appendValue(out, cumulative);
    }
    appendSeries(out, "ringproxy_backend_latency_seconds_sum", {{"pool", b.pool}, {"backend", b.label}});
    appendValue(out, double(b.conn.latencySumUs) / 1e6, 6);
    appendSeries(out, "ringproxy_backend_latency_seconds_count", {{"pool", b.pool}, {"backend", b.label}});
    appendValue(out, cumulative);
  }
  metric("ringproxy_reload_generation", "gauge", "Generation of the configuration being served.");
  appendSeries(out, "ringproxy_reload_generation", {});
  appendValue(out, reloads.generation);
  metric("ringproxy_reloads_total", "counter", "Successful reloads.");
  appendSeries(out, "ringproxy_reloads_total", {});
  appendValue(out, reloads.reloads);
  metric("ringproxy_reload_failures_total", "counter", "Reloads refused because the new file was invalid.");
  appendSeries(out, "ringproxy_reload_failures_total", {});
  appendValue(out, reloads.failures);
  metric("ringproxy_reload_moved_share", "gauge", "Share of the keyspace the last reload moved, per pool.");
  for (const auto& [pool, moved] : reloads.lastMoved) {
    appendSeries(out, "ringproxy_reload_moved_share", {{"pool", pool}});
    appendValue(out, moved.first, 9);
  }
  metric("ringproxy_reload_ideal_moved_share", "gauge", "The least any placement could have moved in the last reload.");
  for (const auto& [pool, moved] : reloads.lastMoved) {
    appendSeries(out, "ringproxy_reload_ideal_moved_share", {{"pool", pool}});
    appendValue(out, moved.second, 9);
  }
  metric("ringproxy_buffered_bytes", "gauge", "Bytes held by socket buffers across the process.");
  appendSeries(out, "ringproxy_buffered_bytes", {});
  appendValue(out, int64_t(backends::io::bufferedBytes().load(std::memory_order_relaxed)));
  metric("ringproxy_uptime_seconds", "gauge", "Seconds since the process started.");
  appendSeries(out, "ringproxy_uptime_seconds", {});
  appendValue(out, int64_t(processUptimeSeconds()));
  return out;
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
        previous += (previous.empty() ? "" : ",") + tsvField(n.labelOrIdentity());
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
