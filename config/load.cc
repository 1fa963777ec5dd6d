// load.cc: YAML text -> validated Topology.
//
// Flow: the text is first scanned for its documents (exactly one is allowed; the scan also
// guards against a yaml-cpp 0.7 hang, see DocumentCounter), then parsed by yaml-cpp into a node
// tree (syntax errors stop here), then walked pool by pool. Each pool key is looked up in
// kPoolKeys, one row per key naming its parser and its help line, so a new key is one row. A parser
// checks the value's YAML type and text and writes one Pool field; the checks that involve several
// keys (protocol vs redis, the hash default for vnode, ring size) run once the pool's keys are all
// read, and the checks across pools (listen addresses) once the file is read.
//
// Every problem found is reported, not only the first, so that one run of `ringctl check` shows
// all there is to fix: a parser that fails leaves its key marked failed and the walk goes on to
// the next key, list item and pool. A check across keys is skipped when one of its keys failed
// (or was misspelled: an unknown key "xisten" stands for listen), because its message would then
// only repeat, or follow from, the problem already reported.
// Syntax errors and a wrong document shape end the load at once: nothing after them can be
// read. Nothing is half-applied because `out` is assigned only when there was no problem at all.
//
// Meanings and defaults are twemproxy 0.5.0's (src/nc_conf.[ch]) except where a comment says
// otherwise. yaml-cpp exceptions are caught here and nowhere else.
#include "config/load.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "ring/key_hash.h"

namespace config {
namespace {

// twemproxy (and libmemcached before it) leaves the port out of a server's ketama identity
// when it is memcached's default port.
constexpr uint16_t kLibmemcachedPort = 11211;

// Most ring entries one pool may need (vnode: weights x vnodes; modula: total weight). Past
// this a pool would spend hundreds of MB on its ring: surely a typo, or a ketama weight such as
// 100000 carried over to a distribution where weights cost memory.
constexpr uint64_t kMaxRingEntries = uint64_t{1} << 24;

// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
constexpr size_t kMaxUnixPath = 107;

constexpr std::string_view kHashNames =
    "one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, hsieh, "
    "murmur, jenkins, xxh3";

constexpr std::string_view kServerFormat =
    "expected \"host:port:weight [name]\" or \"/path/to.sock:weight [name]\", "
    "e.g. 127.0.0.1:6379:1 or 10.0.0.5:6379:1 cache-a";

// ---------------------------------------------------------------------------------------------
// Small text helpers.

std::string quoted(std::string_view text) {
  std::string out = "'";
  out.append(text);
  out += "'";
  return out;
}

bool hasSpace(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
  });
}

// Digits only (twemproxy accepts no sign, no spaces, no hex). Saturates at UINT64_MAX so that a
// range check reports an overlong number as too large; nullopt when not a number at all.
std::optional<uint64_t> parseDigits(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    value = value > (UINT64_MAX - digit) / 10 ? UINT64_MAX : value * 10 + digit;
  }
  return value;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Hosts are DNS names or literals; names compare without case.
bool sameAddress(const Endpoint& a, const Endpoint& b) {
  if (a.isUnix() || b.isUnix()) return a.isUnix() && b.isUnix() && a.path == b.path;
  return a.port == b.port && equalsIgnoreCase(a.host, b.host);
}

// 1-based line of a node; yaml-cpp marks are 0-based, and a node that is not in the document
// has no mark at all.
int lineOf(const YAML::Node& node, int fallback) {
  const YAML::Mark mark = node.Mark();
  return mark.line < 0 ? fallback : mark.line + 1;
}

std::string_view yamlKind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
      return "empty";
    default:
      return "a single value";
  }
}

// ---------------------------------------------------------------------------------------------
// Addresses.

struct HostPort {
  std::string_view host;  // as written, brackets included: ketama identities use this text
  std::string_view port;  // as written
};

// "host:port", "[v6]:port", or (as twemproxy, which splits at the last colon) "v6::1:port".
bool parseHostPort(std::string_view text, Endpoint& ep, HostPort& raw, std::string& why) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    why = quoted(text) + " has no port; expected host:port, e.g. 127.0.0.1:22121";
    return false;
  }
  raw.host = text.substr(0, colon);
  raw.port = text.substr(colon + 1);
  std::string_view host = raw.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) {
    why = quoted(text) + " has no host; expected host:port, e.g. 127.0.0.1:22121";
    return false;
  }
  if (hasSpace(host) || host.find_first_of("[]") != std::string_view::npos) {
    why = "host " + quoted(raw.host) + " is not a host name or address";
    return false;
  }
  const std::optional<uint64_t> port = parseDigits(raw.port);
  if (!port) {
    why = "port " + quoted(raw.port) + " is not a number; expected 1 to 65535";
    return false;
  }
  if (*port < 1 || *port > 65535) {
    why = "port " + std::string(raw.port) + " is out of range; expected 1 to 65535";
    return false;
  }
  ep.host = std::string(host);
  ep.port = static_cast<uint16_t>(*port);
  ep.path.clear();
  return true;
}

bool checkUnixPath(std::string_view path, std::string& why) {
  if (hasSpace(path)) {
    why = "socket path " + quoted(path) + " contains white space";
    return false;
  }
  if (path.size() > kMaxUnixPath) {
    why = "socket path is " + std::to_string(path.size()) +
          " bytes; unix socket paths hold at most " + std::to_string(kMaxUnixPath);
    return false;
  }
  return true;
}

