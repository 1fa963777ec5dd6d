// fuzz_resp_request: backends/resp/request_parser.h on a pipelined client stream.
//
// Input: [plan byte][limits byte][stream]; see fuzz_common.h for the plan byte.
// Limits byte: bit 7 clear, the defaults; set, small limits (bits 0-1 maxMultibulkCount,
// 2-3 maxBulkLength, 4-5 maxInlineLength), some below what a config can set.
//
// Checked, for every request of the stream:
//  - whole vs chunked: the same statuses, sizes, arguments and errors;
//  - a Complete request's size() is within the bytes given and its argument spans within the
//    request; bytes past the request are never written; parse() again answers the same;
//  - a multibulk request is left as it is and re-encodes (appendMultibulk) to exactly its own
//    bytes, its encoding being canonical; an inline one re-encodes to a multibulk request
//    that frames to the same arguments;
//  - an Error has a message without CR or LF;
//  - limits only refuse: what frames under small limits frames identically under the defaults.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "backends/resp/request_parser.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

using backends::resp::appendMultibulk;
using backends::resp::ParseStatus;
using backends::resp::RequestLimits;
using backends::resp::RequestParser;
using fuzz::printable;
using fuzz::statusName;

RequestLimits limitsFrom(uint8_t b) {
  RequestLimits limits;
  if (!fuzz::smallLimits(b)) return limits;
  constexpr size_t kCounts[] = {2, 3, 16, 1024 * 1024};
  constexpr size_t kBulks[] = {1024, 0, 5, 512u * 1024 * 1024};
  constexpr size_t kInlines[] = {64 * 1024, 0, 8, 40};
  limits.maxMultibulkCount = kCounts[b & 3];
  limits.maxBulkLength = kBulks[(b >> 2) & 3];
  limits.maxInlineLength = kInlines[(b >> 4) & 3];
  return limits;
}

std::string describe(const RequestParser& p, const char* base, ParseStatus st) {
  return fuzz::logLine(p, st, [&] {
    std::string out = " size=" + std::to_string(p.size()) +
                      (p.isInline() ? " inline" : " multibulk") + " args=[";
    for (size_t i = 0; i < p.argc(); ++i) {
      out += (i == 0 ? "'" : ", '") + printable(p.arg(base, i), 60) + "'";
    }
    return out + "]";
  });
}

// Checks one framed request. `original` is the request's bytes before parsing, `base` what the
// parser was last given (`len` bytes), possibly rewritten in place.
void checkRequest(RequestParser& p, char* base, size_t len, const char* original, ParseStatus st) {
  const std::string_view was(original, len);
  switch (st) {
    case ParseStatus::NeedMore:
      return;
    case ParseStatus::Error: {
      const std::string_view m = p.errorMessage();
      FUZZ_CHECK(!m.empty(), "empty error message for '" + printable(was) + "'");
      FUZZ_CHECK(m.find_first_of("\r\n") == std::string_view::npos,
                 "CR or LF in error message '" + printable(m) + "'");
      FUZZ_CHECK(p.parse(base, len) == ParseStatus::Error, "Error is not sticky");
      return;
    }
    case ParseStatus::Complete:
      break;
  }
  const size_t size = p.size();
  FUZZ_CHECK(size >= 1 && size <= len,
             "size " + std::to_string(size) + " of " + std::to_string(len) + " bytes");
  FUZZ_CHECK(std::memcmp(base + size, original + size, len - size) == 0,
             "bytes past the request were written: '" + printable(was) + "'");
  for (size_t i = 0; i < p.argc(); ++i) {
    const auto a = p.args()[i];
    FUZZ_CHECK(a.offset <= size && a.length <= size - a.offset,
               "argument " + std::to_string(i) + " outside the request '" + printable(was) + "'");
  }
  const std::string request(original, size);
  std::string encoded;
  if (p.argc() > 0) appendMultibulk(encoded, base, p.args());
  if (!p.isInline()) {
    FUZZ_CHECK(std::memcmp(base, original, size) == 0, "a multibulk request was written");
    if (p.argc() > 0) {
      FUZZ_CHECK(encoded == request, "re-encoded '" + printable(encoded) + "' from '" +
                                         printable(request) + "'");
    } else {
      FUZZ_CHECK(request[0] == '*', "argc 0 multibulk not starting with '*'");
    }
  } else if (p.argc() > 0) {
    RequestParser again;
    const ParseStatus st2 = again.parse(encoded.data(), encoded.size());
    FUZZ_CHECK(st2 == ParseStatus::Complete && again.size() == encoded.size() &&
                   !again.isInline() && again.argc() == p.argc(),
               "inline '" + printable(request) + "' re-encoded as '" + printable(encoded) +
                   "' frames as " + describe(again, encoded.data(), st2));
    for (size_t i = 0; i < p.argc(); ++i) {
      FUZZ_CHECK(again.arg(encoded.data(), i) == p.arg(base, i),
                 "argument " + std::to_string(i) + " changed by re-encoding '" +
                     printable(request) + "'");
    }
  }
  const size_t argc = p.argc();
  FUZZ_CHECK(p.parse(base, len) == ParseStatus::Complete && p.size() == size && p.argc() == argc,
             "Complete is not sticky");
}

// Frames the stream request after request; nullptr plan: each request's bytes all at once.
std::string run(const char* stream, size_t n, fuzz::ChunkPlan* plan, const RequestLimits& limits) {
  std::string log;
  RequestParser parser(limits);
  fuzz::frameStream(
      parser, stream, n, plan, [&](char* b, size_t l) { return parser.parse(b, l); },
      [&](char* base, size_t len, size_t start, ParseStatus st) -> size_t {
        checkRequest(parser, base, len, stream + start, st);
        log += describe(parser, base, st);
        return st == ParseStatus::Complete ? parser.size() : 0;
      });
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in;
  if (!fuzz::splitInput(data, size, &in)) return 0;
  const RequestLimits limits = limitsFrom(in.option);
  const std::string whole = fuzz::wholeVsChunked(
      in, [&](fuzz::ChunkPlan* plan) { return run(in.stream, in.size, plan, limits); });

  if (fuzz::smallLimits(in.option)) {
    // Limits only refuse. Every request framed under the small limits frames the same way
    // under the defaults; one still waiting under the small limits waits under the defaults.
    const std::string loose = run(in.stream, in.size, nullptr, RequestLimits{});
    fuzz::compareWithLooseLimits(whole, loose, in.option, in.bytes());
  }
  return 0;
}
