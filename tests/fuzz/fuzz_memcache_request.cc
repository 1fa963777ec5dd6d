// fuzz_memcache_request: backends/memcache/request_parser.h on a pipelined client stream of
// text, meta and binary requests.
//
// Input: [plan byte][limits byte][stream]; see fuzz_common.h for the plan byte. Limits byte:
// bit 7 clear, the defaults; set, small limits: bits 0-1 maxKeys (2, 3 and 5 are what a pool's
// max_request_args can set), 2-3 maxValueLength, 4-5 maxLineLength, 6 maxRetrievalLineLength.
//
// Checked, for every request of the stream (skippable refusals are skipped, as the proxy does):
//  - whole vs chunked: the same verdicts and every result the proxy reads;
//  - spans (tokens, keys, prefix, data, noreply, opaque, binary extras/key/value) lie within
//    size(), which lies within the bytes given; a data block is followed by CRLF; a binary
//    request is its header plus its body; parse() again answers the same;
//  - the error kind matches the verdict; messages are non-empty and single-line; the answer
//    appendErrorReply() writes frames, as the reply of that request's replyKind(), as one
//    error reply of exactly its length;
//  - a get rebuilt from prefix() and keys() (appendGet) frames to the same command and keys;
//    a quiet request names its quiet marker; a base64 key (meta b) decodes;
//  - limits only refuse: what frames (Complete, BadKey, or Invalid for any reason but too
//    many keys) under small limits frames identically under the defaults.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends/memcache/reply_parser.h"
#include "backends/memcache/request_parser.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

namespace mc = backends::memcache;
using fuzz::printable;
using fuzz::statusName;
using mc::ByteSpan;
using mc::RequestError;
using mc::RequestLimits;
using mc::RequestParser;
using mc::RequestStatus;

#ifndef RINGPROXY_FUZZ_EXCUSE_TOKEN_CAP
#define RINGPROXY_FUZZ_EXCUSE_TOKEN_CAP 0  // fixed: keep the check live
#endif

RequestLimits limitsFrom(uint8_t b) {
  RequestLimits limits;
  if (!fuzz::smallLimits(b)) return limits;
  constexpr size_t kKeys[] = {2, 3, 5, 10000};
  constexpr size_t kValues[] = {1024, 0, 5, 64u * 1024 * 1024};
  constexpr size_t kLines[] = {2048, 0, 16, 64};
  constexpr size_t kRetrievalLines[] = {64 * 1024, 32};
  limits.maxKeys = kKeys[b & 3];
  limits.maxValueLength = kValues[(b >> 2) & 3];
  limits.maxLineLength = kLines[(b >> 4) & 3];
  limits.maxRetrievalLineLength = kRetrievalLines[(b >> 6) & 1];
  return limits;
}

bool framed(RequestStatus s) {
  return s == RequestStatus::Complete || s == RequestStatus::BadKey || s == RequestStatus::Invalid;
}

std::string span(ByteSpan s) { return std::to_string(s.offset) + "+" + std::to_string(s.length); }

std::string describe(const RequestParser& p, const char* base, RequestStatus st) {
  std::string out = statusName(st);
  out += " dialect=" + std::to_string(static_cast<int>(p.dialect()));
  if (st == RequestStatus::NeedMore) return out + "\n";
  out += " error=" + std::to_string(static_cast<int>(p.error())) + " '" +
         std::string(p.errorMessage()) + "'";
  if (!framed(st)) return out + "\n";
  out += " size=" + std::to_string(p.size()) +
         " command=" + std::to_string(static_cast<int>(p.command())) +
         " reply=" + std::to_string(static_cast<int>(p.replyKind())) + " tokens=[";
  for (const ByteSpan& t : p.tokens()) out += "'" + printable({base + t.offset, t.length}, 40) + "' ";
  out += "] keys=[";
  for (const ByteSpan& k : p.keys()) out += span(k) + " ";
  out += "] prefix=" + span(p.prefix()) + " data=" + span(p.data()) +
         " noreply=" + std::to_string(p.noreply()) + "@" + span(p.noreplySpan()) +
         " meta=" + std::to_string(p.metaFlags()) + " opaque=" + span(p.opaqueSpan());
  if (p.dialect() == mc::Dialect::Binary) {
    const auto& b = p.binary();
    out += " bin=" + std::to_string(b.opcode) + "/" + std::to_string(b.keyLength) + "/" +
           std::to_string(b.extrasLength) + "/" + std::to_string(b.bodyLength) + "/" +
           std::to_string(b.opaque) + "/" + std::to_string(b.cas) + " " + span(b.extras) + " " +
           span(b.key) + " " + span(b.value);
  }
  return out + "\n";
}

