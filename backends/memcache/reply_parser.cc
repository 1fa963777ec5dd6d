#include "backends/memcache/reply_parser.h"

#include <algorithm>
#include <cstring>

#include "backends/memcache/byte_order.h"

namespace backends::memcache {

namespace {

// A binary reply body may hold a value plus the longest key and extras the header can say.
constexpr uint64_t kMaxBinaryOverhead = 65535 + 255;

bool isErrorLine(std::string_view line) noexcept {
  // memcached also sends `ERROR <text>` and `ERROR: <text>` for some admin commands.
  return line.starts_with("ERROR") || line.starts_with("CLIENT_ERROR") ||
         line.starts_with("SERVER_ERROR");
}

// Backends are trusted to write sane numbers, but not to announce more than the limit.
bool parseLength(std::string_view s, uint64_t max, uint64_t* out) noexcept {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    const unsigned d = static_cast<unsigned char>(c) - '0';
    if (d > 9) return false;
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// Splits a line on spaces into at most `max` tokens; returns how many there were (counting
// on past `max`, so that too many can be told from just enough).
size_t splitLine(std::string_view line, std::string_view* tokens, size_t max) noexcept {
  size_t count = 0;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ') {
      ++i;
      continue;
    }
    const size_t space = line.find(' ', i);
    const size_t end = space == std::string_view::npos ? line.size() : space;
    if (count < max) tokens[count] = line.substr(i, end - i);
    ++count;
    i = end;
  }
  return count;
}

// `VALUE <key> <flags> <bytes> [<cas>]`: sets the key (offset within the line) and the data
// length.
bool parseValueLine(std::string_view line, uint64_t maxValue, ByteSpan* key,
                    uint64_t* bytes) noexcept {
  std::string_view t[5];
  const size_t n = splitLine(line, t, 5);
  if ((n != 4 && n != 5) || t[0] != "VALUE") return false;
  if (!parseLength(t[3], maxValue, bytes)) return false;
  *key = {static_cast<size_t>(t[1].data() - line.data()), t[1].size()};
  return true;
}

}  // namespace

bool isBinaryErrorStatus(uint16_t status) noexcept {
  return status != kBinaryStatusOk && status != kBinaryStatusKeyNotFound &&
         status != kBinaryStatusKeyExists && status != kBinaryStatusNotStored;
}

void ReplyParser::reset() noexcept {
  kind_ = ReplyKind::TextLine;
  started_ = false;
  done_ = false;
  failed_ = false;
  inData_ = false;
  pos_ = 0;
  lineScan_ = 0;
  lastLine_ = 0;
  dataLength_ = 0;
  lines_ = 0;
  frame_ = {};
  error_ = {};
}

ParseStatus ReplyParser::complete(size_t length) noexcept {
  frame_.length = length;
  done_ = true;
  return ParseStatus::Complete;
}

ParseStatus ReplyParser::fail(std::string_view message) noexcept {
  error_ = message;
  failed_ = true;
  return ParseStatus::Error;
}

ParseStatus ReplyParser::parse(const char* reply, size_t len, ReplyKind kind) noexcept {
  if (done_) return ParseStatus::Complete;
  if (failed_) return ParseStatus::Error;
  if (!started_) {
    started_ = true;
    kind_ = kind;
  }
  switch (kind_) {
    case ReplyKind::Binary:
    case ReplyKind::BinaryStat:
      return parseBinary(reply, len);
    case ReplyKind::TextRetrieval:
    case ReplyKind::TextLine:
    case ReplyKind::TextStats:
    case ReplyKind::Meta:
      return parseText(reply, len);
  }
  return fail("unknown reply kind");
}

ParseStatus ReplyParser::findLine(const char* reply, size_t len, size_t* cr) noexcept {
  // Resume the search where the last call stopped: a long line arriving a byte at a time is
  // still searched once.
  const size_t from = std::max(lineScan_, pos_);
  const size_t cap = pos_ + limits_.maxLineLength + 2;  // the '\n' lies before cap
  const size_t window = std::min(len, cap);
  const void* hit = from < window ? std::memchr(reply + from, '\n', window - from) : nullptr;
  if (hit == nullptr) {
    if (len >= cap) return fail("reply line too long");
    lineScan_ = len;
    return ParseStatus::NeedMore;
  }
  const size_t newline = static_cast<size_t>(static_cast<const char*>(hit) - reply);
  if (newline == pos_ || reply[newline - 1] != '\r') return fail("line not terminated by CRLF");
  *cr = newline - 1;
  return ParseStatus::Complete;
}

