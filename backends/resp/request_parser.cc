#include "backends/resp/request_parser.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>

#include "backends/resp/resp_encode.h"

namespace backends::resp {

namespace {

// A valid header line is '*' or '$', at most 20 characters of number ("-" and 19 digits),
// then "\r\n": 23 bytes. Anything without a CR in the first 32 bytes can be refused at once,
// which keeps a header from ever being rescanned more than a few bytes per call.
constexpr size_t kMaxHeaderLine = 32;

// The number of a header line ("*3\r\n", "$16\r\n") in one pass, exactly as strict as
// Redis's string2ll, which decides what Redis itself accepts in request headers: an optional
// '-', digits without leading zeros ("0" alone is fine, "-0", "+1", "01" and "" are not), no
// overflow; then CRLF within kMaxHeaderLine bytes of the line's start (a line too long to be a
// header, or a CR without LF, is an Error). Being as strict as Redis keeps us from forwarding
// what Redis would refuse. `start` is the first byte after the
// type byte; *next is where the following line begins. Every request has at least three
// header lines, so this is one fused scan (a memchr then a second parse cost ~2x as much).
ParseStatus readHeaderNumberSlow(const char* data, size_t len, size_t start, int64_t* value, size_t* next) noexcept {
  size_t i = start;
  const size_t lineEnd = std::min(len, start - 1 + kMaxHeaderLine);
  bool negative = false;
  if (i < lineEnd && data[i] == '-') {
    negative = true;
    ++i;
  }
  const size_t digits = i;
  uint64_t v = 0;
  while (i < lineEnd) {
    const unsigned d = static_cast<unsigned char>(data[i]) - '0';
    if (d > 9) break;
    if (v > (UINT64_MAX - d) / 10) return ParseStatus::Error;
    v = v * 10 + d;
    ++i;
  }
  if (i == lineEnd) return lineEnd == len ? ParseStatus::NeedMore : ParseStatus::Error;
  if (data[i] != '\r' || i == digits) return ParseStatus::Error;
  if (data[digits] == '0' && i - digits > 1) return ParseStatus::Error;  // leading zero
  if (negative && v == 0) return ParseStatus::Error;                     // "-0"
  if (i + 1 >= len) return ParseStatus::NeedMore;
  if (data[i + 1] != '\n') return ParseStatus::Error;
  if (negative) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1) return ParseStatus::Error;
    *value = static_cast<int64_t>(0 - v);
  } else {
    if (v > static_cast<uint64_t>(INT64_MAX)) return ParseStatus::Error;
    *value = static_cast<int64_t>(v);
  }
  *next = i + 2;
  return ParseStatus::Complete;
}

// Nearly every header is 1 to 18 digits without a sign or a leading zero, then CRLF: that
// shape needs no overflow check and no sign handling, and a GET has three such headers.
// Anything else goes to the exact rules above.
inline ParseStatus readHeaderNumber(const char* data, size_t len, size_t start, int64_t* value, size_t* next) noexcept {
  const size_t end = std::min(len, start + 18);
  size_t i = start;
  uint64_t v = 0;
  while (i < end) {
    const unsigned d = static_cast<unsigned char>(data[i]) - '0';
    if (d > 9) break;
    v = v * 10 + d;
    ++i;
  }
  if (i > start && i + 1 < len && data[i] == '\r' && data[i + 1] == '\n' && (data[start] != '0' || i == start + 1)) {
    *value = static_cast<int64_t>(v);
    *next = i + 2;
    return ParseStatus::Complete;
  }
  return readHeaderNumberSlow(data, len, start, value, next);
}

