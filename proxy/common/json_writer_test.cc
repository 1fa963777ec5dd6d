#include "proxy/common/json_writer.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "tests/support/admin_output_check.h"

namespace proxy {
namespace {

// The JSON string literal the writer makes of `s`.
std::string literal(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}

TEST_CASE("well-formed UTF-8 passes through byte for byte") {
  // 2-, 3- and 4-byte sequences, including the edges of each range.
  const std::string text = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\x80 \xdf\xbf \xe0\xa0\x80 \xed\x9f\xbf "
                           "\xee\x80\x80 \xef\xbf\xbf \xf0\x90\x80\x80 \xf4\x8f\xbf\xbf";
  CHECK(isValidUtf8(text));
  CHECK(literal(text) == "\"" + text + "\"");
  CHECK(checks::checkJson(literal(text)) == "");
}

TEST_CASE("quotes, backslashes and control characters are escaped") {
  CHECK(literal("a\"b\\c") == R"("a\"b\\c")");
  CHECK(literal("\n\r\t") == R"("\n\r\t")");
  CHECK(literal(std::string("\x00\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\x7f\"");
  CHECK(checks::checkJson(literal(std::string("\x00\x08\x0b\x0c\x1b", 5))) == "");
}

TEST_CASE("every byte outside a well-formed sequence becomes one \\ufffd") {
  struct Case {
    const char* what;
    std::string in;
    std::string out;
  };
  const Case cases[] = {
      {"stray continuation byte", "a\x80z", R"("a\ufffdz")"},
      {"0xFF", "\xff", R"("\ufffd")"},
      {"0xF5 (past U+10FFFF)", "\xf5\x80\x80\x80", R"("\ufffd\ufffd\ufffd\ufffd")"},
      {"overlong two-byte '/'", "\xc0\xaf", R"("\ufffd\ufffd")"},
      {"overlong C1", "\xc1\xbf", R"("\ufffd\ufffd")"},
      {"overlong three-byte", "\xe0\x80\xaf", R"("\ufffd\ufffd\ufffd")"},
      {"overlong four-byte", "\xf0\x80\x80\xaf", R"("\ufffd\ufffd\ufffd\ufffd")"},
      {"encoded high surrogate U+D800", "\xed\xa0\x80", R"("\ufffd\ufffd\ufffd")"},
      {"encoded low surrogate U+DFFF", "\xed\xbf\xbf", R"("\ufffd\ufffd\ufffd")"},
      {"past U+10FFFF (F4 90)", "\xf4\x90\x80\x80", R"("\ufffd\ufffd\ufffd\ufffd")"},
      {"truncated three-byte at the end", "x\xe2\x82", R"("x\ufffd\ufffd")"},
      {"truncated four-byte before ASCII", "\xf0\x9f\x98z", R"("\ufffd\ufffd\ufffdz")"},
      {"lead byte then a lead byte", "\xc3\xc3\xa9", "\"\\ufffd\xc3\xa9\""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    CHECK_FALSE(isValidUtf8(c.in));
    CHECK(literal(c.in) == c.out);
    CHECK(checks::checkJson(literal(c.in)) == "");
  }
}

TEST_CASE("keys are escaped like values, and the document stays valid") {
  JsonWriter j;
  j.beginObject().key("pool\xff\"\n").beginObject().key("server \xed\xa0\x80").value("v\x01").endObject();
  j.key("list").beginArray().value(int64_t(-1)).value(uint64_t(2)).value(true).null().endArray().endObject();
  CHECK(j.str() == "{\"pool\\ufffd\\\"\\n\":{\"server \\ufffd\\ufffd\\ufffd\":\"v\\u0001\"},\"list\":[-1,2,true,null]}");
  CHECK(checks::checkJson(j.str()) == "");
}

TEST_CASE("numbers JSON cannot hold are written as null") {
  JsonWriter j;
  j.beginArray().value(std::nan("")).value(std::numeric_limits<double>::infinity()).value(0.25).endArray();
  CHECK(j.str() == "[null,null,0.25]");
}

TEST_CASE("the checker itself refuses what the writer must never produce") {
  CHECK(checks::checkJson("\"a\x01\"") != "");
  CHECK(checks::checkJson("\"\xff\"") != "");
  CHECK(checks::checkJson("\"\\x41\"") != "");
  CHECK(checks::checkJson("\"\\ud800\"") != "");
  CHECK(checks::checkJson("[nan]") != "");
  CHECK(checks::checkJson("{\"a\":1,}") != "");
  CHECK(checks::checkJson("{\"a\":1}") == "");
}

}  // namespace
}  // namespace proxy
