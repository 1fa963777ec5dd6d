// redis_commands.h: what the proxy knows about each Redis command, as data. The session looks
// a command up once per request (case-insensitively); the row says how to check it (arity,
// flags), where its keys are, and which session function handles it: answer it locally,
// forward it by its key(s), split it across shards and merge the replies, or refuse it.
// Adding a command is adding a row (and, for a new kind of handling, its handler).
// Tests iterate over this table. The rows are in redis_commands.cc; reading a request's
// arguments by its row (its keys, a blocking timeout, a refused form) in redis_command_keys.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace proxy {

class RedisSession;
struct CommandSpec;

enum class Route : uint8_t {
  Local,        // answered by the proxy (PING, ECHO, QUIT, SELECT, AUTH, HELLO, COMMAND, ...)
  Keyed,        // forwarded to the owner of its key(s); all keys must share one owner
  FanoutMget,   // MGET: one MGET per owner, array merged in key order
  FanoutMset,   // MSET: one MSET per owner, +OK when every part succeeded
  FanoutSum,    // DEL, UNLINK, EXISTS, TOUCH: one per owner, integer replies summed
  Blocking,     // may wait for data (BLPOP, XREAD BLOCK): on a connection of its own to the owner
  Unsupported,  // known to Redis but not proxyable (see Refusal)
};

// Which arguments are keys. Positions count the command name as 0. A negative `last` counts
// from the end (-1 = the last argument). With numkeysAt > 0, the argument at that position is
// a count N and the N arguments after it are keys too (EVAL, ZUNIONSTORE, SINTERCARD, ...).
struct KeySpec {
  int8_t first = 0;      // 0: no fixed-position key
  int8_t last = 0;
  int8_t step = 1;
  int8_t numkeysAt = 0;
  // XREAD/XREADGROUP: the keys are the first half of the arguments after the STREAMS
  // keyword (found by reading the options before it as Redis does).
  bool streams = false;
  // SORT, GEORADIUS...: the options start here, and the argument after a STORE or STOREDIST
  // option is a key too (a destination). 0: no such options.
  int8_t optionsFrom = 0;
};

// What a row may say about a command besides its route.
enum CommandFlag : uint8_t {
  kWrite = 1,        // modifies data (COMMAND INFO flags)
  kNoAuth = 2,       // allowed before AUTH on a pool with redis_auth (AUTH, HELLO, QUIT)
  kRunsInMulti = 4,  // runs at once between MULTI and EXEC instead of being queued
  kPure = 8,         // its reply depends on its arguments only: may be queued in MULTI (PING)
  kInSubscribed = 16,  // allowed to a RESP2 client with subscriptions ((UN)SUBSCRIBE, PING, QUIT, RESET)
  // Its key spec names a channel (PUBLISH, SPUBLISH): routed like a key, but not a key, so
  // COMMAND GETKEYS and COMMAND INFO say it has none, as Redis does.
  kChannel = 32,
};

// Why a command known to Redis is refused (Route::Unsupported): its reply says so.
enum class Refusal : uint8_t {
  None,
  Database,  // another database than the pool's redis_db (MOVE, SWAPDB)
  Admin,     // administers one server (CONFIG, SAVE, MONITOR, ACL)
  Cluster,   // Redis Cluster's (CLUSTER, ASKING, READONLY)
};
// The reason in words, for the error reply and COMMAND DOCS.
std::string_view refusalReason(Refusal r) noexcept;

// What the proxy checks in a request's arguments before routing it, beyond its key spec:
// some forms of a command it routes would act on keys or servers its key spec cannot name.
enum class ArgCheck : uint8_t {
  None,
  SortPatterns,  // SORT, SORT_RO: a BY or GET pattern with '*' reads other keys: refused
  UsageOnly,     // MEMORY: USAGE key is routed by its key; the other subcommands are refused
};

// Handles a request for the command: `req` is the request's bytes in the input buffer.
using CommandHandler = void (RedisSession::*)(const CommandSpec& spec, const char* req);
// For kPure commands: appends the reply to `out`; false if the arguments are not acceptable.
using PureReply = bool (RedisSession::*)(const char* req, std::string& out);

struct CommandSpec {
  std::string_view name;  // lower case
  int16_t arity;          // as Redis: N exactly, -N at least N (command name included)
  Route route;
  KeySpec keys;
  uint8_t flags;          // CommandFlag bits
  CommandHandler handler;
  PureReply pure = nullptr;
  Refusal refusal = Refusal::None;
  // Route::Blocking: the position of the timeout in seconds (negative: from the end); 0 for
  // XREAD/XREADGROUP, whose BLOCK option gives milliseconds.
  int8_t timeoutAt = 0;
  ArgCheck check = ArgCheck::None;

  bool has(CommandFlag f) const { return (flags & f) != 0; }
  bool write() const { return has(kWrite); }
};

// The whole table, sorted by name.
std::span<const CommandSpec> commandTable() noexcept;

