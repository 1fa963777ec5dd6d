#include "proxy/redis/redis_commands.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "proxy/redis/redis_session.h"

namespace proxy {
namespace {

// Arities, key positions and the write flag are Redis 7's (COMMAND INFO). Where 7.2 widened
// an arity (ZRANK/ZREVRANK ... WITHSCORE) the wider one is listed: a 7.0 backend still
// refuses the new argument itself, with its own error.

// Key shapes shared by many commands.
constexpr KeySpec kNoKeys{};
constexpr KeySpec kKey1{1, 1, 1, 0};        // CMD key ...
constexpr KeySpec kKeys1To2{1, 2, 1, 0};    // CMD src dst ...
constexpr KeySpec kKeysAll{1, -1, 1, 0};    // CMD key [key ...]
constexpr KeySpec kKeyValuePairs{1, -1, 2, 0};  // CMD key value [key value ...]
constexpr KeySpec kKey2{2, 2, 1, 0};        // CMD SUBCOMMAND key ... (OBJECT, XINFO, XGROUP)
constexpr KeySpec kKeysFrom2{2, -1, 1, 0};  // BITOP op dst src [src ...]
constexpr KeySpec kNumkeysAt1{0, 0, 1, 1};  // CMD numkeys key [key ...] ...
constexpr KeySpec kNumkeysAt2{0, 0, 1, 2};  // EVAL script numkeys key [key ...] arg ...
constexpr KeySpec kDestNumkeysAt2{1, 1, 1, 2};  // CMD dst numkeys key [key ...] ...
constexpr KeySpec kKeysButLast{1, -2, 1, 0};    // BLPOP key [key ...] timeout
constexpr KeySpec kStreams{0, 0, 1, 0, true};   // XREAD ... STREAMS key [key ...] id [id ...]
constexpr KeySpec kSortKeys{1, 1, 1, 0, false, 2};       // SORT key [BY p] [LIMIT o c] [GET p]... [STORE dst]
constexpr KeySpec kGeoRadiusKeys{1, 1, 1, 0, false, 6};  // GEORADIUS key lon lat r unit ... [STORE[DIST] dst]
constexpr KeySpec kGeoMemberKeys{1, 1, 1, 0, false, 5};  // GEORADIUSBYMEMBER key member r unit ...

constexpr CommandSpec keyed(std::string_view name, int16_t arity, KeySpec keys, bool write) {
  return {name, arity, Route::Keyed, keys, write ? uint8_t(kWrite) : uint8_t(0), &RedisSession::forwardKeyed};
}
constexpr CommandSpec reads(std::string_view name, int16_t arity, KeySpec keys = kKey1) {
  return keyed(name, arity, keys, false);
}
constexpr CommandSpec writes(std::string_view name, int16_t arity, KeySpec keys = kKey1) {
  return keyed(name, arity, keys, true);
}
// PUBLISH, SPUBLISH: forwarded to the owner of the channel, which is not a key.
constexpr CommandSpec channel(std::string_view name, int16_t arity) {
  return {name, arity, Route::Keyed, kKey1, kChannel, &RedisSession::forwardKeyed};
}
constexpr CommandSpec fanout(std::string_view name, int16_t arity, Route route, KeySpec keys,
                             bool write) {
  return {name, arity, route, keys, write ? uint8_t(kWrite) : uint8_t(0), &RedisSession::fanout};
}
constexpr CommandSpec local(std::string_view name, int16_t arity, CommandHandler handler, uint8_t flags = 0,
                            KeySpec keys = kNoKeys) {
  return {name, arity, Route::Local, keys, flags, handler};
}
// Answered by the proxy from the arguments alone, also inside MULTI.
constexpr CommandSpec pure(std::string_view name, int16_t arity, PureReply reply) {
  return {name, arity, Route::Local, kNoKeys, kPure, &RedisSession::cmdPure, reply};
}
constexpr CommandSpec refused(std::string_view name, int16_t arity, Refusal why, bool write = false) {
  return {name,    arity, Route::Unsupported, kNoKeys, write ? uint8_t(kWrite) : uint8_t(0), &RedisSession::cmdRefused,
          nullptr, why};
}

// May block: `timeoutAt` is where its timeout in seconds is (0: XREAD's BLOCK option).
constexpr CommandSpec blocking(std::string_view name, int16_t arity, KeySpec keys, int8_t timeoutAt, bool write) {
  return {name,    arity, Route::Blocking, keys, write ? uint8_t(kWrite) : uint8_t(0), &RedisSession::cmdBlocking,
          nullptr, Refusal::None, timeoutAt};
}

constexpr bool kWrites = true;
using S = RedisSession;

// Sorted by name (checked below at compile time).
constexpr CommandSpec kCommands[] = {
    local("acl", -2, &S::cmdAcl, kNoAuth),
    writes("append", 3),
    refused("asking", 1, Refusal::Cluster),
    local("auth", -2, &S::cmdAuth, kNoAuth),
    refused("bgrewriteaof", 1, Refusal::Admin),
    refused("bgsave", -1, Refusal::Admin),
    reads("bitcount", -2),
    writes("bitfield", -2),
    reads("bitfield_ro", -2),
    writes("bitop", -4, kKeysFrom2),
    reads("bitpos", -3),
    blocking("blmove", 6, kKeys1To2, -1, kWrites),
    blocking("blmpop", -5, kNumkeysAt2, 1, kWrites),
    blocking("blpop", -3, kKeysButLast, -1, kWrites),
    blocking("brpop", -3, kKeysButLast, -1, kWrites),
    blocking("brpoplpush", 4, kKeys1To2, -1, kWrites),
    blocking("bzmpop", -5, kNumkeysAt2, 1, kWrites),
    blocking("bzpopmax", -3, kKeysButLast, -1, kWrites),
    blocking("bzpopmin", -3, kKeysButLast, -1, kWrites),
    local("client", -2, &S::cmdClient),
    refused("cluster", -2, Refusal::Cluster),
    local("command", -1, &S::cmdCommand),
    refused("config", -2, Refusal::Admin),
    writes("copy", -3, kKeys1To2),
    local("dbsize", 1, &S::cmdDbsize),
    refused("debug", -2, Refusal::Admin),
    writes("decr", 2),
    writes("decrby", 3),
    fanout("del", -2, Route::FanoutSum, kKeysAll, kWrites),
    local("discard", 1, &S::cmdDiscard, kRunsInMulti),
    reads("dump", 2),
    pure("echo", 2, &S::echoReply),
    reads("eval", -3, kNumkeysAt2),
    reads("eval_ro", -3, kNumkeysAt2),
    reads("evalsha", -3, kNumkeysAt2),
    reads("evalsha_ro", -3, kNumkeysAt2),
    local("exec", 1, &S::cmdExec, kRunsInMulti),
    fanout("exists", -2, Route::FanoutSum, kKeysAll, false),
    writes("expire", -3),
    writes("expireat", -3),
    reads("expiretime", 2),
    refused("failover", -1, Refusal::Admin),
    reads("fcall", -3, kNumkeysAt2),
    reads("fcall_ro", -3, kNumkeysAt2),
    local("flushall", -1, &S::cmdFlush, kWrite),
    local("flushdb", -1, &S::cmdFlush, kWrite),
    local("function", -2, &S::cmdFunction),
    writes("geoadd", -5),
    reads("geodist", -4),
    reads("geohash", -2),
    reads("geopos", -2),
    writes("georadius", -6, kGeoRadiusKeys),
    reads("georadius_ro", -6),
    writes("georadiusbymember", -5, kGeoMemberKeys),
    reads("georadiusbymember_ro", -5),
    reads("geosearch", -7),
    writes("geosearchstore", -8, kKeys1To2),
    reads("get", 2),
    reads("getbit", 3),
    writes("getdel", 2),
    writes("getex", -2),
    reads("getrange", 4),
    writes("getset", 3),
    writes("hdel", -3),
    local("hello", -1, &S::cmdHello, kNoAuth),
    reads("hexists", 3),
    reads("hget", 3),
    reads("hgetall", 2),
    writes("hincrby", 4),
    writes("hincrbyfloat", 4),
    reads("hkeys", 2),
    reads("hlen", 2),
    reads("hmget", -3),
    writes("hmset", -4),
    reads("hrandfield", -2),
    reads("hscan", -3),
    writes("hset", -4),
    writes("hsetnx", 4),
    reads("hstrlen", 3),
    reads("hvals", 2),
    writes("incr", 2),
    writes("incrby", 3),
    writes("incrbyfloat", 3),
    local("info", -1, &S::cmdInfo),
    local("keys", 2, &S::cmdKeys),
    refused("lastsave", 1, Refusal::Admin),
    refused("latency", -2, Refusal::Admin),
    reads("lcs", -3, kKeys1To2),
    reads("lindex", 3),
    writes("linsert", 5),
    reads("llen", 2),
    writes("lmove", 5, kKeys1To2),
    writes("lmpop", -4, kNumkeysAt1),
    refused("lolwut", -1, Refusal::Admin),
    writes("lpop", -2),
    reads("lpos", -3),
    writes("lpush", -3),
    writes("lpushx", -3),
    reads("lrange", 4),
    writes("lrem", 4),
    writes("lset", 4),
    writes("ltrim", 4),
    // MEMORY USAGE key; the other subcommands administer one server.
    {"memory", -2, Route::Keyed, kKey2, 0, &S::forwardKeyed, nullptr, Refusal::None, 0, ArgCheck::UsageOnly},
    fanout("mget", -2, Route::FanoutMget, kKeysAll, false),
    refused("migrate", -6, Refusal::Admin, kWrites),
    refused("module", -2, Refusal::Admin),
    refused("monitor", 1, Refusal::Admin),
    writes("move", 3),  // to another database of the same server: the key's owner
    fanout("mset", -3, Route::FanoutMset, kKeyValuePairs, kWrites),
    writes("msetnx", -3, kKeyValuePairs),
    local("multi", 1, &S::cmdMulti, kRunsInMulti),
    reads("object", -2, kKey2),
    writes("persist", 2),
    writes("pexpire", -3),
    writes("pexpireat", -3),
    reads("pexpiretime", 2),
    writes("pfadd", -2),
    reads("pfcount", -2, kKeysAll),
    refused("pfdebug", -3, Refusal::Admin, kWrites),
    writes("pfmerge", -2, kKeysAll),
    refused("pfselftest", 1, Refusal::Admin),
    {"ping", -1, Route::Local, kNoKeys, kPure | kInSubscribed, &S::cmdPure, &S::pingReply},
    writes("psetex", 4),
    local("psubscribe", -2, &S::cmdSubscribe, kInSubscribed),
    refused("psync", -3, Refusal::Admin),
    reads("pttl", 2),
    channel("publish", 3),
    local("pubsub", -2, &S::cmdPubsub),
    local("punsubscribe", -1, &S::cmdUnsubscribe, kInSubscribed),
    local("quit", -1, &S::cmdQuit, kNoAuth | kRunsInMulti | kInSubscribed),
    local("randomkey", 1, &S::cmdRandomkey),
    refused("readonly", 1, Refusal::Cluster),
    refused("readwrite", 1, Refusal::Cluster),
    writes("rename", 3, kKeys1To2),
    writes("renamenx", 3, kKeys1To2),
    refused("replconf", -1, Refusal::Admin),
    refused("replicaof", 3, Refusal::Admin),
    local("reset", 1, &S::cmdReset, kRunsInMulti | kInSubscribed),
    writes("restore", -4),
    refused("restore-asking", -4, Refusal::Admin, kWrites),
    refused("role", 1, Refusal::Admin),
    writes("rpop", -2),
    writes("rpoplpush", 3, kKeys1To2),
    writes("rpush", -3),
    writes("rpushx", -3),
    writes("sadd", -3),
    refused("save", 1, Refusal::Admin),
    local("scan", -2, &S::cmdScan),
    reads("scard", 2),
    local("script", -2, &S::cmdScript),
    reads("sdiff", -2, kKeysAll),
    writes("sdiffstore", -3, kKeysAll),
    local("select", 2, &S::cmdSelect),
    writes("set", -3),
    writes("setbit", 4),
    writes("setex", 4),
    writes("setnx", 3),
    writes("setrange", 4),
    refused("shutdown", -1, Refusal::Admin),
    reads("sinter", -2, kKeysAll),
    reads("sintercard", -3, kNumkeysAt1),
    writes("sinterstore", -3, kKeysAll),
    reads("sismember", 3),
    refused("slaveof", 3, Refusal::Admin),
    refused("slowlog", -2, Refusal::Admin),
    reads("smembers", 2),
    reads("smismember", -3),
    writes("smove", 4, kKeys1To2),
    {"sort", -2, Route::Keyed, kSortKeys, kWrite, &S::forwardKeyed, nullptr, Refusal::None, 0, ArgCheck::SortPatterns},
    {"sort_ro", -2, Route::Keyed, kKey1, 0, &S::forwardKeyed, nullptr, Refusal::None, 0, ArgCheck::SortPatterns},
    writes("spop", -2),
    channel("spublish", 3),
    reads("srandmember", -2),
    writes("srem", -3),
    reads("sscan", -3),
    local("ssubscribe", -2, &S::cmdSubscribe, kInSubscribed),
    reads("strlen", 2),
    local("subscribe", -2, &S::cmdSubscribe, kInSubscribed),
    reads("substr", 4),
    reads("sunion", -2, kKeysAll),
    writes("sunionstore", -3, kKeysAll),
    local("sunsubscribe", -1, &S::cmdUnsubscribe, kInSubscribed),
    refused("swapdb", 3, Refusal::Database, kWrites),
    refused("sync", 1, Refusal::Admin),
    pure("time", 1, &S::timeReply),
    fanout("touch", -2, Route::FanoutSum, kKeysAll, false),
    reads("ttl", 2),
    reads("type", 2),
    fanout("unlink", -2, Route::FanoutSum, kKeysAll, kWrites),
    local("unsubscribe", -1, &S::cmdUnsubscribe, kInSubscribed),
    local("unwatch", 1, &S::cmdUnwatch),
    local("wait", 3, &S::cmdWait),
    local("waitaof", 4, &S::cmdWait),
    local("watch", -2, &S::cmdWatch, kRunsInMulti, kKeysAll),
    writes("xack", -4),
    writes("xadd", -5),
    writes("xautoclaim", -6),
    writes("xclaim", -6),
    writes("xdel", -3),
    // A container: Redis flags its subcommands, not XGROUP itself. Every one but HELP writes.
    writes("xgroup", -2, kKey2),
    reads("xinfo", -2, kKey2),
    reads("xlen", 2),
    reads("xpending", -3),
    reads("xrange", -4),
    blocking("xread", -4, kStreams, 0, false),
    blocking("xreadgroup", -7, kStreams, 0, kWrites),
    reads("xrevrange", -4),
    writes("xsetid", -3),
    writes("xtrim", -4),
    writes("zadd", -4),
    reads("zcard", 2),
    reads("zcount", 4),
    reads("zdiff", -3, kNumkeysAt1),
    writes("zdiffstore", -4, kDestNumkeysAt2),
    writes("zincrby", 4),
    reads("zinter", -3, kNumkeysAt1),
    reads("zintercard", -3, kNumkeysAt1),
    writes("zinterstore", -4, kDestNumkeysAt2),
    reads("zlexcount", 4),
    writes("zmpop", -4, kNumkeysAt1),
    reads("zmscore", -3),
    writes("zpopmax", -2),
    writes("zpopmin", -2),
    reads("zrandmember", -2),
    reads("zrange", -4),
    reads("zrangebylex", -4),
    reads("zrangebyscore", -4),
    writes("zrangestore", -5, kKeys1To2),
    reads("zrank", -3),
    writes("zrem", -3),
    writes("zremrangebylex", 4),
    writes("zremrangebyrank", 4),
    writes("zremrangebyscore", 4),
    reads("zrevrange", -4),
    reads("zrevrangebylex", -4),
    reads("zrevrangebyscore", -4),
    reads("zrevrank", -3),
    reads("zscan", -3),
    reads("zscore", 3),
    reads("zunion", -3, kNumkeysAt1),
    writes("zunionstore", -4, kDestNumkeysAt2),
};

constexpr bool strictlySorted() {
  for (size_t i = 1; i < std::size(kCommands); ++i) {
    if (!(kCommands[i - 1].name < kCommands[i].name)) return false;
  }
  return true;
}
static_assert(strictlySorted(), "kCommands must be sorted by name, without duplicates");

constexpr size_t longestName() {
  size_t n = 0;
  for (const CommandSpec& c : kCommands) n = std::max(n, c.name.size());
  return n;
}
constexpr size_t kMaxNameLength = longestName();

}  // namespace

bool equalsLower(std::string_view s, std::string_view lower) noexcept {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c) != lower[i]) return false;
  }
  return true;
}