bool within(ByteSpan s, size_t size) { return s.offset <= size && s.length <= size - s.offset; }

void checkErrorReply(const RequestParser& p, RequestStatus st, const std::string& where) {
  std::string answer;
  const bool wrote = mc::appendErrorReply(answer, p);
  if (st == RequestStatus::Complete) {
    FUZZ_CHECK(!wrote && answer.empty(), "an error reply for a valid request" + where);
    return;
  }
  if (!wrote) {
    FUZZ_CHECK(answer.empty(), "appendErrorReply wrote and returned false" + where);
    return;
  }
  mc::ReplyParser reply;
  const mc::ParseStatus rs = reply.parse(answer.data(), answer.size(), p.replyKind());
  FUZZ_CHECK(rs == mc::ParseStatus::Complete && reply.frame().length == answer.size() &&
                 reply.frame().isError,
             "the error reply '" + printable(answer) + "' does not frame as one error reply of kind " +
                 std::to_string(static_cast<int>(p.replyKind())) + where);
}

void checkRequest(RequestParser& p, const char* base, size_t len, size_t total, RequestStatus st) {
  const std::string where = " in '" + printable({base, len}) + "'";
  const RequestError e = p.error();
  if (st == RequestStatus::NeedMore) {
    FUZZ_CHECK(len == total, "NeedMore with bytes left" + where);
    return;
  }
  FUZZ_CHECK(p.parse(base, len) == st, "verdict not sticky" + where);
  const std::string_view m = p.errorMessage();
  FUZZ_CHECK(m.find_first_of("\r\n") == std::string_view::npos, "CR or LF in the message" + where);
  switch (st) {
    case RequestStatus::Complete:
      FUZZ_CHECK(e == RequestError::None && m.empty(), "error on Complete" + where);
      break;
    case RequestStatus::BadKey:
      FUZZ_CHECK(e == RequestError::BadKey && !m.empty(), "BadKey without its error" + where);
      break;
    case RequestStatus::Invalid:
      FUZZ_CHECK((e == RequestError::UnknownCommand || e == RequestError::BadFormat ||
                  e == RequestError::TooManyKeys) && !m.empty(),
                 "Invalid with error " + std::to_string(static_cast<int>(e)) + where);
      break;
    case RequestStatus::Error:
      FUZZ_CHECK(e >= RequestError::LineTooLong && !m.empty(),
                 "Error with error " + std::to_string(static_cast<int>(e)) + where);
      checkErrorReply(p, st, where);
      return;
    case RequestStatus::NeedMore:
      break;
  }
  checkErrorReply(p, st, where);

  const size_t size = p.size();
  FUZZ_CHECK(size >= 1 && size <= len, "size " + std::to_string(size) + where);
  for (const ByteSpan& t : p.tokens()) FUZZ_CHECK(t.length > 0 && within(t, size), "token" + where);
  for (const ByteSpan& k : p.keys()) FUZZ_CHECK(within(k, size), "key" + where);
  FUZZ_CHECK(within(p.prefix(), size) && within(p.data(), size) && within(p.noreplySpan(), size) &&
                 within(p.opaqueSpan(), size),
             "span outside the request" + where);

  if (p.dialect() == mc::Dialect::Binary) {
    const auto& b = p.binary();
    FUZZ_CHECK(size == mc::kBinaryHeaderLength + b.bodyLength, "binary size" + where);
    FUZZ_CHECK(within(b.extras, size) && within(b.key, size) && within(b.value, size),
               "binary span" + where);
    if (p.noreply()) FUZZ_CHECK(p.binaryInfo() != nullptr && p.binaryInfo()->quiet, "quiet" + where);
    return;
  }

  // Text and meta: one line, and a data block when the command carries one.
  const mc::TextCommandInfo* info = mc::textCommandInfo(p.command());
  if (info != nullptr && info->bytesToken != 0) {
    FUZZ_CHECK(p.data().end() + 2 == size && base[size - 2] == '\r' && base[size - 1] == '\n',
               "data block not ending the request" + where);
  } else {
    const void* nl = std::memchr(base, '\n', size);
    FUZZ_CHECK(nl != nullptr && static_cast<const char*>(nl) == base + size - 1,
               "a line request not ending at its first newline" + where);
  }
  if (p.noreply()) {
    const std::string_view marker(base + p.noreplySpan().offset, p.noreplySpan().length);
    FUZZ_CHECK(marker == "noreply" || (p.dialect() == mc::Dialect::Meta && marker.starts_with("q")),
               "quiet marker '" + printable(marker) + "'" + where);
  }
  if (st != RequestStatus::Complete) return;
  if (p.keyIsBase64() && p.keys().size() == 1) {
    const std::string_view key = p.key(base, 0);
    std::string decoded(mc::base64DecodedCapacity(key.size()), '\0');
    size_t n = 0;
    FUZZ_CHECK(mc::decodeBase64(key, decoded.data(), &n), "base64 key does not decode" + where);
  }
  if (info != nullptr && info->multiKey) {
    std::string rebuilt;
    mc::appendGet(rebuilt, base, p.prefix(), p.keys());
    RequestParser again;
    const RequestStatus st2 = again.parse(rebuilt.data(), rebuilt.size());
    FUZZ_CHECK(st2 == RequestStatus::Complete && again.size() == rebuilt.size() &&
                   again.command() == p.command() && again.keys().size() == p.keys().size(),
               "rebuilt get '" + printable(rebuilt) + "' frames as " +
                   describe(again, rebuilt.data(), st2) + where);
    for (size_t i = 0; i < p.keys().size(); ++i) {
      FUZZ_CHECK(again.key(rebuilt.data(), i) == p.key(base, i), "rebuilt key" + where);
    }
  }
}