// "host:port:weight [name]" or "/path:weight [name]", parsed from the end as twemproxy does.
bool parseServer(std::string_view text, Server& server, std::string& why) {
  std::string_view rest = text;
  const size_t space = rest.rfind(' ');
  if (space != std::string_view::npos) {
    server.name = std::string(rest.substr(space + 1));
    rest = rest.substr(0, space);
    if (server.name.empty()) {
      why =
          quoted(text) + " ends in a space but has no name after it; " + std::string(kServerFormat);
      return false;
    }
  }
  const size_t weightColon = rest.rfind(':');
  const bool isUnix = !rest.empty() && rest.front() == '/';
  const bool tcpShape = weightColon != std::string_view::npos &&
                        rest.substr(0, weightColon).find(':') != std::string_view::npos;
  if (rest.empty() || weightColon == std::string_view::npos || (!isUnix && !tcpShape)) {
    const bool onlyWeightMissing = isUnix || weightColon != std::string_view::npos;
    why = quoted(text) +
          (onlyWeightMissing ? " has no weight (add :1 for equal weights); "
                             : " is missing its port and weight; ") +
          std::string(kServerFormat);
    return false;
  }
  const std::string_view weightText = rest.substr(weightColon + 1);
  const std::string_view address = rest.substr(0, weightColon);
  const std::optional<uint64_t> weight = parseDigits(weightText);
  if (!weight) {
    why = "weight " + quoted(weightText) + " is not a number; expected a whole number, 1 or more";
    return false;
  }
  if (*weight == 0) {
    why = "weight is 0; expected a whole number, 1 or more (remove the server to give it no keys)";
    return false;
  }
  if (*weight > INT32_MAX) {
    why = "weight " + std::string(weightText) + " is too large; expected at most " +
          std::to_string(INT32_MAX);
    return false;
  }
  server.weight = static_cast<uint32_t>(*weight);

  if (isUnix) {
    if (!checkUnixPath(address, why)) return false;
    server.endpoint.path = std::string(address);
    // twemproxy names an unnamed unix server "path:" (the colon before the weight stays in),
    // and ketama hashes that text; kept so that ketama places keys exactly as twemproxy does.
    server.identity = server.name.empty() ? server.endpoint.path + ":" : server.name;
  } else {
    HostPort raw;
    if (!parseHostPort(address, server.endpoint, raw, why)) return false;
    if (!server.name.empty()) {
      server.identity = server.name;
    } else if (server.endpoint.port == kLibmemcachedPort) {
      server.identity = std::string(raw.host);
    } else {
      server.identity = std::string(address);
    }
  }
  server.label = server.name.empty() ? server.endpoint.str() : server.name;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Reporting, and the state of one pool while its keys are read.

// Collects the problems of one load, in the order found (sorted by line at the end).
class Reporter {
 public:
  Reporter(const std::string& file, std::vector<LoadError>& errors) : file_(file), errors_(errors) {}
  // Records a problem. Returns false so that a parser can `return report.fail(...)`.
  bool fail(int line, std::string key, std::string message) {
    errors_.push_back(LoadError{file_, line, std::move(key), std::move(message)});
    return false;
  }
  size_t count() const { return errors_.size(); }

 private:
  const std::string& file_;
  std::vector<LoadError>& errors_;
};

struct PoolDraft {
  Pool pool;
  std::map<std::string, int, std::less<>> given;  // key -> line where it was set
  // Keys given whose value was wrong (or contradicted another key): the checks across keys
  // leave them alone, so that one mistake is reported once.
  std::set<std::string, std::less<>> failed;
  // Keys that an unknown key was taken for a misspelling of ("xisten" for listen): written,
  // just wrongly, so neither missing nor known, unless also given correctly.
  std::set<std::string, std::less<>> misspelled;

  int lineOf(std::string_view key) const {
    auto it = given.find(key);
    return it == given.end() ? 0 : it->second;
  }
  bool has(std::string_view key) const { return given.find(key) != given.end(); }
  bool isMisspelled(std::string_view key) const {
    return !has(key) && misspelled.find(key) != misspelled.end();
  }
  // None of `keys` is known to be wrong: a check over them says something new.
  bool sound(std::initializer_list<std::string_view> keys) const {
    return std::none_of(keys.begin(), keys.end(), [&](std::string_view key) {
      return failed.find(key) != failed.end() || isMisspelled(key);
    });
  }
  // Reports a problem at `key`'s line and marks the key failed, for later checks.
  bool fail(Reporter& report, std::string_view key, std::string message) {
    failed.emplace(key);
    return report.fail(lineOf(key), pool.name + "." + std::string(key), std::move(message));
  }
};

// One `key: value` being applied to a pool.
struct Field {
  Reporter& report;
  PoolDraft& draft;
  const YAML::Node& value;
  std::string key;  // full path, e.g. "alpha.hash"
  std::string_view help;
  int line;  // of the value, or of the key when the value is empty

  bool fail(std::string message) const { return report.fail(line, key, std::move(message)); }

  // The value as text, or nullopt after reporting that it is missing or not a single value.
  std::optional<std::string> scalar() const {
    if (value.IsScalar()) return value.Scalar();
    if (value.IsNull()) {
      fail("has no value; expected " + std::string(help));
    } else {
      fail("is " + std::string(yamlKind(value)) +
           "; expected a single value: " + std::string(help));
    }
    return std::nullopt;
  }
};

using KeyParser = bool (*)(Field&);

struct KeySpec {
  std::string_view name;
  KeyParser parse;
  std::string_view help;
};

// ---------------------------------------------------------------------------------------------
// Value parsers, generic then per key.

template <auto Member, uint64_t Min, uint64_t Max>
bool setNumber(Field& f) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  const std::optional<uint64_t> n = parseDigits(*text);
  const std::string range =
      "a whole number from " + std::to_string(Min) + " to " + std::to_string(Max);
  if (!n) return f.fail(quoted(*text) + " is not a whole number; expected " + range);
  if (*n < Min || *n > Max) return f.fail(*text + " is out of range; expected " + range);
  using T = std::remove_reference_t<decltype(f.draft.pool.*Member)>;
  f.draft.pool.*Member = static_cast<T>(*n);
  return true;
}

template <auto Member>
bool setBool(Field& f) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  // Exactly twemproxy's two spellings: "yes", "on" or "True" would mean something in YAML 1.1
  // but be rejected by nutcracker, and a file should mean the same to both.
  if (*text == "true") {
    f.draft.pool.*Member = true;
  } else if (*text == "false") {
    f.draft.pool.*Member = false;
  } else {
    return f.fail(quoted(*text) + " is not a boolean; expected true or false");
  }
  return true;
}

template <typename E, size_t N>
bool setChoice(Field& f, const std::pair<std::string_view, E> (&choices)[N], E Pool::*member) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  std::string accepted;
  for (const auto& [name, value] : choices) {
    if (*text == name) {
      f.draft.pool.*member = value;
      return true;
    }
    accepted += accepted.empty() ? "" : ", ";
    accepted += name;
  }
  return f.fail(quoted(*text) + " is not accepted; expected one of " + accepted);
}

constexpr std::pair<std::string_view, Protocol> kProtocols[] = {
    {"redis", Protocol::Redis},
    {"memcache", Protocol::Memcache},
};
constexpr std::pair<std::string_view, TransactionMode> kTransactionModes[] = {
    {"per_server", TransactionMode::PerServer},
    {"strict", TransactionMode::Strict},
};

bool setListen(Field& f) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  std::string_view value = *text;
  Endpoint& ep = f.draft.pool.listen;
  std::string why;
  if (!value.empty() && value.front() == '/') {
    // "/path" or "/path MODE", split at the last space as twemproxy does.
    const size_t space = value.rfind(' ');
    std::string_view path = value;
    if (space != std::string_view::npos) {
      path = value.substr(0, space);
      const std::string_view mode = value.substr(space + 1);
      const bool octal = !mode.empty() && mode.size() <= 4 &&
                         mode.find_first_not_of("01234567") == std::string_view::npos;
      uint32_t perm = 0;
      for (char c : mode) perm = perm * 8 + static_cast<uint32_t>(c - '0');
      if (!octal || perm > 0777) {
        return f.fail(
            "socket mode " + quoted(mode) +
            " is not an octal file mode; expected e.g. \"/tmp/pool.sock 0666\" (at most 0777)");
      }
      ep.perm = perm;
    }
    if (!checkUnixPath(path, why)) return f.fail(why);
    ep.path = std::string(path);
    ep.host.clear();
    ep.port = 0;
    return true;
  }
  HostPort raw;
  if (!parseHostPort(value, ep, raw, why)) {
    if (value.find('/') != std::string_view::npos) why += " (a unix socket path must be absolute)";
    return f.fail(why);
  }
  return true;
}

bool setHash(Field& f) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  const std::optional<ring::HashKind> kind = ring::hashKindFromName(*text);
  if (!kind)
    return f.fail(quoted(*text) + " is not a known hash; expected one of " +
                  std::string(kHashNames));
  f.draft.pool.hash = *kind;
  return true;
}

