// fuzz_stats_format: proxy/control/stats_format.h, every way the counters are shown, with pool
// and server names made of arbitrary bytes (YAML lets a config carry any of them: quotes,
// backslashes, line breaks, control characters, bytes that are not UTF-8), short or long.
//
// Input: [pools byte][flags byte][names...]. Pools: 1 + (byte % 3). Flags: bits 0-1 the
// distribution (modula, ketama, random, vnode); bit 2 repeat every name to over 1,100 bytes;
// bit 3 a transition (each pool's last name goes to previous_servers); bit 4 the last name is
// also the last reload error and the backends' last error; bits 5-7 seed the counters. Then
// names, each [length byte][that many bytes] (fewer if the input ends): the first ones name
// the pools, the rest the servers, dealt to the pools in turn (an empty name is an unnamed
// server, host:port). Names a pool already has are skipped, as the loader would refuse them.
// At most 12 servers in all, 2 with long names: /metrics repeats every name on some thirty
// lines, and a bigger text would only slow the search down.
//
// Checked:
//  - twemproxyStatsJson, statusJson and ringJson (every pool) are valid JSON as RFC 8259
//    says, in UTF-8 (tests/support/admin_output_check.h);
//  - prometheusText: every line a comment or `name{labels} value`, label values with only
//    the format's escapes and in UTF-8; every backend family has one sample per backend; each
//    backend label reads back as the name, exactly when the name is UTF-8, else with U+FFFD
//    for each byte that is not part of a well-formed sequence;
//  - statusTsv: every line has its kind's number of columns.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proxy/control/stats_format.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/support/admin_output_check.h"
#include "tests/support/stats_fixture.h"

