// ring.h: an immutable placement built from a RingSpec. The proxy hashes a key once
// (hashOf) and asks ownerOfHash for the node index; both are lock- and allocation-free.
//
// Ketama and Vnode rings are a sorted array of points on the key-position space; a key
// belongs to the first point at or after its position, wrapping to the first point. A bucket
// index over the top bits of the position narrows the search to about one point, so lookup is
// one or two cache lines whatever the ring size. Modula is twemproxy's hash % total weight;
// Random is twemproxy's uniformly random server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ring/key_hash.h"
#include "ring/ring_spec.h"

namespace ring {

namespace detail {
// Storage for the lookup arrays. Lookups hit them at random, so a block of 2 MiB or more is
// 2 MiB-aligned and advised to use transparent huge pages: on a 1000-node ring (16+ MiB) that
// replaces a TLB miss per array touched with a hit. Where THP is off the advice is ignored.
void* allocLookup(size_t bytes);
void freeLookup(void* p) noexcept;

template <class T>
struct LookupAllocator {
  using value_type = T;
  LookupAllocator() = default;
  template <class U>
  LookupAllocator(const LookupAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(allocLookup(n * sizeof(T))); }
  void deallocate(T* p, size_t) noexcept { freeLookup(p); }
  template <class U>
  bool operator==(const LookupAllocator<U>&) const noexcept { return true; }
};
}  // namespace detail

class Ring {
 public:
  // Builds the placement. The spec must be valid (config/ validates): at least one node,
  // weights >= 1, hashTag empty or two characters.
  explicit Ring(RingSpec spec);

  // The spec as placed: for twemproxy's distributions the nodes are in twemproxy's order
  // (sorted by identity), so node indexes need not match the order they were given in.
  const RingSpec& spec() const { return spec_; }
  size_t nodeCount() const { return spec_.nodes.size(); }

  // The part of the key that is hashed: the hash tag's text when the key has one, else, with
  // a key-prefix rule, the prefix it names, else the whole key.
  std::string_view hashedPart(std::string_view key) const noexcept {
    const std::string_view tagged = hashTagSpan(key, spec_.hashTag);
    if (spec_.keyParts == 0 || tagged.size() != key.size()) return tagged;
    return keyPrefixSpan(key, spec_.keySeparator, spec_.keyParts);
  }
  // The key's hash after those rules, as the configured hash function computes it. An empty
  // key hashes to 0, as twemproxy hashes it (it never calls the hash function for one), so
  // `GET ""` lands where nutcracker puts it.
  uint64_t hashOf(std::string_view key) const noexcept {
    const std::string_view part = hashedPart(key);
    return part.empty() ? 0 : hashKey(spec_.hash, part);
  }

  // The node index (into spec().nodes, not the order given) that owns a hash value.
  uint32_t ownerOfHash(uint64_t hash) const noexcept;
  uint32_t ownerOf(std::string_view key) const noexcept { return ownerOfHash(hashOf(key)); }

  // Where keys land on the point space: position = hash >> keyShift(), in [0, positionMax()].
  // Ketama points are 32-bit, so a 64-bit hash is shifted down to its top 32 bits.
  unsigned keyShift() const { return keyShift_; }
  uint64_t positionMax() const { return positionMax_; }

  // Ketama/Vnode: sorted points and the node owning each. Modula: one entry per unit of
  // weight in server order (positions are the entry indexes). Random: empty.
  std::span<const uint64_t> positions() const { return {positions_.data(), positions_.size()}; }
  std::span<const uint32_t> pointOwners() const { return {owners_.data(), positions_.size()}; }
  // Points placed for each node.
  std::vector<size_t> pointsPerNode() const;

  // Bytes held by the lookup structures (points, owners, bucket index).
  size_t memoryBytes() const;

 private:
  void buildKetama();
  void buildVnode();
  void buildModula();
  void buildBucketIndex();

  RingSpec spec_;
  unsigned keyShift_ = 0;
  uint64_t positionMax_ = 0;
  template <class T>
  using LookupVector = std::vector<T, detail::LookupAllocator<T>>;

  // A bucket entry with this bit set holds the owner of every position in the bucket (no point
  // falls inside it); otherwise it is the index of the first point >= the bucket's lower bound.
  static constexpr uint32_t kOwnedBucket = 0x80000000u;

  LookupVector<uint64_t> positions_;
  LookupVector<uint32_t> owners_;  // one per point, plus a sentinel copy of owners_[0] (wrap)
  LookupVector<uint32_t> bucketStart_;  // one entry per bucket, see kOwnedBucket
  unsigned bucketShift_ = 0;
};

}  // namespace ring
