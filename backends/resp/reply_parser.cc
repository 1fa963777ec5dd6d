#include "backends/resp/reply_parser.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace backends::resp {

namespace {

// How each type byte's line is read. One table lookup per value on the hot path.
enum class Kind : uint8_t {
  Invalid,
  Simple,     // + -          any text up to CRLF
  Integer,    // :            a signed 64-bit integer
  Double,     // ,            any text up to CRLF (1.5, inf, nan, 1e-300)
  BigNumber,  // (            sign and digits, unbounded
  Boolean,    // #            t or f
  Null,       // _            nothing
  Blob,       // $ ! =        length, CRLF, payload, CRLF
  Aggregate,  // * % ~ > |    count, CRLF, then count values (2x for % and |)
};

constexpr std::array<Kind, 256> kKinds = [] {
  std::array<Kind, 256> kinds{};
  kinds['+'] = kinds['-'] = Kind::Simple;
  kinds[':'] = Kind::Integer;
  kinds[','] = Kind::Double;
  kinds['('] = Kind::BigNumber;
  kinds['#'] = Kind::Boolean;
  kinds['_'] = Kind::Null;
  kinds['$'] = kinds['!'] = kinds['='] = Kind::Blob;
  kinds['*'] = kinds['%'] = kinds['~'] = kinds['>'] = kinds['|'] = Kind::Aggregate;
  return kinds;
}();

// A length or integer line is the type byte, at most 20 characters and CRLF: 23 bytes. If no
// LF shows up within 32, the line is refused rather than waited for.
constexpr size_t kMaxShortLine = 32;

// Keeps `remaining * 2 (+1)` of a map or attribute (2 * count elements) within 64 bits.
constexpr int64_t kMaxAggregateCount = int64_t{1} << 60;

// Servers are trusted to write sane numbers, so this is more lenient than the request side's
// parser (a '+' sign or leading zeros pass, as in hiredis) but still refuses non-digits,
// empty numbers and overflow.
bool parseReplyInt(const char* p, size_t n, int64_t* out) noexcept {
  size_t i = 0;
  bool negative = false;
  if (n > 0 && (p[0] == '-' || p[0] == '+')) {
    negative = p[0] == '-';
    i = 1;
  }
  if (i == n) return false;
  uint64_t v = 0;
  for (; i < n; ++i) {
    const unsigned d = static_cast<unsigned char>(p[i]) - '0';
    if (d > 9) return false;
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (negative) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1) return false;
    *out = static_cast<int64_t>(0 - v);
  } else {
    if (v > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(v);
  }
  return true;
}

// The usual shape of a number line after its type byte, `[-]digits\r\n` with at most 18
// digits (so no overflow check is needed), read in one pass instead of a memchr for the line
// and a second pass for the number: MGET's reply has one such line per key, so this pass is
// most of the cost of reading it. Any
// other shape (a '+' sign, a long number, a line not complete yet) returns false and takes the
// general path, which decides exactly as before.
[[gnu::always_inline]] inline bool quickNumberLine(const char* p, size_t avail, int64_t* out, size_t* used) noexcept {
  size_t i = 0;
  const bool negative = avail > 0 && p[0] == '-';
  if (negative) i = 1;
  const size_t digits = i;
  const size_t end = std::min(avail, digits + 18);
  uint64_t v = 0;
  while (i < end) {
    const unsigned d = static_cast<unsigned char>(p[i]) - '0';
    if (d > 9) break;
    v = v * 10 + d;
    ++i;
  }
  if (i == digits || i + 1 >= avail || p[i] != '\r' || p[i + 1] != '\n') return false;
  *out = negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  *used = i + 2;
  return true;
}

// Where the bulk string starting at reply[pos] ends, when it is whole and of the usual shape
// (`$N\r\n` with N at most maxBulk and its payload and CRLF present, or the null `$-1\r\n`);
// 0 for anything else, which the general parse decides about.
[[gnu::always_inline]] inline size_t wholeBulkEnd(const char* reply, size_t len, size_t pos, uint64_t maxBulk) noexcept {
  if (pos >= len || reply[pos] != '$') return 0;
  int64_t length = 0;
  size_t used = 0;
  if (!quickNumberLine(reply + pos + 1, len - pos - 1, &length, &used)) return 0;
  size_t end = pos + 1 + used;
  if (length == -1) return end;
  if (length < 0 || static_cast<uint64_t>(length) > maxBulk || len - end < static_cast<uint64_t>(length) + 2) return 0;
  end += static_cast<size_t>(length);
  if (reply[end] != '\r' || reply[end + 1] != '\n') return 0;
  return end + 2;
}

bool isBigNumber(const char* p, size_t n) noexcept {
  size_t i = (n > 0 && (p[0] == '-' || p[0] == '+')) ? 1 : 0;
  if (i == n) return false;
  for (; i < n; ++i) {
    if (p[i] < '0' || p[i] > '9') return false;
  }
  return true;
}

}  // namespace

