// ring_bench.cc: what placement costs on the hot path, and how even it is.
//
//   Lookup/<dist>/n:N          ownerOfHash on 1M precomputed random hashes, cycled in order:
//                              the ring's arrays are hit at random, as real keys hit them.
//                              Independent lookups, so the CPU may overlap their cache misses.
//   LookupChained/<dist>/n:N   the same, but which hash is looked up next depends on the
//                              previous owner: one lookup at a time, i.e. the latency one
//                              request sees when nothing else overlaps with it.
//   OwnerOf/<dist>/n:N         ownerOf(key) on 1M distinct 16-byte keys: hash plus lookup.
//   Hash/<kind>/<len>          hashKey on keys of len bytes (1024 keys cycled, cache-warm).
//
// <dist> is "vnode" (native ring, kDefaultVnodes points per node, xxh3) or "ketama"
// (twemproxy's continuum, fnv1a_64). Nodes are named "10.0.X.Y:6379".
//
// Before the benchmarks a balance report goes to stderr: peak/mean share (computeShares, exact
// arc arithmetic) and memoryBytes() per ring, and peak/mean against points per node at n = 100.
// Pass --no_ring_report to skip it. Items/s in the output is keys per second; the time column
// is ns per key (one key per iteration).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ring/key_hash.h"
#include "ring/ring.h"
#include "ring/ring_diff.h"
#include "ring/ring_spec.h"

namespace {

using ring::Distribution;
using ring::HashKind;

constexpr size_t kLookupKeys = size_t(1) << 20;  // 1M: hashes 8 MiB, keys 16 MiB
constexpr size_t kKeyLen = 16;
constexpr size_t kHashKeys = 1024;
constexpr int kNodeCounts[] = {10, 100, 1000};

std::string identityOf(size_t i, unsigned prefix = 0) {
  return "10." + std::to_string(prefix) + "." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":6379";
}

ring::RingSpec specFor(Distribution d, size_t n, uint32_t vnodes = 0, unsigned prefix = 0) {
  ring::RingSpec spec;
  spec.distribution = d;
  spec.hash = d == Distribution::Vnode ? HashKind::Xxh3 : HashKind::Fnv1a_64;
  spec.vnodes = vnodes;
  for (size_t i = 0; i < n; ++i) spec.nodes.push_back({identityOf(i, prefix), 1, "", ""});
  return spec;
}

const char* distName(Distribution d) { return d == Distribution::Vnode ? "vnode" : "ketama"; }

// Rings are built once per (distribution, n) and shared by every repetition.
const ring::Ring& ringFor(Distribution d, size_t n) {
  static std::map<std::pair<Distribution, size_t>, std::unique_ptr<ring::Ring>> cache;
  auto& slot = cache[{d, n}];
  if (!slot) slot = std::make_unique<ring::Ring>(specFor(d, n));
  return *slot;
}

// Random hashes over [0, hashMax]: the values the ring's hash can produce (ketama's fnv1a_64 is
// 32-bit; ownerOfHash expects nothing wider).
const std::vector<uint64_t>& hashesFor(HashKind kind) {
  static std::map<HashKind, std::vector<uint64_t>> cache;
  auto& v = cache[kind];
  if (v.empty()) {
    std::mt19937_64 rng(42);
    const uint64_t mask = ring::hashMax(kind);  // 2^k - 1 for every kind
    v.resize(kLookupKeys);
    for (auto& h : v) h = rng() & mask;
  }
  return v;
}

// Fixed-length printable keys, packed back to back: key i is at i * len.
std::string makeKeys(size_t count, size_t len, uint64_t seed) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_";
  std::mt19937_64 rng(seed);
  std::string keys(count * len, '\0');
  for (auto& c : keys) c = kAlphabet[rng() & 63];
  return keys;
}

const std::string& lookupKeys() {
  static const std::string keys = makeKeys(kLookupKeys, kKeyLen, 7);
  return keys;
}

void setRingCounters(benchmark::State& state, const ring::Ring& r) {
  state.SetItemsProcessed(state.iterations());
  state.counters["points"] = static_cast<double>(r.positions().size());
  state.counters["MiB"] = static_cast<double>(r.memoryBytes()) / (1024.0 * 1024.0);
}

void BM_Lookup(benchmark::State& state, Distribution d) {
  const ring::Ring& r = ringFor(d, static_cast<size_t>(state.range(0)));
  const uint64_t* hashes = hashesFor(r.spec().hash).data();
  size_t i = 0;
  for (auto _ : state) {
    uint32_t owner = r.ownerOfHash(hashes[i]);
    benchmark::DoNotOptimize(owner);
    i = (i + 1) & (kLookupKeys - 1);
  }
  setRingCounters(state, r);
}

void BM_LookupChained(benchmark::State& state, Distribution d) {
  const ring::Ring& r = ringFor(d, static_cast<size_t>(state.range(0)));
  const uint64_t* hashes = hashesFor(r.spec().hash).data();
  size_t i = 0;
  for (auto _ : state) {
    uint32_t owner = r.ownerOfHash(hashes[i]);
    benchmark::DoNotOptimize(owner);
    // owner >> 31 is always 0, but the compiler cannot know: the next hash's address waits
    // for this owner, so lookups cannot overlap, and every hash is still visited in order.
    i = (i + 1 + (owner >> 31)) & (kLookupKeys - 1);
  }
  setRingCounters(state, r);
}