namespace {

using fuzz::printable;

constexpr size_t kMaxServers = 12;
constexpr size_t kMaxLongServers = 2;
constexpr size_t kLongName = 1100;  // past the 1023-byte lines of old

// The reference for how a label must read back: each byte outside a well-formed UTF-8
// sequence is U+FFFD, written out here from the Unicode table rather than taken from the code
// under test.
std::string expectedLabel(const std::string& name) {
  std::string out;
  const auto at = [&](size_t k) { return static_cast<unsigned char>(name[k]); };
  for (size_t i = 0; i < name.size();) {
    const unsigned char c = at(i);
    size_t n = 0;
    if (c < 0x80) n = 1;
    else if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3;
    else if (c >= 0xF0 && c <= 0xF4) n = 4;
    bool ok = n > 0 && i + n <= name.size();
    for (size_t k = 1; ok && k < n; ++k) ok = at(i + k) >= 0x80 && at(i + k) <= 0xBF;
    if (ok && n >= 3) {
      const unsigned char second = at(i + 1);
      if (c == 0xE0) ok = second >= 0xA0;
      if (c == 0xED) ok = second <= 0x9F;
      if (c == 0xF0) ok = second >= 0x90;
      if (c == 0xF4) ok = second <= 0x8F;
    }
    if (ok) {
      out.append(name, i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += 1;
    }
  }
  return out;
}

void checkTsv(const std::string& tsv, const std::string& where) {
  const std::map<std::string, size_t> columns = {
      {"generation", 2}, {"reloads", 3}, {"pool", 6}, {"transition", 7}, {"backend", 12}};
  size_t start = 0;
  while (start < tsv.size()) {
    const size_t end = tsv.find('\n', start);
    FUZZ_CHECK(end != std::string::npos, "TSV does not end in a line feed" + where);
    const std::string line = tsv.substr(start, end - start);
    start = end + 1;
    size_t fields = 1;
    for (char c : line) fields += c == '\t' ? 1 : 0;
    const auto kind = columns.find(line.substr(0, line.find('\t')));
    FUZZ_CHECK(kind != columns.end() && kind->second == fields, "TSV line '" + printable(line) + "'" + where);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t poolCount = 1 + data[0] % 3;
  const uint8_t flags = data[1];
  const ring::Distribution kDistributions[] = {ring::Distribution::Modula, ring::Distribution::Ketama,
                                               ring::Distribution::Random, ring::Distribution::Vnode};
  const ring::Distribution distribution = kDistributions[flags & 3];
  const bool longNames = (flags & 4) != 0;
  const bool transition = (flags & 8) != 0;
  const bool errors = (flags & 16) != 0;

  std::vector<std::string> names;
  for (size_t pos = 2; pos < size;) {
    const size_t length = data[pos++];
    const size_t take = std::min(length, size - pos);
    std::string name(reinterpret_cast<const char*>(data + pos), take);
    pos += take;
    if (longNames && !name.empty()) {
      const std::string unit = name;
      while (name.size() <= kLongName) name += unit;
    }
    names.push_back(std::move(name));
  }

  std::vector<fixture::PoolNames> pools;
  std::set<std::string> poolNames;
  size_t next = 0;
  while (pools.size() < poolCount) {
    std::string name = next < names.size() ? names[next++] : "";
    if (name.empty() || !poolNames.insert(name).second) name = "pool" + std::to_string(pools.size());
    poolNames.insert(name);
    pools.push_back({name, {}, {}});
  }
  std::vector<std::set<std::string>> identities(pools.size());
  size_t servers = 0;
  for (size_t i = 0; next < names.size() && servers < (longNames ? kMaxLongServers : kMaxServers); ++next, ++i) {
    const size_t p = i % pools.size();
    const std::string& name = names[next];
    // An unnamed server is host:port, 127.0.0.1:(10000 + its index): its identity too.
    const std::string identity = name.empty() ? "127.0.0.1:" + std::to_string(10000 + pools[p].servers.size()) : name;
    if (!identities[p].insert(identity).second) continue;
    pools[p].servers.push_back(name);
    servers++;
  }
  for (auto& pool : pools) {
    if (pool.servers.empty()) pool.servers.push_back("");
    if (transition) pool.previous.push_back(pool.servers.back().empty() ? "prev" : pool.servers.back());
  }
  const std::string error = errors && !names.empty() ? names.back() : "";

  std::string where = "\npools:";
  for (const auto& p : pools) {
    where += "\n  '" + printable(p.name, 100) + "':";
    for (const auto& s : p.servers) where += " '" + printable(s, 60) + "'";
  }

  const auto snapshot = proxy::RoutingSnapshot::build(fixture::topologyOf(pools, distribution), 2);
  const proxy::WorkerReport report = fixture::reportOf(*snapshot, flags >> 5, error);
  proxy::ReloadStats reloads;
  reloads.lastError = error;
  for (const auto& p : pools) reloads.lastMoved.push_back({p.name, {0.5, 0.25}});

  for (const auto& [what, json] : {std::pair<const char*, std::string>{"stats", proxy::twemproxyStatsJson(report, *snapshot)},
                                   {"status", proxy::statusJson(report, *snapshot, reloads, 2)}}) {
    const std::string problem = checks::checkJson(json);
    FUZZ_CHECK(problem.empty(), std::string(what) + " JSON: " + problem + "\n" + printable(json, 2000) + where);
  }
  for (const auto& p : pools) {
    const std::string ring = proxy::ringJson(*snapshot, p.name);
    FUZZ_CHECK(!ring.empty(), "no /ring for pool '" + printable(p.name) + "'" + where);
    const std::string problem = checks::checkJson(ring);
    FUZZ_CHECK(problem.empty(), "ring JSON: " + problem + "\n" + printable(ring, 2000) + where);
  }

  const std::string text = proxy::prometheusText(report, *snapshot, reloads);
  std::vector<checks::PromSample> samples;
  const std::string problem = checks::checkPrometheus(text, &samples);
  FUZZ_CHECK(problem.empty(), "metrics: " + problem + "\n" + printable(text, 3000) + where);
  std::multiset<std::string> expected;
  for (const auto& b : report.backends) expected.insert(expectedLabel(b.label));
  std::map<std::string, std::multiset<std::string>> byFamily;
  for (const auto& s : samples) {
    if (s.name.rfind("ringproxy_backend_", 0) != 0 || s.name.rfind("ringproxy_backend_latency", 0) == 0) continue;
    for (const auto& [label, value] : s.labels)
      if (label == "backend") byFamily[s.name].insert(value);
  }
  FUZZ_CHECK(!byFamily.empty(), "no backend samples" + where);
  for (const auto& [family, labels] : byFamily)
    FUZZ_CHECK(labels == expected, family + ": backend labels do not read back as the names" + where);

  checkTsv(proxy::statusTsv(report, *snapshot, reloads), where);
  return 0;
}