bool setHashKeySeparator(Field& f) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  if (text->empty() || text->size() > 16) {
    return f.fail("must be 1 to 16 bytes (e.g. \":\"), not " + std::to_string(text->size()));
  }
  f.draft.pool.hashKeySeparator = *text;
  return true;
}

bool setHashTag(Field& f) {
  if ((f.value.IsMap() || f.value.IsSequence()) && f.value.size() == 0) {
    return f.fail("is an empty YAML " + std::string(f.value.IsMap() ? "mapping" : "list") +
                  ": brackets must be quoted, e.g. hash_tag: \"{}\"");
  }
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  if (text->size() != 2) {
    return f.fail(quoted(*text) + " is " + std::to_string(text->size()) +
                  " bytes long; expected exactly two characters, e.g. \"{}\" or \"$$\"");
  }
  f.draft.pool.hashTag = *text;
  return true;
}

bool setDistribution(Field& f) { return setChoice(f, ring::kDistributionNames, &Pool::distribution); }
bool setProtocol(Field& f) { return setChoice(f, kProtocols, &Pool::protocol); }
bool setTransactions(Field& f) { return setChoice(f, kTransactionModes, &Pool::transactions); }

bool setTimeout(Field& f) {
  if (!setNumber<&Pool::timeoutMs, 0, INT_MAX>(f)) return false;
  // twemproxy arms no timer for a timeout <= 0, so 0 also means "wait forever".
  if (f.draft.pool.timeoutMs == 0) f.draft.pool.timeoutMs = -1;
  return true;
}

bool setRedisAuth(Field& f) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  if (text->empty()) return f.fail("is empty; expected the password, or remove the key");
  f.draft.pool.redisAuth = *text;
  return true;
}

// A file the proxy reads (a certificate, a key): it must exist and be readable now, so that
// a typo is a config error with its line, not a failure at the first connection.
template <std::string Pool::*Member>
bool setReadableFile(Field& f) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  if (text->empty()) return f.fail("is empty; expected a file path, or remove the key");
  if (::access(text->c_str(), R_OK) != 0) return f.fail("cannot read " + quoted(*text) + ": " + std::strerror(errno));
  f.draft.pool.*Member = *text;
  return true;
}

template <std::string Pool::*Member>
bool setNonEmpty(Field& f) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  if (text->empty()) return f.fail("is empty; remove the key for the default");
  f.draft.pool.*Member = *text;
  return true;
}

// A string that must be one of `choices`.
template <std::string Pool::*Member, const std::string_view* Choices, size_t N>
bool setWord(Field& f) {
  const std::optional<std::string> text = f.scalar();
  if (!text) return false;
  std::string accepted;
  for (size_t i = 0; i < N; ++i) {
    if (*text == Choices[i]) {
      f.draft.pool.*Member = *text;
      return true;
    }
    accepted += (accepted.empty() ? "" : ", ") + std::string(Choices[i]);
  }
  return f.fail(quoted(*text) + " is not accepted; expected one of " + accepted);
}
constexpr std::string_view kClientAuth[] = {"none", "optional", "required"};
constexpr std::string_view kTlsVersions[] = {"1.2", "1.3"};

// users: a list of {name, password_sha256 | password_file, commands, key_prefix}.
bool readUser(Field& f, const YAML::Node& item, size_t i, User& user) {
  const std::string where = f.key + "[" + std::to_string(i) + "]";
  const int line = lineOf(item, f.line);
  auto fail = [&](const std::string& key, const std::string& message) {
    return f.report.fail(line, where + (key.empty() ? "" : "." + key), message);
  };
  if (!item.IsMap()) return fail("", "is " + std::string(yamlKind(item)) + "; expected {name: ..., password_sha256: ...}");
  user.line = line;
  bool ok = true;
  for (const auto& kv : item) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    const std::string value = kv.second.IsScalar() ? kv.second.Scalar() : "";
    if (key == "name") {
      bool good = !value.empty() && value.size() <= 128;
      for (char c : value) good = good && c > ' ' && c != 0x7f;
      if (!good) ok = fail(key, "must be 1 to 128 characters without spaces") && ok;
      user.name = value;
    } else if (key == "password_sha256") {
      bool good = value.size() == 64;
      for (char c : value) good = good && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
      if (!good) ok = fail(key, "must be 64 hex digits: the SHA-256 of the password (ringctl hash-password)") && ok;
      user.passwordSha256 = value;
      for (char& c : user.passwordSha256) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (key == "password_file") {
      std::ifstream in(value);
      std::string first;
      if (value.empty() || !in || !std::getline(in, first) || first.empty()) {
        ok = fail(key, "cannot read a password (the file's first line) from " + quoted(value)) && ok;
      } else {
        while (!first.empty() && (first.back() == '\r' || first.back() == ' ')) first.pop_back();
        user.password = first;
      }
    } else if (key == "commands") {
      if (value != "all" && value != "read-only") ok = fail(key, quoted(value) + " is not accepted; expected all or read-only") && ok;
      user.readOnly = value == "read-only";
    } else if (key == "key_prefix") {
      if (value.empty()) ok = fail(key, "is empty; remove it to allow every key") && ok;
      user.keyPrefix = value;
    } else {
      ok = fail(key, "is not a user setting; expected name, password_sha256, password_file, commands, key_prefix") && ok;
    }
  }
  if (ok && user.name.empty()) ok = fail("", "has no name");
  if (ok && user.passwordSha256.empty() == user.password.empty())
    ok = fail("", "needs exactly one of password_sha256 and password_file");
  return ok;
}

bool setUsers(Field& f) {
  if (!f.value.IsSequence()) return f.fail("is " + std::string(yamlKind(f.value)) + "; expected a list of users");
  std::vector<User>& users = f.draft.pool.users;
  users.clear();
  bool allGood = true;
  for (size_t i = 0; i < f.value.size(); ++i) {
    User user;
    if (!readUser(f, f.value[i], i, user)) {
      allGood = false;
      continue;
    }
    for (const User& other : users)
      if (other.name == user.name) {
        allGood = f.report.fail(user.line, f.key + "[" + std::to_string(i) + "].name",
                                "user " + quoted(user.name) + " is already defined (line " + std::to_string(other.line) + ")");
      }
    users.push_back(std::move(user));
  }
  return allGood;
}

bool setDenyCommands(Field& f) {
  if (!f.value.IsSequence()) {
    return f.fail("is " + std::string(yamlKind(f.value)) +
                  "; expected a list of command names, e.g. [flushall, flushdb, keys]");
  }
  std::vector<std::string>& names = f.draft.pool.denyCommands;
  names.clear();
  bool allGood = true;  // every item is checked: one bad name must not hide the next
  for (size_t i = 0; i < f.value.size(); ++i) {
    const YAML::Node item = f.value[i];
    std::string name = item.IsScalar() ? item.Scalar() : std::string();
    bool ok = !name.empty() && name.size() <= 64;
    for (char& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '|');
    }
    if (!ok) {
      allGood = f.report.fail(lineOf(item, f.line), f.key + "[" + std::to_string(i) + "]",
                              "is not a command name; expected e.g. flushall");
      continue;
    }
    names.push_back(std::move(name));
  }
  return allGood;
}

// The servers of one list read so far, to find an item that repeats an earlier one. Each
// earlier server is remembered by its list index, which is how messages point at it.
struct ServerListSeen {
  std::vector<std::pair<size_t, Server>> servers;  // (list index, server), the good ones
  std::map<std::string, std::string, std::less<>> byName, byIdentity;  // -> "key[i] (line n)"
};

