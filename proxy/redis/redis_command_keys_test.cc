#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/redis/redis_commands.h"

namespace proxy {
namespace {

// routedKeys over a request given as words separated by single spaces.
struct Routing {
  KeyRouting verdict = KeyRouting::NoKeys;
  std::vector<std::string> keys;
  std::string why;
};

Routing route(std::string_view text) {
  std::vector<std::string> args;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find(' ', start), text.size());
    args.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  const CommandSpec* spec = findCommand(args.at(0));
  REQUIRE(spec != nullptr);
  Routing r;
  std::vector<uint32_t> indexes;
  r.verdict = routedKeys(*spec, args.size(), [&](size_t i) { return std::string_view(args.at(i)); }, indexes, r.why);
  for (uint32_t i : indexes) r.keys.push_back(args.at(i));
  if (r.verdict != KeyRouting::Routed) CHECK(indexes.empty());
  if (r.verdict == KeyRouting::Refused) CHECK(!r.why.empty());
  return r;
}

using Keys = std::vector<std::string>;

TEST_CASE("routedKeys gives the keys the session routes by, sources and destinations alike") {
  CHECK(route("get k").keys == Keys{"k"});
  CHECK(route("mset a 1 b 2").keys == Keys{"a", "b"});
  CHECK(route("zunionstore d 2 a b WEIGHTS 1 2").keys == Keys{"d", "a", "b"});
  CHECK(route("sort k BY nosort STORE d").keys == Keys{"k", "d"});
  CHECK(route("georadiusbymember k m 1 km STOREDIST d").keys == Keys{"k", "d"});
  CHECK(route("xreadgroup GROUP g c STREAMS s1 s2 > >").keys == Keys{"s1", "s2"});
  CHECK(route("blmpop 1 2 a b LEFT").keys == Keys{"a", "b"});
  CHECK(route("memory USAGE k SAMPLES 5").keys == Keys{"k"});
  CHECK(route("watch a b").keys == Keys{"a", "b"});  // answered by the proxy, routed by its keys
  CHECK(route("get k").verdict == KeyRouting::Routed);
}

TEST_CASE("routedKeys: keyless commands, arity, malformed key specs") {
  CHECK(route("ping").verdict == KeyRouting::NoKeys);
  CHECK(route("scan 0").verdict == KeyRouting::NoKeys);
  // A channel is routed like a key but is not one: Redis says PUBLISH has no keys.
  CHECK(route("publish ch msg").verdict == KeyRouting::NoKeys);
  CHECK(route("spublish ch msg").verdict == KeyRouting::NoKeys);
  CHECK(route("get a b").verdict == KeyRouting::WrongArity);
  CHECK(route("zunionstore d 3 a b").verdict == KeyRouting::Malformed);  // numkeys beyond the arguments
  CHECK(route("object help").verdict == KeyRouting::Malformed);
}

TEST_CASE("routedKeys refuses with the reason the session gives") {
  const Routing migrate = route("migrate h 1 k 0 1");
  CHECK(migrate.verdict == KeyRouting::Refused);
  CHECK(migrate.why == "ringproxy does not support 'migrate': it administers one server: send it to the backends "
                       "directly");
  // Refused commands are refused whatever their arguments, like the session's cmdRefused.
  CHECK(route("swapdb 0").verdict == KeyRouting::Refused);

  const Routing pattern = route("sort k BY weight_* STORE d");
  CHECK(pattern.verdict == KeyRouting::Refused);
  CHECK(pattern.why.find("SORT with BY weight_*: the pattern reads other keys") != std::string::npos);
  CHECK(route("sort_ro k GET obj_*->f").verdict == KeyRouting::Refused);
  CHECK(route("sort k GET # BY nosort").keys == Keys{"k"});  // no '*': reads nothing else
  CHECK(route("sort k LIMIT 0 1 STORE d").keys == Keys{"k", "d"});
  // A LIMIT's values and a STORE's destination are not patterns, '*' or not.
  CHECK(route("sort k STORE a*b").keys == Keys{"k", "a*b"});

  const Routing doctor = route("memory DOCTOR");
  CHECK(doctor.verdict == KeyRouting::Refused);
  CHECK(doctor.why.find("'MEMORY DOCTOR'") != std::string::npos);

  const Routing keyless = route("eval return 0");
  CHECK(keyless.verdict == KeyRouting::Refused);
  CHECK(keyless.why == keylessRefusal(*findCommand("eval")));
  CHECK(route("fcall f 0 arg").verdict == KeyRouting::Refused);
}

TEST_CASE("refusalOf is empty for what the proxy runs") {
  for (const char* text : {"get k", "sort k", "sort k BY nosort", "memory usage k", "eval s 1 k"}) {
    CAPTURE(text);
    std::vector<std::string_view> args;
    std::string_view t(text);
    for (size_t start = 0; start <= t.size();) {
      const size_t end = std::min(t.find(' ', start), t.size());
      args.push_back(t.substr(start, end - start));
      start = end + 1;
    }
    CHECK(refusalOf(*findCommand(args[0]), args.size(), [&](size_t i) { return args.at(i); }).empty());
  }
}

TEST_CASE("every command with keys in the table is routed by them, refused, or a channel") {
  for (const CommandSpec& c : commandTable()) {
    CAPTURE(c.name);
    if (c.has(kChannel)) CHECK(c.keys.first == 1);
    if (c.check != ArgCheck::None) CHECK(c.route == Route::Keyed);
    if (c.route == Route::Unsupported) CHECK(!commandHasKeys(c));
  }
}

}  // namespace
}  // namespace proxy
