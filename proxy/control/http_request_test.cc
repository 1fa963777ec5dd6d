#include "proxy/control/http_request.h"

#include "proxy/control/admin_server.h"

#include <doctest/doctest.h>

#include <string>

namespace proxy {
namespace {

constexpr size_t kMax = 8 * 1024;

HttpHead parse(std::string_view in, HttpRequest* out = nullptr, size_t max = kMax) {
  HttpRequest scratch;
  std::string why;
  return parseRequestHead(in, max, out != nullptr ? *out : scratch, why);
}

TEST_CASE("a request head is complete at its blank line") {
  const std::string in = "GET /ring?pool=a%20b&x=1 HTTP/1.1\r\nHost: h:1\r\nAccept:\t*/*\r\n\r\nbody";
  HttpRequest r;
  REQUIRE(parse(in, &r) == HttpHead::Complete);
  CHECK(r.method == "GET");
  CHECK(r.target == "/ring?pool=a%20b&x=1");
  CHECK(r.version == "HTTP/1.1");
  CHECK(r.path() == "/ring");
  CHECK(r.queryParam("pool") == "a b");
  CHECK(r.queryParam("x") == "1");
  CHECK(r.queryParam("y") == "");
  CHECK(r.headers == 2);
  CHECK(r.headBytes == in.size() - 4);
}

TEST_CASE("every prefix of a good head needs more, fed a byte at a time") {
  const std::string in = "POST /reload HTTP/1.0\r\nContent-Length: 0\r\n\r\n";
  for (size_t n = 0; n < in.size(); ++n) {
    CAPTURE(n);
    CHECK(parse(in.substr(0, n)) == HttpHead::NeedMore);
  }
  CHECK(parse(in) == HttpHead::Complete);
}

TEST_CASE("malformed request lines and headers are refused as soon as the line is in") {
  const char* bad[] = {
      "GET /metrics\r\n",                  // no version
      "GET  /metrics HTTP/1.1\r\n",        // two spaces
      "GET /a b HTTP/1.1\r\n",             // a space in the target
      "GET /metrics HTTP/1.1 \r\n",        // trailing space
      "GET /metrics HTTP/11\r\n",          // not HTTP/d.d
      "GET /metrics FTP/1.1\r\n",
      "G(T /metrics HTTP/1.1\r\n",         // not a token
      "\r\n",                              // no request line
      "GET /m\x01 HTTP/1.1\r\n",           // control character in the target
      "GET /metrics HTTP/1.1\n",           // bare LF
      "GET /metrics HTTP/1.1\r\nNoColon\r\n",
      "GET /metrics HTTP/1.1\r\nBad Name: v\r\n",
      "GET /metrics HTTP/1.1\r\nName : v\r\n",
      "GET /metrics HTTP/1.1\r\n folded\r\n",
      "GET /metrics HTTP/1.1\r\nX: a\x01z\r\n",
      "GET /metrics HTTP/1.1\r\nX: a\rz\r\n",
      "\x16\x03\x01\x02\x00",              // a TLS handshake: refused before any line break
      "*1\r",                              // RESP: '*' is a token char, '\r' waits, then...
  };
  for (const char* in : bad) {
    CAPTURE(in);
    const HttpHead verdict = parse(in);
    if (std::string_view(in) == "*1\r") {
      CHECK(verdict == HttpHead::NeedMore);
      CHECK(parse("*1\r\n$4\r\n") == HttpHead::Malformed);
    } else {
      CHECK(verdict == HttpHead::Malformed);
    }
  }
}

TEST_CASE("a head that does not end within the limit is too large, whatever follows") {
  const std::string start = "GET /metrics HTTP/1.1\r\nX-Big: ";
  std::string in = start + std::string(kMax, 'a');
  CHECK(parse(in) == HttpHead::TooLarge);
  CHECK(parse(in + "\r\n\r\n") == HttpHead::TooLarge);
  // Exactly at the limit is fine; one byte more is not.
  std::string fits = start;
  fits += std::string(kMax - fits.size() - 4, 'a') + "\r\n\r\n";
  REQUIRE(fits.size() == kMax);
  CHECK(parse(fits) == HttpHead::Complete);
  std::string over = start + std::string(kMax - start.size() - 3, 'a') + "\r\n\r\n";
  CHECK(parse(over) == HttpHead::TooLarge);
  // A malformed line inside the limit wins over the size.
  CHECK(parse("GET / HTTP/1.1\r\nbad\r\n" + std::string(2 * kMax, 'a')) == HttpHead::Malformed);
}

TEST_CASE("query parameters: first match, %XX decoded, a stray % kept") {
  HttpRequest r;
  r.target = "/ring?pool=%ff%2&pool=second&p%6Fol2=x&empty=";
  CHECK(r.queryParam("pool") == "\xff%2");
  CHECK(r.queryParam("pool2") == "x");
  CHECK(r.queryParam("empty") == "");
  r.target = "/status";
  CHECK(r.queryParam("format") == "");
  CHECK(r.path() == "/status");
}

TEST_CASE("the Authorization header is kept, trimmed, whatever its case") {
  HttpRequest r;
  std::string why;
  REQUIRE(parseRequestHead("GET /metrics HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer abc \r\n\r\n", 8192, r, why) ==
          HttpHead::Complete);
  CHECK(r.authorization == "Bearer abc");
  HttpRequest none;
  REQUIRE(parseRequestHead("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 8192, none, why) == HttpHead::Complete);
  CHECK(none.authorization.empty());
}

TEST_CASE("only 127.0.0.0/8 and ::1 count as loopback for the admin listener") {
  CHECK(isLoopbackAddress("127.0.0.1"));
  CHECK(isLoopbackAddress("127.1.2.3"));
  CHECK(isLoopbackAddress("::1"));
  CHECK_FALSE(isLoopbackAddress("0.0.0.0"));
  CHECK_FALSE(isLoopbackAddress("10.0.0.5"));
  CHECK_FALSE(isLoopbackAddress("::"));
}

}  // namespace
}  // namespace proxy
