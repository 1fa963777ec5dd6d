// ring_spec.h: the vocabulary of placement. A RingSpec is everything needed to build a
// Ring (ring.h): which hash turns a key into a position, how positions map to nodes, and the
// nodes themselves with their identities and weights. config/ produces RingSpecs from YAML;
// ring/ never reads files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ring {

// The key hashes twemproxy 0.5.0 offers, plus xxh3 (our default for the native ring).
enum class HashKind : uint8_t {
  OneAtATime,
  Md5,
  Crc16,
  Crc32,
  Crc32a,
  Fnv1_64,
  Fnv1a_64,
  Fnv1_32,
  Fnv1a_32,
  Hsieh,
  Murmur,
  Jenkins,
  Xxh3,
};

enum class Distribution : uint8_t {
  Ketama,  // twemproxy's continuum, reproduced key for key
  Modula,  // twemproxy's hash % total weight
  Random,  // twemproxy's uniformly random server per request
  Vnode,   // our native ring: placement depends only on each node's identity and weight
};

// The config names of the distributions, one table for parsing (config/) and printing
// (ringctl, /ring, /status).
inline constexpr std::pair<std::string_view, Distribution> kDistributionNames[] = {
    {"ketama", Distribution::Ketama},
    {"modula", Distribution::Modula},
    {"random", Distribution::Random},
    {"vnode", Distribution::Vnode},
};

constexpr std::string_view distributionName(Distribution d) {
  for (const auto& [name, value] : kDistributionNames)
    if (value == d) return name;
  return "?";
}

struct NodeSpec {
  std::string identity;  // what placement hashes: configured name, else host:port (or host)
  uint32_t weight = 1;
  std::string address;   // what makes two nodes the same backend across rings (ring_diff);
                         // empty: same as identity
  std::string label;     // how people see the node; empty: same as identity

  const std::string& addressOrIdentity() const { return address.empty() ? identity : address; }
  const std::string& labelOrIdentity() const { return label.empty() ? identity : label; }
};

struct RingSpec {
  Distribution distribution = Distribution::Ketama;
  HashKind hash = HashKind::Fnv1a_64;
  std::string hashTag;          // "" or exactly two characters, e.g. "{}"
  // The key-prefix rule (keyPrefixSpan), applied to keys the hash tag does not pick a part
  // of: keyParts 0 (the default) hashes the whole key.
  std::string keySeparator;
  uint32_t keyParts = 0;
  uint32_t vnodes = 0;          // Vnode only: points per unit of weight (0 = kDefaultVnodes)
  std::vector<NodeSpec> nodes;  // order matters for modula/random only, as in twemproxy
};

// Default points per unit of weight on the native ring: enough that with 100 equal nodes the
// fullest node holds at most ~1.10x the mean share (see ring_bench / README figures).
inline constexpr uint32_t kDefaultVnodes = 1024;

}  // namespace ring
