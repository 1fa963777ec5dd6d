// upstream_link.h: what a client session may do with a connection to a backend: send a
// request with a sink for its reply, forget a reply it no longer wants, and say what went
// wrong. UpstreamConn is the real one; session unit tests put a fake here that answers out
// of order and fails on demand.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "backends/io/buffer.h"

namespace backends::upstream {

// Receives the reply (or the failure) of a request sent on a link. `cookie` is what send()
// was given. Reply bytes are valid only during the call.
class ReplySink {
 public:
  virtual void onReply(uint64_t cookie, const char* data, size_t len, bool isError) = 0;
  virtual void onFailure(uint64_t cookie, std::string_view why) = 0;
  // A reply of at least kHandOverBytes may be handed over instead of copied: a sink that keeps
  // replies (a fan-out part) says so here, and then gets the bytes' storage in takeReply
  // (exactly the reply) instead of onReply.
  static constexpr size_t kHandOverBytes = 256 * 1024;
  virtual bool keepsReply(uint64_t cookie, size_t len, bool isError) {
    (void)cookie;
    (void)len;
    (void)isError;
    return false;
  }
  virtual void takeReply(uint64_t cookie, io::Buffer&& bytes, bool isError) {
    onReply(cookie, bytes.readable(), bytes.readableSize(), isError);
  }

 protected:
  ~ReplySink() = default;
};

class UpstreamLink {
 public:
  // Queues a request. Returns its sequence number (for cancel), or 0 when it was refused at
  // once (the backend is backing off after a failure): then lastError() says why.
  [[nodiscard]] virtual uint64_t send(const char* data, size_t len, ReplySink* sink, uint64_t cookie,
                                      uint32_t hint) = 0;
  // The sink of request `seq` is forgotten; its reply will be read and dropped. A link told to
  // closeWhenIdle() that then owes no reply anyone wants closes at once.
  virtual void cancel(uint64_t seq) = 0;
  // How messages name the backend ("127.0.0.1:6379", or the server's name).
  virtual const std::string& label() const = 0;
  virtual const std::string& lastError() const = 0;
  // A link lent to one client alone (WATCH): let what is owed finish, then close it...
  virtual void closeWhenIdle() = 0;
  // ...or close it now, failing what is owed (its client is gone and cancelled its requests).
  virtual void close() = 0;
  // How long a reply may take from now on, in ms (-1: forever). A link lent to one client
  // alone takes the timeout of the blocking command it is about to carry.
  virtual void setReplyTimeout(int ms) = 0;

 protected:
  ~UpstreamLink() = default;
};

}  // namespace backends::upstream
