// redis_command_keys.cc: reading one request's arguments the way its row in the command table
// describes them. Which arguments are keys (keyIndexes: the one key reader that routing,
// fan-out, transactions, transitions and COMMAND GETKEYS share), how long a blocking command
// may wait, and which forms of a routed command the proxy refuses, and why. Pure functions of
// the row and the arguments: no session, no I/O, so they are tested alone and over Redis's own
// key specifications (tests/integration/test_redis_command_audit.py).
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstdint>

#include "proxy/redis/redis_commands.h"

namespace proxy {
namespace {

// Parses numkeys as Redis does (string2ll): "0" or a digit 1-9 followed by digits; no sign,
// spaces or leading zeros. A negative count is simply not a valid one here. Counts above
// `limit` fail early, so overflow cannot happen.
bool parseCount(std::string_view s, size_t limit, size_t& out) noexcept {
  if (s.empty() || s.size() > 20) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  size_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<size_t>(c - '0');
    if (n > limit) return false;
  }
  out = n;
  return true;
}

// XREAD [COUNT n] [BLOCK ms] STREAMS k.. id..; XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK]
// STREAMS k.. id..: reads the options in order, as Redis does, and returns the position of
// the STREAMS keyword (0 when the request is malformed) and that of BLOCK's value (0 if none).
struct StreamsArgs {
  size_t streamsAt = 0;
  size_t blockAt = 0;
};
StreamsArgs findStreams(size_t argc, ArgReader arg) {
  StreamsArgs out;
  for (size_t i = 1; i < argc;) {
    const std::string_view a = arg(i);
    if (equalsLower(a, "streams")) {
      out.streamsAt = i;
      return out;
    }
    if (equalsLower(a, "block")) out.blockAt = i + 1;
    if (equalsLower(a, "count") || equalsLower(a, "block")) i += 2;
    else if (equalsLower(a, "group")) i += 3;
    else if (equalsLower(a, "noack")) i += 1;
    else break;
  }
  return {};
}

// Milliseconds from a timeout in seconds as BLPOP takes it (a double), rounded up.
int64_t secondsToMs(std::string_view s) {
  if (s.empty() || s.size() > 64) return kBadTimeout;
  char buf[65];
  s.copy(buf, s.size());
  buf[s.size()] = '\0';
  char* end = nullptr;
  const double v = std::strtod(buf, &end);
  if (end != buf + s.size() || !(v >= 0) || v > 1e12) return kBadTimeout;
  if (v == 0) return kForever;
  return static_cast<int64_t>(std::ceil(v * 1000));
}

}  // namespace

int64_t blockingTimeoutMs(const CommandSpec& spec, size_t argc, ArgReader arg) {
  if (spec.keys.streams) {
    const StreamsArgs s = findStreams(argc, arg);
    if (s.blockAt == 0) return kNotBlocking;
    if (s.blockAt >= argc) return kBadTimeout;
    const std::string_view v = arg(s.blockAt);
    int64_t ms = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
    if (ec != std::errc() || p != v.data() + v.size() || ms < 0) return kBadTimeout;
    return ms;  // 0: forever, as kForever
  }
  if (spec.timeoutAt == 0) return kNotBlocking;
  const size_t at = spec.timeoutAt > 0 ? static_cast<size_t>(spec.timeoutAt) : argc - static_cast<size_t>(-spec.timeoutAt);
  if (at == 0 || at >= argc) return kBadTimeout;
  return secondsToMs(arg(at));
}

