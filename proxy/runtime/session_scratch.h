// session_scratch.h: what sessions need only while they run, owned once per worker instead of
// once per connection. A session borrows a request parser while it has bytes to frame and
// gives it back when its input is drained, and uses the worker's scratch space for building
// sub-requests and merging replies (always within one call on the worker's thread, never
// across one). This keeps an idle connection small: its socket, its queue head and a few
// flags (see README "Performance" for the bytes per idle connection).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/memcache/reply_parser.h"
#include "backends/memcache/request_parser.h"
#include "backends/resp/request_parser.h"
#include "backends/resp/resp_types.h"

namespace proxy {

struct SessionScratch {
  std::string bytes;      // replies and sub-requests being built
  std::string keyBuffer;  // a decoded base64 key
  std::vector<uint32_t> keys;
  std::vector<uint32_t> owners;  // the backend of each of `keys`
  std::vector<int32_t> fragmentOfBackend;
  std::vector<std::string> subRequests;
  std::vector<uint32_t> subKeyCounts;
  std::vector<std::vector<backends::resp::ByteSpan>> elementSpans;
  std::vector<std::vector<backends::memcache::ByteSpan>> subKeys;
  std::vector<backends::memcache::RetrievalReply> retrievals;
};

// A free list of T (parsers): get() lends one, put() takes it back.
template <typename T>
class LendingPool {
 public:
  T* get() {
    if (free_.empty()) return new T();
    T* t = free_.back().release();
    free_.pop_back();
    return t;
  }
  void put(T* t) {
    if (free_.size() < kMaxFree) free_.emplace_back(t);
    else delete t;
  }
  // Takes back a session's borrowed parser, if it has one, forgetting whatever it held (a
  // half-framed or failed request), and clears the session's pointer.
  void giveBack(T*& t) {
    if (t == nullptr) return;
    t->reset();
    put(t);
    t = nullptr;
  }

 private:
  static constexpr size_t kMaxFree = 256;
  std::vector<std::unique_ptr<T>> free_;
};

}  // namespace proxy
