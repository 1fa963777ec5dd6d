// fuzz_admin_request: proxy/control/http_request.h parseRequestHead(), the admin listener's
// HTTP request parser, on the bytes a client sends.
//
// Input: [plan byte][limit byte][bytes]; see fuzz_common.h for the plan byte. Limit byte: bit 7
// clear, the listener's 8 KiB head limit; set, a small limit of 16 + 4 * (bits 0-6) bytes.
//
// Checked:
//  - whole vs chunked: the bytes arrive as the plan says, each call seeing exactly the bytes
//    received so far (a read past them is an ASan report); the first verdict other than
//    NeedMore is the verdict on all the bytes, with the same request;
//  - NeedMore only within the limit and TooLarge only past it;
//  - a Complete head ends with CRLF CRLF within the limit and the bytes; it starts with
//    "METHOD SP TARGET SP VERSION CRLF" rebuilt from what was parsed; the method is a token,
//    the target has no space or control byte, the version is HTTP/d.d; path() is a prefix of
//    the target; query parameters decode to at most their own length;
//  - a Malformed verdict says why.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/control/http_request.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

using fuzz::printable;
using proxy::HttpHead;
using proxy::HttpRequest;

constexpr size_t kListenerLimit = 8 * 1024;  // AdminServer::kMaxRequestHead

const char* verdictName(HttpHead h) {
  switch (h) {
    case HttpHead::NeedMore: return "NeedMore";
    case HttpHead::Complete: return "Complete";
    case HttpHead::TooLarge: return "TooLarge";
    case HttpHead::Malformed: return "Malformed";
  }
  return "?";
}

std::string describe(HttpHead h, const HttpRequest& r) {
  std::string out = verdictName(h);
  if (h == HttpHead::Complete) {
    out += " method='" + printable(r.method, 60) + "' target='" + printable(r.target, 200) + "' version='" +
           printable(r.version) + "' head=" + std::to_string(r.headBytes) + " headers=" + std::to_string(r.headers);
  }
  return out;
}

bool isTokenChar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

void checkComplete(const HttpRequest& r, std::string_view bytes, size_t limit, const std::string& where) {
  FUZZ_CHECK(r.headBytes >= 4 && r.headBytes <= limit && r.headBytes <= bytes.size(),
             "head of " + std::to_string(r.headBytes) + " bytes" + where);
  FUZZ_CHECK(bytes.substr(r.headBytes - 4, 4) == "\r\n\r\n", "head does not end in CRLF CRLF" + where);
  const std::string line = r.method + " " + r.target + " " + r.version + "\r\n";
  FUZZ_CHECK(bytes.substr(0, line.size()) == line, "request line rebuilt as '" + printable(line) + "'" + where);
  FUZZ_CHECK(!r.method.empty(), "empty method" + where);
  for (unsigned char c : r.method) FUZZ_CHECK(isTokenChar(c), "method byte " + std::to_string(c) + where);
  FUZZ_CHECK(!r.target.empty(), "empty target" + where);
  for (unsigned char c : r.target) FUZZ_CHECK(c > 0x20 && c != 0x7F, "target byte " + std::to_string(c) + where);
  const std::string& v = r.version;
  FUZZ_CHECK(v.size() == 8 && v.compare(0, 5, "HTTP/") == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
                 v[7] >= '0' && v[7] <= '9',
             "version '" + printable(v) + "'" + where);
  FUZZ_CHECK(r.target.compare(0, r.path().size(), r.path()) == 0, "path() is not a prefix of the target" + where);
  for (const char* name : {"pool", "format", ""}) {
    const std::string value = r.queryParam(name);
    FUZZ_CHECK(value.size() <= r.target.size(), std::string("queryParam(") + name + ") longer than the target" + where);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input input;
  if (!fuzz::splitInput(data, size, &input)) return 0;
  const size_t limit = fuzz::smallLimits(input.option) ? 16 + 4 * size_t(input.option & 0x7F) : kListenerLimit;
  const std::string where = "\nlimit " + std::to_string(limit) + ", plan " + std::to_string(input.plan) +
                            ", bytes '" + printable(input.bytes(), 600) + "'";

  HttpRequest whole;
  std::string whyWhole;
  const HttpHead verdict = proxy::parseRequestHead(input.bytes(), limit, whole, whyWhole);
  switch (verdict) {
    case HttpHead::NeedMore:
      FUZZ_CHECK(input.size <= limit, "NeedMore past the limit" + where);
      break;
    case HttpHead::TooLarge:
      FUZZ_CHECK(input.size > limit, "TooLarge within the limit" + where);
      break;
    case HttpHead::Malformed:
      FUZZ_CHECK(!whyWhole.empty(), "Malformed without a reason" + where);
      break;
    case HttpHead::Complete:
      checkComplete(whole, input.bytes(), limit, where);
      break;
  }

  // The same bytes as they would arrive, growing, in a block that ends where they do.
  fuzz::Block block(input.stream, input.size);
  fuzz::ChunkPlan plan(input.plan);
  size_t have = 0;
  HttpHead chunked = HttpHead::NeedMore;
  HttpRequest request;
  std::unique_ptr<char[]> moved;
  do {
    have = plan.next(have, input.size);
    const char* base = block.data();
    if (plan.moves()) {  // the listener's buffer may move between reads
      moved.reset(new char[have == 0 ? 1 : have]);
      std::memcpy(moved.get(), input.stream, have);
      base = moved.get();
    } else {
      block.reveal(have);
    }
    request = HttpRequest();
    std::string why;
    chunked = proxy::parseRequestHead(std::string_view(base, have), limit, request, why);
    block.reveal(block.size());
  } while (chunked == HttpHead::NeedMore && have < input.size);
  FUZZ_CHECK(describe(chunked, request) == describe(verdict, whole),
             "after " + std::to_string(have) + " bytes: " + describe(chunked, request) + "; on all of them: " +
                 describe(verdict, whole) + where);
  return 0;
}
