#include "proxy/ringctl/ringctl_commands.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>

#include "config/load.h"
#include "proxy/common/json_writer.h"
#include "proxy/ringctl/ringctl_hosts.h"
#include "proxy/ringctl/ringctl_svg.h"
#include "ring/ring_diff.h"

namespace proxy::ringctl {
namespace {

bool load(const std::string& file, config::Topology& topo) {
  config::LoadError err;
  if (!config::loadTopologyFile(file, topo, err)) {
    std::fprintf(stderr, "ringctl: %s\n", err.str().c_str());
    return false;
  }
  return true;
}

// The pools a command applies to: the one named by --pool, or all of them.
bool selectPools(const config::Topology& topo, const std::string& name, std::vector<const config::Pool*>& out) {
  if (name.empty()) {
    for (const auto& p : topo.pools) out.push_back(&p);
    return true;
  }
  const config::Pool* p = topo.findPool(name);
  if (p == nullptr) {
    std::string names;
    for (const auto& q : topo.pools) names += (names.empty() ? "" : ", ") + q.name;
    std::fprintf(stderr, "ringctl: %s has no pool '%s' (pools: %s)\n", topo.file.c_str(), name.c_str(), names.c_str());
    return false;
  }
  out.push_back(p);
  return true;
}

bool writeFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) {
    std::fprintf(stderr, "ringctl: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

std::string percent(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f%%", f * 100);
  return buf;
}

}  // namespace

int runOwner(const Options& o) {
  config::Topology topo;
  if (!load(o.configFile, topo)) return kExitBadInput;
  std::vector<const config::Pool*> pools;
  if (!selectPools(topo, o.pool, pools)) return kExitBadInput;
  if (pools.size() != 1) {
    std::fprintf(stderr, "ringctl: %s has %zu pools; choose one with --pool NAME\n", o.configFile.c_str(), pools.size());
    return kExitUsage;
  }
  const config::Pool& pool = *pools.front();
  const ring::Ring r(pool.ringSpec());
  std::vector<std::string> keys = o.positional;
  if (keys.empty()) {  // no keys on the command line: one per line from stdin
    for (std::string line; std::getline(std::cin, line);) keys.push_back(line);
  }
  JsonWriter j;
  j.beginObject().key("pool").value(pool.name).key("distribution").value(ring::distributionName(pool.distribution));
  j.key("owners").beginArray();
  std::string out;
  for (const auto& key : keys) {
    const uint64_t h = r.hashOf(key);
    const std::string& label = r.spec().nodes[r.ownerOfHash(h)].labelOrIdentity();
    if (o.json) {
      j.beginObject().key("key").value(key).key("hash").value(h).key("node").value(label).endObject();
    } else {
      out += key;
      out += '\t';
      out += pool.distribution == ring::Distribution::Random ? "(random)" : label;
      out += '\n';
    }
  }
  j.endArray().endObject();
  if (o.json) out = j.str() + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);  // keys may hold NUL bytes
  return kExitOk;
}

int runShares(const Options& o) {
  config::Topology topo;
  if (!load(o.configFile, topo)) return kExitBadInput;
  std::vector<const config::Pool*> pools;
  if (!selectPools(topo, o.pool, pools)) return kExitBadInput;
  JsonWriter j;
  j.beginObject().key("pools").beginArray();
  std::vector<SvgPanel> panels;  // one per selected pool
  for (const config::Pool* pool : pools) {
    const ring::Ring r(pool->ringSpec());
    const ring::ShareReport rep = ring::computeShares(r);
    j.beginObject().key("pool").value(pool->name).key("distribution").value(ring::distributionName(pool->distribution));
    j.key("hash").value(ring::hashKindName(pool->hash)).key("points").value(uint64_t(r.positions().size()));
    j.key("memory_bytes").value(uint64_t(r.memoryBytes())).key("peak_over_mean").value(rep.peakOverMean);
    j.key("nodes").beginArray();
    if (!o.json) {
      std::printf("pool %s: %s, hash %s, %zu nodes, %zu points, peak/mean %.4f\n", pool->name.c_str(),
                  std::string(ring::distributionName(pool->distribution)).c_str(), std::string(ring::hashKindName(pool->hash)).c_str(),
                  r.nodeCount(), r.positions().size(), rep.peakOverMean);
      std::printf("  %-32s %6s %8s %10s %10s %12s\n", "node", "weight", "points", "share", "ideal", "share/ideal");
    }
    for (const auto& n : rep.nodes) {
      j.beginObject().key("node").value(n.label).key("address").value(n.address).key("weight").value(n.weight);
      j.key("points").value(uint64_t(n.points)).key("share").value(n.share).key("ideal").value(n.ideal).endObject();
      if (!o.json)
        std::printf("  %-32s %6u %8zu %10s %10s %12.4f\n", n.label.c_str(), n.weight, n.points, percent(n.share).c_str(),
                    percent(n.ideal).c_str(), n.share / n.ideal);
    }
    j.endArray().endObject();
    if (!o.svgFile.empty()) panels.push_back(sharesPanel(r, rep, "pool " + pool->name + ": shares", o.configFile));
  }
  j.endArray().endObject();
  if (o.json) std::printf("%s\n", j.str().c_str());
  if (!o.svgFile.empty() && !writeFile(o.svgFile, svgDocument(panels))) return kExitBadInput;
  return kExitOk;
}

int runDiff(const Options& o) {
  if (o.positional.size() != 2) {
    std::fprintf(stderr, "ringctl: diff takes two config files: ringctl diff OLD.yml NEW.yml\n");
    return kExitUsage;
  }
  config::Topology before, after;
  if (!load(o.positional[0], before) || !load(o.positional[1], after)) return kExitBadInput;
  std::vector<const config::Pool*> pools;
  if (!selectPools(before, o.pool, pools)) return kExitBadInput;
  JsonWriter j;
  j.beginObject().key("pools").beginArray();
  std::vector<SvgPanel> panels;  // one per pool, added and removed ones included
  const std::string files = o.positional[0] + " \u2192 " + o.positional[1];
  for (const config::Pool* oldPool : pools) {
    const config::Pool* newPool = after.findPool(oldPool->name);
    j.beginObject().key("pool").value(oldPool->name);
    if (newPool == nullptr) {
      j.key("status").value("removed").endObject();
      if (!o.json) std::printf("pool %s: removed\n", oldPool->name.c_str());
      panels.push_back(notePanel("pool " + oldPool->name + ": removed",
                                 "in " + o.positional[0] + ", not in " + o.positional[1] +
                                     ": all of its keys go with it"));
      continue;
    }
    const ring::Ring a(oldPool->ringSpec()), b(newPool->ringSpec());
    const ring::RingDiff d = ring::diffRings(a, b);
    j.key("status").value("kept").key("applicable").value(d.applicable).key("exact").value(d.exact);
    j.key("moved").value(d.moved).key("ideal_min").value(d.idealMin).key("flows").beginArray();
    for (const auto& f : d.flows) j.beginObject().key("from").value(f.from).key("to").value(f.to).key("share").value(f.share).endObject();
    j.endArray().endObject();
    if (!o.json) {
      if (!d.applicable) {
        std::printf("pool %s: random distribution: keys have no fixed owner, nothing to diff\n", oldPool->name.c_str());
      } else {
        std::printf("pool %s: moved %s of the keyspace (ideal minimum %s), %s\n", oldPool->name.c_str(),
                    percent(d.moved).c_str(), percent(d.idealMin).c_str(),
                    d.exact ? "exact" : "estimated from 2^20 sampled keys (the hash changed)");
        for (const auto& f : d.flows) std::printf("  %-32s -> %-32s %s\n", f.from.c_str(), f.to.c_str(), percent(f.share).c_str());
      }
    }
    if (!o.svgFile.empty()) panels.push_back(diffPanel(a, b, d, "pool " + oldPool->name + ": diff", files));
  }
  if (o.pool.empty()) {
    for (const auto& p : after.pools) {
      if (before.findPool(p.name) != nullptr) continue;
      j.beginObject().key("pool").value(p.name).key("status").value("added").endObject();
      if (!o.json) std::printf("pool %s: added\n", p.name.c_str());
      panels.push_back(notePanel("pool " + p.name + ": added",
                                 "in " + o.positional[1] + ", not in " + o.positional[0] +
                                     ": a new keyspace, nothing moves"));
    }
  }
  j.endArray().endObject();
  if (o.json) std::printf("%s\n", j.str().c_str());
  if (!o.svgFile.empty() && !writeFile(o.svgFile, svgDocument(panels))) return kExitBadInput;
  return kExitOk;
}

int runCheck(const Options& o) {
  config::Topology topo;
  std::vector<config::LoadError> errors;
  const bool ok = config::loadTopologyFile(o.configFile, topo, errors);
  // Host names are looked up only in a valid file: until then the errors are what to fix.
  std::vector<config::LoadError> warnings;
  if (ok && o.resolveHosts) warnings = unresolvedHostWarnings(topo, kResolveBudget);
  auto counted = [](size_t n, const char* what) {
    return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
  };
  if (o.json) {
    auto list = [](JsonWriter& j, const std::vector<config::LoadError>& items) {
      j.beginArray();
      for (const auto& e : items)
        j.beginObject().key("line").value(e.line).key("key").value(e.key).key("message").value(e.message).endObject();
      j.endArray();
    };
    JsonWriter j;
    j.beginObject().key("file").value(o.configFile).key("valid").value(ok);
    if (!ok) {  // the first error at the top level too, as before the list existed
      const config::LoadError& first = errors.front();
      j.key("line").value(first.line).key("key").value(first.key).key("message").value(first.message);
    }
    j.key("errors");
    list(j, errors);
    j.key("warnings");
    list(j, warnings);
    j.key("pools").beginArray();
    for (const auto& p : topo.pools) j.value(p.name);
    j.endArray().endObject();
    std::printf("%s\n", j.str().c_str());
  } else if (ok) {
    for (const auto& w : warnings) std::fprintf(stderr, "%s\n", w.str().c_str());
    std::string summary = o.configFile + ": ok, " + counted(topo.pools.size(), "pool");
    if (!warnings.empty()) summary += ", " + counted(warnings.size(), "warning");
    std::printf("%s\n", summary.c_str());
  } else {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.str().c_str());
    std::fprintf(stderr, "%s: %s\n", o.configFile.c_str(), counted(errors.size(), "error").c_str());
  }
  return ok ? kExitOk : kExitBadInput;
}

}  // namespace proxy::ringctl
