#include "ring/ring_diff.h"

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <random>

namespace ring {
namespace {

using Count = unsigned __int128;  // a 64-bit keyspace has 2^64 positions: one more than uint64

double fraction(Count part, Count whole) {
  return static_cast<double>(static_cast<long double>(part) / static_cast<long double>(whole));
}

bool isArcRing(const Ring& r) {
  return r.spec().distribution == Distribution::Ketama || r.spec().distribution == Distribution::Vnode;
}

// Positions keys can take on this ring: [0, positionMax].
Count spaceSize(const Ring& r) { return Count(r.positionMax()) + 1; }

// Positions owned by each point index of an arc ring (clamped to where keys can land: a crc16
// hash only reaches 0..65535, so points beyond that own nothing).
std::vector<Count> arcLengths(const Ring& r) {
  const auto pos = r.positions();
  const uint64_t max = r.positionMax();
  std::vector<Count> len(pos.size(), 0);
  if (pos.empty()) return len;
  auto clamp = [max](uint64_t p) { return std::min(p, max); };
  for (size_t i = 1; i < pos.size(); ++i) len[i] = Count(clamp(pos[i]) - clamp(pos[i - 1]));
  len[0] = Count(clamp(pos[0])) + 1 + Count(max - clamp(pos.back()));
  return len;
}

std::vector<Count> modulaCounts(const Ring& r) {
  // Slot j owns the hashes h in [0, max] with h % slots == j.
  const Count slots = r.positions().size();
  const Count space = spaceSize(r);
  std::vector<Count> counts(r.positions().size(), 0);
  for (size_t j = 0; j < counts.size(); ++j) counts[j] = space / slots + (Count(j) < space % slots ? 1 : 0);
  return counts;
}

std::vector<double> idealShares(const Ring& r) {
  std::vector<double> ideal(r.nodeCount(), 0);
  if (r.spec().distribution == Distribution::Random) {
    std::fill(ideal.begin(), ideal.end(), 1.0 / double(r.nodeCount()));
    return ideal;
  }
  double total = 0;
  for (const auto& n : r.spec().nodes) total += n.weight;
  for (size_t i = 0; i < ideal.size(); ++i) ideal[i] = r.spec().nodes[i].weight / total;
  return ideal;
}

// The hash and key-position mapping decide whether two rings can be compared arc by arc.
bool sameKeyPositions(const Ring& a, const Ring& b) {
  return a.spec().hash == b.spec().hash && a.spec().hashTag == b.spec().hashTag &&
         a.spec().keySeparator == b.spec().keySeparator && a.spec().keyParts == b.spec().keyParts &&
         a.keyShift() == b.keyShift() && a.positionMax() == b.positionMax();
}

struct FlowTable {
  std::map<std::pair<uint32_t, uint32_t>, Count> counts;  // (old node, new node) -> positions
  void add(uint32_t from, uint32_t to, Count n) {
    if (n != 0) counts[{from, to}] += n;
  }
};

}  // namespace

void forEachArcSegment(const Ring& a, const Ring& b, const std::function<void(const ArcSegment&)>& visit) {
  // Both rings are piecewise constant over the same position space: walk the merged
  // boundaries; each segment belongs to the first point at or after its end in each ring.
  const auto pa = a.positions(), pb = b.positions();
  const auto oa = a.pointOwners(), ob = b.pointOwners();
  const uint64_t max = a.positionMax();
  size_t ia = 0, ib = 0;
  uint64_t begin = 0;
  bool done = false;
  while (ia < pa.size() || ib < pb.size()) {
    const uint64_t va = ia < pa.size() ? pa[ia] : UINT64_MAX;
    const uint64_t vb = ib < pb.size() ? pb[ib] : UINT64_MAX;
    const uint64_t v = std::min(va, vb);
    if (v > max) break;
    visit({begin, v, ia < pa.size() ? oa[ia] : oa[0], ib < pb.size() ? ob[ib] : ob[0]});
    while (ia < pa.size() && pa[ia] == v) ++ia;
    while (ib < pb.size() && pb[ib] == v) ++ib;
    if (v == max) {
      done = true;
      break;
    }
    begin = v + 1;
  }
  // The tail wraps around to each ring's first point.
  if (!done) visit({begin, max, oa[0], ob[0]});
}

namespace {

FlowTable arcFlows(const Ring& a, const Ring& b) {
  FlowTable t;
  forEachArcSegment(a, b, [&t](const ArcSegment& s) { t.add(s.ownerBefore, s.ownerAfter, Count(s.last - s.first) + 1); });
  return t;
}

// Modula rings repeat with period lcm(slotsA, slotsB): count one period and scale.
bool modulaFlows(const Ring& a, const Ring& b, FlowTable& t) {
  const uint64_t sa = a.positions().size(), sb = b.positions().size();
  const uint64_t period = std::lcm(sa, sb);
  constexpr uint64_t kMaxPeriod = uint64_t(1) << 24;
  if (period > kMaxPeriod) return false;
  const Count space = spaceSize(a);
  const Count full = space / period, rest = space % period;
  for (uint64_t h = 0; h < period; ++h) {
    t.add(a.pointOwners()[h % sa], b.pointOwners()[h % sb], full + (Count(h) < rest ? 1 : 0));
  }
  return true;
}

// Different hashes (or a modula period too long to walk): estimate over random keys.
FlowTable sampledFlows(const Ring& a, const Ring& b, Count& total) {
  FlowTable t;
  std::mt19937_64 rng(12345);
  constexpr int kSamples = 1 << 20;
  char key[24];
  for (int i = 0; i < kSamples; ++i) {
    const uint64_t x = rng();
    for (int k = 0; k < 16; ++k) key[k] = "0123456789abcdef"[(x >> (4 * k)) & 15];
    const std::string_view sv(key, 16);
    t.add(a.ownerOf(sv), b.ownerOf(sv), 1);
  }
  total = kSamples;
  return t;
}

}  // namespace

ShareReport computeShares(const Ring& ring) {
  ShareReport report;
  const auto ideal = idealShares(ring);
  const auto points = ring.pointsPerNode();
  std::vector<Count> owned(ring.nodeCount(), 0);
  const Distribution d = ring.spec().distribution;
  if (d == Distribution::Ketama || d == Distribution::Vnode) {
    const auto len = arcLengths(ring);
    for (size_t i = 0; i < len.size(); ++i) owned[ring.pointOwners()[i]] += len[i];
  } else if (d == Distribution::Modula) {
    const auto counts = modulaCounts(ring);
    for (size_t i = 0; i < counts.size(); ++i) owned[ring.pointOwners()[i]] += counts[i];
  }
  for (size_t i = 0; i < ring.nodeCount(); ++i) {
    const NodeSpec& n = ring.spec().nodes[i];
    NodeShare s;
    s.label = n.labelOrIdentity();
    s.address = n.addressOrIdentity();
    s.weight = n.weight;
    s.points = points[i];
    s.ideal = ideal[i];
    s.share = d == Distribution::Random ? ideal[i] : fraction(owned[i], spaceSize(ring));
    report.peakOverMean = std::max(report.peakOverMean, s.ideal > 0 ? s.share / s.ideal : 0);
    report.nodes.push_back(std::move(s));
  }
  return report;
}

RingDiff diffRings(const Ring& before, const Ring& after) {
  RingDiff diff;
  // Ideal minimum: the total-variation distance between the old and new weight shares, matched
  // by address. No placement can move less and still give every node its new share.
  std::map<std::string, std::pair<double, double>> byAddress;
  const auto idealA = idealShares(before), idealB = idealShares(after);
  for (size_t i = 0; i < before.nodeCount(); ++i) byAddress[before.spec().nodes[i].addressOrIdentity()].first += idealA[i];
  for (size_t i = 0; i < after.nodeCount(); ++i) byAddress[after.spec().nodes[i].addressOrIdentity()].second += idealB[i];
  for (const auto& [addr, ab] : byAddress) diff.idealMin += std::max(0.0, ab.first - ab.second);

  const Distribution da = before.spec().distribution, db = after.spec().distribution;
  if (da == Distribution::Random || db == Distribution::Random) {
    diff.applicable = false;
    return diff;
  }
  FlowTable t;
  Count total = spaceSize(before);
  if (isArcRing(before) && isArcRing(after) && sameKeyPositions(before, after)) {
    t = arcFlows(before, after);
  } else if (da == Distribution::Modula && db == Distribution::Modula && sameKeyPositions(before, after) &&
             modulaFlows(before, after, t)) {
  } else {
    diff.exact = false;
    t = sampledFlows(before, after, total);
  }
  Count moved = 0;
  for (const auto& [pair, count] : t.counts) {
    const NodeSpec& from = before.spec().nodes[pair.first];
    const NodeSpec& to = after.spec().nodes[pair.second];
    if (from.addressOrIdentity() == to.addressOrIdentity()) continue;
    moved += count;
    diff.flows.push_back({from.labelOrIdentity(), to.labelOrIdentity(), fraction(count, total)});
  }
  diff.moved = fraction(moved, total);
  std::sort(diff.flows.begin(), diff.flows.end(), [](const Flow& x, const Flow& y) { return x.share > y.share; });
  return diff;
}

}  // namespace ring
