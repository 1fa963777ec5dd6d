// fuzz_resp_reply: backends/resp/reply_parser.h on a pipelined backend stream, differential
// against hiredis's redisReader (libhiredis 0.14, the reference RESP2 reader).
//
// Input: [plan byte][limits byte][stream]; see fuzz_common.h for the plan byte. Limits byte:
// bit 7 clear, the default maxBulkLength; set, one of a few small ones (bits 0-1).
//
// Checked, for every reply of the stream:
//  - whole vs chunked: the same statuses, frames and errors;
//  - a Complete frame lies within the bytes given, its type byte is at its offset, parse()
//    again answers the same; an Error has a message;
//  - splitAggregate on every complete aggregate: one span per element (two per map entry),
//    back to back from the end of the header line to the end of the reply, each framing on
//    its own to exactly its length; on anything else, Error; cut short, NeedMore;
//  - limits only refuse: what frames under a small maxBulkLength frames identically under the
//    default;
//  - hiredis agrees on where each reply ends. Where they may differ by design, the comparison
//    stops: hiredis 0.14 knows no RESP3 type byte and nests at most 8 arrays; ours refuses what
//    hiredis lets pass (a payload not followed by CRLF, a line ended by a bare LF, a header
//    over 32 bytes, a bulk over the limit) and lets pass numbers hiredis refuses (a '+' sign,
//    leading zeros, "-0"). Anything else, one completing where the other waits or errs, or
//    completing at different lengths, is a finding.
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/resp/reply_parser.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

using backends::resp::ByteSpan;
using backends::resp::ParseStatus;
using backends::resp::ReplyLimits;
using backends::resp::ReplyParser;
using backends::resp::splitAggregate;
using fuzz::printable;
using fuzz::statusName;

ReplyLimits limitsFrom(uint8_t b) {
  ReplyLimits limits;
  if (!fuzz::smallLimits(b)) return limits;
  constexpr uint64_t kBulks[] = {0, 1, 5, 100};
  limits.maxBulkLength = kBulks[b & 3];
  return limits;
}

std::string describe(const ReplyParser& p, ParseStatus st) {
  return fuzz::logLine(p, st, [&] {
    const auto& f = p.frame();
    return " length=" + std::to_string(f.length) + " offset=" + std::to_string(f.offset) +
           " type='" + printable(std::string_view(&f.type, 1)) +
           "' value=" + std::to_string(f.value);
  });
}

void checkSplit(const char* base, const ReplyParser& p, const ReplyLimits& limits) {
  const auto& f = p.frame();
  const std::string_view reply(base, f.length);
  std::vector<ByteSpan> elements;
  const ParseStatus st = splitAggregate(base, f.length, elements, limits);
  if (!f.isAggregate()) {
    FUZZ_CHECK(st == ParseStatus::Error,
               "splitAggregate on a non-aggregate '" + printable(reply) + "' gave " +
                   statusName(st));
    return;
  }
  FUZZ_CHECK(st == ParseStatus::Complete,
             std::string("splitAggregate gave ") + statusName(st) + " on '" + printable(reply) + "'");
  if (f.value < 0) {
    FUZZ_CHECK(elements.empty(), "elements of a null aggregate '" + printable(reply) + "'");
  } else {
    const uint64_t expected = static_cast<uint64_t>(f.value) * (f.type == '%' ? 2 : 1);
    FUZZ_CHECK(elements.size() == expected,
               std::to_string(elements.size()) + " elements, header says " +
                   std::to_string(expected) + ": '" + printable(reply) + "'");
    const void* nl = std::memchr(base + f.offset, '\n', f.length - f.offset);
    FUZZ_CHECK(nl != nullptr, "no header line in '" + printable(reply) + "'");
    size_t pos = static_cast<size_t>(static_cast<const char*>(nl) - base) + 1;
    for (size_t i = 0; i < elements.size(); ++i) {
      const ByteSpan e = elements[i];
      FUZZ_CHECK(e.offset == pos && e.length > 0 && e.length <= f.length - pos,
                 "element " + std::to_string(i) + " at " + std::to_string(e.offset) + "+" +
                     std::to_string(e.length) + ", expected at " + std::to_string(pos) +
                     ": '" + printable(reply) + "'");
      ReplyParser one(limits);
      FUZZ_CHECK(one.parse(base + e.offset, e.length) == ParseStatus::Complete &&
                     one.frame().length == e.length,
                 "element " + std::to_string(i) + " does not frame alone: '" +
                     printable(reply) + "'");
      pos += e.length;
    }
    FUZZ_CHECK(pos == f.length, "elements end at " + std::to_string(pos) + " of " +
                                    std::to_string(f.length) + ": '" + printable(reply) + "'");
  }
  // Cut short by one byte, the same bytes are a reply still arriving.
  std::unique_ptr<char[]> cut(new char[f.length]);
  std::memcpy(cut.get(), base, f.length - 1);
  FUZZ_CHECK(splitAggregate(cut.get(), f.length - 1, elements, limits) == ParseStatus::NeedMore,
             "splitAggregate on a reply missing its last byte: '" + printable(reply) + "'");
}