ParseStatus ReplyParser::parseText(const char* reply, size_t len) noexcept {
  for (;;) {
    if (inData_) {
      // Values are skipped by length, never scanned: O(1) per call while one arrives.
      if (len - pos_ < dataLength_ + 2) return ParseStatus::NeedMore;
      const size_t end = pos_ + dataLength_;
      if (reply[end] != '\r' || reply[end + 1] != '\n') {
        return fail("value not followed by CRLF");
      }
      pos_ = end + 2;
      inData_ = false;
      if (kind_ == ReplyKind::Meta) return complete(pos_);
      continue;
    }

    size_t cr = 0;
    if (const ParseStatus st = findLine(reply, len, &cr); st != ParseStatus::Complete) return st;
    const std::string_view line(reply + pos_, cr - pos_);
    const size_t next = cr + 2;
    lastLine_ = pos_;
    if (isErrorLine(line)) {
      frame_.isError = true;
      return complete(next);
    }

    switch (kind_) {
      case ReplyKind::TextLine:
        return complete(next);
      case ReplyKind::TextStats:
        // `stats reset` answers RESET and `stats detail on|off` answers OK, alone; every
        // other form is lines (STAT, ITEM, PREFIX) closed by END.
        if (line == "END" || (lines_ == 0 && (line == "RESET" || line == "OK"))) {
          return complete(next);
        }
        ++lines_;
        pos_ = next;
        continue;
      case ReplyKind::TextRetrieval: {
        if (line == "END") return complete(next);
        ByteSpan key;
        if (!parseValueLine(line, limits_.maxValueLength, &key, &dataLength_)) {
          return fail("unexpected line in a retrieval reply");
        }
        ++frame_.values;
        inData_ = true;
        pos_ = next;
        continue;
      }
      case ReplyKind::Meta: {
        // HD, EN, NF, NS, EX, MN, ME: the line is the reply.
        if (line != "VA" && !line.starts_with("VA ")) return complete(next);
        std::string_view t[2];
        if (splitLine(line, t, 2) < 2 || !parseLength(t[1], limits_.maxValueLength, &dataLength_)) {
          return fail("invalid VA line");
        }
        frame_.values = 1;
        inData_ = true;
        pos_ = next;
        continue;
      }
      case ReplyKind::Binary:
      case ReplyKind::BinaryStat:
        break;
    }
    return fail("unknown reply kind");
  }
}

ParseStatus ReplyParser::parseBinary(const char* reply, size_t len) noexcept {
  for (;;) {
    // The 24-byte header is read again while its body arrives: O(1) per call.
    if (len - pos_ < kBinaryHeaderLength) return ParseStatus::NeedMore;
    const char* h = reply + pos_;
    if (static_cast<uint8_t>(h[0]) != kBinaryResponseMagic) {
      return fail("bad magic in a binary reply");
    }
    const uint16_t keyLength = readBigEndian16(h + 2);
    const auto extrasLength = static_cast<uint8_t>(h[4]);
    const uint16_t status = readBigEndian16(h + 6);
    const uint32_t body = readBigEndian32(h + 8);
    if (uint64_t{keyLength} + extrasLength > body) {
      return fail("binary reply key and extras longer than its body");
    }
    if (body > limits_.maxValueLength + kMaxBinaryOverhead) {
      return fail("binary reply body too long");
    }
    if (len - pos_ - kBinaryHeaderLength < body) return ParseStatus::NeedMore;
    lastLine_ = pos_;
    pos_ += kBinaryHeaderLength + body;
    ++frame_.values;
    frame_.binaryStatus = status;
    // STAT answers one packet per statistic and closes with an empty one; a failure is a
    // single packet without a key, so it ends the sequence as well.
    if (kind_ == ReplyKind::Binary || keyLength == 0 || status != kBinaryStatusOk) {
      frame_.isError = isBinaryErrorStatus(status);
      return complete(pos_);
    }
  }
}

ParseStatus splitRetrieval(const char* reply, size_t len, RetrievalReply& out,
                           const ReplyLimits& limits) {
  out.items.clear();
  out.last = {};
  out.isError = false;
  out.length = 0;
  // The first pass validates the whole reply; the second trusts it and walks its headers,
  // skipping values by length, so both cost O(items), not O(bytes).
  ReplyParser parser(limits);
  if (const ParseStatus st = parser.parse(reply, len, ReplyKind::TextRetrieval);
      st != ParseStatus::Complete) {
    return st;
  }
  const size_t length = parser.frame().length;
  const size_t last = parser.lastLineOffset();
  out.items.reserve(parser.frame().values);
  size_t pos = 0;
  while (pos < last) {
    const void* newline = std::memchr(reply + pos, '\n', last - pos);
    if (newline == nullptr) return ParseStatus::Error;  // cannot happen after the first pass
    const size_t lineEnd = static_cast<size_t>(static_cast<const char*>(newline) - reply);
    ByteSpan key;
    uint64_t bytes = 0;
    if (!parseValueLine(std::string_view(reply + pos, lineEnd - 1 - pos), limits.maxValueLength,
                        &key, &bytes)) {
      return ParseStatus::Error;
    }
    const size_t end = lineEnd + 1 + static_cast<size_t>(bytes) + 2;
    out.items.push_back({{pos, end - pos}, {pos + key.offset, key.length}});
    pos = end;
  }
  out.last = {last, length - last};
  out.isError = parser.frame().isError;
  out.length = length;
  return ParseStatus::Complete;
}

}  // namespace backends::memcache
