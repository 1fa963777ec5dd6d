#include "proxy/ringctl/ringctl_svg_sectors.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string_view>

#include "ring/ring_diff.h"

namespace proxy::ringctl::svg {
namespace {

bool isArcRing(const ring::Ring& r) {
  return r.spec().distribution == ring::Distribution::Ketama || r.spec().distribution == ring::Distribution::Vnode;
}

bool samePositions(const ring::Ring& a, const ring::Ring& b) {
  return a.spec().hash == b.spec().hash && a.spec().hashTag == b.spec().hashTag &&
         a.spec().keySeparator == b.spec().keySeparator && a.spec().keyParts == b.spec().keyParts &&
         a.keyShift() == b.keyShift() && a.positionMax() == b.positionMax();
}

// Positions [first, last] as fractions [f0, f1) of the circle. long double holds every
// 64-bit position exactly, and 2^64 (a 64-bit space's size) too.
void toFractions(const ring::Ring& r, uint64_t first, uint64_t last, long double& f0, long double& f1) {
  const long double space = static_cast<long double>(r.positionMax()) + 1;
  f0 = static_cast<long double>(first) / space;
  f1 = (static_cast<long double>(last) + 1) / space;
}

// Calls add(sector, part) for each sector [f0, f1) overlaps, part in sector widths.
template <class Add>
void spread(long double f0, long double f1, size_t count, Add add) {
  const long double n = static_cast<long double>(count);
  size_t s = std::min(count - 1, static_cast<size_t>(f0 * n));
  for (; s < count; ++s) {
    const long double lo = std::max(f0 * n, static_cast<long double>(s));
    const long double hi = std::min(f1 * n, static_cast<long double>(s + 1));
    if (hi <= lo) break;
    add(s, static_cast<double>(hi - lo));
  }
}

Sectors emptySectors(const ring::Ring& r, size_t count) {
  Sectors out;
  out.count = count;
  out.nodes = r.nodeCount();
  out.owned.assign(count * out.nodes, 0.0);
  return out;
}

bool sameBackend(const ring::Ring& a, uint32_t i, const ring::Ring& b, uint32_t j) {
  return a.spec().nodes[i].addressOrIdentity() == b.spec().nodes[j].addressOrIdentity();
}

// Moved keys located by sampling, for rings whose positions cannot be compared arc by arc.
std::vector<double> sampledMoved(const ring::Ring& before, const ring::Ring& after, size_t count) {
  std::vector<double> moved(count, 0.0), seen(count, 0.0);
  std::mt19937_64 rng(20240518);
  constexpr int kSamples = 1 << 18;  // 364+ keys per sector even at 720: a few % of noise
  char key[16];
  for (int i = 0; i < kSamples; ++i) {
    const uint64_t x = rng();
    for (int k = 0; k < 16; ++k) key[k] = "0123456789abcdef"[(x >> (4 * k)) & 15];
    const std::string_view sv(key, sizeof key);
    const uint64_t h = after.hashOf(sv);
    const uint64_t pos = std::min(h >> after.keyShift(), after.positionMax());
    long double f0, f1;
    toFractions(after, pos, pos, f0, f1);
    const size_t s = std::min(count - 1, static_cast<size_t>(f0 * static_cast<long double>(count)));
    seen[s] += 1;
    if (!sameBackend(before, before.ownerOf(sv), after, after.ownerOfHash(h))) moved[s] += 1;
  }
  for (size_t s = 0; s < count; ++s) moved[s] = seen[s] > 0 ? moved[s] / seen[s] : 0;
  return moved;
}

size_t sectorCount(size_t points, size_t nodes) {
  // Few points (a small vnodes setting): arcs span several half-degree sectors, so they show
  // crisply; a run of one owner costs one arc command in the file.
  if (points * 4 <= 720) return 720;
  // Many points: a band is only as steady as the points each node has in a sector; with ~16
  // it shows how evenly the node is spread, with fewer it is noise. Sectors stay at 4, 2 or
  // 1 degrees, and nodes x sectors within 3600 to keep the file small.
  const size_t n = std::max<size_t>(nodes, 1);
  size_t count = 90;
  for (size_t c : {180, 360})
    if (points / (c * n) >= 16 && c * n <= 3600) count = c;
  return count;
}

}  // namespace

Sectors ringSectors(const ring::Ring& r) {
  const bool arcs = isArcRing(r) && !r.positions().empty();
  // Without arcs every sector looks the same: the fewest sectors will do.
  const size_t count = arcs ? sectorCount(r.positions().size(), r.nodeCount()) : 90;
  Sectors out = emptySectors(r, count);
  if (!arcs) {
    const ring::ShareReport rep = ring::computeShares(r);
    for (size_t s = 0; s < count; ++s)
      for (size_t n = 0; n < out.nodes; ++n) out.owned[s * out.nodes + n] = rep.nodes[n].share;
    return out;
  }
  ring::forEachArcSegment(r, r, [&](const ring::ArcSegment& seg) {
    long double f0, f1;
    toFractions(r, seg.first, seg.last, f0, f1);
    spread(f0, f1, count, [&](size_t s, double part) { out.owned[s * out.nodes + seg.ownerAfter] += part; });
  });
  return out;
}

Sectors diffSectors(const ring::Ring& before, const ring::Ring& after) {
  const bool random = before.spec().distribution == ring::Distribution::Random ||
                      after.spec().distribution == ring::Distribution::Random;
  if (random) return ringSectors(after);
  if (!isArcRing(before) || !isArcRing(after) || !samePositions(before, after)) {
    Sectors out = ringSectors(after);
    out.moved = sampledMoved(before, after, out.count);
    out.movedSampled = true;
    return out;
  }
  // One walk over both rings gives the new owner of every stretch and whether it moved.
  const size_t count = sectorCount(after.positions().size(), after.nodeCount());
  Sectors out = emptySectors(after, count);
  out.moved.assign(count, 0.0);
  ring::forEachArcSegment(before, after, [&](const ring::ArcSegment& seg) {
    const bool moved = !sameBackend(before, seg.ownerBefore, after, seg.ownerAfter);
    long double f0, f1;
    toFractions(after, seg.first, seg.last, f0, f1);
    spread(f0, f1, count, [&](size_t s, double part) {
      out.owned[s * out.nodes + seg.ownerAfter] += part;
      if (moved) out.moved[s] += part;
    });
  });
  return out;
}

}  // namespace proxy::ringctl::svg