void checkReply(ReplyParser& p, const char* base, size_t len, ParseStatus st,
                const ReplyLimits& limits) {
  if (st == ParseStatus::NeedMore) return;
  if (st == ParseStatus::Error) {
    FUZZ_CHECK(!p.errorMessage().empty(), "empty error message");
    FUZZ_CHECK(p.parse(base, len) == ParseStatus::Error, "Error is not sticky");
    return;
  }
  const auto f = p.frame();
  FUZZ_CHECK(f.length >= 3 && f.length <= len && f.offset < f.length,
             "frame length " + std::to_string(f.length) + " offset " + std::to_string(f.offset) +
                 " of " + std::to_string(len) + " bytes");
  FUZZ_CHECK(base[f.offset] == f.type, "type byte not at the frame's offset");
  FUZZ_CHECK(base[f.length - 2] == '\r' && base[f.length - 1] == '\n',
             "reply not ending in CRLF: '" + printable(std::string_view(base, f.length)) + "'");
  FUZZ_CHECK(std::string_view("+-:$*,#_(!=%~>").find(f.type) != std::string_view::npos,
             "top-level type '" + printable(std::string_view(&f.type, 1)) + "'");
  FUZZ_CHECK(p.parse(base, len) == ParseStatus::Complete && p.frame().length == f.length,
             "Complete is not sticky");
  checkSplit(base, p, limits);
}

// Where each reply of a stream ended: its verdict and the stream offset after it (the end of
// the stream for anything but Complete).
using Ends = std::vector<std::pair<ParseStatus, size_t>>;

// A run over a stream: its log, and where each reply ended.
struct Run {
  std::string log;
  Ends ends;
};

// Frames the stream reply after reply.
Run run(const char* stream, size_t n, fuzz::ChunkPlan* plan, const ReplyLimits& limits) {
  Run out;
  ReplyParser parser(limits);
  fuzz::frameStream(
      parser, stream, n, plan, [&](const char* b, size_t l) { return parser.parse(b, l); },
      [&](const char* base, size_t len, size_t start, ParseStatus st) -> size_t {
        checkReply(parser, base, len, st, limits);
        out.log += describe(parser, st);
        const size_t used = st == ParseStatus::Complete ? parser.frame().length : 0;
        out.ends.push_back({st, st == ParseStatus::Complete ? start + used : n});
        return used;
      });
  return out;
}

// --- hiredis ---------------------------------------------------------------------------------

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};

// A number line ours accepts by design and hiredis refuses: after ':' '$' or '*', a '+' sign,
// "-0", or a leading zero followed by more digits. Coarse (it may sit inside a payload), so it
// only excuses hiredis's number errors, never a disagreement on lengths.
bool hasLenientNumber(std::string_view s) {
  for (size_t i = 0; i + 2 < s.size(); ++i) {
    if (s[i] != ':' && s[i] != '$' && s[i] != '*') continue;
    const char a = s[i + 1];
    const char b = s[i + 2];
    if (a == '+' || (a == '-' && b == '0') || (a == '0' && b >= '0' && b <= '9')) return true;
  }
  return false;
}