// Command words and options are ASCII and case-insensitive, as Redis reads them.
// Whether `s` is `lower` (given in lower case) in any case.
[[nodiscard]] bool equalsLower(std::string_view s, std::string_view lower) noexcept;
// `s` in lower case.
[[nodiscard]] std::string asciiLower(std::string_view s);

// Case-insensitive lookup; nullptr for a command Redis does not have (or we do not know).
// Allocates nothing.
const CommandSpec* findCommand(std::string_view name) noexcept;

// Whether `argc` arguments (command name included) satisfy the command's arity, as Redis
// checks it before anything else.
[[nodiscard]] constexpr bool arityAccepts(const CommandSpec& spec, size_t argc) noexcept {
  return spec.arity >= 0 ? argc == static_cast<size_t>(spec.arity)
                         : argc >= static_cast<size_t>(-spec.arity);
}

// A non-owning reference to a callable `std::string_view(size_t i)` giving argument i as text
// (e.g. a lambda over the parser's spans). Lighter than std::function: no allocation, one
// indirect call. Like std::string_view it must not outlive what it refers to: build it in
// the call's argument list, never store it.
class ArgReader {
 public:
  template <typename F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, ArgReader> &&
             std::is_invocable_r_v<std::string_view, const F&, size_t>)
  ArgReader(const F& f) noexcept  // implicit on purpose: callers pass a lambda
      : object_(&f), call_([](const void* o, size_t i) -> std::string_view {
          return (*static_cast<const F*>(o))(i);
        }) {}

  std::string_view operator()(size_t i) const { return call_(object_, i); }

 private:
  const void* object_;
  std::string_view (*call_)(const void*, size_t);
};

// How long a request of a Route::Blocking command may wait, in milliseconds (rounded up):
// kForever for a timeout of 0, kNotBlocking when it will not wait (XREAD without BLOCK).
// A timeout the proxy cannot read (negative, not a number) gives kBadTimeout: the backend
// then refuses the request with its own error, at once.
inline constexpr int64_t kForever = 0;
inline constexpr int64_t kNotBlocking = -1;
inline constexpr int64_t kBadTimeout = -2;
[[nodiscard]] int64_t blockingTimeoutMs(const CommandSpec& spec, size_t argc, ArgReader arg);

// Collects the indexes of the key arguments of a request with `argc` arguments (command name
// included): the fixed range of spec.keys first, then the numkeys block. `arg` is read only
// for the numkeys argument. Returns false, appending nothing, when the request is too short
// for its key spec, when a step > 1 range (MSET's key/value pairs) does not end on a whole
// group, or when numkeys is not a non-negative decimal count (as Redis parses it) that fits
// in the arguments after it. numkeys 0 is accepted (EVAL with no keys); the caller decides
// what a keyless request means. Keys are appended to `out`, which reserves at most once, so
// a caller that reuses `out` allocates nothing once its capacity has grown.
//
// Destinations found by keyword (SORT ... STORE dst, GEORADIUS ... STORE/STOREDIST dst) are
// keys too (KeySpec::optionsFrom), so they must share the source's owner. Every repeated
// STORE/STOREDIST counts: Redis writes the last one only, but naming one more key than it
// touches can only refuse a request (CROSSSLOT), never misroute it.
//
// This is the one key reader: routing, fan-out, transactions, transitions and COMMAND GETKEYS
// all call it (redis_command_keys.cc).
[[nodiscard]] bool keyIndexes(const CommandSpec& spec, size_t argc, ArgReader arg,
                              std::vector<uint32_t>& out);

// Whether the command names keys at all (by position, by numkeys, after STREAMS). A channel
// is not a key (kChannel).
[[nodiscard]] bool commandHasKeys(const CommandSpec& spec) noexcept;

// Why the proxy refuses this request, in words without "ERR ": the whole command
// (Route::Unsupported), or this form of it (ArgCheck: SORT BY weight_*, MEMORY DOCTOR). Empty
// when it does not. Reads no argument at or past `argc`.
[[nodiscard]] std::string refusalOf(const CommandSpec& spec, size_t argc, ArgReader arg);
// Why a request whose keys may be absent (EVAL with numkeys 0) cannot run when they are: the
// proxy would not know which server runs it.
[[nodiscard]] std::string keylessRefusal(const CommandSpec& spec);

// What the proxy does with one request's keys, from its row and its arguments alone, checked
// in this order (COMMAND GETKEYS answers from it): a refused command, a command without keys,
// the arity, the form's refusal (refusalOf), the key spec (keyIndexes), a request left without
// keys.
enum class KeyRouting : uint8_t {
  Routed,      // `out` holds the indexes of the keys; the request goes to their owner(s)
  NoKeys,      // the command has no keys (the proxy answers it, or sends it to every server)
  WrongArity,  // the argument count does not fit the command's arity
  Malformed,   // keyIndexes refused it: too short for the key spec, or a bad numkeys
  Refused,     // the proxy will not run it: `why` (refusalOf, keylessRefusal) says why
};
[[nodiscard]] KeyRouting routedKeys(const CommandSpec& spec, size_t argc, ArgReader arg,
                                    std::vector<uint32_t>& out, std::string& why);

}  // namespace proxy
