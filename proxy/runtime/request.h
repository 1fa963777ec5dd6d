// request.h: one client request in flight, and the fragments it was split into.
//
// A session keeps its requests in an ordered queue; replies leave strictly in that order.
// A request is the ReplySink of each of its fragments: a single-key request has one fragment,
// a multi-key one (MGET, DEL, ...) one per owning server. The upstream connection calls back
// with the fragment's index as cookie, and the request hands the bytes to its session, which
// knows how to merge them for its protocol.
//
// Cancel-before-destroy: when the client goes away, the session cancels every fragment still
// owed (the upstream connection then drops those replies) before deleting the request.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends/io/memory_budget.h"
#include "backends/upstream/upstream_conn.h"

namespace proxy {

class Request;

// What a session implements to receive its requests' fragment replies.
class RequestOwner {
 public:
  virtual void onFragmentReply(Request& r, uint32_t fragment, const char* data, size_t len, bool isError) = 0;
  virtual void onFragmentFailure(Request& r, uint32_t fragment, std::string_view why) = 0;

 protected:
  ~RequestOwner() = default;
};

struct Fragment {
  backends::upstream::UpstreamConn* conn = nullptr;  // nullptr once answered
  uint64_t seq = 0;
  uint32_t backend = 0;     // snapshot backend index this fragment went to
  std::string reply;        // the reply, kept until the whole request can be merged
  bool failed = false;
};

class Request final : public backends::upstream::ReplySink {
 public:
  explicit Request(RequestOwner* owner) : owner_(owner) {}

  // Makes a used request fresh for `owner`, keeping the capacity of its strings and vectors
  // (RequestPool reuses requests so steady traffic does not allocate per request).
  void reuse(RequestOwner* owner) {
    owner_ = owner;
    first_ = Fragment{};
    more_.clear();
    used_ = 0;
    next = nullptr;
    kind = 0;
    complete = false;
    waiting = 0;
    reply.clear();
    keyFragment.clear();
    keyPosition.clear();
    sum = 0;
    error.clear();
    localReplies.clear();
    keyText.clear();
    aux = 0;
  }
  // Bytes of heap this request keeps between uses.
  size_t retainedBytes() const {
    return reply.capacity() + first_.reply.capacity() + keyText.capacity() + error.capacity() +
           more_.capacity() * sizeof(Fragment) + (keyFragment.capacity() + keyPosition.capacity()) * sizeof(uint32_t);
  }

  // The reply bytes this request holds copies of (its final reply, the shards' parts), added
  // to the process's buffered-bytes figure so that --max-buffered-bytes also bounds replies
  // kept while an earlier request of the same client is still unanswered. Sessions call
  // accountHeldBytes() after storing a copy; freeing the request releases it.
  void accountHeldBytes() {
    int64_t held = static_cast<int64_t>(reply.size());
    for (uint32_t i = 0; i < used_; ++i) held += static_cast<int64_t>(fragment(i).reply.size());
    for (const std::string& s : localReplies) held += static_cast<int64_t>(s.size());
    if (held != accounted_) {
      backends::io::accountBuffer(held - accounted_);
      accounted_ = held;
    }
  }
  void releaseHeldBytes() {
    if (accounted_ != 0) backends::io::accountBuffer(-accounted_);
    accounted_ = 0;
  }

  void onReply(uint64_t cookie, const char* data, size_t len, bool isError) override {
    Fragment& f = fragment(static_cast<uint32_t>(cookie));
    f.conn = nullptr;
    owner_->onFragmentReply(*this, static_cast<uint32_t>(cookie), data, len, isError);
  }
  void onFailure(uint64_t cookie, std::string_view why) override {
    Fragment& f = fragment(static_cast<uint32_t>(cookie));
    f.conn = nullptr;
    f.failed = true;
    owner_->onFragmentFailure(*this, static_cast<uint32_t>(cookie), why);
  }

  // Forget every reply still owed (the client is gone).
  void cancelAll() {
    for (uint32_t i = 0; i < fragmentCount(); ++i) {
      Fragment& f = fragment(i);
      if (f.conn != nullptr) f.conn->cancel(f.seq);
      f.conn = nullptr;
    }
  }

  // The first fragment lives inline: single-key requests, the common case, allocate no vector.
  Fragment& fragment(uint32_t i) { return i == 0 ? first_ : more_[i - 1]; }
  uint32_t fragmentCount() const { return used_; }
  uint32_t addFragment() {
    if (used_ > 0) more_.emplace_back();
    return used_++;
  }

  Request* next = nullptr;      // the session's queue
  uint8_t kind = 0;             // the session's notion of what to do with the replies
  bool complete = false;        // reply is final and may be written when this is the head
  uint32_t waiting = 0;         // fragments not yet answered
  std::string reply;            // the final reply bytes, when not written straight through
  std::vector<uint32_t> keyFragment;  // MGET: for each key, the fragment that carries it
  std::vector<uint32_t> keyPosition;  // MGET: for each key, its index in that fragment's reply
  int64_t sum = 0;                    // DEL/EXISTS/...: integers summed so far
  std::string error;                  // first failure among the fragments
  std::vector<std::string> localReplies;  // EXEC: replies the proxy computed for queued commands
  std::string keyText;                    // memcached multi-get: the keys, end to end
  uint64_t aux = 0;                       // protocol detail (memcached: quiet opcode, opaque)

 private:
  RequestOwner* owner_;
  Fragment first_;
  std::vector<Fragment> more_;
  uint32_t used_ = 0;
  int64_t accounted_ = 0;  // what accountHeldBytes() last added to the buffered-bytes figure
};

}  // namespace proxy

namespace proxy {

// A worker's free list of requests. Allocating and freeing a Request (and the strings inside
// it) per request cost about 10% of the instructions of a proxied GET; reusing them costs a
// few. Requests that grew large are freed rather than kept, so the pool holds little memory.
class RequestPool {
 public:
  RequestPool() = default;
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;
  ~RequestPool() {
    for (Request* r : free_) delete r;
  }

  Request* get(RequestOwner* owner) {
    if (free_.empty()) return new Request(owner);
    Request* r = free_.back();
    free_.pop_back();
    r->reuse(owner);
    return r;
  }
  void put(Request* r) {
    if (free_.size() >= kMaxFree || r->retainedBytes() > kMaxRetained) {
      delete r;
      return;
    }
    free_.push_back(r);
  }

 private:
  static constexpr size_t kMaxFree = 1024;
  static constexpr size_t kMaxRetained = 16 * 1024;
  std::vector<Request*> free_;
};

}  // namespace proxy