// One request's verdict, and its description for comparisons and messages.
struct Step {
  RequestStatus status;
  RequestError error;
  size_t tokens;
  std::string text;
};

std::vector<Step> run(const char* stream, size_t n, fuzz::ChunkPlan* plan,
                      const RequestLimits& limits) {
  std::vector<Step> steps;
  RequestParser parser(limits);
  fuzz::frameStream(
      parser, stream, n, plan, [&](const char* b, size_t l) { return parser.parse(b, l); },
      [&](const char* base, size_t len, size_t start, RequestStatus st) -> size_t {
        checkRequest(parser, base, len, n - start, st);
        steps.push_back({st, parser.error(), parser.tokens().size(), describe(parser, base, st)});
        return framed(st) ? parser.size() : 0;
      });
  return steps;
}

std::string text(const std::vector<Step>& steps) {
  std::string out;
  for (const Step& s : steps) out += s.text;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in;
  if (!fuzz::splitInput(data, size, &in)) return 0;
  const RequestLimits limits = limitsFrom(in.option);
  const std::vector<Step> whole = fuzz::wholeVsChunked(
      in, [&](fuzz::ChunkPlan* plan) { return run(in.stream, in.size, plan, limits); }, text);

  if (fuzz::smallLimits(in.option)) {
    // Limits only refuse: compare request by request until the first one they may have
    // refused (an Error, too many keys) or the end.
    const std::vector<Step> loose = run(in.stream, in.size, nullptr, RequestLimits{});
    for (size_t i = 0; i < whole.size(); ++i) {
      const Step& strict = whole[i];
      if (strict.status == RequestStatus::Error || strict.error == RequestError::TooManyKeys) break;
      FUZZ_CHECK(i < loose.size(), "the defaults framed fewer requests");
#if RINGPROXY_FUZZ_EXCUSE_TOKEN_CAP
      // KNOWN BUG, reported (regressions/fuzz_memcache_request/token-cap-*): tokenize() stops
      // at maxKeys + 3 tokens for every command, not just the get family, so a small
      // max_request_args drops a set's `noreply` or a meta command's flags. Excused here so
      // that fuzzing goes on past it; build with -DRINGPROXY_FUZZ_EXCUSE_TOKEN_CAP=0 to see it.
      if (loose[i].tokens > limits.maxKeys + 3) break;
#endif
      FUZZ_CHECK(strict.text == loose[i].text,
                 "small limits (byte " + std::to_string(in.option) + ") framed\n  " + strict.text +
                     "the defaults\n  " + loose[i].text + "stream '" + printable(in.bytes()) + "'");
    }
  }
  return 0;
}
