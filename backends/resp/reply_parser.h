// reply_parser.h: finds where one backend reply ends, for every RESP2 and RESP3 type, without
// building any value.
//
// Data flow: an upstream connection reads replies into its buffer and calls parse() with the
// bytes from the start of the oldest unanswered reply. NeedMore means "read more, call again
// with the same start"; the parser resumes where it stopped (it keeps offsets and a stack of
// remaining element counts per nesting level), so a reply is examined once however it is cut
// into reads: bulk payloads are skipped by length, never scanned. Complete gives the reply's
// length, and the reply's bytes are handed to the request waiting at the head of the
// connection's FIFO, usually to be copied to the client as they are. For the few replies the
// proxy must look into (merging the MGET answers of several shards) splitAggregate() gives
// the spans of the top-level elements. Error means the backend stream can no longer be
// framed: the connection is closed and its pending requests fail.
//
// Not supported, and reported as errors: RESP3 streamed strings and aggregates (`$?`, `*?`),
// which Redis never sends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "backends/resp/resp_types.h"

namespace backends::resp {

struct ReplyLimits {
  // A bulk header announcing more than this is an Error rather than a wait for that many bytes.
  // Redis's own default proto-max-bulk-len; raise it with the backends' setting.
  uint64_t maxBulkLength = 512u * 1024 * 1024;
};

// Deeper nesting is an Error: Redis never nests more than a few levels, and the bound keeps
// the parser's stack a fixed array inside the parser.
inline constexpr size_t kMaxReplyDepth = 128;

// What Complete reports about the reply just framed.
struct ReplyFrame {
  size_t length = 0;  // bytes of the whole reply, leading attributes included
  size_t offset = 0;  // where the top-level value starts (after leading `|` attributes)
  char type = 0;      // its type byte: '+' '-' ':' '$' '*' ',' '#' '_' '(' '!' '=' '%' '~' '>'
  // ':' the integer; '$' '!' '=' the payload length; '*' '~' '>' the element count; '%' the
  // number of key/value pairs (2x that many elements follow); -1 for the RESP2 nulls `$-1`
  // and `*-1`; 0 for every other type.
  int64_t value = 0;

  [[nodiscard]] bool isNull() const noexcept {
    return type == '_' || ((type == '$' || type == '*') && value < 0);
  }
  [[nodiscard]] bool isError() const noexcept { return type == '-' || type == '!'; }
  [[nodiscard]] bool isAggregate() const noexcept {
    return type == '*' || type == '%' || type == '~' || type == '>';
  }
};

class ReplyParser {
 public:
  explicit ReplyParser(const ReplyLimits& limits = {}) noexcept : limits_(limits) {}

  // Frames the reply starting at `reply[0]`; `len` bytes are available (bytes past the reply,
  // such as the next pipelined reply, are not touched). Call again with the same start and a
  // larger len after NeedMore. After Complete or Error, further calls return the same status
  // until reset().
  [[nodiscard]] ParseStatus parse(const char* reply, size_t len) noexcept;

  // Forgets the current reply; call after consuming frame().length bytes.
  void reset() noexcept;

  // After Complete.
  [[nodiscard]] const ReplyFrame& frame() const noexcept { return frame_; }
  // After Error: a short description for logs and for the errors given to pending requests.
  [[nodiscard]] std::string_view errorMessage() const noexcept { return error_; }

 private:
  ParseStatus fail(std::string_view message) noexcept;
  ParseStatus findLine(const char* reply, size_t len, bool shortLine, size_t* cr) noexcept;
  // A value ended at the current depth; true when that completes the top-level reply.
  bool finishValue() noexcept;

  ReplyLimits limits_;
  bool done_ = false;
  bool failed_ = false;
  bool inBlob_ = false;     // waiting for blobLength_ payload bytes (and CRLF) at pos_
  size_t pos_ = 0;          // next unparsed byte: a type byte, or a payload when inBlob_
  size_t lineScan_ = 0;     // bytes of the current line already searched for '\n'
  uint64_t blobLength_ = 0;
  size_t depth_ = 0;
  // Per open aggregate: remaining elements * 2, plus 1 for an attribute (whose elements do
  // not count as a value of the enclosing aggregate). Entries at or above depth_ are unset.
  uint64_t levels_[kMaxReplyDepth];
  ReplyFrame frame_;
  std::string_view error_;
};

// Given one COMPLETE reply whose top-level value is an aggregate (`*` `%` `~` `>`, possibly
// after attributes), sets `elements` to the spans of its top-level elements, relative to
// `reply`; a map gives key, value, key, value... Each span includes the element's own
// attributes. Allocates nothing but what `elements` needs (its capacity is reused). A null
// aggregate gives no elements. Error if the bytes are not such a reply, NeedMore if it is
// cut short.
[[nodiscard]] ParseStatus splitAggregate(const char* reply, size_t len,
                                         std::vector<ByteSpan>& elements,
                                         const ReplyLimits& limits = {});

}  // namespace backends::resp
