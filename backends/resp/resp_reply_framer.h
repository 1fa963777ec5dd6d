// resp_reply_framer.h: adapts the RESP ReplyParser to the upstream connection's ReplyFramer
// interface, so a pipelined backend connection can find where each Redis reply ends.
#pragma once

#include "backends/resp/reply_parser.h"
#include "backends/upstream/upstream_conn.h"

namespace backends::resp {

class RespReplyFramer final : public upstream::ReplyFramer {
 public:
  upstream::Frame frame(const char* data, size_t len, uint32_t) override {
    switch (parser_.parse(data, len)) {
      case ParseStatus::Complete:
        return {upstream::FrameStatus::Complete, parser_.frame().length, parser_.frame().isError()};
      case ParseStatus::NeedMore:
        return {upstream::FrameStatus::NeedMore, 0, false};
      case ParseStatus::Error:
        break;
    }
    return {upstream::FrameStatus::Error, 0, false};
  }
  void reset() override { parser_.reset(); }

 private:
  ReplyParser parser_;
};

}  // namespace backends::resp
