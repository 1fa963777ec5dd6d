// stats_fixture.h: a routing snapshot and a worker report built from names given as bytes,
// without a config file or a running worker, for the formatter tests (proxy/control) and the
// formatter fuzz target. The names go where a config would put them (pool name, server name,
// hence ring identity and label), so any bytes a YAML file can carry can be tried.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/topology.h"
#include "proxy/runtime/routing_snapshot.h"
#include "proxy/runtime/stats.h"

namespace fixture {

struct PoolNames {
  std::string name;
  std::vector<std::string> servers;  // server names; "" for an unnamed server (host:port)
  std::vector<std::string> previous;  // a transition's previous servers, by name (may be empty)
};

// Server i of a pool listens on 127.0.0.1:(10000 + i); pool p listens on 127.0.0.1:(20000 + p).
// Modula by default: a ring of one point per server, cheap to build for many servers. Names
// are taken as given: callers keep a pool's server names (and identities) distinct, as the
// loader would.
inline config::Topology topologyOf(const std::vector<PoolNames>& pools,
                                   ring::Distribution distribution = ring::Distribution::Modula) {
  config::Topology t;
  t.file = "fixture.yml";
  for (size_t p = 0; p < pools.size(); ++p) {
    config::Pool pool;
    pool.name = pools[p].name;
    pool.listen.host = "127.0.0.1";
    pool.listen.port = static_cast<uint16_t>(20000 + p);
    pool.distribution = distribution;
    pool.protocol = config::Protocol::Redis;
    pool.redis = true;
    auto serversOf = [](const std::vector<std::string>& names, uint16_t base) {
      std::vector<config::Server> out;
      for (size_t i = 0; i < names.size(); ++i) {
        config::Server s;
        s.endpoint.host = "127.0.0.1";
        s.endpoint.port = static_cast<uint16_t>(base + i);
        s.name = names[i];
        s.identity = s.name.empty() ? s.endpoint.str() : s.name;
        s.label = s.name.empty() ? s.endpoint.str() : s.name;
        out.push_back(s);
      }
      return out;
    };
    pool.servers = serversOf(pools[p].servers, 10000);
    pool.previousServers = serversOf(pools[p].previous, 30000);
    t.pools.push_back(std::move(pool));
  }
  return t;
}

// What Worker::report() would say of `snapshot`: one BackendReport per ring node, with
// counters derived from `seed` so that they are not all zero.
inline proxy::WorkerReport reportOf(const proxy::RoutingSnapshot& snapshot, uint64_t seed,
                                    const std::string& lastError) {
  proxy::WorkerReport r;
  for (const proxy::PoolRoute& pool : snapshot.pools) {
    proxy::PoolReport p;
    p.name = pool.config.name;
    p.stats.clientConnections = seed % 7 + 1;
    p.stats.requests = seed;
    r.pools.push_back(p);
    for (const ring::NodeSpec& node : pool.ring.spec().nodes) {
      proxy::BackendReport b;
      b.pool = pool.config.name;
      b.identity = node.identity;
      b.label = node.labelOrIdentity();
      b.address = node.addressOrIdentity();
      b.conn.requests = seed * 3;
      b.conn.latency[0] = seed % 5;
      b.conn.latencySumUs = seed;
      b.lastError = lastError;
      r.backends.push_back(std::move(b));
    }
  }
  return r;
}

}  // namespace fixture
