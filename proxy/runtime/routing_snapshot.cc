#include "proxy/runtime/routing_snapshot.h"

#include <fstream>
#include <iterator>
#include <map>

namespace proxy {
namespace {

// When the pool sets no timeout (twemproxy's default: wait forever), connecting still gives up
// after this long, so an unreachable backend answers errors instead of hanging its clients.
constexpr int kDefaultConnectTimeoutMs = 2000;

}  // namespace

std::string redisCommand(const std::vector<std::string>& args) {
  // Appended piece by piece: `"literal" + std::string` trips GCC 12's -Wrestrict false positive.
  std::string out = "*";
  out += std::to_string(args.size());
  out += "\r\n";
  for (const auto& a : args) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out += a;
    out += "\r\n";
  }
  return out;
}

std::string backendAuthCommand(const config::Pool& pool) {
  std::vector<std::string> args = pool.backendAuthArgs();
  if (args.empty()) return "";
  args.insert(args.begin(), "AUTH");
  return redisCommand(args);
}

namespace {

BackendSpec backendFor(const config::Pool& pool, const config::Server& server, const BackendTls* tls) {
  BackendSpec b;
  b.endpoint.host = server.endpoint.host;
  b.endpoint.port = server.endpoint.port;
  b.endpoint.path = server.endpoint.path;
  b.endpoint.label = server.label == server.endpoint.str() ? server.label : server.label + " (" + server.endpoint.str() + ")";
  b.options.connectTimeoutMs = pool.timeoutMs >= 0 ? pool.timeoutMs : kDefaultConnectTimeoutMs;
  b.options.replyTimeoutMs = pool.timeoutMs;
  b.options.tcpKeepalive = pool.tcpKeepalive;
  if (pool.protocol == config::Protocol::Redis) {
    // The proxy authenticates and selects the database for its clients (redis_auth, redis_db).
    if (const std::string auth = backendAuthCommand(pool); !auth.empty()) {
      b.options.handshake += auth;
      b.options.handshakeReplies++;
    }
    if (pool.redisDb != 0) {
      b.options.handshake += redisCommand({"SELECT", std::to_string(pool.redisDb)});
      b.options.handshakeReplies++;
    }
  }
  b.connections = pool.serverConnections;
  b.autoEject = pool.autoEjectHosts;
  b.failureLimit = pool.serverFailureLimit == 0 ? 1 : pool.serverFailureLimit;
  b.retryTimeoutMs = pool.serverRetryTimeoutMs;
  b.preconnect = pool.preconnect;
  b.protocol = pool.protocol;
  b.key = pool.name + "|" + server.endpoint.str() + "|" + std::to_string(pool.timeoutMs) + "|" + backendAuthCommand(pool) + "|" +
          std::to_string(pool.redisDb) + "|" + std::to_string(pool.serverConnections) + "|" +
          (pool.protocol == config::Protocol::Redis ? "redis" : "memcache");
  if (tls != nullptr && tls->context != nullptr) {
    b.options.tls = tls->context;
    b.key += "|tls:" + tls->fingerprint;
  }
  return b;
}

std::string fileContents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

bool RoutingSnapshot::prepareTls(const config::Topology& topology, std::vector<BackendTls>& tls, std::string& error) {
  tls.assign(topology.pools.size(), BackendTls{});
  for (size_t i = 0; i < topology.pools.size(); ++i) {
    const config::Pool& pool = topology.pools[i];
    if (pool.listensWithTls()) {
      ServerTlsSettings l{pool.tlsCertFile, pool.tlsKeyFile, pool.tlsCaFile, pool.tlsClientAuth, pool.tlsMinVersion,
                          pool.tlsCiphers};
      std::string why;
      tls[i].listener = ServerTlsContext::make(l, why);
      if (tls[i].listener == nullptr) {
        const char* key = "tls_cert_file";
        if (why.rfind(l.keyFile, 0) == 0 && l.keyFile != l.certFile) key = "tls_key_file";
        else if (!l.caFile.empty() && why.rfind(l.caFile, 0) == 0) key = "tls_ca_file";
        else if (why.rfind("'", 0) == 0) key = "tls_ciphers";
        error = topology.file + ": " + pool.name + "." + key + ": " + why;
        return false;
      }
    }
    if (!pool.backendTls) continue;
    backends::upstream::ClientTlsSettings s;
    s.caFile = pool.backendTlsCaFile;
    s.certFile = pool.backendTlsCertFile;
    s.keyFile = pool.backendTlsKeyFile;
    s.serverName = pool.backendTlsServerName;
    s.verify = pool.backendTlsVerify;
    std::string why;
    tls[i].context = backends::upstream::ClientTlsContext::make(s, why);
    if (tls[i].context == nullptr) {
      // The message starts with the file; name the key that gave it.
      const char* key = "backend_tls";
      if (!s.caFile.empty() && why.rfind(s.caFile, 0) == 0) key = "backend_tls_ca_file";
      else if (!s.certFile.empty() && why.rfind(s.certFile, 0) == 0) key = "backend_tls_cert_file";
      else if (!s.keyFile.empty() && why.rfind(s.keyFile, 0) == 0) key = "backend_tls_key_file";
      error = topology.file + ": " + pool.name + "." + key + ": " + why;
      return false;
    }
    const std::string material = s.caFile + "\n" + s.certFile + "\n" + s.keyFile + "\n" + s.serverName +
                                 (s.verify ? "\nverify\n" : "\nno-verify\n") + fileContents(s.caFile) +
                                 fileContents(s.certFile) + fileContents(s.keyFile);
    tls[i].fingerprint = std::to_string(std::hash<std::string>{}(material));
  }
  return true;
}

std::shared_ptr<const RoutingSnapshot> RoutingSnapshot::build(const config::Topology& topology, uint64_t generation,
                                                              const RoutingSnapshot* previous,
                                                              const std::vector<BackendTls>* tls) {
  auto snap = std::make_shared<RoutingSnapshot>();
  snap->generation = generation;
  snap->file = topology.file;
  std::map<std::string, uint32_t> byKey;
  for (const config::Pool& pool : topology.pools) {
    const BackendTls* poolTls = tls != nullptr && snap->pools.size() < tls->size() ? &(*tls)[snap->pools.size()] : nullptr;
    PoolRoute route{pool, ring::Ring(pool.ringSpec()), {}, nullptr, nullptr, nullptr, {}};
    if (previous != nullptr)
      for (const PoolRoute& old : previous->pools)
        if (old.config.name == pool.name) route.gauges = old.gauges;
    if (!route.gauges) route.gauges = std::make_shared<PoolGauges>();
    if (poolTls != nullptr) route.clientTls = poolTls->listener;
    std::map<std::string, uint32_t> backendOfAddress;
    for (const config::Server& server : pool.servers) {
      BackendSpec spec = backendFor(pool, server, poolTls);
      spec.pool = snap->pools.size();
      auto [it, fresh] = byKey.emplace(spec.key, static_cast<uint32_t>(snap->backends.size()));
      if (fresh) snap->backends.push_back(std::move(spec));
      backendOfAddress[server.endpoint.str()] = it->second;
    }
    // The ring may order its nodes differently from the file (twemproxy sorts them by name).
    for (const ring::NodeSpec& node : route.ring.spec().nodes) route.nodeBackend.push_back(backendOfAddress.at(node.address));
    if (pool.inTransition()) {
      // The servers the data is still on: backends too (the proxy moves keys off them), shared
      // with `servers` where the address is the same.
      for (const config::Server& server : pool.previousServers) {
        if (backendOfAddress.count(server.endpoint.str()) != 0) continue;
        BackendSpec spec = backendFor(pool, server, poolTls);
        spec.pool = snap->pools.size();
        auto [it, fresh] = byKey.emplace(spec.key, static_cast<uint32_t>(snap->backends.size()));
        if (fresh) snap->backends.push_back(std::move(spec));
        backendOfAddress[server.endpoint.str()] = it->second;
      }
      route.previousRing = std::make_shared<const ring::Ring>(pool.previousRingSpec());
      for (const ring::NodeSpec& node : route.previousRing->spec().nodes)
        route.previousNodeBackend.push_back(backendOfAddress.at(node.address));
    }
    snap->pools.push_back(std::move(route));
  }
  return snap;
}

}  // namespace proxy
