// request_parser.h: frames client requests, RESP multibulk (`*N\r\n$len\r\narg\r\n...`, the
// same in RESP2 and RESP3) and inline commands (`SET k v\r\n`, as typed into telnet).
//
// Data flow: a client session reads into its input buffer and calls parse() with the bytes
// from the start of the current request. NeedMore means "read more and call again with the
// same start"; the parser resumes where it stopped (only a header line of at most 32 bytes
// is ever read again), so even a slowly arriving 8 MiB value costs O(bytes) in total. Complete gives the request's byte length and
// its arguments as spans into those bytes: multibulk bytes can then be forwarded as they are,
// inline ones are re-encoded first (appendMultibulk) because backends are only sent RESP.
// After consuming size() bytes, the session calls reset() and parses the next request.
// Error carries a message for a `-ERR Protocol error: <message>` reply, after which the
// stream cannot be framed any more and the client is closed, as Redis does.
//
// Arguments live in a small inline array (8 spans), so the common request allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "backends/io/small_span_list.h"
#include "backends/resp/resp_types.h"

namespace backends::resp {

// Limits checked as soon as a header announces a size, before any of it is buffered: a
// client declaring a 100 GiB argument is refused at once instead of being waited for.
struct RequestLimits {
  size_t maxMultibulkCount = 1024 * 1024;       // arguments per multibulk request
  size_t maxBulkLength = 512u * 1024 * 1024;    // bytes per argument (Redis proto-max-bulk-len)
  size_t maxInlineLength = 64 * 1024;           // bytes of an inline line, without its newline
  // Bytes of all arguments of one request together (headers not counted: max 23 bytes per
  // argument, bounded by maxMultibulkCount). Checked at each argument's header, so a request
  // of many small arguments is refused before more than this much of it is buffered.
  size_t maxRequestLength = SIZE_MAX;
};

// Spans of the arguments of one request: 8 inline (the common request allocates nothing), the
// heap beyond that, kept across requests up to 1024 spans (16 KiB), so a client that keeps
// sending 20-argument MSETs allocates once, not per request.
using ArgList = io::SmallSpanList<ByteSpan, 8, 1024>;

class RequestParser {
 public:
  explicit RequestParser(const RequestLimits& limits = {}) noexcept : limits_(limits) {}
  // For a parser lent from a pool to connections with different limits; call between requests.
  void setLimits(const RequestLimits& limits) noexcept { limits_ = limits; }
  // Pinned in place: errorMessage() may point into the parser itself. A session embeds it.
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Frames the request starting at `request[0]`; `len` bytes are available. Call again with
  // the same start (the buffer may have moved) and a larger len after NeedMore. After
  // Complete or Error, further calls return the same status until reset().
  //
  // Not const: when an inline request completes, its quoted arguments are unescaped in place
  // (the result is never longer than its source, and inline bytes are never forwarded as
  // they are). Multibulk bytes are never written.
  [[nodiscard]] ParseStatus parse(char* request, size_t len) noexcept;

  // Forgets the current request; call after consuming size() bytes (or to start over).
  void reset() noexcept;

  // After Complete: the request's length in bytes, terminators included.
  [[nodiscard]] size_t size() const noexcept { return size_; }
  // After Complete: argument count. 0 for `*0`, `*-1` and empty inline lines, which Redis
  // ignores: skip size() bytes and parse on.
  [[nodiscard]] size_t argc() const noexcept { return args_.size(); }
  [[nodiscard]] std::span<const ByteSpan> args() const noexcept {
    return {args_.data(), args_.size()};
  }
  [[nodiscard]] std::string_view arg(const char* request, size_t i) const noexcept {
    return {request + args_[i].offset, args_[i].length};
  }
  // After Complete, multibulk requests only: argument i as the client sent it, from its `$`
  // to its closing CRLF. The header is always exactly `$<decimal length>\r\n` (leading
  // zeros and signs are refused), so its start follows from the payload's offset and length;
  // fan-out copies these bytes into sub-requests instead of encoding the argument again.
  [[nodiscard]] std::string_view encodedArg(const char* request, size_t i) const noexcept {
    size_t digits = 1;
    for (uint64_t v = args_[i].length; v >= 10; v /= 10) ++digits;
    const size_t header = 1 + digits + 2;
    return {request + args_[i].offset - header, header + args_[i].length + 2};
  }
  // After Complete: true for an inline command, which must be re-encoded before forwarding.
  [[nodiscard]] bool isInline() const noexcept { return inline_; }

  // After Error: what went wrong, worded like Redis ("invalid bulk length", ...), to be sent
  // as `-ERR Protocol error: <message>`. Never contains CR or LF.
  [[nodiscard]] std::string_view errorMessage() const noexcept { return error_; }

 private:
  enum class State : uint8_t { Start, MultibulkHeader, BulkHeader, BulkData, Inline, Done, Failed };

  ParseStatus parseMultibulk(const char* request, size_t len) noexcept;
  ParseStatus parseInline(char* request, size_t len) noexcept;
  ParseStatus splitInline(char* request, size_t end) noexcept;
  ParseStatus complete(size_t size) noexcept;
  ParseStatus fail(std::string_view message) noexcept;
  ParseStatus failExpectedDollar(char got) noexcept;

  RequestLimits limits_;
  State state_ = State::Start;
  bool inline_ = false;
  size_t pos_ = 0;         // first byte not yet consumed by the state machine
  size_t scanned_ = 0;     // inline: bytes already searched for '\n' (never searched twice)
  uint64_t remaining_ = 0; // multibulk: arguments still to come
  uint64_t bulkLength_ = 0;
  uint64_t payload_ = 0;   // multibulk: argument bytes announced so far (maxRequestLength)
  size_t size_ = 0;
  ArgList args_;
  std::string_view error_;
  char errorBuffer_[40] = {};  // for the one message that quotes input ("expected '$', got 'x'")
};

// Appends the multibulk encoding of `args` (spans into `request`) to `out`: how an inline
// command is forwarded. One allocation at most: the exact size is reserved first.
void appendMultibulk(std::string& out, const char* request, std::span<const ByteSpan> args);

}  // namespace backends::resp