// Why `server` may not join the list (a repeated address, name or ring identity), or "".
std::string repeatedServer(const Server& server, const ServerListSeen& seen,
                           const std::string& listKey) {
  for (const auto& [index, earlier] : seen.servers) {
    if (sameAddress(earlier.endpoint, server.endpoint)) {
      return "address " + server.endpoint.str() + " is already used by " + listKey + "[" +
             std::to_string(index) + "] (line " + std::to_string(earlier.line) +
             "); each server may appear once in a pool";
    }
  }
  if (!server.name.empty()) {
    if (auto it = seen.byName.find(server.name); it != seen.byName.end()) {
      return "name " + quoted(server.name) + " is already used by " + it->second +
             "; server names must be unique in a pool";
    }
  }
  if (auto it = seen.byIdentity.find(server.identity); it != seen.byIdentity.end()) {
    return "ring identity " + quoted(server.identity) + " is the same as " + it->second +
           "'s, so both would get the same keys; give one of them a distinct name";
  }
  return "";
}

// Reads item `index` of a server list into `seen`; false after reporting why it cannot join.
// A bad item is left out, so later items are compared with the good ones only: one typo is
// one error, not one per later server.
bool readServerItem(const Field& f, const YAML::Node& item, size_t index, int line,
                    ServerListSeen& seen) {
  const std::string key = f.key + "[" + std::to_string(index) + "]";
  if (!item.IsScalar()) {
    return f.report.fail(line, key,
                         "is " + std::string(yamlKind(item)) + "; " + std::string(kServerFormat));
  }
  Server server;
  server.line = line;
  std::string why;
  if (!parseServer(item.Scalar(), server, why)) return f.report.fail(line, key, why);
  why = repeatedServer(server, seen, f.key);
  if (!why.empty()) return f.report.fail(line, key, why);
  const std::string where = key + " (line " + std::to_string(line) + ")";
  if (!server.name.empty()) seen.byName.emplace(server.name, where);
  seen.byIdentity.emplace(server.identity, where);
  seen.servers.emplace_back(index, std::move(server));
  return true;
}

template <auto List>
bool setServerList(Field& f) {
  if (!f.value.IsSequence()) {
    return f.fail((f.value.IsNull() ? std::string("has no servers")
                                    : "is " + std::string(yamlKind(f.value))) +
                  "; expected a list of servers, one \"- host:port:weight [name]\" per line");
  }
  if (f.value.size() == 0) return f.fail("is an empty list; a pool needs at least one server");
  ServerListSeen seen;
  bool allGood = true;
  int previousLine = f.line;
  for (size_t i = 0; i < f.value.size(); ++i) {
    const YAML::Node item = f.value[i];
    // yaml-cpp marks an empty item at the token after it; the line after the previous item is
    // where the empty "-" almost always is.
    const int line = item.IsNull() ? previousLine + 1 : lineOf(item, previousLine);
    previousLine = line;
    allGood = readServerItem(f, item, i, line, seen) && allGood;
  }
  std::vector<Server>& servers = f.draft.pool.*List;
  servers.clear();
  for (auto& entry : seen.servers) servers.push_back(std::move(entry.second));
  return allGood;
}

static_assert(ring::kDefaultVnodes == 1024, "update the vnodes help line");

// Every key a pool accepts. Order is the order `poolKeys()` lists them in.
constexpr KeySpec kPoolKeys[] = {
    // twemproxy 0.5.0 keys.
    {"listen", setListen,
     "host:port, or an absolute unix socket path with an optional octal mode, e.g. "
     "\"/var/run/pool.sock 0666\" (required)"},
    {"hash", setHash,
     "one of one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, "
     "hsieh, murmur, jenkins, xxh3 (default fnv1a_64; xxh3 with distribution vnode)"},
    {"hash_tag", setHashTag,
     "two characters in quotes, e.g. \"{}\": only the part of a key between them is hashed "
     "(default: the whole key)"},
    {"distribution", setDistribution, "ketama, modula, random or vnode (default ketama)"},
    {"timeout", setTimeout,
     "milliseconds to wait for a server to connect or answer (default: wait forever)"},
    {"backlog", setNumber<&Pool::backlog, 0, INT_MAX>, "the listen socket's backlog (default 512)"},
    {"client_connections", setNumber<&Pool::clientConnections, 0, INT_MAX>,
     "most client connections at once (default 0: unlimited)"},
    {"redis", setBool<&Pool::redis>,
     "true or false: the pool speaks redis, not memcache (default false)"},
    {"redis_auth", setRedisAuth,
     "password sent with AUTH on each server connection (redis pools only)"},
    {"redis_db", setNumber<&Pool::redisDb, 0, INT_MAX>,
     "database number selected on each server connection (default 0)"},
    {"preconnect", setBool<&Pool::preconnect>,
     "true or false: connect to every server at start (default false)"},
    {"auto_eject_hosts", setBool<&Pool::autoEjectHosts>,
     "true or false: take a failing server out of the ring for a while (default false)"},
    {"server_connections", setNumber<&Pool::serverConnections, 1, INT_MAX>,
     "connections to each server, 1 or more (default 1)"},
    {"server_retry_timeout", setNumber<&Pool::serverRetryTimeoutMs, 0, INT_MAX>,
     "milliseconds before an ejected server is tried again (default 30000)"},
    {"server_failure_limit", setNumber<&Pool::serverFailureLimit, 0, INT_MAX>,
     "consecutive failures that eject a server (default 2)"},
    {"tcpkeepalive", setBool<&Pool::tcpKeepalive>,
     "true or false: TCP keepalive on server connections (default false)"},
    {"servers", setServerList<&Pool::servers>,
     "list of \"host:port:weight [name]\" or \"/path/to.sock:weight [name]\" (required)"},
    // ringproxy keys.
    {"protocol", setProtocol, "redis or memcache (default: redis when redis: true, else memcache)"},
    {"vnodes", setNumber<&Pool::vnodes, 1, 65536>,
     "points per unit of weight on the native ring, 1 to 65536 (distribution vnode only; default "
     "1024)"},
    {"hash_key_separator", setHashKeySeparator,
     "hash keys only up to an occurrence of this separator (ringproxy; with hash_key_parts), so a "
     "framework's keys of one unit (bull:QUEUE:...) share a server; e.g. \":\""},
    {"hash_key_parts", setNumber<&Pool::hashKeyParts, 1, 255>,
     "with hash_key_separator: how many parts of the key are hashed: everything before that "
     "occurrence of the separator; a key with fewer is hashed whole (default 1)"},
    {"transactions", setTransactions,
     "per_server or strict: how MULTI/EXEC over keys on several servers is handled (default "
     "per_server)"},
    {"max_request_bytes", setNumber<&Pool::maxRequestBytes, 1024, 1073741824>,
     "largest value a request may carry (a Redis argument, a memcached data block), refused "
     "before it is buffered (default 67108864: 64 MiB)"},
    {"max_request_args", setNumber<&Pool::maxRequestArgs, 2, 16777216>,
     "most arguments (Redis) or keys (memcached get) in one request (default 1048576)"},
    {"max_pending_requests", setNumber<&Pool::maxPendingRequests, 1, 16777216>,
     "unanswered requests a client may have before the proxy stops reading from it "
     "(default 16384)"},
    {"max_client_output_bytes", setNumber<&Pool::maxClientOutputBytes, 65536, 17179869184ull>,
     "reply bytes a client may leave unread before the proxy stops reading from it "
     "(default 67108864)"},
    {"client_idle_timeout", setNumber<&Pool::clientIdleTimeoutMs, 0, INT_MAX>,
     "milliseconds after which a client with nothing in flight is closed (default 0: never)"},
    {"previous_servers", setServerList<&Pool::previousServers>,
     "a transition (ringproxy): the servers the data is still on, same syntax as servers; Redis keys whose "
     "owner differs move to their new owner on first touch and by `ringctl migrate`; memcached misses of "
     "moved keys are answered from the previous owner and copied over"},
    {"deny_commands", setDenyCommands,
     "Redis commands this pool's clients may not run, e.g. [flushall, flushdb, keys] (default: none)"},
    {"databases", setNumber<&Pool::databases, 1, 1048576>,
     "databases the Redis backends have (their `databases` setting): SELECT n is accepted for n below "
     "it (default 16)"},
    {"max_blocking_connections", setNumber<&Pool::maxBlockingConnections, 0, 1048576>,
     "backend connections the pool's clients may hold for themselves at once (blocking commands, "
     "pub/sub), across the process; 0 refuses such commands (default 1024)"},
    {"users", setUsers,
     "users clients log in to the proxy as (redis pools): a list of {name, password_sha256 (ringctl "
     "hash-password) or password_file, commands: all | read-only, key_prefix}"},
    {"backend_auth_user", setNonEmpty<&Pool::backendAuthUser>,
     "Redis ACL user the proxy logs in to the servers as (AUTH user password), with "
     "backend_auth_password or redis_auth (redis pools only)"},
    {"backend_auth_password", setNonEmpty<&Pool::backendAuthPassword>,
     "password the proxy logs in to the servers with, instead of redis_auth (which clients then "
     "still use to log in to the proxy; redis pools only)"},
    {"backend_tls", setBool<&Pool::backendTls>,
     "true or false: connect to the servers with TLS (default false)"},
    {"backend_tls_ca_file", setReadableFile<&Pool::backendTlsCaFile>,
     "PEM file of the CAs the servers' certificates must chain to (default: the system's)"},
    {"backend_tls_cert_file", setReadableFile<&Pool::backendTlsCertFile>,
     "PEM client certificate presented to the servers (with backend_tls_key_file)"},
    {"backend_tls_key_file", setReadableFile<&Pool::backendTlsKeyFile>,
     "PEM private key of backend_tls_cert_file"},
    {"backend_tls_server_name", setNonEmpty<&Pool::backendTlsServerName>,
     "name sent (SNI) and checked in the servers' certificates (default: each server's host)"},
    {"backend_tls_verify", setBool<&Pool::backendTlsVerify>,
     "true or false: check the servers' certificates (default true)"},
    {"tls_cert_file", setReadableFile<&Pool::tlsCertFile>,
     "PEM certificate (chain) the pool's listener presents: clients then speak TLS (with tls_key_file)"},
    {"tls_key_file", setReadableFile<&Pool::tlsKeyFile>, "PEM private key of tls_cert_file"},
    {"tls_ca_file", setReadableFile<&Pool::tlsCaFile>,
     "PEM CAs that clients' certificates must chain to (asks clients for a certificate)"},
    {"tls_client_auth", setWord<&Pool::tlsClientAuth, kClientAuth, 3>,
     "none, optional or required: whether clients must present a certificate (default required with "
     "tls_ca_file, else none)"},
    {"tls_min_version", setWord<&Pool::tlsMinVersion, kTlsVersions, 2>,
     "1.2 or 1.3: the oldest TLS version clients may use (default 1.2)"},
    {"tls_ciphers", setNonEmpty<&Pool::tlsCiphers>,
     "OpenSSL cipher list for TLS 1.2 clients (default: OpenSSL's)"},
};

