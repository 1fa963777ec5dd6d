// fuzz_memcache_reply: backends/memcache/reply_parser.h on a pipelined backend stream, for
// every ReplyKind.
//
// Input: [plan byte][option byte][stream]; see fuzz_common.h for the plan byte. Option byte:
// bits 0-2 the ReplyKind (modulo their number) of every reply in the stream; bit 7 clear, the
// default limits; set, small ones (bits 3-4 maxLineLength, 5-6 maxValueLength).
//
// Checked, for every reply of the stream:
//  - whole vs chunked: the same statuses, frames, last-line offsets and errors;
//  - a Complete frame lies within the bytes given; a text reply ends in CRLF, a one-line
//    reply at its first newline; isError matches the line that ended the reply; a binary
//    reply is whole packets, as many as frame().values, the last one's status in the frame;
//    parse() again answers the same; an Error has a message;
//  - splitRetrieval on every complete retrieval reply: its VALUE items back to back up to the
//    last line, as many as frame().values, each with its key inside; cut short, NeedMore;
//  - limits only refuse: what frames under small limits frames identically under the defaults.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "backends/memcache/byte_order.h"
#include "backends/memcache/reply_parser.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

namespace mc = backends::memcache;
using fuzz::printable;
using fuzz::statusName;
using mc::ParseStatus;
using mc::ReplyKind;
using mc::ReplyLimits;
using mc::ReplyParser;

ReplyLimits limitsFrom(uint8_t b) {
  ReplyLimits limits;
  if (!fuzz::smallLimits(b)) return limits;
  constexpr size_t kLines[] = {8192, 0, 5, 20};
  constexpr uint64_t kValues[] = {1024u * 1024 * 1024, 0, 1, 10};
  limits.maxLineLength = kLines[(b >> 3) & 3];
  limits.maxValueLength = kValues[(b >> 5) & 3];
  return limits;
}

std::string describe(const ReplyParser& p, ParseStatus st) {
  return fuzz::logLine(p, st, [&] {
    const auto& f = p.frame();
    return " length=" + std::to_string(f.length) + " error=" + std::to_string(f.isError) +
           " values=" + std::to_string(f.values) + " status=" + std::to_string(f.binaryStatus) +
           " last=" + std::to_string(p.lastLineOffset());
  });
}

bool isErrorLine(std::string_view line) {
  return line.starts_with("ERROR") || line.starts_with("CLIENT_ERROR") ||
         line.starts_with("SERVER_ERROR");
}

void checkRetrieval(const char* base, const ReplyParser& p, const ReplyLimits& limits,
                    const std::string& where) {
  const auto& f = p.frame();
  mc::RetrievalReply out;
  FUZZ_CHECK(mc::splitRetrieval(base, f.length, out, limits) == ParseStatus::Complete,
             "splitRetrieval refuses a complete reply" + where);
  FUZZ_CHECK(out.items.size() == f.values && out.length == f.length && out.isError == f.isError,
             std::to_string(out.items.size()) + " items, frame says " + std::to_string(f.values) + where);
  size_t pos = 0;
  for (const auto& item : out.items) {
    FUZZ_CHECK(item.item.offset == pos && item.item.length > 0, "items not back to back" + where);
    FUZZ_CHECK(std::string_view(base + pos, item.item.length).starts_with("VALUE "),
               "item not starting with VALUE" + where);
    FUZZ_CHECK(item.key.offset > pos && item.key.length > 0 &&
                   item.key.offset + item.key.length < pos + item.item.length,
               "key outside its item" + where);
    pos += item.item.length;
  }
  FUZZ_CHECK(out.last.offset == pos && out.last.offset == p.lastLineOffset() &&
                 out.last.offset + out.last.length == f.length,
             "last line at " + std::to_string(out.last.offset) + ", items end at " +
                 std::to_string(pos) + where);
  std::unique_ptr<char[]> cut(new char[f.length]);
  std::memcpy(cut.get(), base, f.length - 1);
  FUZZ_CHECK(mc::splitRetrieval(cut.get(), f.length - 1, out, limits) == ParseStatus::NeedMore,
             "splitRetrieval on a reply missing its last byte" + where);
}

