// memcache_frontend.h: the memcached protocol's side of one worker: it makes
// MemcacheSessions and owns what they share on that worker within one call (see
// runtime/frontend.h).
#pragma once

#include <string>
#include <vector>

#include "backends/memcache/reply_parser.h"
#include "backends/memcache/request_parser.h"
#include "proxy/memcache/memcache_request.h"
#include "proxy/runtime/frontend.h"
#include "proxy/runtime/lending_pool.h"
#include "proxy/runtime/request.h"

namespace proxy {

// Scratch space for building sub-requests and merging replies, used within one call on the
// worker's thread and never across one.
struct MemcacheScratch {
  std::string bytes;      // replies and sub-requests being built
  std::string keyBuffer;  // a decoded base64 key
  std::vector<int32_t> fragmentOfBackend;
  std::vector<std::vector<backends::memcache::ByteSpan>> subKeys;
  std::vector<backends::memcache::RetrievalReply> retrievals;
  std::vector<size_t> cursors;
};

class MemcacheFrontend final : public Frontend {
 public:
  ClientSession* newSession(SessionHost& host, size_t pool) override;
  void trimScratch() override {
    constexpr size_t kKeep = 1024 * 1024;
    releaseIfOver(scratch.bytes, kKeep);
    releaseIfOver(scratch.keyBuffer, kKeep);
    for (auto& keys : scratch.subKeys) releaseIfOver(keys, kKeep);
    releaseIfOver(scratch.retrievals, kKeep);
  }

  RequestPool requests{&MemcacheRequest::make};
  LendingPool<backends::memcache::RequestParser> parsers;
  MemcacheScratch scratch;
};

}  // namespace proxy
