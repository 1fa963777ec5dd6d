// topology.cc: the few behaviours of the plain config values.
#include "config/topology.h"

#include <utility>

namespace config {

std::string Endpoint::str() const {
  if (isUnix()) return path;
  // An IPv6 literal is bracketed so that the port stays readable and the text parses back.
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace {

ring::RingSpec specOver(const Pool& pool, const std::vector<Server>& servers) {
  ring::RingSpec spec;
  spec.distribution = pool.distribution;
  spec.hash = pool.hash;
  spec.hashTag = pool.hashTag;
  spec.keySeparator = pool.hashKeySeparator;
  spec.keyParts = pool.hashKeyParts;
  spec.vnodes = pool.distribution == ring::Distribution::Vnode ? pool.vnodes : 0;
  spec.nodes.reserve(servers.size());
  for (const Server& server : servers) {
    ring::NodeSpec node;
    node.identity = server.identity;
    node.weight = server.weight;
    node.address = server.endpoint.str();
    node.label = server.label;
    spec.nodes.push_back(std::move(node));
  }
  return spec;
}

}  // namespace

ring::RingSpec Pool::ringSpec() const { return specOver(*this, servers); }
ring::RingSpec Pool::previousRingSpec() const { return specOver(*this, previousServers); }

const Pool* Topology::findPool(std::string_view name) const {
  for (const Pool& pool : pools) {
    if (pool.name == name) return &pool;
  }
  return nullptr;
}

}  // namespace config
