#include "ring/ring.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <sys/mman.h>
#include <xxhash.h>

namespace ring {
namespace {

constexpr uint32_t kKetamaPointsPerServer = 160;  // twemproxy: 40 MD5 digests x 4 points

// Maps a 64-bit value uniformly onto [0, max].
uint64_t scaleToRange(uint64_t x, uint64_t max) {
  if (max == UINT64_MAX) return x;
  return static_cast<uint64_t>((static_cast<unsigned __int128>(x) * (max + 1)) >> 64);
}

}  // namespace

namespace detail {

void* allocLookup(size_t bytes) {
  constexpr size_t kHugePage = size_t(2) << 20;
  if (bytes >= kHugePage) {
    const size_t rounded = (bytes + kHugePage - 1) & ~(kHugePage - 1);
    if (void* p = std::aligned_alloc(kHugePage, rounded)) {
      ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure just means 4 KiB pages
      return p;
    }
  }
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}

void freeLookup(void* p) noexcept { std::free(p); }

}  // namespace detail

Ring::Ring(RingSpec spec) : spec_(std::move(spec)) {
  if (spec_.vnodes == 0) spec_.vnodes = kDefaultVnodes;
  if (spec_.distribution != Distribution::Vnode) {
    // twemproxy sorts a pool's servers by name (shorter names first, then bytewise) while
    // checking them for duplicates, and keeps that order: modula slots and random picks follow
    // it, so placement does too. The caller finds nodes by address, never by list position.
    std::stable_sort(spec_.nodes.begin(), spec_.nodes.end(), [](const NodeSpec& a, const NodeSpec& b) {
      if (a.identity.size() != b.identity.size()) return a.identity.size() < b.identity.size();
      return std::memcmp(a.identity.data(), b.identity.data(), a.identity.size()) < 0;
    });
  }
  const uint64_t hmax = hashMax(spec_.hash);
  switch (spec_.distribution) {
    case Distribution::Ketama:
      // twemproxy's continuum is 32-bit; a wider hash is compared by its top 32 bits.
      keyShift_ = hmax > UINT32_MAX ? 32 : 0;
      positionMax_ = hmax >> keyShift_;
      buildKetama();
      break;
    case Distribution::Vnode:
      positionMax_ = hmax;
      buildVnode();
      break;
    case Distribution::Modula:
      positionMax_ = hmax;
      buildModula();
      return;
    case Distribution::Random:
      positionMax_ = hmax;
      return;
  }
  buildBucketIndex();
}

void Ring::buildKetama() {
  // twemproxy computes each server's point count in float32; reproduce the same operations in
  // the same order and precision so that rounding matches (its + 1e-10 is a double addition).
  const uint32_t n = static_cast<uint32_t>(spec_.nodes.size());
  uint32_t totalWeight = 0;
  for (const auto& node : spec_.nodes) totalWeight += node.weight;

  std::vector<std::pair<uint64_t, uint32_t>> points;
  for (uint32_t i = 0; i < n; ++i) {
    const NodeSpec& node = spec_.nodes[i];
    const float pct = static_cast<float>(node.weight) / static_cast<float>(totalWeight);
    const float scaled = pct * static_cast<float>(kKetamaPointsPerServer) / 4.0f * static_cast<float>(n);
    const float perServer = std::floor(static_cast<float>(static_cast<double>(scaled) + 0.0000000001)) * 4.0f;
    const uint32_t pointCount = static_cast<uint32_t>(perServer);
    std::string host;
    for (uint32_t d = 0; d < pointCount / 4; ++d) {
      host = node.identity + "-" + std::to_string(d);
      unsigned char digest[16];
      md5Digest(host.data(), host.size(), digest);
      for (int x = 0; x < 4; ++x) {
        const unsigned char* b = digest + 4 * x;
        const uint32_t value = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
        points.emplace_back(value, i);
      }
    }
  }
  std::sort(points.begin(), points.end());
  positions_.reserve(points.size());
  owners_.reserve(points.size() + 1);
  for (const auto& [pos, owner] : points) {
    positions_.push_back(pos);
    owners_.push_back(owner);
  }
}

void Ring::buildVnode() {
  // Each point depends only on the node's identity and the point's ordinal, never on the other
  // nodes or the list order: adding a node only adds its points, so keys move only to it.
  std::vector<std::pair<uint64_t, uint32_t>> points;
  for (uint32_t i = 0; i < spec_.nodes.size(); ++i) {
    const NodeSpec& node = spec_.nodes[i];
    const uint64_t count = uint64_t(node.weight) * spec_.vnodes;
    if (node.identity.size() < 4) {
      // XXH3 of 1 to 3 bytes only XORs the seed into the packed bytes before mixing, so short
      // identities that differ only in length ("n1", "n11") get the same points for different
      // seeds and shadow each other (n11 and n12 owned nothing among n1..n12). For them the
      // ordinal goes into the input instead (identity, then j as 8 little-endian bytes), where
      // XXH3 multiplies it in. Identities of 4 bytes or more keep their points.
      char input[3 + 8];
      const size_t len = node.identity.size();
      std::memcpy(input, node.identity.data(), len);
      for (uint64_t j = 0; j < count; ++j) {
        for (size_t b = 0; b < 8; ++b) input[len + b] = static_cast<char>((j >> (8 * b)) & 0xff);
        points.emplace_back(scaleToRange(XXH3_64bits(input, len + 8), positionMax_), i);
      }
      continue;
    }
    for (uint64_t j = 0; j < count; ++j) {
      const uint64_t raw = XXH3_64bits_withSeed(node.identity.data(), node.identity.size(), j);
      points.emplace_back(scaleToRange(raw, positionMax_), i);
    }
  }
  // Ties (astronomically rare at 64 bits) are broken by identity, so they too are independent
  // of the list order.
  std::sort(points.begin(), points.end(), [this](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return spec_.nodes[a.second].identity < spec_.nodes[b.second].identity;
  });
  positions_.reserve(points.size());
  owners_.reserve(points.size() + 1);
  for (const auto& [pos, owner] : points) {
    positions_.push_back(pos);
    owners_.push_back(owner);
  }
}

void Ring::buildModula() {
  // twemproxy: one slot per unit of weight, servers in list order; owner = slots[hash % n].
  for (uint32_t i = 0; i < spec_.nodes.size(); ++i) {
    for (uint32_t w = 0; w < spec_.nodes[i].weight; ++w) {
      positions_.push_back(positions_.size());
      owners_.push_back(i);
    }
  }
}

void Ring::buildBucketIndex() {
  owners_.push_back(owners_.empty() ? 0 : owners_.front());  // wrap sentinel
  const unsigned spaceBits = positionMax_ == 0 ? 1 : 64 - std::countl_zero(positionMax_);
  // About two buckets per point: then most buckets (~60%) hold no point, and a key landing in
  // one is answered by its bucket entry alone (one cache miss instead of three on a ring that
  // does not fit in cache, and no data-dependent branch). The rest scan zero or one step.
  unsigned bucketBits = (positions_.size() <= 1 ? 1 : std::bit_width(positions_.size() - 1)) + 1;
  bucketBits = std::min(bucketBits, spaceBits);
  bucketShift_ = spaceBits - bucketBits;
  const size_t buckets = size_t(1) << bucketBits;
  const uint64_t bucketSpan = uint64_t(1) << bucketShift_;  // bucketShift_ < 64: bucketBits >= 1
  bucketStart_.assign(buckets, 0);
  size_t p = 0;
  for (size_t b = 0; b < buckets; ++b) {
    const uint64_t lower = uint64_t(b) << bucketShift_;
    while (p < positions_.size() && positions_[p] < lower) ++p;
    // Every position in [lower, lower + span - 1] belongs to point p (or wraps to point 0)
    // when p lies at or past the bucket's last position.
    const bool owned = p == positions_.size() || positions_[p] >= lower + (bucketSpan - 1);
    bucketStart_[b] = owned ? kOwnedBucket | owners_[p] : static_cast<uint32_t>(p);
  }
}

uint32_t Ring::ownerOfHash(uint64_t hash) const noexcept {
  switch (spec_.distribution) {
    case Distribution::Ketama:
    case Distribution::Vnode: {
      // Clamped: a hash wider than this ring's positions (a caller's bug) cannot index past
      // the bucket table; it lands on the last position instead.
      const uint64_t pos = std::min(hash >> keyShift_, positionMax_);
      const uint32_t entry = bucketStart_[pos >> bucketShift_];
      if (entry & kOwnedBucket) return entry & ~kOwnedBucket;
      size_t i = entry;
      const size_t n = positions_.size();
      while (i < n && positions_[i] < pos) ++i;
      return owners_[i];  // i == size() hits the sentinel: wrap to the first point
    }
    case Distribution::Modula:
      return owners_[hash % owners_.size()];
    case Distribution::Random: {
      // Like twemproxy: each request picks a server at random; the key plays no part.
      thread_local std::minstd_rand rng{std::random_device{}()};
      return static_cast<uint32_t>(rng() % spec_.nodes.size());
    }
  }
  return 0;
}

std::vector<size_t> Ring::pointsPerNode() const {
  std::vector<size_t> counts(spec_.nodes.size(), 0);
  if (spec_.distribution == Distribution::Random) {
    std::fill(counts.begin(), counts.end(), 1);
    return counts;
  }
  for (size_t i = 0; i < positions_.size(); ++i) counts[owners_[i]]++;
  return counts;
}

size_t Ring::memoryBytes() const {
  return positions_.capacity() * sizeof(uint64_t) + owners_.capacity() * sizeof(uint32_t) +
         bucketStart_.capacity() * sizeof(uint32_t);
}

}  // namespace ring