void BM_OwnerOf(benchmark::State& state, Distribution d) {
  const ring::Ring& r = ringFor(d, static_cast<size_t>(state.range(0)));
  const char* keys = lookupKeys().data();
  size_t i = 0;
  for (auto _ : state) {
    uint32_t owner = r.ownerOf(std::string_view(keys + i * kKeyLen, kKeyLen));
    benchmark::DoNotOptimize(owner);
    i = (i + 1) & (kLookupKeys - 1);
  }
  setRingCounters(state, r);
}

void BM_Hash(benchmark::State& state, HashKind kind, size_t len) {
  const std::string keys = makeKeys(kHashKeys, len, 11);
  size_t i = 0;
  for (auto _ : state) {
    uint64_t h = ring::hashKey(kind, std::string_view(keys.data() + i * len, len));
    benchmark::DoNotOptimize(h);
    i = (i + 1) & (kHashKeys - 1);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(len));
}

// ---- the balance report ----

double peakOverMean(Distribution d, size_t n, uint32_t vnodes, unsigned prefix = 0) {
  return ring::computeShares(ring::Ring(specFor(d, n, vnodes, prefix))).peakOverMean;
}

void printRingReport() {
  std::fprintf(stderr, "ring balance and memory (exact shares; nodes 10.0.X.Y:6379, weight 1)\n");
  std::fprintf(stderr, "  %-7s %5s %8s %9s %10s %12s\n", "dist", "n", "vnodes", "points", "peak/mean", "memoryBytes");
  for (Distribution d : {Distribution::Vnode, Distribution::Ketama}) {
    for (int n : kNodeCounts) {
      const ring::Ring& r = ringFor(d, static_cast<size_t>(n));
      const double pm = ring::computeShares(r).peakOverMean;
      std::fprintf(stderr, "  %-7s %5d %8s %9zu %10.4f %12zu (%.2f MiB)\n", distName(d), n,
                   d == Distribution::Vnode ? std::to_string(r.spec().vnodes).c_str() : "160*",
                   r.positions().size(), pm, r.memoryBytes(), double(r.memoryBytes()) / (1024.0 * 1024.0));
    }
  }
  std::fprintf(stderr, "  (* ketama: twemproxy's 160 points per server)\n");

  // One node set is one draw; the spread over other node sets (10.P.X.Y, P = 1..kSets) shows
  // how typical it is.
  constexpr unsigned kSets = 20;
  std::fprintf(stderr, "native ring at n = 100: peak/mean against points per node (kDefaultVnodes = %u)\n",
               ring::kDefaultVnodes);
  std::fprintf(stderr, "  %8s %10s %12s %12s %14s %12s\n", "vnodes", "10.0.X.Y", "median(20)", "worst(20)",
               "sets > 1.10", "memoryBytes");
  for (uint32_t v : {160u, 256u, 512u, 1024u, 2048u}) {
    std::vector<double> pms;
    for (unsigned p = 1; p <= kSets; ++p) pms.push_back(peakOverMean(Distribution::Vnode, 100, v, p));
    std::sort(pms.begin(), pms.end());
    const double median = (pms[kSets / 2 - 1] + pms[kSets / 2]) / 2;
    const auto over = std::count_if(pms.begin(), pms.end(), [](double x) { return x > 1.10; });
    const ring::Ring r(specFor(Distribution::Vnode, 100, v));
    std::fprintf(stderr, "  %8u %10.4f %12.4f %12.4f %11td/%u %12zu\n", v, ring::computeShares(r).peakOverMean,
                 median, pms.back(), over, kSets, r.memoryBytes());
  }
  std::fflush(stderr);
}

}  // namespace

int main(int argc, char** argv) {
  bool report = true;
  int kept = 1;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--no_ring_report") == 0) {
      report = false;
    } else {
      argv[kept++] = argv[a];
    }
  }
  argc = kept;

  for (Distribution d : {Distribution::Vnode, Distribution::Ketama}) {
    const std::string name = distName(d);
    benchmark::RegisterBenchmark(("Lookup/" + name).c_str(), BM_Lookup, d)->ArgName("n")->Arg(10)->Arg(100)->Arg(1000);
    benchmark::RegisterBenchmark(("LookupChained/" + name).c_str(), BM_LookupChained, d)
        ->ArgName("n")->Arg(10)->Arg(100)->Arg(1000);
    benchmark::RegisterBenchmark(("OwnerOf/" + name).c_str(), BM_OwnerOf, d)->ArgName("n")->Arg(10)->Arg(100)->Arg(1000);
  }
  for (size_t len : {size_t(16), size_t(64)}) {
    for (int k = 0; k <= static_cast<int>(HashKind::Xxh3); ++k) {
      const auto kind = static_cast<HashKind>(k);
      const std::string name = "Hash/" + std::string(ring::hashKindName(kind)) + "/" + std::to_string(len);
      benchmark::RegisterBenchmark(name.c_str(), BM_Hash, kind, len);
    }
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (report) printRingReport();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