bool keyIndexes(const CommandSpec& spec, size_t argc, ArgReader arg, std::vector<uint32_t>& out) {
  const KeySpec& k = spec.keys;
  if (argc > UINT32_MAX) return false;

  if (k.streams) {
    // STREAMS k1 .. kn id1 .. idn: as many IDs as keys, at least one of each.
    const StreamsArgs s = findStreams(argc, arg);
    if (s.streamsAt == 0) return false;
    const size_t rest = argc - s.streamsAt - 1;
    if (rest == 0 || rest % 2 != 0) return false;
    out.reserve(out.size() + rest / 2);
    for (size_t i = 1; i <= rest / 2; ++i) out.push_back(static_cast<uint32_t>(s.streamsAt + i));
    return true;
  }

  // Validate everything before appending anything.
  std::vector<uint32_t> destinations;  // after STORE / STOREDIST (rare: only then allocated)
  if (k.optionsFrom > 0) {
    // SORT's and GEORADIUS's options, read in order: a value never counts as a keyword.
    for (size_t i = static_cast<size_t>(k.optionsFrom); i < argc;) {
      const std::string_view a = arg(i);
      if (equalsLower(a, "store") || equalsLower(a, "storedist")) {
        if (i + 1 >= argc) return false;
        destinations.push_back(static_cast<uint32_t>(i + 1));
        i += 2;
      } else if (equalsLower(a, "by") || equalsLower(a, "get") || equalsLower(a, "count")) {
        i += 2;
      } else if (equalsLower(a, "limit")) {
        i += 3;
      } else {
        i += 1;
      }
    }
  }
  size_t first = 0;
  size_t fixedCount = 0;
  const size_t step = k.step > 0 ? static_cast<size_t>(k.step) : 1;
  if (k.first > 0) {
    first = static_cast<size_t>(k.first);
    if (argc <= first) return false;
    size_t last = first;
    if (k.last < 0) {
      const size_t back = static_cast<size_t>(-k.last);
      if (argc < back + first) return false;
      last = argc - back;
      // Each key brings its step-1 companions (MSET's value): a cut-off pair is malformed.
      if (step > 1 && (argc - first) % step != 0) return false;
    } else if (k.last > k.first) {
      last = static_cast<size_t>(k.last);
      if (argc <= last) return false;
    }
    fixedCount = (last - first) / step + 1;
  }

  size_t numkeysAt = 0;
  size_t numkeys = 0;
  if (k.numkeysAt > 0) {
    numkeysAt = static_cast<size_t>(k.numkeysAt);
    if (argc <= numkeysAt) return false;
    if (!parseCount(arg(numkeysAt), argc - numkeysAt - 1, numkeys)) return false;
  }

  out.reserve(out.size() + fixedCount + numkeys + destinations.size());
  for (size_t i = 0; i < fixedCount; ++i) out.push_back(static_cast<uint32_t>(first + i * step));
  for (size_t i = 1; i <= numkeys; ++i) out.push_back(static_cast<uint32_t>(numkeysAt + i));
  out.insert(out.end(), destinations.begin(), destinations.end());
  return true;
}

bool commandHasKeys(const CommandSpec& spec) noexcept {
  const KeySpec& k = spec.keys;
  return (k.first > 0 || k.numkeysAt > 0 || k.streams) && !spec.has(kChannel);
}

std::string refusalOf(const CommandSpec& spec, size_t argc, ArgReader arg) {
  if (spec.route == Route::Unsupported)
    return "ringproxy does not support '" + std::string(spec.name) + "': " + std::string(refusalReason(spec.refusal));
  switch (spec.check) {
    case ArgCheck::None: break;
    case ArgCheck::SortPatterns:
      // BY and GET patterns with '*' read other keys (weight_*, object_*->field), which may
      // live on other servers: refused rather than sorted against keys the owner lacks. The
      // options are walked as keyIndexes walks them, so a value is never read as a keyword.
      for (size_t i = 2; i + 1 < argc; ++i) {
        const std::string_view opt = arg(i);
        if (equalsLower(opt, "limit")) {
          i += 2;
          continue;
        }
        const bool pattern = equalsLower(opt, "by") || equalsLower(opt, "get");
        if (pattern && arg(i + 1).find('*') != std::string_view::npos) {
          return "ringproxy does not support SORT with " + std::string(opt) + " " + std::string(arg(i + 1)) +
                 ": the pattern reads other keys, which may live on other servers (BY nosort and GET # work)";
        }
        if (pattern || equalsLower(opt, "store")) ++i;
      }
      break;
    case ArgCheck::UsageOnly:
      // MEMORY USAGE key acts on a key; DOCTOR, STATS, PURGE, MALLOC-STATS act on one server.
      if (argc >= 2 && !equalsLower(arg(1), "usage")) {
        return "ringproxy does not support 'MEMORY " + std::string(arg(1)) +
               "': it answers MEMORY USAGE by key; the other subcommands administer one server: send them to the "
               "backends directly";
      }
      break;
  }
  return {};
}

std::string keylessRefusal(const CommandSpec& spec) {
  return "ringproxy cannot route '" + std::string(spec.name) +
         "' without a key: numkeys must be at least 1 so the proxy knows which server runs it";
}

KeyRouting routedKeys(const CommandSpec& spec, size_t argc, ArgReader arg, std::vector<uint32_t>& out,
                      std::string& why) {
  if (spec.route == Route::Unsupported) {
    why = refusalOf(spec, argc, arg);
    return KeyRouting::Refused;
  }
  if (!commandHasKeys(spec)) return KeyRouting::NoKeys;
  if (!arityAccepts(spec, argc)) return KeyRouting::WrongArity;
  why = refusalOf(spec, argc, arg);
  if (!why.empty()) return KeyRouting::Refused;
  const size_t before = out.size();
  if (!keyIndexes(spec, argc, arg, out)) return KeyRouting::Malformed;
  if (out.size() == before) {
    why = keylessRefusal(spec);
    return KeyRouting::Refused;
  }
  return KeyRouting::Routed;
}

}  // namespace proxy
