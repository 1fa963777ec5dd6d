// ringctl plan OLD.yml NEW.yml [-o OUT.yml]: the transition config from OLD to NEW. It is
// NEW's text unchanged, with a `previous_servers:` list (OLD's servers) added to every pool
// whose placement changes: Redis proxies that load it move keys on first touch and `ringctl
// migrate` moves the rest; memcached proxies answer a moved key's miss from its previous owner
// and copy it over, so the cache stays warm. Prints, per pool, the share of the keyspace that will
// move and its flows (ring_diff). Deploy OUT.yml, run the migrator, then deploy NEW.yml.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/load.h"
#include "proxy/ringctl/ringctl_commands.h"
#include "ring/ring.h"
#include "ring/ring_diff.h"

namespace proxy::ringctl {

namespace {

std::string serverLine(const config::Server& s) {
  std::string line = s.endpoint.str() + ":" + std::to_string(s.weight);
  if (!s.name.empty()) line += " " + s.name;
  return line;
}

// Inserts `block` at the end of the section of pool `name` (from its `name:` line at column
// 0 to the next line at column 0), before the section's trailing blank lines. The items'
// indentation copies the section's `servers:` list.
bool insertIntoPool(std::string& text, const std::string& name, const std::vector<std::string>& servers) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  size_t start = lines.size();
  for (size_t i = 0; i < lines.size() && start == lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.rfind(name + ":", 0) == 0 && l.find_first_not_of(" \t", name.size() + 1) == std::string::npos) start = i;
  }
  if (start == lines.size()) return false;
  size_t end = start + 1;
  while (end < lines.size() && (lines[end].empty() || lines[end][0] == ' ' || lines[end][0] == '\t' || lines[end][0] == '#'))
    ++end;
  while (end > start + 1 && lines[end - 1].find_first_not_of(" \t") == std::string::npos) --end;
  std::string keyIndent = "  ", itemPrefix = "   - ";
  for (size_t i = start + 1; i < end; ++i) {
    const size_t k = lines[i].find("servers:");
    if (k != std::string::npos && lines[i].find_first_not_of(" \t") == k) {
      keyIndent = lines[i].substr(0, k);
      if (i + 1 < end) {
        const size_t dash = lines[i + 1].find('-');
        if (dash != std::string::npos) itemPrefix = lines[i + 1].substr(0, dash + 1) + " ";
      }
    }
  }
  std::vector<std::string> block{keyIndent + "# the servers the data is still on: ringctl migrate, then deploy the new config",
                                 keyIndent + "previous_servers:"};
  for (const std::string& s : servers) block.push_back(itemPrefix + s);
  lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(end), block.begin(), block.end());
  text.clear();
  for (const std::string& l : lines) text += l + "\n";
  return true;
}

}  // namespace

int runPlan(const Options& o) {
  if (o.positional.size() != 2) {
    std::fprintf(stderr, "ringctl: plan takes two config files: ringctl plan OLD.yml NEW.yml [-o OUT.yml]\n");
    return kExitUsage;
  }
  config::Topology before, after;
  config::LoadError err;
  if (!config::loadTopologyFile(o.positional[0], before, err) || !config::loadTopologyFile(o.positional[1], after, err)) {
    std::fprintf(stderr, "ringctl: %s\n", err.str().c_str());
    return kExitBadInput;
  }
  std::ifstream in(o.positional[1]);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  FILE* report = o.outFile.empty() ? stderr : stdout;
  for (const config::Pool& pool : after.pools) {
    if (!o.pool.empty() && pool.name != o.pool) continue;
    const config::Pool* old = before.findPool(pool.name);
    if (old == nullptr) {
      std::fprintf(report, "pool %s: new, nothing to move\n", pool.name.c_str());
      continue;
    }
    if (old->inTransition() || pool.inTransition()) {
      std::fprintf(stderr, "ringctl: pool %s: %s is already a transition (previous_servers); finish it first\n",
                   pool.name.c_str(), old->inTransition() ? o.positional[0].c_str() : o.positional[1].c_str());
      return kExitBadInput;
    }
    const ring::Ring a(old->ringSpec()), b(pool.ringSpec());
    const ring::RingDiff d = ring::diffRings(a, b);
    if (d.applicable && d.moved == 0) {
      std::fprintf(report, "pool %s: no key changes owner\n", pool.name.c_str());
      continue;
    }
    std::vector<std::string> servers;
    for (const config::Server& s : old->servers) servers.push_back(serverLine(s));
    if (!insertIntoPool(text, pool.name, servers)) {
      std::fprintf(stderr, "ringctl: pool %s: cannot find its section in %s\n", pool.name.c_str(), o.positional[1].c_str());
      return kExitBadInput;
    }
    std::fprintf(report, "pool %s: %.4f%% of the keyspace moves (ideal minimum %.4f%%)%s\n", pool.name.c_str(),
                 d.moved * 100, d.idealMin * 100, d.exact ? "" : ", estimated from sampled keys");
    for (const auto& f : d.flows)
      std::fprintf(report, "  %-32s -> %-32s %.4f%%\n", f.from.c_str(), f.to.c_str(), f.share * 100);
  }
  // The result must load: the same checks the proxy will make.
  config::Topology check;
  if (!config::loadTopologyText(text, o.outFile.empty() ? "plan" : o.outFile, check, err)) {
    std::fprintf(stderr, "ringctl: the transition config does not load: %s\n", err.str().c_str());
    return kExitBadInput;
  }
  if (o.outFile.empty()) {
    std::fputs(text.c_str(), stdout);
    return kExitOk;
  }
  std::ofstream out(o.outFile);
  out << text;
  if (!out.good()) {
    std::fprintf(stderr, "ringctl: cannot write %s\n", o.outFile.c_str());
    return kExitBadInput;
  }
  std::printf("wrote %s: deploy it to every proxy, run `ringctl migrate -c %s`, then deploy %s\n", o.outFile.c_str(),
              o.outFile.c_str(), o.positional[1].c_str());
  return kExitOk;
}

}  // namespace proxy::ringctl
