// redis_frontend.h: the Redis protocol's side of one worker: it makes RedisSessions and owns
// what they share on that worker within one call (see runtime/frontend.h).
#pragma once

#include <string>
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

class RedisFrontend final : public Frontend {
 public:
  ClientSession* newSession(SessionHost& host, size_t pool) override;

  RequestPool requests{&RedisRequest::make};
  LendingPool<backends::resp::RequestParser> parsers;
  RedisScratch scratch;
};

}  // namespace proxy
