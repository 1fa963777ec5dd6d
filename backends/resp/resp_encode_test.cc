#include "backends/resp/resp_encode.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "backends/resp/reply_parser.h"

namespace backends::resp {
namespace {

using namespace std::string_literals;

// Everything written must frame as exactly one reply of the expected type.
void framesAs(const std::string& encoded, char type) {
  CAPTURE(encoded);
  ReplyParser p;
  REQUIRE(p.parse(encoded.data(), encoded.size()) == ParseStatus::Complete);
  CHECK(p.frame().length == encoded.size());
  CHECK(p.frame().type == type);
}

TEST_CASE("encode: scalars") {
  std::string out;
  appendSimpleString(out, "OK");
  CHECK(out == "+OK\r\n");
  out.clear();
  appendSimpleString(out, "a\r\nb\nc");
  CHECK(out == "+a  b c\r\n");
  framesAs(out, '+');

  out = "keep";
  appendError(out, "ERR Protocol error: invalid bulk length");
  CHECK(out == "keep-ERR Protocol error: invalid bulk length\r\n");
  out.clear();
  appendError(out, "ERR bad\r\nthing");
  CHECK(out == "-ERR bad  thing\r\n");
  framesAs(out, '-');

  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{42}, std::numeric_limits<int64_t>::min(),
                    std::numeric_limits<int64_t>::max()}) {
    out.clear();
    appendInteger(out, v);
    CHECK(out == ":" + std::to_string(v) + "\r\n");
    ReplyParser p;
    REQUIRE(p.parse(out.data(), out.size()) == ParseStatus::Complete);
    CHECK(p.frame().value == v);
  }

  out.clear();
  appendBulk(out, "");
  CHECK(out == "$0\r\n\r\n");
  out.clear();
  appendBulk(out, "a\r\n\0b"s);
  CHECK(out == "$5\r\na\r\n\0b\r\n"s);
  framesAs(out, '$');
}

TEST_CASE("encode: nulls follow the protocol version") {
  std::string out;
  appendNull(out, Protocol::Resp2);
  CHECK(out == "$-1\r\n");
  out.clear();
  appendNull(out, Protocol::Resp3);
  CHECK(out == "_\r\n");
  out.clear();
  appendNullArray(out, Protocol::Resp2);
  CHECK(out == "*-1\r\n");
  out.clear();
  appendNullArray(out, Protocol::Resp3);
  CHECK(out == "_\r\n");
}

TEST_CASE("encode: aggregate headers") {
  std::string out;
  appendArrayHeader(out, 0);
  CHECK(out == "*0\r\n");
  out.clear();
  appendArrayHeader(out, 2);
  appendBulk(out, "a");
  appendInteger(out, 1);
  CHECK(out == "*2\r\n$1\r\na\r\n:1\r\n");
  framesAs(out, '*');

  out.clear();
  appendMapHeader(out, 2, Protocol::Resp3);
  CHECK(out == "%2\r\n");
  out.clear();
  appendMapHeader(out, 2, Protocol::Resp2);
  CHECK(out == "*4\r\n");
  for (Protocol proto : {Protocol::Resp2, Protocol::Resp3}) {
    out.clear();
    appendMapHeader(out, 1, proto);
    appendSimpleString(out, "k");
    appendBoolean(out, true, proto);
    framesAs(out, proto == Protocol::Resp3 ? '%' : '*');
  }

  out.clear();
  appendSetHeader(out, 3, Protocol::Resp3);
  CHECK(out == "~3\r\n");
  out.clear();
  appendSetHeader(out, 3, Protocol::Resp2);
  CHECK(out == "*3\r\n");
}

TEST_CASE("encode: doubles and booleans") {
  struct Case {
    double value;
    const char* text;
  };
  const Case cases[] = {{1.5, "1.5"},
                        {-0.25, "-0.25"},
                        {0.1, "0.1"},
                        {1e300, "1e+300"},
                        {3.0, "3"},
                        {std::numeric_limits<double>::infinity(), "inf"},
                        {-std::numeric_limits<double>::infinity(), "-inf"},
                        {std::nan(""), "nan"},
                        {-std::nan(""), "nan"}};
  for (const Case& c : cases) {
    CAPTURE(c.text);
    std::string out;
    appendDouble(out, c.value, Protocol::Resp3);
    CHECK(out == ","s + c.text + "\r\n");
    framesAs(out, ',');
    out.clear();
    appendDouble(out, c.value, Protocol::Resp2);
    const std::string text = c.text;
    CHECK(out == "$" + std::to_string(text.size()) + "\r\n" + text + "\r\n");
  }
  // Shortest text that reads back exactly.
  std::string out;
  appendDouble(out, 0.1 + 0.2, Protocol::Resp3);
  CHECK(std::stod(out.substr(1)) == 0.1 + 0.2);

  out.clear();
  appendBoolean(out, true, Protocol::Resp3);
  appendBoolean(out, false, Protocol::Resp3);
  CHECK(out == "#t\r\n#f\r\n");
  out.clear();
  appendBoolean(out, true, Protocol::Resp2);
  appendBoolean(out, false, Protocol::Resp2);
  CHECK(out == ":1\r\n:0\r\n");
}

}  // namespace
}  // namespace backends::resp
