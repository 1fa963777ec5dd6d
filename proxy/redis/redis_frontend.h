// redis_frontend.h: the Redis protocol's side of one worker: it makes RedisSessions and owns
// what they share on that worker within one call (see runtime/frontend.h).
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "backends/resp/request_parser.h"
#include "backends/resp/resp_types.h"
#include "proxy/redis/redis_request.h"
#include "proxy/runtime/frontend.h"
#include "proxy/runtime/lending_pool.h"
#include "proxy/runtime/request.h"

namespace proxy {

// Scratch space for building sub-requests and merging replies, used within one call on the
// worker's thread and never across one.
struct RedisScratch {
  std::string bytes;               // replies and sub-requests being built
  std::vector<uint32_t> keys;      // argument indexes of the request's keys
  std::vector<uint32_t> owners;    // the backend of each of `keys`
  std::vector<int32_t> fragmentOfBackend;
  std::vector<std::string> subRequests;
  std::vector<uint32_t> subKeyCounts;
  std::vector<std::vector<backends::resp::ByteSpan>> elementSpans;
};

// A transition: the moved keys this worker has already settled (MIGRATEd, or found gone from
// their old owner). Once settled a key cannot be on its old owner again (every proxy in the
// transition writes to the new one), so later touches skip the round trip to the old owner.
// Tied to one routing generation (a reload starts over) and bounded (full: starts over).
class SettledKeys {
 public:
  static constexpr size_t kMax = 200000;
  bool contains(uint64_t generation, std::string_view key) const {
    return generation == generation_ && keys_.count(std::string(key)) != 0;
  }
  void add(uint64_t generation, std::string_view key) {
    if (generation != generation_ || keys_.size() >= kMax) {
      keys_.clear();
      generation_ = generation;
    }
    keys_.emplace(key);
  }
  size_t size() const { return keys_.size(); }

 private:
  uint64_t generation_ = 0;
  std::unordered_set<std::string> keys_;
};

class RedisFrontend final : public Frontend {
 public:
  ClientSession* newSession(SessionHost& host, size_t pool) override;
  void trimScratch() override {
    constexpr size_t kKeep = 1024 * 1024;
    releaseIfOver(scratch.bytes, kKeep);
    for (std::string& sub : scratch.subRequests) releaseIfOver(sub, kKeep);
    for (auto& spans : scratch.elementSpans) releaseIfOver(spans, kKeep);
    releaseIfOver(scratch.keys, kKeep);
    releaseIfOver(scratch.owners, kKeep);
  }

  RequestPool requests{&RedisRequest::make};
  LendingPool<backends::resp::RequestParser> parsers;
  RedisScratch scratch;
  SettledKeys settled;
};

}  // namespace proxy