const KeySpec* findKey(std::string_view name) {
  for (const KeySpec& spec : kPoolKeys) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// The key an unknown `name` is most likely a misspelling of, or nullptr when none is close.
const KeySpec* nearestKey(std::string_view name) {
  if (name == "<<") return nullptr;  // a merge key, not a typo
  const KeySpec* best = nullptr;
  size_t bestDistance = 3;  // suggest only near misses
  for (const KeySpec& spec : kPoolKeys) {
    const size_t d = editDistance(name, spec.name);
    if (d < bestDistance) {
      bestDistance = d;
      best = &spec;
    }
  }
  return best;
}

std::string unknownKeyMessage(std::string_view name) {
  std::string message = "unknown key " + quoted(name);
  if (name == "<<") {
    return message +
           ": YAML merge keys are not supported (nutcracker rejects anchors and aliases "
           "too); write each pool's keys out in full";
  }
  if (const KeySpec* best = nearestKey(name)) return message + "; did you mean " + quoted(best->name) + "?";
  message += "; accepted keys:";
  for (const KeySpec& spec : kPoolKeys) {
    message += " ";
    message += spec.name;
  }
  return message;
}

// ---------------------------------------------------------------------------------------------
// Pools and the file.

// The checks that involve several keys of one pool, and the defaults that depend on others.
// Each check reports what it finds and the next one still runs; a check over a key that
// already failed is skipped (PoolDraft::sound), since its message would follow from that one.

// listen: and servers: are required.
void checkRequiredKeys(Reporter& report, const PoolDraft& draft) {
  const Pool& pool = draft.pool;
  // A misspelled one was reported as an unknown key that suggests it: not missing again.
  if (!draft.has("listen") && !draft.isMisspelled("listen")) {
    report.fail(pool.line, pool.name + ".listen",
                "is missing; every pool needs listen: host:port or listen: /path/to.sock");
  }
  if (!draft.has("servers") && !draft.isMisspelled("servers")) {
    report.fail(pool.line, pool.name + ".servers",
                "is missing; every pool needs a list of servers, e.g. - 127.0.0.1:6379:1");
  }
}

// protocol: and redis: name the protocol twice and must agree; redis_auth needs redis.
void settleProtocol(Reporter& report, PoolDraft& draft) {
  Pool& pool = draft.pool;
  if (draft.has("protocol")) {
    const bool protocolSaysRedis = pool.protocol == Protocol::Redis;
    if (draft.has("redis") && draft.sound({"protocol", "redis"}) &&
        pool.redis != protocolSaysRedis) {
      draft.fail(report, "protocol",
                 std::string(protocolSaysRedis ? "redis" : "memcache") + " contradicts redis: " +
                     (pool.redis ? "true" : "false") + " (line " +
                     std::to_string(draft.lineOf("redis")) +
                     "); remove one of the two or make them agree");
    }
  } else {
    pool.protocol = pool.redis ? Protocol::Redis : Protocol::Memcache;
  }
  pool.redis = pool.protocol == Protocol::Redis;
  if (draft.has("redis_auth") && !pool.redis && draft.sound({"redis_auth", "protocol", "redis"})) {
    draft.fail(report, "redis_auth",
               "is only valid for a redis pool; add redis: true (or protocol: redis)");
  }
}

// backend_tls_* settings mean something only with backend_tls: true; a client certificate
// needs its key and the other way round.
void settleBackendTls(Reporter& report, PoolDraft& draft) {
  static const char* const kKeys[] = {"backend_tls_ca_file", "backend_tls_cert_file", "backend_tls_key_file",
                                      "backend_tls_server_name", "backend_tls_verify"};
  if (!draft.pool.backendTls && draft.sound({"backend_tls"})) {
    for (const char* key : kKeys)
      if (draft.has(key)) draft.fail(report, key, "has no effect without backend_tls: true");
    return;
  }
  const bool cert = draft.has("backend_tls_cert_file"), key = draft.has("backend_tls_key_file");
  if (cert && !key && draft.sound({"backend_tls_cert_file"}))
    draft.fail(report, "backend_tls_cert_file", "needs backend_tls_key_file (the certificate's private key)");
  if (key && !cert && draft.sound({"backend_tls_key_file"}))
    draft.fail(report, "backend_tls_key_file", "needs backend_tls_cert_file (the certificate it belongs to)");
}

// The listener's TLS: a certificate needs its key and the other way round; the other tls_*
// keys mean something only with them; client certificates need a CA to check them with.
void settleClientTls(Reporter& report, PoolDraft& draft) {
  Pool& pool = draft.pool;
  const bool cert = draft.has("tls_cert_file"), key = draft.has("tls_key_file");
  if (cert && !key && draft.sound({"tls_cert_file"}))
    draft.fail(report, "tls_cert_file", "needs tls_key_file (the certificate's private key)");
  if (key && !cert && draft.sound({"tls_key_file"}))
    draft.fail(report, "tls_key_file", "needs tls_cert_file (the certificate it belongs to)");
  if (!cert && !key) {
    for (const char* k : {"tls_ca_file", "tls_client_auth", "tls_min_version", "tls_ciphers"})
      if (draft.has(k)) draft.fail(report, k, "has no effect without tls_cert_file and tls_key_file");
    return;
  }
  if (pool.tlsClientAuth.empty()) pool.tlsClientAuth = pool.tlsCaFile.empty() ? "none" : "required";
  if (pool.tlsClientAuth != "none" && pool.tlsCaFile.empty() && draft.sound({"tls_client_auth"}))
    draft.fail(report, "tls_client_auth", "needs tls_ca_file (the CAs client certificates must chain to)");
}

// hash_key_parts counts occurrences of hash_key_separator; the separator alone means 1 part.
void settleKeyPrefix(Reporter& report, PoolDraft& draft) {
  if (draft.has("hash_key_parts") && !draft.has("hash_key_separator") &&
      draft.sound({"hash_key_parts", "hash_key_separator"})) {
    draft.fail(report, "hash_key_parts",
               "needs hash_key_separator (the separator whose occurrences it counts), e.g. "
               "hash_key_separator: \":\"");
  }
  if (draft.has("hash_key_separator") && !draft.has("hash_key_parts")) draft.pool.hashKeyParts = 1;
}

// The hash's default depends on the distribution, and vnode's ring wants a full-width hash.
void settleHash(Reporter& report, PoolDraft& draft) {
  Pool& pool = draft.pool;
  const bool vnode = pool.distribution == ring::Distribution::Vnode;
  if (!draft.has("hash")) pool.hash = vnode ? ring::HashKind::Xxh3 : ring::HashKind::Fnv1a_64;
  // With a wrong distribution: the distribution meant is unknown, so nothing more to say.
  if (!draft.sound({"distribution"})) return;
  if (vnode && (pool.hash == ring::HashKind::Crc16 || pool.hash == ring::HashKind::Crc32) &&
      draft.sound({"hash"})) {
    const bool crc16 = pool.hash == ring::HashKind::Crc16;
    draft.fail(
        report, "hash",
        std::string(crc16 ? "crc16 gives only 16 bits" : "crc32 (twemproxy's) gives only 15 bits") +
            ", too few to spread keys over distribution vnode's points; use xxh3 (the "
            "default for vnode) or a full 32-bit hash such as crc32a, murmur or fnv1a_64");
  }
  if (draft.has("vnodes") && !vnode && draft.sound({"vnodes"})) {
    draft.fail(report, "vnodes",
               "only applies to distribution: vnode, and this pool uses " +
                   std::string(ring::distributionName(pool.distribution)) +
                   "; remove it or set distribution: vnode");
  }
}

// The ring must stay of a sane size. At most one message: the three limits measure the same
// total weight, so the first one exceeded says it.
void checkRingSize(Reporter& report, PoolDraft& draft) {
  // A total over a partly read list, or a size from a wrong distribution or vnodes, is not one
  // the user wrote.
  if (!draft.sound({"servers", "distribution", "vnodes"})) return;
  const Pool& pool = draft.pool;
  uint64_t totalWeight = 0;
  for (const Server& s : pool.servers) totalWeight += s.weight;
  const bool vnode = pool.distribution == ring::Distribution::Vnode;
  if (totalWeight > UINT32_MAX) {
    draft.fail(report, "servers",
               "weights add up to " + std::to_string(totalWeight) +
                   "; the total must be at most " + std::to_string(UINT32_MAX));
  } else if (vnode && totalWeight * pool.vnodes > kMaxRingEntries) {
    draft.fail(
        report, draft.has("vnodes") ? "vnodes" : "servers",
        "total weight " + std::to_string(totalWeight) + " x vnodes " + std::to_string(pool.vnodes) +
            " = " + std::to_string(totalWeight * pool.vnodes) + " ring points, more than " +
            std::to_string(kMaxRingEntries) + "; scale the weights down or lower vnodes:");
  } else if (pool.distribution == ring::Distribution::Modula && totalWeight > kMaxRingEntries) {
    draft.fail(report, "servers",
               "weights add up to " + std::to_string(totalWeight) +
                   " and modula keeps one slot per unit of weight; the total must be at most " +
                   std::to_string(kMaxRingEntries));
  }
}

// A transition (previous_servers:) moves keys from their old owner to their new one.
void checkTransition(Reporter& report, PoolDraft& draft) {
  const Pool& pool = draft.pool;
  if (!draft.has("previous_servers")) return;
  if (pool.distribution == ring::Distribution::Random && draft.sound({"distribution"})) {
    draft.fail(report, "previous_servers",
               "distribution: random gives keys no fixed owner, so there is nothing to move");
    return;
  }
  if (pool.protocol != Protocol::Redis || !draft.sound({"protocol", "redis"})) return;
  // Redis keys move with MIGRATE, which the old owner runs towards host:port.
  for (const Server& s : pool.servers) {
    if (s.endpoint.isUnix()) {
      report.fail(s.line, pool.name + ".servers",
                  "server " + s.endpoint.str() +
                      " is a unix socket; in a transition keys move with MIGRATE, which needs a "
                      "host:port");
    }
  }
}

void finishPool(Reporter& report, PoolDraft& draft) {
  checkRequiredKeys(report, draft);
  settleProtocol(report, draft);
  settleKeyPrefix(report, draft);
  settleBackendTls(report, draft);
  for (const char* key : {"backend_auth_user", "backend_auth_password"})
    if (draft.has(key) && !draft.pool.redis && draft.sound({key, "protocol", "redis"}))
      draft.fail(report, key, "is only valid for a redis pool; add redis: true (or protocol: redis)");
  if (draft.has("users") && !draft.pool.redis && draft.sound({"users", "protocol", "redis"}))
    draft.fail(report, "users", "is only valid for a redis pool; add redis: true (or protocol: redis)");
  if (draft.has("backend_auth_user") && draft.pool.backendAuthPassword.empty() && draft.pool.redisAuth.empty() &&
      draft.sound({"backend_auth_user", "backend_auth_password", "redis_auth"}))
    draft.fail(report, "backend_auth_user", "needs backend_auth_password (or redis_auth): the user's password");
  settleClientTls(report, draft);
  settleHash(report, draft);
  checkRingSize(report, draft);
  checkTransition(report, draft);
}

// One pool as read, valid or not: a pool with a wrong key still takes part in the checks
// across pools with its listen address, if that one is right.
struct PoolResult {
  Pool pool;
  int listenLine = 0;  // 0 when listen: is missing or wrong
  bool valid = false;
};

// Applies one `key: value` of a pool's settings to the draft, reporting what is wrong with it.
void readPoolKey(Reporter& report, PoolDraft& draft, const YAML::Node& keyNode,
                 const YAML::Node& value) {
  const std::string& name = draft.pool.name;
  const int keyLine = lineOf(keyNode, draft.pool.line);
  if (!keyNode.IsScalar()) {
    report.fail(keyLine, name,
                "has a key that is " + std::string(yamlKind(keyNode)) + "; keys are plain words");
    return;
  }
  const std::string key = keyNode.Scalar();
  const std::string path = name + "." + key;
  const KeySpec* spec = findKey(key);
  if (spec == nullptr) {
    report.fail(keyLine, path, unknownKeyMessage(key));
    if (const KeySpec* meant = nearestKey(key)) draft.misspelled.emplace(meant->name);
    return;
  }
  if (const int first = draft.lineOf(key); first != 0) {
    // The first value stands (the checks across keys see that one); the repeat is the mistake.
    report.fail(keyLine, path, "is given twice (first on line " + std::to_string(first) + ")");
    return;
  }
  draft.given.emplace(key, keyLine);
  Field field{report, draft,      value,
              path,   spec->help, value.IsNull() ? keyLine : lineOf(value, keyLine)};
  if (!spec->parse(field)) draft.failed.insert(key);
}

// Reads one pool, reporting every problem in it. Returns whether there was none.
bool loadPool(Reporter& report, const std::string& name, int line, const YAML::Node& settings,
              PoolResult& out) {
  if (!settings.IsMap()) {
    return report.fail(
        line, name,
        "is " + std::string(yamlKind(settings)) +
            "; expected the pool's settings as indented key: value lines (listen:, servers:, ...)");
  }
  const size_t errorsBefore = report.count();
  PoolDraft draft;
  draft.pool.name = name;
  draft.pool.line = line;
  for (auto it = settings.begin(); it != settings.end(); ++it) {
    // Copies: `it->` yields a proxy that dies with the full expression. Nodes share their data.
    const YAML::Node keyNode = it->first;
    const YAML::Node value = it->second;
    readPoolKey(report, draft, keyNode, value);
  }
  finishPool(report, draft);
  out.listenLine = draft.sound({"listen"}) ? draft.lineOf("listen") : 0;
  out.valid = report.count() == errorsBefore;
  out.pool = std::move(draft.pool);
  return out.valid;
}

// Counts the documents in a text without building them, because yaml-cpp 0.7's LoadAll never
// returns on some broken input (a stray ',' at the top level): its parser reports an empty
// document without consuming the offending token, again and again, and LoadAll keeps them all
// until memory runs out (jbeder/yaml-cpp#1040, fixed upstream after 0.8 by #1319). Here a
// document that starts where the previous one started ends the scan as a syntax error.
class DocumentCounter final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    start_ = mark;
    content_.reset();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { sawContent(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    sawContent(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    sawContent(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    sawContent(mark);
  }
  void OnMapEnd() override {}

  const YAML::Mark& start() const { return start_; }
  // Where the document's first node is; empty for a document with nothing in it.
  const std::optional<YAML::Mark>& content() const { return content_; }

 private:
  void sawContent(const YAML::Mark& mark) {
    if (!content_) content_ = mark;
  }
  YAML::Mark start_;
  std::optional<YAML::Mark> content_;
};

// Throws YAML::ParserException on a syntax error, like the rest of yaml-cpp.
bool checkOneDocument(Reporter& report, const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  int documents = 0;
  int secondLine = 0;
  int previousStart = -1;
  while (parser.HandleNextDocument(counter)) {
    const YAML::Mark start = counter.start();
    if (start.pos <= previousStart) {
      const size_t pos = static_cast<size_t>(start.pos);
      const std::string found = pos < text.size() ? quoted(text.substr(pos, 1)) : "end of file";
      return report.fail(start.line + 1, "", "YAML syntax error: unexpected " + found);
    }
    previousStart = start.pos;
    if (counter.content()) {
      ++documents;
      if (documents == 2) secondLine = counter.content()->line + 1;
    }
  }
  if (documents == 0) {
    return report.fail(1, "",
                       "the file has no pools; expected one or more pools, each a name followed by "
                       "indented settings (listen:, servers:, ...)");
  }
  if (documents > 1) {
    return report.fail(secondLine, "",
                       "has " + std::to_string(documents) +
                           " YAML documents (separated by ---); expected exactly one");
  }
  return true;
}

// Two pools may not listen on one address. Reported at the later pool, in file order, where
// the fix most likely belongs, and once per pool (against the first pool with the address).
void checkListenAddresses(Reporter& report, const std::vector<PoolResult>& pools) {
  for (size_t i = 0; i < pools.size(); ++i) {
    if (pools[i].listenLine == 0) continue;  // missing or wrong: already reported
    for (size_t j = 0; j < i; ++j) {
      if (pools[j].listenLine == 0 || !sameAddress(pools[i].pool.listen, pools[j].pool.listen))
        continue;
      report.fail(pools[i].listenLine, pools[i].pool.name + ".listen",
                  "address " + pools[i].pool.listen.str() + " is already used by pool " +
                      quoted(pools[j].pool.name) + " (listen on line " +
                      std::to_string(pools[j].listenLine) +
                      "); each pool needs its own listen address");
      break;
    }
  }
}

// Pool settings at the top level, where pools are expected: the line naming their pool is
// missing, or their indentation is off. That is one mistake however many settings it displaces,
// so it is reported once, at the first of them.
struct StraySettings {
  std::string first;
  int firstLine = 0;
  int lastLine = 0;
  std::string kind;  // of the first's value
  size_t count = 0;

  void add(const std::string& name, int line, const YAML::Node& value) {
    if (count++ == 0) {
      first = name;
      firstLine = line;
      kind = yamlKind(value);
    }
    lastLine = line;
  }
  void report(Reporter& report) const {
    if (count == 0) return;
    std::string message =
        "is " + kind +
        "; expected the pool's settings as indented key: value lines (listen:, servers:, ...). " +
        quoted(first) + " is a pool setting: is the line naming its pool missing, or its "
        "indentation wrong?";
    if (count > 1) {
      message += " (So are the " + std::to_string(count - 1) +
                 " more settings at the top level after it, up to line " +
                 std::to_string(lastLine) + ".)";
    }
    report.fail(firstLine, first, message);
  }
};

// Reads every pool of the document into `topology`, reporting every problem found.
void loadDocument(Reporter& report, const YAML::Node& root, Topology& topology) {
  if (!root.IsMap()) {
    report.fail(lineOf(root, 1), "",
                "the top level is " + std::string(yamlKind(root)) +
                    "; expected pools, each a name followed by indented settings");
    return;
  }
  std::map<std::string, int, std::less<>> poolLines;
  std::vector<PoolResult> pools;
  StraySettings stray;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node nameNode = it->first;  // a copy: `it->` yields a short-lived proxy
    const YAML::Node settings = it->second;
    const int line = lineOf(nameNode, 1);
    if (!nameNode.IsScalar() || nameNode.Scalar().empty()) {
      report.fail(line, "",
                  "a pool name must be a non-empty plain word, not " +
                      std::string(yamlKind(nameNode)));
      continue;
    }
    const std::string name = nameNode.Scalar();
    // A pool may be called "listen", but then it has settings under it.
    if (!settings.IsMap() && findKey(name) != nullptr) {
      stray.add(name, line, settings);
      continue;
    }
    PoolResult pool;
    if (auto seen = poolLines.find(name); seen != poolLines.end()) {
      report.fail(line, name,
                  "pool is defined twice (first on line " + std::to_string(seen->second) +
                      "); pool names must be unique");
      // Its own mistakes are still worth reporting, but it takes no part in the checks across
      // pools: its listen address would only repeat the first definition's.
      loadPool(report, name, line, settings, pool);
      continue;
    }
    poolLines.emplace(name, line);
    loadPool(report, name, line, settings, pool);
    pools.push_back(std::move(pool));
  }
  stray.report(report);
  checkListenAddresses(report, pools);
  for (PoolResult& pool : pools) topology.pools.push_back(std::move(pool.pool));
}

// Text to topology, every problem reported. yaml-cpp's exceptions stop here.
void readTopology(Reporter& report, const std::string& text, Topology& topology) {
  try {
    YAML::Node root;
    try {
      if (!checkOneDocument(report, text)) return;
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      report.fail(e.mark.line < 0 ? 0 : e.mark.line + 1, "", "YAML syntax error: " + e.msg);
      return;
    }
    loadDocument(report, root, topology);
  } catch (const YAML::Exception& e) {
    report.fail(e.mark.line < 0 ? 0 : e.mark.line + 1, "", "YAML error: " + e.msg);
  } catch (const std::exception& e) {
    report.fail(0, "", std::string("could not load: ") + e.what());
  } catch (...) {
    report.fail(0, "", "could not load: unknown error");
  }
}

// Orders problems by line, those without a line last, and on one line in the order found;
// drops a problem reported twice (same line, key and message).
void sortAndDeduplicate(std::vector<LoadError>& errors) {
  auto rank = [](const LoadError& e) { return e.line > 0 ? e.line : INT_MAX; };
  std::stable_sort(errors.begin(), errors.end(),
                   [&](const LoadError& a, const LoadError& b) { return rank(a) < rank(b); });
  std::vector<LoadError> unique;
  unique.reserve(errors.size());
  for (LoadError& e : errors) {
    bool repeated = false;
    // Only the problems on the same line can be equal, and they are the last ones kept.
    for (auto it = unique.rbegin(); it != unique.rend() && it->line == e.line && !repeated; ++it)
      repeated = it->key == e.key && it->message == e.message;
    if (!repeated) unique.push_back(std::move(e));
  }
  errors = std::move(unique);
}

}  // namespace

std::string LoadError::str() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

std::vector<PoolKeyInfo> poolKeys() {
  std::vector<PoolKeyInfo> keys;
  keys.reserve(std::size(kPoolKeys));
  for (const KeySpec& spec : kPoolKeys) keys.push_back({spec.name, spec.help});
  return keys;
}

bool loadTopologyText(const std::string& text, const std::string& file, Topology& out,
                      std::vector<LoadError>& errors) {
  errors.clear();
  Reporter report(file, errors);
  Topology topology;
  topology.file = file;
  readTopology(report, text, topology);
  if (!errors.empty()) {
    sortAndDeduplicate(errors);
    return false;
  }
  out = std::move(topology);
  return true;
}

bool loadTopologyText(const std::string& text, const std::string& file, Topology& out,
                      LoadError& error) {
  std::vector<LoadError> errors;
  const bool ok = loadTopologyText(text, file, out, errors);
  error = ok ? LoadError{} : std::move(errors.front());
  return ok;
}

namespace {

// What a path that is not a regular file is, for the error message.
const char* notRegularKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

std::string sizeLimitText() {
  return "a config file may hold at most " + std::to_string(kMaxConfigBytes) + " bytes (8 MiB)";
}

}  // namespace

// The control thread reads the file on every reload, so nothing here may wait: a FIFO would
// block open() and read() until a writer came, and /dev/zero (or a symlink to it) would fill
// memory forever. So the path is stat'ed and refused unless it is a regular file of bounded
// size; it is then opened with O_NONBLOCK (a FIFO swapped in after the stat cannot block the
// open) and checked again on the open descriptor, which is what is actually read.
bool readConfigFile(const std::string& path, std::string& text, LoadError& error) {
  error = LoadError{};
  text.clear();
  auto fail = [&](std::string message) {
    error.file = path;
    error.message = std::move(message);
    return false;
  };
  auto check = [&](const struct stat& st) -> bool {
    if (!S_ISREG(st.st_mode))
      return fail(std::string("is ") + notRegularKind(st.st_mode) + ", not a regular file; refusing to read it");
    if (st.st_size > kMaxConfigBytes)
      return fail("is " + std::to_string(static_cast<long long>(st.st_size)) + " bytes; " + sizeLimitText());
    return true;
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail(std::string("cannot open: ") + std::strerror(errno));
  if (!check(st)) return false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return fail(std::string("cannot open: ") + std::strerror(errno));
  auto closeAndFail = [&](std::string message) {
    ::close(fd);
    return fail(std::move(message));
  };
  if (::fstat(fd, &st) != 0) return closeAndFail(std::string("cannot read: ") + std::strerror(errno));
  if (!check(st)) {
    ::close(fd);
    return false;
  }
  try {
    text.reserve(static_cast<size_t>(st.st_size));
    char buffer[16384];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        return closeAndFail(std::string("cannot read: ") + std::strerror(errno));
      }
      text.append(buffer, static_cast<size_t>(n));
      // The file may grow while it is read (a writer still at work): the limit holds anyway.
      if (text.size() > static_cast<size_t>(kMaxConfigBytes)) {
        text.clear();
        return closeAndFail("grew past " + std::to_string(kMaxConfigBytes) + " bytes while being read; " +
                            sizeLimitText());
      }
    }
  } catch (const std::exception& e) {
    text.clear();
    return closeAndFail(std::string("cannot read: ") + e.what());
  }
  ::close(fd);
  return true;
}

bool loadTopologyFile(const std::string& path, Topology& out, LoadError& error) {
  std::string text;
  return readConfigFile(path, text, error) && loadTopologyText(text, path, out, error);
}

bool loadTopologyFile(const std::string& path, Topology& out, std::vector<LoadError>& errors) {
  errors.clear();
  std::string text;
  LoadError unreadable;
  if (!readConfigFile(path, text, unreadable)) {
    errors.push_back(std::move(unreadable));
    return false;
  }
  return loadTopologyText(text, path, out, errors);
}

}  // namespace config
