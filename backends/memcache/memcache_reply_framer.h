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

class MemcacheReplyFramer final : public upstream::ReplyFramer {
 public:
  explicit MemcacheReplyFramer(const ReplyLimits& limits = {}) noexcept : parser_(limits) {}

  upstream::Frame frame(const char* data, size_t len, uint32_t hint) override {
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
  void reset() override { parser_.reset(); }

  [[nodiscard]] std::string_view errorMessage() const noexcept { return parser_.errorMessage(); }

 private:
  ReplyParser parser_;
};

}  // namespace backends::memcache