void ReplyParser::reset() noexcept {
  done_ = false;
  failed_ = false;
  inBlob_ = false;
  pos_ = 0;
  lineScan_ = 0;
  blobLength_ = 0;
  depth_ = 0;
  frame_ = {};
  error_ = {};
}

ParseStatus ReplyParser::fail(std::string_view message) noexcept {
  error_ = message;
  failed_ = true;
  return ParseStatus::Error;
}

ParseStatus ReplyParser::findLine(const char* reply, size_t len, bool shortLine,
                                  size_t* cr) noexcept {
  // Resume the search where the last call stopped: a long status line arriving a byte at a
  // time is still searched once.
  const size_t from = std::max(lineScan_, pos_ + 1);
  size_t limit = len;
  bool bounded = false;
  if (shortLine && len - pos_ > kMaxShortLine) {
    limit = pos_ + kMaxShortLine;
    bounded = true;
  }
  const void* hit = from < limit ? std::memchr(reply + from, '\n', limit - from) : nullptr;
  if (hit == nullptr) {
    if (bounded) return fail("header line too long");
    lineScan_ = limit;
    return ParseStatus::NeedMore;
  }
  const size_t newline = static_cast<size_t>(static_cast<const char*>(hit) - reply);
  // newline > pos_, and reply[pos_] is a valid type byte, never '\r'.
  if (reply[newline - 1] != '\r') return fail("line not terminated by CRLF");
  *cr = newline - 1;
  return ParseStatus::Complete;
}

bool ReplyParser::finishValue() noexcept {
  while (depth_ > 0) {
    uint64_t& level = levels_[depth_ - 1];
    level -= 2;
    if (level >= 2) return false;  // more elements to come at this level
    --depth_;
    // An attribute does not count as an element of its parent: the value it annotates,
    // which follows, does.
    if (level == 1) return false;
  }
  return true;
}

ParseStatus ReplyParser::parse(const char* reply, size_t len) noexcept {
  if (done_) return ParseStatus::Complete;
  if (failed_) return ParseStatus::Error;
  for (;;) {
    if (inBlob_) {
      // Payloads are skipped by length, never scanned: O(1) per call while one arrives.
      if (len - pos_ < blobLength_ + 2) return ParseStatus::NeedMore;
      const size_t end = pos_ + blobLength_;
      if (reply[end] != '\r' || reply[end + 1] != '\n') {
        return fail("bulk payload not followed by CRLF");
      }
      pos_ = end + 2;
      inBlob_ = false;
      if (finishValue()) break;
      continue;
    }

    // Runs of bulk strings inside an aggregate (the replies of MGET, HGETALL, LRANGE...) in one
    // tight loop, much cheaper per element than the general step below.
    // Anything it does not take whole (another type, a line or payload not complete yet, a
    // number out of bounds) is left to the general step, which decides as always.
    while (depth_ > 0) {
      const size_t end = wholeBulkEnd(reply, len, pos_, limits_.maxBulkLength);
      if (end == 0) break;
      pos_ = end;
      if (finishValue()) {
        frame_.length = pos_;
        done_ = true;
        return ParseStatus::Complete;
      }
    }
    if (pos_ >= len) return ParseStatus::NeedMore;
    const char type = reply[pos_];
    const Kind kind = kKinds[static_cast<unsigned char>(type)];
    // Refused on the type byte itself, before its line is complete (hiredis does the same).
    if (kind == Kind::Invalid) return fail("invalid reply type byte");
    const char* body = reply + pos_ + 1;
    size_t n = 0;     // bytes of the line between the type byte and CRLF
    size_t next = 0;  // where the next value starts
    int64_t number = 0;
    bool haveNumber = false;  // `number` was read already by the one-pass path
    size_t used = 0;
    if ((kind == Kind::Integer || kind == Kind::Blob || kind == Kind::Aggregate) &&
        quickNumberLine(body, len - pos_ - 1, &number, &used)) {
      haveNumber = true;
      n = used - 2;
      next = pos_ + 1 + used;
    } else {
      const bool shortLine = kind != Kind::Simple && kind != Kind::Double && kind != Kind::BigNumber;
      size_t cr = 0;
      if (const ParseStatus st = findLine(reply, len, shortLine, &cr); st != ParseStatus::Complete) {
        return st;
      }
      n = cr - pos_ - 1;
      next = cr + 2;
    }
    // Attributes before the top-level value belong to the reply but do not describe it.
    const bool top = depth_ == 0 && type != '|';
    if (top) {
      frame_.type = type;
      frame_.offset = pos_;
      frame_.value = 0;
    }

    switch (kind) {
      case Kind::Invalid:
      case Kind::Simple:
        break;
      case Kind::Integer: {
        int64_t v = number;
        if (!haveNumber && !parseReplyInt(body, n, &v)) return fail("invalid integer");
        if (top) frame_.value = v;
        break;
      }
      case Kind::Double:
        if (n == 0) return fail("invalid double");
        break;
      case Kind::BigNumber:
        if (!isBigNumber(body, n)) return fail("invalid big number");
        break;
      case Kind::Boolean:
        if (n != 1 || (body[0] != 't' && body[0] != 'f')) return fail("invalid boolean");
        break;
      case Kind::Null:
        if (n != 0) return fail("invalid null");
        break;
      case Kind::Blob: {
        if (n == 1 && body[0] == '?') return fail("streamed RESP3 strings are not supported");
        int64_t v = number;
        if (!haveNumber && !parseReplyInt(body, n, &v)) return fail("invalid bulk length");
        if (v == -1 && type == '$') {  // RESP2 null bulk string: complete as it is
          if (top) frame_.value = -1;
          break;
        }
        if (v < 0 || static_cast<uint64_t>(v) > limits_.maxBulkLength) {
          return fail("invalid bulk length");
        }
        if (top) frame_.value = v;
        blobLength_ = static_cast<uint64_t>(v);
        inBlob_ = true;
        pos_ = next;
        continue;
      }
      case Kind::Aggregate: {
        if (n == 1 && body[0] == '?') return fail("streamed RESP3 aggregates are not supported");
        int64_t v = number;
        if (!haveNumber && !parseReplyInt(body, n, &v)) return fail("invalid aggregate length");
        if (v == -1 && type == '*') {  // RESP2 null array: complete as it is
          if (top) frame_.value = -1;
          break;
        }
        if (v < 0 || v > kMaxAggregateCount) return fail("invalid aggregate length");
        if (top) frame_.value = v;
        pos_ = next;
        if (v == 0) {
          if (type == '|') continue;  // an empty attribute annotates the value that follows
          break;                      // an empty aggregate is a complete value
        }
        if (depth_ == kMaxReplyDepth) return fail("reply nested too deeply");
        const uint64_t elements =
            static_cast<uint64_t>(v) * ((type == '%' || type == '|') ? 2 : 1);
        levels_[depth_++] = elements * 2 + (type == '|' ? 1 : 0);
        continue;
      }
    }
    pos_ = next;
    if (finishValue()) break;
  }
  frame_.length = pos_;
  done_ = true;
  return ParseStatus::Complete;
}

