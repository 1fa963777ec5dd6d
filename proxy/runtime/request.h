// request.h: one client request in flight, and the fragments it was split into.
//
// A session keeps its requests in an ordered queue; replies leave strictly in that order.
// A request is the ReplySink of each of its fragments: a single-key request has one fragment,
// a multi-key one (MGET, DEL, ...) one per owning server. The upstream link calls back with
// the fragment's index as cookie, and the request hands the bytes to its owner (the session),
// which merges them as its protocol says.
//
// What is generic lives here: the fragments, the final reply, the first error, completion.
// How to merge is the protocol's: each protocol derives its own request type with a named
// merge state per kind (redis/redis_request.h, memcache/memcache_request.h).
//
// Cancel-before-destroy: when the client goes away, the session cancels every fragment still
// owed (the upstream link then drops those replies) before the request is freed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "backends/io/buffer.h"
#include "backends/io/debug_assert.h"
#include "backends/io/memory_budget.h"
#include "backends/upstream/upstream_link.h"

namespace proxy {

class Request;

// What a session implements to receive its requests' fragment replies.
class RequestOwner {
 public:
  virtual void onFragmentReply(Request& r, uint32_t fragment, const char* data, size_t len, bool isError) = 0;
  virtual void onFragmentFailure(Request& r, uint32_t fragment, std::string_view why) = 0;
  // Whether the owner keeps this fragment's reply until the request is merged: then a large
  // one is handed over (Fragment::large) rather than copied, and onFragmentReply gets its bytes.
  // A reply kept as above has come (in the fragment's `large`); by default, as any reply.
  virtual void onFragmentTaken(Request& r, uint32_t fragment, bool isError);
  virtual bool keepsFragmentReply(Request& r, uint32_t fragment, size_t len, bool isError) {
    (void)r;
    (void)fragment;
    (void)len;
    (void)isError;
    return false;
  }

 protected:
  ~RequestOwner() = default;
};

struct Fragment {
  backends::upstream::UpstreamLink* link = nullptr;  // nullptr once answered
  uint64_t seq = 0;
  uint32_t backend = 0;  // snapshot backend index this fragment went to
  std::string reply;     // the reply, kept until the whole request can be merged
  backends::io::Buffer large;  // ... or a large reply the link handed over instead of copying
  bool failed = false;
  std::string_view bytes() const {
    return large.empty() ? std::string_view(reply) : std::string_view(large.readable(), large.readableSize());
  }
};

class Request : public backends::upstream::ReplySink {
 public:
  Request() = default;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  virtual ~Request() = default;

  // Makes a used request fresh for `owner`, keeping the capacity of its strings and vectors
  // (RequestPool reuses requests so steady traffic does not allocate per request). The
  // protocol's merge state was reset when the request went back to the pool (releaseState).
  void reuse(RequestOwner* owner) {
    owner_ = owner;
    first_.link = nullptr;
    first_.seq = 0;
    first_.backend = 0;
    first_.reply.clear();
    first_.failed = false;
    more_.clear();
    used_ = 0;
    next = nullptr;
    complete = false;
    waiting = 0;
    reply.clear();
    error.clear();
    extraHeldBytes = 0;
    streamed = false;  // streamProgressMs and streamOffset are set when streaming starts
  }
  // The protocol's merge state is made fresh (keeping capacity); returns the heap bytes that
  // state keeps between uses, so the pool can drop requests that grew large.
  virtual size_t releaseState() = 0;
  // Bytes of heap this request keeps between uses, merge state excluded.
  size_t retainedBytes() const {
    return reply.capacity() + first_.reply.capacity() + error.capacity() + more_.capacity() * sizeof(Fragment);
  }

  // The reply bytes this request holds copies of (its final reply, the shards' parts, and
  // `extraHeldBytes` the protocol keeps elsewhere), added to the process's buffered-bytes
  // figure so that --max-buffered-bytes also bounds replies kept while an earlier request of
  // the same client is still unanswered. Freeing the request releases it.
  void accountHeldBytes() {
    int64_t held = static_cast<int64_t>(reply.size()) + extraHeldBytes;
    for (uint32_t i = 0; i < used_; ++i) held += static_cast<int64_t>(fragment(i).reply.size());
    if (held != accounted_) {
      backends::io::accountBuffer(held - accounted_);
      accounted_ = held;
    }
  }
  // Frees the large replies links handed over (they are never kept for reuse).
  void releaseLargeReplies() {
    if (!hasLarge_) return;
    hasLarge_ = false;
    for (uint32_t i = 0; i < used_; ++i)
      if (fragment(i).large.capacity() != 0) fragment(i).large = backends::io::Buffer();
  }
  void releaseHeldBytes() {
    if (accounted_ != 0) backends::io::accountBuffer(-accounted_);
    accounted_ = 0;
  }

  void onReply(uint64_t cookie, const char* data, size_t len, bool isError) final {
    Fragment& f = fragment(static_cast<uint32_t>(cookie));
    DEBUG_ASSERT(f.link != nullptr);
    f.link = nullptr;
    owner_->onFragmentReply(*this, static_cast<uint32_t>(cookie), data, len, isError);
  }
  bool keepsReply(uint64_t cookie, size_t len, bool isError) final {
    return owner_->keepsFragmentReply(*this, static_cast<uint32_t>(cookie), len, isError);
  }
  void takeReply(uint64_t cookie, backends::io::Buffer&& bytes, bool isError) final {
    Fragment& f = fragment(static_cast<uint32_t>(cookie));
    DEBUG_ASSERT(f.link != nullptr);
    f.link = nullptr;
    f.large = std::move(bytes);
    hasLarge_ = true;
    owner_->onFragmentTaken(*this, static_cast<uint32_t>(cookie), isError);
  }
  void onFailure(uint64_t cookie, std::string_view why) final {
    Fragment& f = fragment(static_cast<uint32_t>(cookie));
    DEBUG_ASSERT(f.link != nullptr);
    f.link = nullptr;
    f.failed = true;
    owner_->onFragmentFailure(*this, static_cast<uint32_t>(cookie), why);
  }

