// memcache_reply_framer.h: adapts the memcached ReplyParser to the upstream connection's
// ReplyFramer interface. The proxy sends each request with hint = replyHint(its ReplyKind)
// (RequestParser::replyKind()), and the connection hands that hint back when framing the
// reply, which is how "END" can end a get but not a set.
#pragma once

#include "backends/memcache/reply_parser.h"
#include "backends/upstream/upstream_conn.h"

namespace backends::memcache {

[[nodiscard]] constexpr uint32_t replyHint(ReplyKind kind) noexcept {
  return static_cast<uint32_t>(kind);
}

// A quiet meta request forwarded as is with an `mn` after it: its reply is whatever the quiet
// request produced (possibly nothing) followed by `MN\r\n`, framed as one. memcached alone
// then decides which replies quiet mode keeps (including cases such as `ma` with N that
// creates its item, which cannot be told from the reply of a loud request).
inline constexpr uint32_t kHintMetaThroughNoop = 100;

class MemcacheReplyFramer final : public upstream::ReplyFramer {
 public:
  explicit MemcacheReplyFramer(const ReplyLimits& limits = {}) noexcept : parser_(limits) {}

  upstream::Frame frame(const char* data, size_t len, uint32_t hint) override {
    if (hint == kHintMetaThroughNoop) return frameThroughNoop(data, len);
    // A hint that is no ReplyKind means the caller lost track of the request: better to fail
    // the connection than to guess.
    if (hint >= kReplyKindCount) return {upstream::FrameStatus::Error, 0, false};
    switch (parser_.parse(data, len, static_cast<ReplyKind>(hint))) {
      case ParseStatus::Complete:
        return {upstream::FrameStatus::Complete, parser_.frame().length, parser_.frame().isError};
      case ParseStatus::NeedMore:
        return {upstream::FrameStatus::NeedMore, 0, false};
      case ParseStatus::Error:
        break;
    }
    return {upstream::FrameStatus::Error, 0, false};
  }
  void reset() override {
    parser_.reset();
    throughNoop_ = 0;
    throughNoopError_ = false;
  }

  [[nodiscard]] std::string_view errorMessage() const noexcept { return parser_.errorMessage(); }

 private:
  // Meta replies one after another until `MN\r\n`; resumes after the last complete one.
  upstream::Frame frameThroughNoop(const char* data, size_t len) {
    for (;;) {
      const char* at = data + throughNoop_;
      const size_t avail = len - throughNoop_;
      switch (parser_.parse(at, avail, ReplyKind::Meta)) {
        case ParseStatus::NeedMore:
          return {upstream::FrameStatus::NeedMore, 0, false};
        case ParseStatus::Error:
          return {upstream::FrameStatus::Error, 0, false};
        case ParseStatus::Complete:
          break;
      }
      const size_t n = parser_.frame().length;
      throughNoopError_ = throughNoopError_ || parser_.frame().isError;
      const bool noop = n == 4 && at[0] == 'M' && at[1] == 'N' && at[2] == '\r' && at[3] == '\n';
      throughNoop_ += n;
      parser_.reset();
      if (noop) return {upstream::FrameStatus::Complete, throughNoop_, throughNoopError_};
    }
  }

  ReplyParser parser_;
  size_t throughNoop_ = 0;  // bytes of complete replies before the `MN` still to come
  bool throughNoopError_ = false;
};

}  // namespace backends::memcache