std::string asciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::span<const CommandSpec> commandTable() noexcept { return kCommands; }

std::string_view refusalReason(Refusal r) noexcept {
  switch (r) {
    case Refusal::None: return "";
    case Refusal::Database: return "ringproxy serves one database per pool (redis_db in the config)";
    case Refusal::Admin: return "it administers one server: send it to the backends directly";
    case Refusal::Cluster: return "it is a Redis Cluster command, and ringproxy presents one standalone server";
  }
  return "";
}

namespace {

class CommandIndex {
 public:
  CommandIndex() {
    for (const CommandSpec& c : kCommands) {
      size_t slot = hash(c.name) & (kSlots - 1);
      while (slots_[slot] != nullptr) slot = (slot + 1) & (kSlots - 1);
      slots_[slot] = &c;
    }
  }
  const CommandSpec* find(std::string_view name) const noexcept {
    for (size_t slot = hash(name) & (kSlots - 1);; slot = (slot + 1) & (kSlots - 1)) {
      const CommandSpec* c = slots_[slot];
      if (c == nullptr || c->name == name) return c;
    }
  }

 private:
  static constexpr size_t kSlots = 1024;  // > 4x the commands: short probe runs
  static_assert(std::size(kCommands) * 2 < kSlots);
  static size_t hash(std::string_view s) noexcept {
    uint32_t h = 2166136261u;  // FNV-1a
    for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    return h;
  }
  const CommandSpec* slots_[kSlots] = {};
};

}  // namespace

const CommandSpec* findCommand(std::string_view name) noexcept {
  if (name.empty() || name.size() > kMaxNameLength) return nullptr;
  char lower[kMaxNameLength];
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    lower[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  const std::string_view key(lower, name.size());
  // An open-addressed hash table over the names, built once: a lookup is one hash and
  // usually one comparison, where a binary search over the names costs a dozen string
  // comparisons on every request.
  static const CommandIndex index;
  return index.find(key);
}

}  // namespace proxy