void checkReply(ReplyParser& p, const char* base, size_t len, size_t total, ReplyKind kind,
                ParseStatus st, const ReplyLimits& limits) {
  const std::string where = " in '" + printable({base, len}) + "' kind " +
                            std::to_string(static_cast<int>(kind));
  if (st == ParseStatus::NeedMore) {
    FUZZ_CHECK(len == total, "NeedMore with bytes left" + where);
    return;
  }
  FUZZ_CHECK(p.parse(base, len, kind) == st, "status not sticky" + where);
  if (st == ParseStatus::Error) {
    FUZZ_CHECK(!p.errorMessage().empty(), "empty error message" + where);
    return;
  }
  const auto& f = p.frame();
  const size_t last = p.lastLineOffset();
  FUZZ_CHECK(f.length >= 1 && f.length <= len && last < f.length,
             "length " + std::to_string(f.length) + " last " + std::to_string(last) + where);
  if (kind == ReplyKind::Binary || kind == ReplyKind::BinaryStat) {
    size_t pos = 0;
    size_t packets = 0;
    size_t lastPacket = 0;
    uint16_t status = 0;
    while (pos < f.length) {
      FUZZ_CHECK(f.length - pos >= mc::kBinaryHeaderLength, "partial packet" + where);
      lastPacket = pos;
      status = mc::readBigEndian16(base + pos + 6);
      pos += mc::kBinaryHeaderLength + mc::readBigEndian32(base + pos + 8);
      ++packets;
    }
    FUZZ_CHECK(pos == f.length && packets == f.values && lastPacket == last &&
                   status == f.binaryStatus && f.isError == mc::isBinaryErrorStatus(status),
               "binary frame does not match its packets" + where);
    if (kind == ReplyKind::Binary) FUZZ_CHECK(packets == 1, "binary reply of many packets" + where);
    return;
  }
  FUZZ_CHECK(f.length >= 2 && base[f.length - 2] == '\r' && base[f.length - 1] == '\n',
             "text reply not ending in CRLF" + where);
  const char* nl = static_cast<const char*>(std::memchr(base + last, '\n', f.length - last));
  FUZZ_CHECK(nl != nullptr, "no last line" + where);
  const std::string_view lastLine(base + last, static_cast<size_t>(nl - (base + last)) - 1);
  FUZZ_CHECK(f.isError == isErrorLine(lastLine), "isError vs '" + printable(lastLine) + "'" + where);
  switch (kind) {
    case ReplyKind::TextLine:
      FUZZ_CHECK(last == 0 && nl == base + f.length - 1, "one-line reply of many lines" + where);
      break;
    case ReplyKind::TextStats:
      FUZZ_CHECK(nl == base + f.length - 1, "stats reply not ending at its last line" + where);
      break;
    case ReplyKind::TextRetrieval:
      FUZZ_CHECK(nl == base + f.length - 1, "retrieval reply not ending at its last line" + where);
      checkRetrieval(base, p, limits, where);
      break;
    case ReplyKind::Meta:
      FUZZ_CHECK(last == 0, "meta reply of many lines" + where);
      FUZZ_CHECK(f.values == (lastLine == "VA" || lastLine.starts_with("VA ") ? 1u : 0u),
                 "meta values" + where);
      break;
    case ReplyKind::Binary:
    case ReplyKind::BinaryStat:
      break;
  }
}

std::string run(const char* stream, size_t n, fuzz::ChunkPlan* plan, ReplyKind kind,
                const ReplyLimits& limits) {
  std::string log;
  ReplyParser parser(limits);
  fuzz::frameStream(
      parser, stream, n, plan, [&](const char* b, size_t l) { return parser.parse(b, l, kind); },
      [&](const char* base, size_t len, size_t start, ParseStatus st) -> size_t {
        checkReply(parser, base, len, n - start, kind, st, limits);
        log += describe(parser, st);
        return st == ParseStatus::Complete ? parser.frame().length : 0;
      });
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in;
  if (!fuzz::splitInput(data, size, &in)) return 0;
  const auto kind = static_cast<ReplyKind>((in.option & 7) % mc::kReplyKindCount);
  const ReplyLimits limits = limitsFrom(in.option);
  const std::string whole = fuzz::wholeVsChunked(
      in, [&](fuzz::ChunkPlan* plan) { return run(in.stream, in.size, plan, kind, limits); });

  if (fuzz::smallLimits(in.option)) {
    const std::string loose = run(in.stream, in.size, nullptr, kind, ReplyLimits{});
    fuzz::compareWithLooseLimits(whole, loose, in.option, in.bytes());
  }
  return 0;
}