  // A reply too large to build whole (a fan-out MGET of large values) is `streamed`: instead of
  // holding it in `reply`, the session asks for it a piece at a time as the client takes it,
  // so the proxy keeps the shards' parts and at most about a piece of the merged copy.
  // Appends the next piece (about `upTo` bytes, at least one element) to `out`; true once the
  // whole reply has been appended.
  // By default the streamed reply is the first fragment's large reply, relayed as it is.
  virtual bool streamReply(backends::io::Buffer& out, size_t upTo) {
    const std::string_view whole = first_.bytes();
    const size_t n = std::min(upTo, whole.size() - streamOffset);
    out.append(whole.data() + streamOffset, n);
    streamOffset += n;
    return streamOffset == whole.size();
  }

  // Forget every reply still owed (the client is gone).
  void cancelAll() {
    for (uint32_t i = 0; i < fragmentCount(); ++i) {
      Fragment& f = fragment(i);
      if (f.link != nullptr) f.link->cancel(f.seq);
      f.link = nullptr;
    }
  }

  // The first fragment lives inline: single-key requests, the common case, allocate no vector.
  Fragment& fragment(uint32_t i) {
    DEBUG_ASSERT(i < used_);
    return i == 0 ? first_ : more_[i - 1];
  }
  const Fragment& fragment(uint32_t i) const {
    DEBUG_ASSERT(i < used_);
    return i == 0 ? first_ : more_[i - 1];
  }
  uint32_t fragmentCount() const { return used_; }
  uint32_t addFragment() {
    if (used_ > 0) more_.emplace_back();
    return used_++;
  }
  // One fragment fewer owed; true when that was the last one.
  bool fragmentSettled() {
    DEBUG_ASSERT(waiting > 0);
    return --waiting == 0;
  }

  Request* next = nullptr;  // the session's queue (owned by ClientSession)
  bool complete = false;    // reply is final and may be written when this is the head
  uint32_t waiting = 0;     // fragments not yet answered
  std::string reply;        // the final reply bytes, when not written straight through
  std::string error;        // first failure among the fragments
  int64_t extraHeldBytes = 0;  // reply bytes the protocol's merge state holds (EXEC's local replies)
  bool streamed = false;       // the reply comes from streamReply(), not `reply`
  uint64_t streamProgressMs = 0;  // streamed: when the client last took a piece (stall check)
  size_t streamOffset = 0;        // streamed relay: bytes of the reply already written

 private:
  RequestOwner* owner_ = nullptr;
  Fragment first_;
  std::vector<Fragment> more_;
  uint32_t used_ = 0;
  int64_t accounted_ = 0;  // what accountHeldBytes() last added to the buffered-bytes figure
  bool hasLarge_ = false;  // some fragment holds a handed-over reply (freed when the request is)
};

inline void RequestOwner::onFragmentTaken(Request& r, uint32_t fragment, bool isError) {
  const std::string_view bytes = r.fragment(fragment).bytes();
  onFragmentReply(r, fragment, bytes.data(), bytes.size(), isError);
}

// A protocol's request type: Request plus one merge state out of `Kinds`, each a struct with
// reset() (fresh, keeping capacity) and retainedBytes() (heap kept between uses).
template <typename... Kinds>
class RequestWith : public Request {
 public:
  // Starts merge state `M` for this request, reusing the capacity of a previous use of the
  // same kind (the pool hands requests back reset, not destroyed).
  template <typename M>
  M& begin() {
    if (M* m = std::get_if<M>(&merge)) return *m;
    return merge.template emplace<M>();
  }
  template <typename M>
  M* as() {
    return std::get_if<M>(&merge);
  }
  size_t releaseState() override {
    return std::visit(
        [](auto& m) -> size_t {
          m.reset();
          return m.retainedBytes();
        },
        merge);
  }

  std::variant<Kinds...> merge;
};

// A free list of one protocol's requests, per worker. Allocating and freeing a Request (and
// the strings inside it) per request is a large share of a proxied GET's cost; reusing them
// costs a few instructions. Requests that grew large are freed rather than kept, so the pool
// holds little memory.
class RequestPool {
 public:
  using Make = Request* (*)();
  explicit RequestPool(Make make) : make_(make) {}
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;
  ~RequestPool() {
    for (Request* r : free_) delete r;
  }

  Request* get(RequestOwner* owner) {
    Request* r;
    if (free_.empty()) {
      r = make_();
    } else {
      r = free_.back();
      free_.pop_back();
    }
    r->reuse(owner);
    return r;
  }
  void put(Request* r) {
    r->releaseHeldBytes();
    r->releaseLargeReplies();
    const size_t stateBytes = r->releaseState();
    if (free_.size() >= kMaxFree || r->retainedBytes() + stateBytes > kMaxRetained) {
      delete r;
      return;
    }
    free_.push_back(r);
  }

 private:
  static constexpr size_t kMaxFree = 1024;
  static constexpr size_t kMaxRetained = 16 * 1024;
  Make make_;
  std::vector<Request*> free_;
};

}  // namespace proxy
