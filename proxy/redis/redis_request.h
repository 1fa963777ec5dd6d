// redis_request.h: a Redis request in flight, with what its kind of merge needs. Each kind
// has its own named state; a merge is one function per kind (RedisSession::merge*), and the
// pool resets only the kind in use, keeping its capacity.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/resp/resp_types.h"
#include "proxy/runtime/request.h"

namespace proxy {

// Where one key's (or one queued command's) answer is: in fragment `fragment`, element
// `position` of that fragment's array reply.
struct ReplySlot {
  uint32_t fragment;
  uint32_t position;
};

// One backend's reply goes back as it is (GET, SET, HSET, EVALSHA, a WATCH ...).
struct RelayMerge {
  void reset() {}
  size_t retainedBytes() const { return 0; }
};
// MGET over several owners: one array per owner, elements put back in the client's key order.
// A failed owner's keys get error elements, so the other keys still arrive.
struct MgetMerge {
  std::vector<ReplySlot> slots;  // per key; empty when the request went whole to one owner
  uint32_t keyCount = 0;
  // A large merge is streamed (Request::streamed): each key's element in its part's reply
  // (length 0: the part failed, the key gets an error element) and how far it has been written.
  std::vector<backends::resp::ByteSpan> elements;
  uint32_t nextElement = 0;
  bool headerWritten = false;
  void reset() {
    slots.clear();
    keyCount = 0;
    elements.clear();
    nextElement = 0;
    headerWritten = false;
  }
  size_t retainedBytes() const {
    return slots.capacity() * sizeof(ReplySlot) + elements.capacity() * sizeof(backends::resp::ByteSpan);
  }
};
// DEL, UNLINK, EXISTS, TOUCH and DBSIZE: integer replies summed; any failure fails the whole.
struct SumMerge {
  int64_t sum = 0;
  void reset() { sum = 0; }
  size_t retainedBytes() const { return 0; }
};
// MSET: +OK when every owner said OK.
struct MsetMerge {
  void reset() {}
  size_t retainedBytes() const { return 0; }
};
// INFO to every backend: one reply built from theirs, with the sections asked for; or, for
// HELLO (`hello`), HELLO's reply with the version they report.
struct InfoMerge {
  static constexpr uint8_t kServer = 1, kProxy = 2, kKeyspace = 4;
  static constexpr uint8_t kAll = kServer | kProxy | kKeyspace;
  uint8_t sections = kAll;
  bool hello = false;
  void reset() {
    sections = kAll;
    hello = false;
  }
  size_t retainedBytes() const { return 0; }
};
// EXEC: each server ran its part as MULTI ... EXEC; the queued commands' replies are put back
// in the order they were queued. Commands the proxy answered itself (PING, ECHO, TIME) have
// their reply in localReplies and no slot.
struct ExecMerge {
  static constexpr uint32_t kLocal = UINT32_MAX;  // ReplySlot::fragment of a local reply
  std::vector<ReplySlot> slots;                   // per queued command
  std::vector<std::string> localReplies;          // per queued command (empty unless local)
  void reset() {
    slots.clear();
    localReplies.clear();
  }
  size_t retainedBytes() const {
    return slots.capacity() * sizeof(ReplySlot) + localReplies.capacity() * sizeof(std::string);
  }
};

// The same command to every backend, answered from all of their replies (any failure fails
// the whole):
//   Same        SCRIPT LOAD/FLUSH: set up everywhere, so it is there whichever server owns the
//               keys later; the first backend's reply (they are the same).
//   MinElements SCRIPT EXISTS: integer arrays, element by element, the smallest: 1 only where
//               every backend has the script (EVALSHA would fail on the one that lacks it).
//   Union       PUBSUB CHANNELS/SHARDCHANNELS: the arrays' elements, each once.
//   SumPairs    PUBSUB NUMSUB/SHARDNUMSUB: [name, count, ...] with the counts summed.
//   Max         PUBSUB NUMPAT: patterns are subscribed on every server, so each has them all.
//   Concat      KEYS: every server's keys, one array.
//   AnyNonNull  RANDOMKEY: one server's key, chosen at random among those that have one.
struct EveryBackendMerge {
  enum class Combine : uint8_t { Same, MinElements, Union, SumPairs, Max, Concat, AnyNonNull };
  Combine combine = Combine::Same;
  void reset() { combine = Combine::Same; }
  size_t retainedBytes() const { return 0; }
};

// SCAN on one server of the pool: the server's cursor in its reply becomes the proxy's
// (redis_keyspace.cc has the encoding).
struct ScanMerge {
  uint32_t slot = 0;          // the server's place in the scan order
  uint64_t nextServer = 0;    // the proxy cursor that starts the next server (0: none left)
  void reset() { *this = {}; }
  size_t retainedBytes() const { return 0; }
};

// WAIT/WAITAOF on every server of the pool, each on a connection of its own: the smallest
// count (element by element for WAITAOF) is what holds for all of the client's writes. The
// connections are counted in `gauges` until the request is done (reset gives them back).
struct WaitMerge {
  std::atomic<uint32_t>* gauge = nullptr;
  uint32_t links = 0;
  void reset() {
    if (gauge != nullptr) gauge->fetch_sub(links, std::memory_order_relaxed);
    gauge = nullptr;
    links = 0;
  }
  size_t retainedBytes() const { return 0; }
};

// A transition: the MIGRATEs that bring a request's moved keys to their new owners before the
// request runs, and, where the new owner had a key already, the steps that settle it
// (redis_transition.cc). The client sees no reply of its own for it.
struct MigrateMerge {
  enum class Step : uint8_t { ExpiryBefore, Migrate, FixTtl, Dump, ExpireTime, Reconcile, Delete };
  struct Key {
    std::string name;
    uint32_t from = 0, to = 0;
    uint64_t sentMs = 0;    // when the MIGRATE left (a slow one may have stretched the TTL)
    std::string before;     // the key's PEXPIRETIME on its old owner, just before the MIGRATE
    std::string dump;       // the old copy's DUMP payload (BUSYKEY)
    std::string expireAt;   // ... and its PEXPIRETIME
    uint8_t pending = 0;    // DUMP and PEXPIRETIME replies still owed
  };
  std::vector<Key> keys;
  struct Part {
    uint32_t key;
    Step step;
  };
  std::vector<Part> parts;  // per fragment
  void reset() {
    keys.clear();
    parts.clear();
  }
  size_t retainedBytes() const { return keys.capacity() * sizeof(Key) + parts.capacity() * sizeof(Part); }
};

class RedisRequest final : public RequestWith<RelayMerge, MgetMerge, SumMerge, MsetMerge, InfoMerge, ExecMerge,
                                              EveryBackendMerge, ScanMerge, WaitMerge, MigrateMerge> {
 public:
  static Request* make() { return new RedisRequest(); }

  bool relays() const { return std::holds_alternative<RelayMerge>(merge); }
  bool streamReply(backends::io::Buffer& out, size_t upTo) override;
  size_t releaseState() override {
    wholeReply = false;
    return RequestWith::releaseState();
  }

  // A multi-key request sent whole to the one server owning all its keys: a good reply is
  // relayed as it is; only an error or a failure goes through the kind's merge.
  bool wholeReply = false;
};

}  // namespace proxy