// hiredis allocates an array's slots as soon as it reads the header: keep the fuzzer's
// malloc limit out of the way of "*300000000\r\n".
bool hasHugeArrayCount(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '*') continue;
    size_t j = i + 1;
    if (j < s.size() && (s[j] == '-' || s[j] == '+')) ++j;
    uint64_t v = 0;
    for (; j < s.size() && s[j] >= '0' && s[j] <= '9'; ++j) {
      v = v * 10 + static_cast<uint64_t>(s[j] - '0');
      if (v > 100000) return true;
    }
  }
  return false;
}

bool isResp3Type(char c) { return std::string_view(",#_(!=%~>|").find(c) != std::string_view::npos; }

void compareWithHiredis(const char* stream, size_t n, const Ends& ours) {
  const std::string_view input(stream, n);
  if (hasHugeArrayCount(input)) return;
  std::unique_ptr<redisReader, ReaderDeleter> reader(redisReaderCreate());
  if (n > 0) FUZZ_CHECK(redisReaderFeed(reader.get(), stream, n) == REDIS_OK, "redisReaderFeed");
  for (size_t i = 0; i < ours.size(); ++i) {
    void* reply = nullptr;
    const int rc = redisReaderGetReply(reader.get(), &reply);
    if (reply != nullptr) freeReplyObject(reply);
    const std::string_view err(reader->errstr);
    const auto [status, end] = ours[i];
    const std::string where = "reply " + std::to_string(i) + " of '" + printable(input) +
                              "': ours " + statusName(status) + " at " + std::to_string(end) +
                              ", hiredis ";
    if (rc != REDIS_OK) {
      // Excused: what hiredis 0.14 does not support, and numbers ours accepts by design.
      if (err.find("nested multi bulk") != std::string_view::npos) return;
      if (err.starts_with("Protocol error, got \"") && err.size() > 22 && isResp3Type(err[21])) {
        return;
      }
      if (status == ParseStatus::Error) return;
      if ((err.starts_with("Bad ") || err.find("out of range") != std::string_view::npos) &&
          hasLenientNumber(input)) {
        return;
      }
      FUZZ_CHECK(false, where + "error '" + std::string(err) + "'");
    }
    if (reply == nullptr) {  // hiredis waits
      if (status == ParseStatus::Error) return;  // ours is stricter
      FUZZ_CHECK(status == ParseStatus::NeedMore, where + "waits");
      return;
    }
    const size_t theirs = n - (reader->len - reader->pos);
    if (status == ParseStatus::Error) return;
    FUZZ_CHECK(status == ParseStatus::Complete && end == theirs,
               where + "complete at " + std::to_string(theirs));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in;
  if (!fuzz::splitInput(data, size, &in)) return 0;
  const ReplyLimits limits = limitsFrom(in.option);
  const Run whole = fuzz::wholeVsChunked(
      in, [&](fuzz::ChunkPlan* plan) { return run(in.stream, in.size, plan, limits); },
      [](const Run& r) -> const std::string& { return r.log; });

  if (fuzz::smallLimits(in.option)) {
    const Run loose = run(in.stream, in.size, nullptr, ReplyLimits{});
    for (size_t i = 0; i < whole.ends.size(); ++i) {
      if (whole.ends[i].first == ParseStatus::Error) break;
      FUZZ_CHECK(i < loose.ends.size() && loose.ends[i] == whole.ends[i],
                 "reply " + std::to_string(i) + " frames differently under a small limit: '" +
                     printable(in.bytes()) + "'\n--- small:\n" + whole.log + "--- default:\n" +
                     loose.log);
    }
    compareWithHiredis(in.stream, in.size, loose.ends);
  } else {
    compareWithHiredis(in.stream, in.size, whole.ends);
  }
  return 0;
}
