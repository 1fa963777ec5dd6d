// reply_parser.h: finds where one memcached reply ends, in any dialect, without building
// any value.
//
// Data flow: an upstream connection reads replies into its buffer and calls parse() with the
// bytes from the start of the oldest unanswered reply and the ReplyKind its request recorded
// (RequestParser::replyKind(), passed through send() as the ReplyFramer hint): memcached
// replies cannot be framed on their own bytes ("END" ends a get, not a set). NeedMore means
// "read more, call again with the same start"; the parser resumes where it stopped (a line is
// searched for its newline once, values and binary bodies are skipped by length), so a reply
// costs O(its lines) however it is cut. Complete gives the reply's length, and its bytes go to
// the request at the head of the connection's FIFO, usually to be copied to the client as
// they are. For multi-get replies the proxy must look into (merging the answers of several
// shards in the client's key order), splitRetrieval() gives each VALUE item and its key.
// Error means the backend stream can no longer be framed: the connection is closed and its
// pending requests fail.
//
// `ERROR`, `CLIENT_ERROR ...` and `SERVER_ERROR ...` end a reply of any text or meta kind,
// even halfway through a multi-get, and mark it isError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "backends/memcache/memcache_types.h"

namespace backends::memcache {

struct ReplyLimits {
  // Bytes of a reply line before its CRLF. memcached's longest are `ME` debug lines and
  // VALUE/VA headers, a few hundred bytes.
  size_t maxLineLength = 8192;
  // A value (or binary body) announcing more is an Error rather than a wait for that many
  // bytes. memcached's item size limit (-I) cannot exceed 1 GiB.
  uint64_t maxValueLength = 1024u * 1024 * 1024;
};

// What Complete reports about the reply just framed.
struct ReplyFrame {
  size_t length = 0;  // bytes of the whole reply
  // An error line (text, meta), or a binary status that is not a normal outcome (see
  // isBinaryErrorStatus).
  bool isError = false;
  // Values carried: VALUE items of a retrieval, 1 for a meta VA reply, packets of a binary
  // STAT sequence (its terminator included), 1 for any other binary reply.
  size_t values = 0;
  uint16_t binaryStatus = 0;  // Binary, BinaryStat: the status of the last packet
};

class ReplyParser {
 public:
  explicit ReplyParser(const ReplyLimits& limits = {}) noexcept : limits_(limits) {}

  // Frames the reply of kind `kind` starting at `reply[0]`; `len` bytes are available (bytes
  // past the reply are not touched). Call again with the same start, the same kind and a
  // larger len after NeedMore. After Complete or Error, further calls return the same status
  // until reset().
  [[nodiscard]] ParseStatus parse(const char* reply, size_t len, ReplyKind kind) noexcept;

  // Forgets the current reply; call after consuming frame().length bytes.
  void reset() noexcept;

  // After Complete.
  [[nodiscard]] const ReplyFrame& frame() const noexcept { return frame_; }
  // After Complete: where the reply's last line starts (END, or the error line ending it;
  // the VA line of a meta value), or its last packet for binary replies.
  [[nodiscard]] size_t lastLineOffset() const noexcept { return lastLine_; }
  // After Error: a short description for logs and for the errors given to pending requests.
  [[nodiscard]] std::string_view errorMessage() const noexcept { return error_; }

 private:
  ParseStatus parseText(const char* reply, size_t len) noexcept;
  ParseStatus parseBinary(const char* reply, size_t len) noexcept;
  ParseStatus findLine(const char* reply, size_t len, size_t* cr) noexcept;
  ParseStatus complete(size_t length) noexcept;
  ParseStatus fail(std::string_view message) noexcept;

  ReplyLimits limits_;
  ReplyKind kind_ = ReplyKind::TextLine;
  bool started_ = false;
  bool done_ = false;
  bool failed_ = false;
  bool inData_ = false;    // waiting for dataLength_ bytes (and CRLF) at pos_
  size_t pos_ = 0;         // next unparsed byte: a line, a data block or a binary packet
  size_t lineScan_ = 0;    // bytes of the current line already searched for '\n'
  size_t lastLine_ = 0;
  uint64_t dataLength_ = 0;
  size_t lines_ = 0;       // stats: lines before the current one
  ReplyFrame frame_;
  std::string_view error_;
};

// True for binary statuses that report a failure rather than an ordinary outcome (success,
// key not found, key exists and not stored are ordinary).
[[nodiscard]] bool isBinaryErrorStatus(uint16_t status) noexcept;

// One VALUE item of a text retrieval reply.
struct RetrievalItem {
  ByteSpan item;  // `VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n`, whole
  ByteSpan key;
};

struct RetrievalReply {
  std::vector<RetrievalItem> items;  // in reply order; the capacity is reused across calls
  ByteSpan last;          // the line ending the reply, CRLF included: `END\r\n` or an error
  bool isError = false;   // ended by an error line instead of END
  size_t length = 0;      // bytes of the whole reply
};

// Given one COMPLETE text retrieval reply (get, gets, gat, gats), fills `out` with the spans
// of its VALUE items, relative to `reply`. For merging a multi-get split over several shards:
// emit the items in the client's key order, then one `END\r\n`. Allocates nothing but what
// `out.items` needs. NeedMore if the reply is cut short, Error if it is not such a reply.
[[nodiscard]] ParseStatus splitRetrieval(const char* reply, size_t len, RetrievalReply& out,
                                         const ReplyLimits& limits = {});

}  // namespace backends::memcache