ParseStatus splitAggregate(const char* reply, size_t len, std::vector<ByteSpan>& elements,
                           const ReplyLimits& limits) {
  elements.clear();
  ReplyParser parser(limits);
  // The usual reply, an aggregate header first (no attributes before it): read the header and
  // frame each element once, rather than validating the whole reply and then splitting it,
  // which reads every byte twice.
  const char type = len > 0 ? reply[0] : 0;
  int64_t count = 0;
  size_t used = 0;
  if ((type == '*' || type == '%' || type == '~' || type == '>') &&
      quickNumberLine(reply + 1, len - 1, &count, &used)) {
    if (count < 0) return count == -1 && type == '*' ? ParseStatus::Complete : ParseStatus::Error;
    if (count > kMaxAggregateCount) return ParseStatus::Error;
    size_t pos = 1 + used;
    const uint64_t n = static_cast<uint64_t>(count) * (type == '%' ? 2 : 1);
    elements.reserve(static_cast<size_t>(std::min<uint64_t>(n, (len - pos) / 3)));  // 3 bytes at least each
    for (uint64_t i = 0; i < n; ++i) {
      if (const size_t end = wholeBulkEnd(reply, len, pos, limits.maxBulkLength); end != 0) {
        elements.push_back({pos, end - pos});  // MGET's elements: no parser needed
        pos = end;
        continue;
      }
      parser.reset();
      if (const ParseStatus st = parser.parse(reply + pos, len - pos); st != ParseStatus::Complete) {
        elements.clear();  // nothing half-split is handed out
        return st;
      }
      elements.push_back({pos, parser.frame().length});
      pos += parser.frame().length;
    }
    return ParseStatus::Complete;
  }
  // Attributes first, or an unusual header: a first pass validates the whole reply and finds
  // the top-level header behind any attributes; it skips payloads by length, so both passes
  // cost O(elements), not O(bytes).
  if (const ParseStatus st = parser.parse(reply, len); st != ParseStatus::Complete) return st;
  const ReplyFrame top = parser.frame();
  if (!top.isAggregate()) return ParseStatus::Error;
  if (top.value < 0) return ParseStatus::Complete;
  const void* newline = std::memchr(reply + top.offset, '\n', top.length - top.offset);
  size_t pos = static_cast<size_t>(static_cast<const char*>(newline) - reply) + 1;
  const uint64_t elementCount = static_cast<uint64_t>(top.value) * (top.type == '%' ? 2 : 1);
  // Safe to reserve: the reply is complete, and every element takes at least 3 bytes.
  elements.reserve(static_cast<size_t>(elementCount));
  for (uint64_t i = 0; i < elementCount; ++i) {
    parser.reset();
    if (parser.parse(reply + pos, top.length - pos) != ParseStatus::Complete) {
      return ParseStatus::Error;  // cannot happen after the first pass; kept as a guard
    }
    elements.push_back({pos, parser.frame().length});
    pos += parser.frame().length;
  }
  return ParseStatus::Complete;
}

}  // namespace backends::resp
