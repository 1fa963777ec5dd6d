// load.h: YAML file -> validated Topology. The only place yaml-cpp is used and its exceptions
// caught. Accepts twemproxy's nutcracker.yml unmodified, with twemproxy's meaning and defaults,
// plus ringproxy's own keys. Every error names the file, the line and the key.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/topology.h"

namespace config {

struct LoadError {
  std::string file;
  int line = 0;     // 1-based, 0 when unknown (e.g. file unreadable)
  std::string key;  // e.g. "alpha.servers[2]" or "alpha.hash"
  std::string message;

  // "FILE:LINE: KEY: MESSAGE" (the format of compilers, so editors can jump to it).
  std::string str() const;
};

// Reads and validates a file. Returns false and fills `error` on any problem: the first one in
// the file (the lowest line), as the list form below would list it first.
[[nodiscard]] bool loadTopologyFile(const std::string& path, Topology& out, LoadError& error);

// The same, collecting every problem found in one pass instead of only the first: a bad key
// does not hide a bad key elsewhere in the pool, nor a bad server in another pool. `errors` is
// replaced, ordered by line (problems with no line, such as an unreadable file, last), with no
// problem twice; a problem that only follows from another one (a check across keys of which
// one is already wrong) is not reported. A YAML syntax error is always the only error, since
// nothing after it can be read. Returns true, with `errors` empty, when the file is valid;
// `out` is assigned only then.
[[nodiscard]] bool loadTopologyFile(const std::string& path, Topology& out,
                                    std::vector<LoadError>& errors);

// The largest config file read. A nutcracker.yml with thousands of servers is well under
// 1 MiB; anything bigger is a mistake (a log, a dump) that would only cost memory and time.
constexpr long long kMaxConfigBytes = 8LL << 20;

// Reads the whole file into `text` (what loadTopologyFile reads): false and `error` (file,
// no line) if it cannot be read, is not a regular file (directory, FIFO, device, socket; a
// symlink counts as what it points to) or is larger than kMaxConfigBytes. Never blocks.
[[nodiscard]] bool readConfigFile(const std::string& path, std::string& text, LoadError& error);

// Same as loadTopologyFile, from text already in memory; `file` is used in messages only.
[[nodiscard]] bool loadTopologyText(const std::string& text, const std::string& file, Topology& out,
                                    LoadError& error);
[[nodiscard]] bool loadTopologyText(const std::string& text, const std::string& file, Topology& out,
                                    std::vector<LoadError>& errors);

// The keys a pool accepts, in the loader's table order, each with a line saying what it takes
// and its default: for `ringctl` help and for tests that walk the table.
struct PoolKeyInfo {
  std::string_view name;
  std::string_view help;
};
std::vector<PoolKeyInfo> poolKeys();

}  // namespace config