// The separators of Redis's sdssplitargs: isspace() between arguments and after a closing
// quote, but only these five end an unquoted argument (so "a\vb" is one argument there).
bool isSpace(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool endsUnquoted(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
int hexValue(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace


void RequestParser::reset() noexcept {
  state_ = State::Start;
  inline_ = false;
  pos_ = 0;
  scanned_ = 0;
  remaining_ = 0;
  bulkLength_ = 0;
  payload_ = 0;
  size_ = 0;
  args_.clear();
  error_ = {};
}

ParseStatus RequestParser::complete(size_t size) noexcept {
  size_ = size;
  state_ = State::Done;
  return ParseStatus::Complete;
}

ParseStatus RequestParser::fail(std::string_view message) noexcept {
  error_ = message;
  state_ = State::Failed;
  return ParseStatus::Error;
}

ParseStatus RequestParser::failExpectedDollar(char got) noexcept {
  // Redis prints the byte raw; a CR, LF or NUL there would break our one-line error reply,
  // so unprintable bytes are shown as \xHH instead.
  static constexpr char kHex[] = "0123456789abcdef";
  const auto c = static_cast<unsigned char>(got);
  char shown[5];
  size_t n = 0;
  if (c >= 0x20 && c < 0x7f) {
    shown[n++] = static_cast<char>(c);
  } else {
    shown[n++] = '\\';
    shown[n++] = 'x';
    shown[n++] = kHex[c >> 4];
    shown[n++] = kHex[c & 15];
  }
  static constexpr std::string_view kPrefix = "expected '$', got '";
  char* w = errorBuffer_;
  std::memcpy(w, kPrefix.data(), kPrefix.size());
  w += kPrefix.size();
  std::memcpy(w, shown, n);
  w += n;
  *w++ = '\'';
  return fail(std::string_view(errorBuffer_, static_cast<size_t>(w - errorBuffer_)));
}

ParseStatus RequestParser::parse(char* request, size_t len) noexcept {
  switch (state_) {
    case State::Done:
      return ParseStatus::Complete;
    case State::Failed:
      return ParseStatus::Error;
    case State::Start:
      if (len == 0) return ParseStatus::NeedMore;
      // Redis's rule: a request is multibulk exactly when it starts with '*'.
      if (request[0] != '*') {
        inline_ = true;
        state_ = State::Inline;
        return parseInline(request, len);
      }
      state_ = State::MultibulkHeader;
      return parseMultibulk(request, len);
    case State::Inline:
      return parseInline(request, len);
    default:
      return parseMultibulk(request, len);
  }
}

ParseStatus RequestParser::parseMultibulk(const char* request, size_t len) noexcept {
  if (state_ == State::MultibulkHeader) {
    int64_t count = 0;
    size_t next = 0;
    const ParseStatus st = readHeaderNumber(request, len, 1, &count, &next);
    if (st == ParseStatus::NeedMore) return st;
    if (st == ParseStatus::Error || (count > 0 && static_cast<uint64_t>(count) > limits_.maxMultibulkCount)) {
      return fail("invalid multibulk length");
    }
    pos_ = next;
    // Redis skips `*0` and any negative count without a word; so do we (argc 0).
    if (count <= 0) return complete(pos_);
    remaining_ = static_cast<uint64_t>(count);
    state_ = State::BulkHeader;
  }

  while (remaining_ > 0) {
    if (state_ == State::BulkHeader) {
      if (pos_ >= len) return ParseStatus::NeedMore;
      // Checked on the first byte, so garbage is refused before its line ends.
      if (request[pos_] != '$') return failExpectedDollar(request[pos_]);
      int64_t length = 0;
      size_t next = 0;
      const ParseStatus st = readHeaderNumber(request, len, pos_ + 1, &length, &next);
      if (st == ParseStatus::NeedMore) return st;
      if (st == ParseStatus::Error || length < 0 || static_cast<uint64_t>(length) > limits_.maxBulkLength) {
        return fail("invalid bulk length");
      }
      payload_ += static_cast<uint64_t>(length);
      if (payload_ > limits_.maxRequestLength) return fail("request too large");
      bulkLength_ = static_cast<uint64_t>(length);
      pos_ = next;
      state_ = State::BulkData;
    }
    // The payload is never looked at, only its length and terminator: waiting for a large
    // argument costs O(1) per call.
    if (len - pos_ < bulkLength_ + 2) return ParseStatus::NeedMore;
    const size_t end = pos_ + bulkLength_;
    // Redis skips these two bytes unchecked; we insist on CRLF, because a wrong length here
    // means we would otherwise forward a misframed stream to a backend.
    if (request[end] != '\r' || request[end + 1] != '\n') return fail("invalid bulk terminator");
    if (!args_.push({pos_, bulkLength_})) return fail("out of memory");
    pos_ = end + 2;
    --remaining_;
    state_ = State::BulkHeader;
  }
  return complete(pos_);
}

ParseStatus RequestParser::parseInline(char* request, size_t len) noexcept {
  // The line may be at most maxInlineLength bytes before its '\n'; only new bytes are
  // searched on each call.
  const size_t limit = len <= limits_.maxInlineLength ? len : limits_.maxInlineLength + 1;
  const void* hit = nullptr;
  if (limit > scanned_) hit = std::memchr(request + scanned_, '\n', limit - scanned_);
  if (hit == nullptr) {
    if (len > limits_.maxInlineLength) return fail("too big inline request");
    scanned_ = len;
    return ParseStatus::NeedMore;
  }
  const size_t newline = static_cast<size_t>(static_cast<const char*>(hit) - request);
  size_t end = newline;
  if (end > 0 && request[end - 1] == '\r') --end;
  // Redis splits the line as a C string: a NUL ends it.
  if (const void* nul = std::memchr(request, '\0', end)) {
    end = static_cast<size_t>(static_cast<const char*>(nul) - request);
  }
  const ParseStatus st = splitInline(request, end);
  if (st != ParseStatus::Complete) return st;
  return complete(newline + 1);
}

// Redis's sdssplitargs, rewritten to work in place: each argument's unescaped bytes are
// written from the argument's first byte on. The write cursor never passes the read cursor
// (quotes and escapes only shrink), so nothing unread is overwritten.
ParseStatus RequestParser::splitInline(char* s, size_t end) noexcept {
  size_t r = 0;
  for (;;) {
    while (r < end && isSpace(s[r])) ++r;
    if (r >= end) return ParseStatus::Complete;
    const size_t start = r;
    size_t w = r;
    bool inDouble = false;
    bool inSingle = false;
    for (bool done = false; !done;) {
      if (inDouble) {
        if (r >= end) return fail("unbalanced quotes in request");
        const char c = s[r];
        if (c == '\\' && r + 3 < end && s[r + 1] == 'x' && hexValue(s[r + 2]) >= 0 &&
            hexValue(s[r + 3]) >= 0) {
          s[w++] = static_cast<char>(hexValue(s[r + 2]) * 16 + hexValue(s[r + 3]));
          r += 4;
        } else if (c == '\\' && r + 1 < end) {
          char e = s[r + 1];
          switch (e) {
            case 'n': e = '\n'; break;
            case 'r': e = '\r'; break;
            case 't': e = '\t'; break;
            case 'b': e = '\b'; break;
            case 'a': e = '\a'; break;
            default: break;
          }
          s[w++] = e;
          r += 2;
        } else if (c == '"') {
          // Redis: a closing quote must be followed by a space or the end of the line.
          if (r + 1 < end && !isSpace(s[r + 1])) return fail("unbalanced quotes in request");
          ++r;
          done = true;
        } else {
          s[w++] = c;
          ++r;
        }
      } else if (inSingle) {
        if (r >= end) return fail("unbalanced quotes in request");
        const char c = s[r];
        if (c == '\\' && r + 1 < end && s[r + 1] == '\'') {
          s[w++] = '\'';
          r += 2;
        } else if (c == '\'') {
          if (r + 1 < end && !isSpace(s[r + 1])) return fail("unbalanced quotes in request");
          ++r;
          done = true;
        } else {
          s[w++] = c;
          ++r;
        }
      } else if (r >= end || endsUnquoted(s[r])) {
        done = true;
      } else if (s[r] == '"') {
        inDouble = true;  // a quote may open mid-argument: foo"bar" is foobar, as in Redis
        ++r;
      } else if (s[r] == '\'') {
        inSingle = true;
        ++r;
      } else {
        s[w++] = s[r++];
      }
    }
    if (!args_.push({start, w - start})) return fail("out of memory");
  }
}

void appendMultibulk(std::string& out, const char* request, std::span<const ByteSpan> args) {
  // "*N\r\n" and each "$len\r\n...\r\n": 20 digits + 3 bytes per header at most.
  size_t total = 23;
  for (const ByteSpan& a : args) total += 25 + a.length;
  out.reserve(out.size() + total);
  appendArrayHeader(out, args.size());
  for (const ByteSpan& a : args) appendBulk(out, std::string_view(request + a.offset, a.length));
}

}  // namespace backends::resp
