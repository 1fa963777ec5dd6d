#include "proxy/redis/redis_commands.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

namespace proxy {
namespace {

// Runs keyIndexes over a request given as words.
struct Keys {
  bool ok = false;
  std::vector<uint32_t> indexes;
};

Keys keysOf(std::initializer_list<std::string_view> words) {
  const std::vector<std::string_view> args(words);
  const CommandSpec* spec = findCommand(args.at(0));
  REQUIRE(spec != nullptr);
  Keys k;
  k.ok = keyIndexes(*spec, args.size(), [&](size_t i) { return args.at(i); }, k.indexes);
  return k;
}

using Idx = std::vector<uint32_t>;

bool isKeyed(Route r) {
  return r == Route::Keyed || r == Route::FanoutMget || r == Route::FanoutMset ||
         r == Route::FanoutSum || r == Route::Blocking;
}

size_t minArgc(const CommandSpec& c) { return static_cast<size_t>(std::abs(c.arity)); }

TEST_CASE("the table is sorted, unique and lower case") {
  const auto table = commandTable();
  REQUIRE(table.size() > 200);
  for (size_t i = 1; i < table.size(); ++i) {
    CAPTURE(table[i].name);
    CHECK(table[i - 1].name < table[i].name);
  }
  for (const CommandSpec& c : table) {
    CAPTURE(c.name);
    CHECK(!c.name.empty());
    for (char ch : c.name) CHECK(!(ch >= 'A' && ch <= 'Z'));
    CHECK(c.arity != 0);
    CHECK(findCommand(c.name) == &c);
  }
}

TEST_CASE("findCommand ignores case and rejects unknown names") {
  const CommandSpec* get = findCommand("GeT");
  REQUIRE(get != nullptr);
  CHECK(get->name == "get");
  CHECK(get->arity == 2);
  CHECK(get->route == Route::Keyed);
  CHECK(!get->write());
  CHECK(findCommand("GEORADIUSBYMEMBER_RO") != nullptr);
  CHECK(findCommand("Restore-Asking") != nullptr);
  CHECK(findCommand("") == nullptr);
  CHECK(findCommand("nosuchcommand") == nullptr);
  CHECK(findCommand("ge") == nullptr);
  CHECK(findCommand("gett") == nullptr);
  CHECK(findCommand(std::string(100, 'g')) == nullptr);
  CHECK(findCommand(std::string_view("get\0", 4)) == nullptr);
}

TEST_CASE("routes, arities and write flags of representative commands") {
  struct Expect {
    std::string_view name;
    int arity;
    Route route;
    bool write;
  };
  const Expect expected[] = {
      {"get", 2, Route::Keyed, false},          {"set", -3, Route::Keyed, true},
      {"mget", -2, Route::FanoutMget, false},   {"mset", -3, Route::FanoutMset, true},
      {"msetnx", -3, Route::Keyed, true},       {"del", -2, Route::FanoutSum, true},
      {"unlink", -2, Route::FanoutSum, true},   {"exists", -2, Route::FanoutSum, false},
      {"touch", -2, Route::FanoutSum, false},   {"eval", -3, Route::Keyed, false},
      {"zunionstore", -4, Route::Keyed, true},  {"object", -2, Route::Keyed, false},
      {"ping", -1, Route::Local, false},        {"quit", -1, Route::Local, false},
      {"keys", 2, Route::Local, false},   {"blpop", -3, Route::Blocking, true},
      {"flushall", -1, Route::Local, true}, {"memory", -2, Route::Keyed, false},
      {"sort", -2, Route::Keyed, true},         {"sort_ro", -2, Route::Keyed, false},
  };
  for (const Expect& e : expected) {
    CAPTURE(e.name);
    const CommandSpec* c = findCommand(e.name);
    REQUIRE(c != nullptr);
    CHECK(c->arity == e.arity);
    CHECK(c->route == e.route);
    CHECK(c->write() == e.write);
  }
}

TEST_CASE("arityAccepts follows Redis's rule") {
  const CommandSpec& get = *findCommand("get");
  CHECK(!arityAccepts(get, 1));
  CHECK(arityAccepts(get, 2));
  CHECK(!arityAccepts(get, 3));
  const CommandSpec& set = *findCommand("set");
  CHECK(!arityAccepts(set, 2));
  CHECK(arityAccepts(set, 3));
  CHECK(arityAccepts(set, 7));
}

TEST_CASE("key indexes of representative commands") {
  CHECK(keysOf({"get", "k"}).indexes == Idx{1});
  CHECK(keysOf({"GET", "k"}).ok);
  CHECK(keysOf({"mget", "a", "b", "c"}).indexes == Idx{1, 2, 3});
  CHECK(keysOf({"mset", "a", "1", "b", "2"}).indexes == Idx{1, 3});
  CHECK(keysOf({"msetnx", "a", "1"}).indexes == Idx{1});
  CHECK(keysOf({"del", "a"}).indexes == Idx{1});
  CHECK(keysOf({"rpoplpush", "src", "dst"}).indexes == Idx{1, 2});
  CHECK(keysOf({"lmove", "src", "dst", "LEFT", "RIGHT"}).indexes == Idx{1, 2});
  CHECK(keysOf({"bitop", "AND", "dst", "a", "b"}).indexes == Idx{2, 3, 4});
  CHECK(keysOf({"object", "encoding", "k"}).indexes == Idx{2});
  CHECK(keysOf({"xinfo", "stream", "s"}).indexes == Idx{2});
  CHECK(keysOf({"xgroup", "create", "s", "g", "$"}).indexes == Idx{2});
  CHECK(keysOf({"zunionstore", "dst", "2", "a", "b", "WEIGHTS", "1", "2"}).indexes ==
        Idx{1, 3, 4});
  CHECK(keysOf({"zdiffstore", "dst", "2", "a", "b"}).indexes == Idx{1, 3, 4});
  CHECK(keysOf({"zinter", "2", "a", "b", "WITHSCORES"}).indexes == Idx{2, 3});
  CHECK(keysOf({"sintercard", "3", "a", "b", "c", "LIMIT", "5"}).indexes == Idx{2, 3, 4});
  CHECK(keysOf({"lmpop", "2", "a", "b", "LEFT", "COUNT", "3"}).indexes == Idx{2, 3});
  CHECK(keysOf({"zmpop", "1", "z", "MIN"}).indexes == Idx{2});
  CHECK(keysOf({"eval", "return 1", "2", "a", "b", "arg"}).indexes == Idx{3, 4});
  CHECK(keysOf({"fcall", "f", "1", "a"}).indexes == Idx{3});
  CHECK(keysOf({"pfcount", "a", "b"}).indexes == Idx{1, 2});
  CHECK(keysOf({"geosearchstore", "dst", "src", "FROMMEMBER", "m", "BYRADIUS", "1", "km"})
            .indexes == Idx{1, 2});

  Keys noKeys = keysOf({"eval", "return 1", "0"});
  CHECK(noKeys.ok);
  CHECK(noKeys.indexes.empty());
  CHECK(keysOf({"eval", "return 1", "0", "arg1", "arg2"}).indexes.empty());
}

TEST_CASE("malformed requests give no keys") {
  auto rejected = [](std::initializer_list<std::string_view> words) {
    Keys k = keysOf(words);
    return !k.ok && k.indexes.empty();
  };
  CHECK(rejected({"get"}));
  CHECK(rejected({"rpoplpush", "src"}));
  CHECK(rejected({"object", "help"}));
  CHECK(rejected({"xinfo"}));
  CHECK(rejected({"bitop", "AND"}));
  CHECK(rejected({"mset", "a", "1", "b"}));  // b has no value
  CHECK(rejected({"mset"}));
  CHECK(rejected({"eval", "return 1", "3", "a", "b"}));  // numkeys too large
  CHECK(rejected({"eval", "return 1", "-1"}));
  CHECK(rejected({"eval", "return 1", "+1", "a"}));
  CHECK(rejected({"eval", "return 1", "01", "a"}));
  CHECK(rejected({"eval", "return 1", "1x", "a"}));
  CHECK(rejected({"eval", "return 1", ""}));
  CHECK(rejected({"eval", "return 1", "99999999999999999999999999", "a"}));
  CHECK(rejected({"eval", "return 1"}));
  CHECK(rejected({"zunionstore", "dst"}));
  CHECK(rejected({"zunionstore", "dst", "2", "a"}));
  CHECK(rejected({"lmpop", "x", "a", "LEFT"}));
  CHECK(rejected({"sintercard"}));
}

TEST_CASE("keys are appended and a reused vector does not grow") {
  const CommandSpec& mget = *findCommand("mget");
  const std::vector<std::string_view> args{"mget", "a", "b"};
  std::vector<uint32_t> out{7};
  REQUIRE(keyIndexes(mget, args.size(), [&](size_t i) { return args[i]; }, out));
  CHECK(out == Idx{7, 1, 2});
  out.clear();
  out.reserve(16);
  const auto* data = out.data();
  REQUIRE(keyIndexes(mget, args.size(), [&](size_t i) { return args[i]; }, out));
  CHECK(out.data() == data);
  // On failure nothing is appended.
  REQUIRE(!keyIndexes(mget, 1, [&](size_t i) { return args[i]; }, out));
  CHECK(out == Idx{1, 2});
}

TEST_CASE("every keyed command's key spec fits its arity") {
  for (const CommandSpec& c : commandTable()) {
    CAPTURE(c.name);
    const KeySpec& k = c.keys;
    // Containers (OBJECT, XINFO, XGROUP: arity -2) name their key after the subcommand, whose
    // own arity is at least 3; their HELP has no key at all.
    const bool container = c.arity == -2 && k.first == 2;
    const size_t argc = container ? 3 : minArgc(c);
    if (!isKeyed(c.route)) {
      // Only WATCH (answered locally, but its keys matter to a proxy) names keys.
      if (c.name != "watch") CHECK((k.first == 0 && k.numkeysAt == 0));
      continue;
    }
    if (k.streams) continue;  // XREAD: pinned by its own test below
    CHECK((k.first > 0 || k.numkeysAt > 0));
    CHECK(k.step >= 1);
    if (k.first > 0) {
      CHECK(static_cast<size_t>(k.first) < argc);
      if (k.last < 0) {
        CHECK(static_cast<int>(argc) + k.last >= k.first);
        if (k.step > 1) CHECK((argc - static_cast<size_t>(k.first)) % k.step == 0);
      } else {
        CHECK(k.last >= k.first);
        CHECK(static_cast<size_t>(k.last) < argc);
      }
    }
    if (k.numkeysAt > 0) {
      CHECK(static_cast<size_t>(k.numkeysAt) < argc);
      CHECK((k.first == 0 || (k.last > 0 && k.last < k.numkeysAt)));
    }
    if (c.route != Route::Keyed && c.route != Route::Blocking) CHECK(k.numkeysAt == 0);

    // The shortest valid request (numkeys 1, plus the key it announces) yields keys, all
    // within the request and none of them the numkeys argument.
    std::vector<std::string> words(argc + (k.numkeysAt > 0 ? 1 : 0), "x");
    if (k.numkeysAt > 0) words[static_cast<size_t>(k.numkeysAt)] = "1";
    std::vector<uint32_t> out;
    REQUIRE(keyIndexes(c, words.size(), [&](size_t i) { return std::string_view(words.at(i)); },
                       out));
    CHECK(!out.empty());
    for (uint32_t i : out) {
      CHECK(i >= 1);
      CHECK(i < words.size());
      CHECK(i != static_cast<uint32_t>(k.numkeysAt));
    }
  }
}

TEST_CASE("only the containers name a key past their arity") {
  std::vector<std::string_view> names;
  for (const CommandSpec& c : commandTable()) {
    if (isKeyed(c.route) && c.keys.first > 0 && static_cast<size_t>(c.keys.first) >= minArgc(c)) {
      names.push_back(c.name);
    }
  }
  CHECK(names == std::vector<std::string_view>{"memory", "object", "xgroup", "xinfo"});
}

TEST_CASE("the fan-out commands are exactly the ones the proxy splits") {
  std::vector<std::string_view> mget;
  std::vector<std::string_view> mset;
  std::vector<std::string_view> sum;
  for (const CommandSpec& c : commandTable()) {
    if (c.route == Route::FanoutMget) mget.push_back(c.name);
    if (c.route == Route::FanoutMset) mset.push_back(c.name);
    if (c.route == Route::FanoutSum) sum.push_back(c.name);
  }
  CHECK(mget == std::vector<std::string_view>{"mget"});
  CHECK(mset == std::vector<std::string_view>{"mset"});
  CHECK(sum == std::vector<std::string_view>{"del", "exists", "touch", "unlink"});
}

TEST_CASE("every refused command says why, and every other command says nothing of refusal") {
  for (const CommandSpec& c : commandTable()) {
    CAPTURE(c.name);
    CHECK((c.route == Route::Unsupported) == (c.refusal != Refusal::None));
    if (c.route == Route::Unsupported) CHECK(!refusalReason(c.refusal).empty());
  }
}


std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(' ', start), text.size());
    out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

Keys keysOfText(std::string_view text) {
  const std::vector<std::string> args = words(text);
  Keys k;
  k.ok = keyIndexes(*findCommand(args.at(0)), args.size(), [&](size_t i) { return std::string_view(args.at(i)); },
                    k.indexes);
  return k;
}

TEST_CASE("XREAD and XREADGROUP keys follow STREAMS, after the options Redis reads before it") {
  CHECK(keysOfText("xread STREAMS a 0").indexes == Idx{2});
  CHECK(keysOfText("xread COUNT 10 BLOCK 0 streams a b 0 0").indexes == Idx{6, 7});
  // A group or consumer named "streams" is an option's value, not the keyword.
  CHECK(keysOfText("xreadgroup GROUP streams streams COUNT 1 NOACK STREAMS k >").indexes == Idx{8});
  CHECK(!keysOfText("xread STREAMS a b 0").ok);        // unbalanced: an ID for every key
  CHECK(!keysOfText("xread STREAMS").ok);
  CHECK(!keysOfText("xread COUNT 1 a 0").ok);          // no STREAMS keyword
  CHECK(!keysOfText("xread BOGUS 1 STREAMS a 0").ok);  // an option Redis does not have
}

TEST_CASE("a blocking command's timeout is read as Redis reads it") {
  auto timeout = [](std::string_view text) {
    const std::vector<std::string> args = words(text);
    return blockingTimeoutMs(*findCommand(args[0]), args.size(), [&](size_t i) { return std::string_view(args.at(i)); });
  };
  CHECK(timeout("blpop a b 0") == kForever);
  CHECK(timeout("blpop a 1.5") == 1500);
  CHECK(timeout("brpop a 0.0001") == 1);  // rounded up: never 0, which would mean for ever
  CHECK(timeout("blmove a b LEFT RIGHT 2") == 2000);
  CHECK(timeout("blmpop 3 2 a b LEFT") == 3000);
  CHECK(timeout("bzpopmin z 0.25") == 250);
  CHECK(timeout("blpop a -1") == kBadTimeout);
  CHECK(timeout("blpop a soon") == kBadTimeout);
  CHECK(timeout("xread COUNT 1 STREAMS a 0") == kNotBlocking);
  CHECK(timeout("xread BLOCK 250 STREAMS a $") == 250);
  CHECK(timeout("xreadgroup GROUP g c BLOCK 0 STREAMS a >") == kForever);
  CHECK(timeout("xread BLOCK x STREAMS a $") == kBadTimeout);
}

TEST_CASE("the README's command table lists every command of the table, in the row of its handling") {
  std::ifstream in(std::string(RINGPROXY_SOURCE_DIR) + "/README.md");
  REQUIRE(in.good());
  const std::string readme((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t start = readme.find("### Every Redis command");
  REQUIRE(start != std::string::npos);
  const std::string section = readme.substr(start, readme.find("\n## ", start) - start);
  // The row a command is in, by its first words.
  auto rowOf = [&](std::string_view name) -> std::string {
    const std::string needle = "`" + std::string(name) + "`";
    size_t at = 0;
    while ((at = section.find(needle, at)) != std::string::npos) {
      const size_t lineStart = section.rfind('\n', at) + 1;
      if (section.compare(lineStart, 2, "| ") == 0) return section.substr(lineStart + 2, 20);
      at += needle.size();
    }
    return "";
  };
  for (const CommandSpec& c : commandTable()) {
    CAPTURE(c.name);
    const std::string row = rowOf(c.name);
    REQUIRE(!row.empty());
    switch (c.route) {
      case Route::Keyed:
        if (c.name != "memory") CHECK(row.rfind("forwarded to the own", 0) == 0);
        break;
      case Route::FanoutMget:
      case Route::FanoutMset:
      case Route::FanoutSum: CHECK(row.rfind("split", 0) == 0); break;
      case Route::Blocking: CHECK(row.rfind("blocking", 0) == 0); break;
      case Route::Unsupported: CHECK(row.rfind("refused", 0) == 0); break;
      case Route::Local: CHECK(row.rfind("refused", 0) != 0); break;
    }
  }
}

TEST_CASE("SORT and GEORADIUS destinations after STORE or STOREDIST are keys too; option values are not keywords") {
  CHECK(keysOfText("sort k STORE d").indexes == Idx{1, 3});
  CHECK(keysOfText("sort k GET store STORE d").indexes == Idx{1, 5});  // GET's pattern "store" is a value
  CHECK(keysOfText("sort k LIMIT 0 10 ALPHA").indexes == Idx{1});
  CHECK(keysOfText("georadius k 0 0 10 km STORE d").indexes == Idx{1, 7});
  CHECK(keysOfText("georadius k 0 0 10 km COUNT 5 STOREDIST d").indexes == Idx{1, 9});
  CHECK(keysOfText("georadiusbymember k store 10 km STOREDIST d").indexes == Idx{1, 6});  // member "store"
  CHECK(!keysOfText("sort k STORE").ok);  // a destination is missing
}

}  // namespace
}  // namespace proxy
