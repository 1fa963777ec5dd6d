// fuzz_config: config/load.h loadTopologyText() on arbitrary text (the whole input).
//
// Checked: it returns rather than throws, crashes or hangs (yaml-cpp's exceptions are to be
// caught inside the loader); a failure has a message, names the file and a line within the
// text (or 0), and leaves `out` as it was; a success has pools with unique non-empty names,
// each with servers, distinct listen addresses, and a ring spec; loading is deterministic.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <set>
#include <string>

#include "config/load.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

using fuzz::printable;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string where = "\nconfig '" + printable(text, 2000) + "'";

  config::Topology out;
  out.file = "sentinel";
  config::LoadError error;
  bool ok = false;
  try {
    ok = config::loadTopologyText(text, "fuzz.yml", out, error);
  } catch (const std::exception& e) {
    FUZZ_CHECK(false, std::string("loadTopologyText threw: ") + e.what() + where);
  } catch (...) {
    FUZZ_CHECK(false, "loadTopologyText threw a non-std exception" + where);
  }

  if (!ok) {
    FUZZ_CHECK(!error.message.empty(), "failure without a message" + where);
    FUZZ_CHECK(error.file == "fuzz.yml", "failure names file '" + error.file + "'" + where);
    size_t lines = 1;
    for (char c : text) lines += c == '\n' ? 1 : 0;
    FUZZ_CHECK(error.line >= 0 && static_cast<size_t>(error.line) <= lines + 1,
               "failure on line " + std::to_string(error.line) + " of " + std::to_string(lines) +
                   ": " + error.str() + where);
    FUZZ_CHECK(out.file == "sentinel" && out.pools.empty(), "a failed load changed `out`" + where);
    FUZZ_CHECK(!error.str().empty(), "empty LoadError::str()" + where);
    return 0;
  }

  FUZZ_CHECK(error.message.empty(), "success with message '" + error.message + "'" + where);
  FUZZ_CHECK(out.file == "fuzz.yml" && !out.pools.empty(), "success without pools" + where);
  std::set<std::string> names;
  std::set<std::string> listens;
  for (const config::Pool& pool : out.pools) {
    FUZZ_CHECK(!pool.name.empty() && names.insert(pool.name).second,
               "pool name '" + pool.name + "' empty or repeated" + where);
    FUZZ_CHECK(!pool.servers.empty(), "pool '" + pool.name + "' without servers" + where);
    FUZZ_CHECK(listens.insert(pool.listen.str()).second,
               "listen address " + pool.listen.str() + " used twice" + where);
    FUZZ_CHECK(out.findPool(pool.name) == &pool, "findPool('" + pool.name + "')" + where);
    for (const config::Server& server : pool.servers) {
      FUZZ_CHECK(!server.identity.empty() && !server.label.empty(),
                 "server without identity or label in pool '" + pool.name + "'" + where);
    }
    try {
      (void)pool.ringSpec();
    } catch (const std::exception& e) {
      FUZZ_CHECK(false, "ringSpec() of pool '" + pool.name + "' threw: " + e.what() + where);
    }
  }

  // Deterministic: the same text loads to the same pools.
  config::Topology again;
  config::LoadError error2;
  FUZZ_CHECK(config::loadTopologyText(text, "fuzz.yml", again, error2) &&
                 again.pools.size() == out.pools.size(),
             "a second load of the same text differs: " + error2.str() + where);
  return 0;
}
