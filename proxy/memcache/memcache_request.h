// memcache_request.h: a memcached request in flight, with what its kind of reply handling
// needs. Each kind has its own named state; the pool resets only the kind in use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/runtime/request.h"

namespace proxy {

// The backend's reply, as is.
struct McRelay {
  void reset() {}
  size_t retainedBytes() const { return 0; }
};
// Text noreply: nothing goes back, whatever the reply (not even errors of storing).
struct McQuietText {
  void reset() {}
  size_t retainedBytes() const { return 0; }
};
// Meta q: sent quiet with an mn behind it; the backend's reply minus that MN.
struct McQuietMeta {
  void reset() {}
  size_t retainedBytes() const { return 0; }
};
// Binary: relayed; a quiet opcode was sent loud, so what memcached would not have sent
// (a miss for GETQ/GETKQ/GATQ/GATKQ, success for the others) is dropped, and the client's
// opcode is put back into what is kept. The opaque and cas travel untouched.
struct McBinary {
  uint8_t opcode = 0;  // the client's opcode
  bool quiet = false;
  uint32_t opaque = 0;
  void reset() { *this = McBinary{}; }
  size_t retainedBytes() const { return 0; }
};
// Text get/gets/gat/gats over several owners: items merged in the client's key order, one END.
struct McMultiGet {
  std::string keyText;                // the keys, end to end, to match the owners' items
  std::vector<uint32_t> keyEnd;       // per key: where it ends in keyText
  std::vector<uint32_t> keyFragment;  // per key: the fragment (owner) asked for it
  // A transition (memcache_transition.cc): the verb and its arguments ("gat 100"), and, once
  // the owners have answered, per key the fragment that asks its previous owner (kNone: not
  // asked); fragments from firstFallback on are those.
  static constexpr uint32_t kNone = UINT32_MAX;
  std::string verb;
  std::vector<uint32_t> fallbackFragment;
  uint32_t firstFallback = kNone;
  void reset() {
    keyText.clear();
    keyEnd.clear();
    keyFragment.clear();
    verb.clear();
    fallbackFragment.clear();
    firstFallback = kNone;
  }
  std::string_view key(size_t i) const {
    const uint32_t begin = i == 0 ? 0 : keyEnd[i - 1];
    return std::string_view(keyText).substr(begin, keyEnd[i] - begin);
  }
  size_t retainedBytes() const {
    return keyText.capacity() + verb.capacity() +
           (keyEnd.capacity() + keyFragment.capacity() + fallbackFragment.capacity()) * sizeof(uint32_t);
  }
};
// flush_all to every backend: OK when all said OK.
struct McFlush {
  bool noreply = false;
  void reset() { noreply = false; }
  size_t retainedBytes() const { return 0; }
};
// Binary FLUSH to every backend.
struct McBinaryFlush {
  uint8_t opcode = 0;
  bool quiet = false;
  uint32_t opaque = 0;
  void reset() { *this = McBinaryFlush{}; }
  size_t retainedBytes() const { return 0; }
};

// A transition: a loud one-key read of a moved key, asked again of its previous owner when the
// new one misses (memcache_transition.cc). The reply relayed is the last one asked.
struct McFallback {
  uint32_t from = 0, to = 0;  // previous and new owner
  bool binary = false;
  bool quiet = false;   // meta q, binary GETQ/GETKQ/GATQ/GATKQ: sent loud, a miss answers nothing
  uint8_t opcode = 0;   // binary: the client's opcode
  uint32_t hint = 0;
  std::string request;  // the client's request, to send again
  std::string key;      // the routed key (decoded)
  std::string miss;     // the new owner's miss, answered if the previous owner fails
  void reset() {
    request.clear();
    key.clear();
    miss.clear();
  }
  size_t retainedBytes() const { return request.capacity() + key.capacity() + miss.capacity(); }
};

class MemcacheRequest final : public RequestWith<McRelay, McQuietText, McQuietMeta, McBinary, McMultiGet, McFlush,
                                                 McBinaryFlush, McFallback> {
 public:
  static Request* make() { return new MemcacheRequest(); }
  // Several fragments whose replies are merged once all have settled (multi-get, flushes);
  // every other kind has one fragment, whose reply or failure is the answer.
  bool merges() { return as<McMultiGet>() != nullptr || as<McFlush>() != nullptr || as<McBinaryFlush>() != nullptr; }
};

}  // namespace proxy
