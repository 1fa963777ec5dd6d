#include "backends/resp/request_parser.h"

#include <doctest/doctest.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "tests/support/framing_test_support.h"

namespace backends::resp {
namespace {

using namespace std::string_literals;

// What a parse produced, detached from the buffer so that runs over differently cut input
// can be compared.
struct Result {
  ParseStatus status = ParseStatus::NeedMore;
  size_t size = 0;
  bool isInline = false;
  std::vector<std::string> args;
  std::string error;

  friend bool operator==(const Result&, const Result&) = default;
};

std::string show(const Result& r) {
  std::string s = framing_test::statusName(r.status);
  s += " size=" + std::to_string(r.size) + (r.isInline ? " inline" : "") + " args=[";
  for (const auto& a : r.args) s += "'" + a + "' ";
  return s + "] error='" + r.error + "'";
}

Result complete(std::vector<std::string> args, size_t size, bool isInline = false) {
  Result r;
  r.status = ParseStatus::Complete;
  r.size = size;
  r.isInline = isInline;
  r.args = std::move(args);
  return r;
}

Result error(std::string message) { return framing_test::errorResult<Result>(std::move(message)); }

Result capture(const RequestParser& p, ParseStatus st, const char* data) {
  if (st == ParseStatus::NeedMore) return {};
  if (st == ParseStatus::Error) return error(std::string(p.errorMessage()));
  std::vector<std::string> args;
  for (size_t i = 0; i < p.argc(); ++i) args.emplace_back(p.arg(data, i));
  return complete(std::move(args), p.size(), p.isInline());
}

// Feeds the input as it would arrive through `reads`, to a fresh parser.
Result parseCut(const std::string& input, const framing_test::Reads& reads,
                const RequestLimits& limits = {}) {
  RequestParser p(limits);
  return framing_test::feedReads(
      input, reads, [&](char* data, size_t len) { return p.parse(data, len); },
      [&](ParseStatus st, const char* data) { return capture(p, st, data); });
}

Result parseWhole(const std::string& input, const RequestLimits& limits = {}) {
  return parseCut(input, framing_test::wholeRead(input), limits);
}

Result parseByteByByte(const std::string& input, const RequestLimits& limits = {}) {
  return parseCut(input, framing_test::byteReads(input), limits);
}

void checkAllCuts(const std::string& input, const RequestLimits& limits = {}) {
  framing_test::checkAllCuts(
      input, [&](const framing_test::Reads& reads) { return parseCut(input, reads, limits); });
}

std::string multibulk(const std::vector<std::string>& args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

TEST_CASE("request: multibulk commands, whole and cut anywhere") {
  const std::string set = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
  CHECK(parseWhole(set) == complete({"SET", "k", "value"}, set.size()));

  // Binary arguments: CRLF, NUL and '$' inside a payload are data, and an empty argument.
  const std::string binary = multibulk({"SET", "a\r\nb", "\0\r\n$3\r\n*1\r\n"s, ""});
  CHECK(parseWhole(binary) ==
        complete({"SET", "a\r\nb", "\0\r\n$3\r\n*1\r\n"s, ""}, binary.size()));

  for (const std::string& input : {set, binary, multibulk({"PING"}), multibulk({""}),
                                   multibulk({"MSET", "a", "1", "b", "2", "c", "3", "d", "4",
                                              "e", "5", "f", "6"})}) {
    checkAllCuts(input);
  }
}

TEST_CASE("request: only the first request of a buffer is framed") {
  const std::string a = multibulk({"GET", "a"});
  const std::string b = multibulk({"GET", "b"});
  CHECK(parseWhole(a + b) == complete({"GET", "a"}, a.size()));
  CHECK(parseWhole(a + "PING\r\n") == complete({"GET", "a"}, a.size()));
  checkAllCuts(a + b);
}

TEST_CASE("request: empty multibulk requests are skipped like Redis does") {
  CHECK(parseWhole("*0\r\n") == complete({}, 4));
  CHECK(parseWhole("*-1\r\n") == complete({}, 5));
  CHECK(parseWhole("*-7\r\n") == complete({}, 5));
  CHECK(parseWhole("*0\r\n*1\r\n$4\r\nPING\r\n") == complete({}, 4));
  checkAllCuts("*-1\r\n");
}

TEST_CASE("request: inline commands") {
  CHECK(parseWhole("PING\r\n") == complete({"PING"}, 6, true));
  CHECK(parseWhole("PING\n") == complete({"PING"}, 5, true));
  CHECK(parseWhole("set  k\tv \r\n") == complete({"set", "k", "v"}, 11, true));
  CHECK(parseWhole("  GET key\nPING\n") == complete({"GET", "key"}, 10, true));
  // Redis's quoting (sdssplitargs): escapes in double quotes, \' in single quotes, quotes
  // opening mid-argument, "" as an empty argument.
  CHECK(parseWhole("SET \"hello world\" 'it\\'s'\r\n") ==
        complete({"SET", "hello world", "it's"}, 27, true));
  CHECK(parseWhole("ECHO \"a\\x41\\n\\r\\t\\b\\a\\\"\\\\\\q\"\n") ==
        complete({"ECHO", "aA\n\r\t\b\a\"\\q"}, 29, true));
  CHECK(parseWhole("ECHO \"\\x00\\xfF\"\n") == complete({"ECHO", "\0\xff"s}, 16, true));
  CHECK(parseWhole("ECHO '\\n'\n") == complete({"ECHO", "\\n"}, 10, true));
  CHECK(parseWhole("ECHO foo\"bar baz\"\n") == complete({"ECHO", "foobar baz"}, 18, true));
  CHECK(parseWhole("SET \"\" ''\n") == complete({"SET", "", ""}, 10, true));
  // The argument ends at unquoted space, tab, CR or LF only: \v stays inside it.
  CHECK(parseWhole("a\vb c\n") == complete({"a\vb", "c"}, 6, true));
  // A NUL ends the line for Redis (C string); the bytes after it are dropped.
  CHECK(parseWhole("GET a\0b c\n"s) == complete({"GET", "a"}, 10, true));

  for (const std::string input :
       {"PING\r\n", "PING\n", "SET \"hello world\" 'it\\'s'\r\n", "ECHO \"\\x4\"\n",
        "a b c d e f g h i j k l\r\n", "\"unbalanced\n", "x\"y\"z\n"}) {
    checkAllCuts(input);
  }
}

TEST_CASE("request: empty inline lines are skipped") {
  CHECK(parseWhole("\r\n") == complete({}, 2, true));
  CHECK(parseWhole("\n") == complete({}, 1, true));
  CHECK(parseWhole("   \t\r\n") == complete({}, 6, true));
  CHECK(parseWhole("\r") == Result{});  // could still become "\r\n"
}

TEST_CASE("request: unbalanced quotes") {
  for (const std::string input : {"SET \"abc\n", "SET 'abc\r\n", "SET \"abc\"def\n",
                                  "SET 'abc'def\n", "SET \"abc\\\"\n", "SET \"a\\\n"}) {
    CAPTURE(input);
    CHECK(parseWhole(input) == error("unbalanced quotes in request"));
    checkAllCuts(input);
  }
}

TEST_CASE("request: inline length limit") {
  const RequestLimits defaults;
  std::string longest(defaults.maxInlineLength, 'a');
  CHECK(parseWhole(longest + "\n") ==
        complete({longest}, defaults.maxInlineLength + 1, true));
  CHECK(parseWhole(longest) == Result{});
  // One more byte without a newline and Redis would keep buffering forever: refuse now.
  CHECK(parseWhole(longest + "a") == error("too big inline request"));
  CHECK(parseWhole(longest + "a\n") == error("too big inline request"));

  RequestLimits small;
  small.maxInlineLength = 8;
  checkAllCuts("12345678\n", small);
  checkAllCuts("123456789\n", small);
  CHECK(parseByteByByte("123456789\n", small) == error("too big inline request"));
}

TEST_CASE("request: huge declared lengths are refused before any payload arrives") {
  const RequestLimits limits;
  CHECK(parseWhole("*" + std::to_string(limits.maxMultibulkCount + 1) + "\r\n") ==
        error("invalid multibulk length"));
  CHECK(parseWhole("*" + std::to_string(limits.maxMultibulkCount) + "\r\n") == Result{});
  CHECK(parseWhole("*99999999999999999999999\r\n") == error("invalid multibulk length"));
  CHECK(parseWhole("*1\r\n$" + std::to_string(limits.maxBulkLength + 1) + "\r\n") ==
        error("invalid bulk length"));
  CHECK(parseWhole("*1\r\n$" + std::to_string(limits.maxBulkLength) + "\r\n") == Result{});
  CHECK(parseWhole("*1\r\n$9223372036854775808\r\n") == error("invalid bulk length"));

  RequestLimits small;
  small.maxMultibulkCount = 3;
  small.maxBulkLength = 10;
  CHECK(parseWhole(multibulk({"a", "b", "c"}), small).status == ParseStatus::Complete);
  CHECK(parseWhole("*4\r\n", small) == error("invalid multibulk length"));
  CHECK(parseWhole(multibulk({"0123456789"}), small).status == ParseStatus::Complete);
  CHECK(parseWhole("*1\r\n$11\r\n", small) == error("invalid bulk length"));
  // A header that never ends is refused once it is longer than any valid header.
  CHECK(parseWhole("*1\r\n$" + std::string(40, '1')) == error("invalid bulk length"));
  CHECK(parseWhole("*" + std::string(40, '1')) == error("invalid multibulk length"));
  CHECK(parseWhole("*" + std::string(20, '1')) == Result{});
  checkAllCuts("*1\r\n$11\r\n", small);
  checkAllCuts("*1\r\n$" + std::string(40, '1'));
}

TEST_CASE("request: the request as a whole is bounded, refused at the header that passes the bound") {
  RequestLimits limits;
  limits.maxBulkLength = 10;
  limits.maxRequestLength = 25;  // argument bytes in all
  CHECK(parseWhole(multibulk({"mset", "0123456789", "0123456789"}), limits).status == ParseStatus::Complete);
  CHECK(parseWhole(multibulk({"mset", "0123456789", "01234567890"}), limits) == error("invalid bulk length"));
  // 4 + 10 + 10 + 2 = 26 > 25: refused when the fourth header arrives, before its payload.
  CHECK(parseWhole("*4\r\n$4\r\nmset\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$2\r\n", limits) ==
        error("request too large"));
  checkAllCuts(multibulk({"mset", "0123456789", "0123456789", "ab"}), limits);
  // The count restarts with each request.
  RequestParser parser(limits);
  for (int i = 0; i < 3; ++i) {
    std::string one = multibulk({"mset", "0123456789", "0123456789"});
    CHECK(parser.parse(one.data(), one.size()) == ParseStatus::Complete);
    parser.reset();
  }
}

TEST_CASE("request: negative and malformed lengths, garbage") {
  CHECK(parseWhole("*1\r\n$-1\r\n") == error("invalid bulk length"));
  CHECK(parseWhole("*1\r\n$-5\r\n") == error("invalid bulk length"));
  CHECK(parseWhole("*abc\r\n") == error("invalid multibulk length"));
  CHECK(parseWhole("*\r\n") == error("invalid multibulk length"));
  CHECK(parseWhole("*01\r\n") == error("invalid multibulk length"));
  CHECK(parseWhole("*+1\r\n") == error("invalid multibulk length"));
  CHECK(parseWhole("*1\rX") == error("invalid multibulk length"));
  CHECK(parseWhole("*1\r\n$01\r\n") == error("invalid bulk length"));
  CHECK(parseWhole("*1\r\n$1x\r\n") == error("invalid bulk length"));
  CHECK(parseWhole("*1\r\n$\r\n") == error("invalid bulk length"));
  CHECK(parseWhole("*1\r\nfoo\r\n") == error("expected '$', got 'f'"));
  CHECK(parseWhole("*1\r\n:1\r\n") == error("expected '$', got ':'"));
  CHECK(parseWhole("*1\r\n\r\n") == error("expected '$', got '\\x0d'"));
  CHECK(parseWhole("*1\r\n\x01"s) == error("expected '$', got '\\x01'"));
  CHECK(parseWhole("*1\r\n\xff"s) == error("expected '$', got '\\xff'"));
  // A payload longer than declared: the terminator is checked.
  CHECK(parseWhole("*1\r\n$3\r\nabcd\r\n") == error("invalid bulk terminator"));
  CHECK(parseWhole("*1\r\n$3\r\nab\r\n\r\n") == error("invalid bulk terminator"));
  CHECK(parseWhole("*2\r\n$1\r\na\r\n$1\r\nb") == Result{});

  for (const std::string input :
       {"*1\r\n$-1\r\n", "*abc\r\n", "*1\rX", "*1\r\nfoo\r\n", "*1\r\n$3\r\nabcd\r\n",
        "*2\r\n$1\r\na\r\nx"}) {
    checkAllCuts(input);
  }
}

TEST_CASE("request: random garbage frames the same however it is cut") {
  std::mt19937 rng(12345);
  const std::string alphabet = "*$\r\n0123456789-abc \"'\\x";
  for (int round = 0; round < 300; ++round) {
    std::string input;
    const size_t n = rng() % 40;
    if (rng() % 2) input = "*" + std::to_string(rng() % 4) + "\r\n";
    for (size_t i = 0; i < n; ++i) input += alphabet[rng() % alphabet.size()];
    checkAllCuts(input);
  }
}

std::string randomArg(std::mt19937& rng) {
  std::string s(rng() % 3 == 0 ? rng() % 300 : rng() % 12, '\0');
  for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? "\r\n\0$*"[rng() % 5] : rng());
  return s;
}

TEST_CASE("request: random commands, whole, byte by byte and split at random") {
  std::mt19937 rng(42);
  for (int round = 0; round < 300; ++round) {
    std::vector<std::string> args(1 + rng() % 20);
    for (auto& a : args) a = randomArg(rng);
    const std::string input = multibulk(args);
    const Result expected = complete(args, input.size());
    CHECK(parseWhole(input) == expected);
    CHECK(parseByteByByte(input) == expected);
    std::vector<size_t> cuts;
    for (size_t at = 0; at < input.size(); at += 1 + rng() % 50) cuts.push_back(at);
    cuts.push_back(input.size());
    CHECK(parseCut(input, cuts) == expected);
  }
}

// A client session's loop: parse from the start of the unconsumed bytes, consume, reset; the
// buffer grows by appends (and moves) and is compacted from time to time.
TEST_CASE("request: pipelines of many requests, arriving in random reads") {
  std::mt19937 rng(7);
  std::string stream;
  std::vector<Result> expected;
  for (int i = 0; i < 500; ++i) {
    if (rng() % 4 == 0) {
      std::string line = "SET k" + std::to_string(i) + " v" + (rng() % 2 ? "\r\n" : "\n");
      expected.push_back(complete({"SET", "k" + std::to_string(i), "v"}, line.size(), true));
      stream += line;
    } else {
      std::vector<std::string> args(1 + rng() % 12);
      for (auto& a : args) a = randomArg(rng);
      const std::string m = multibulk(args);
      expected.push_back(complete(args, m.size()));
      stream += m;
    }
  }

  for (framing_test::Arrival arrival : framing_test::kArrivals) {
    CAPTURE(arrival);
    RequestParser p;
    std::vector<Result> got;
    const size_t fed = framing_test::readPipeline(
        stream, arrival, 700, rng, [&] { return got.size() == expected.size(); },
        [&](char* data, size_t len) -> size_t {
          const ParseStatus st = p.parse(data, len);
          if (st == ParseStatus::NeedMore) return 0;
          REQUIRE(st == ParseStatus::Complete);
          got.push_back(capture(p, st, data));
          const size_t size = p.size();
          p.reset();
          return size;
        });
    CHECK(fed == stream.size());
    CHECK(got == expected);
  }
}

TEST_CASE("request: many arguments spill to the heap and back") {
  RequestParser p;
  for (size_t argc : {1u, 8u, 9u, 100u, 3000u, 2u, 50u}) {
    CAPTURE(argc);
    std::vector<std::string> args;
    for (size_t i = 0; i < argc; ++i) args.push_back("arg" + std::to_string(i));
    std::string input = multibulk(args);
    REQUIRE(p.parse(input.data(), input.size()) == ParseStatus::Complete);
    CHECK(capture(p, ParseStatus::Complete, input.data()) == complete(args, input.size()));
    p.reset();
  }
  // Inline commands spill too.
  std::string line;
  for (int i = 0; i < 40; ++i) line += "a" + std::to_string(i) + " ";
  line += "\n";
  REQUIRE(p.parse(line.data(), line.size()) == ParseStatus::Complete);
  CHECK(p.argc() == 40);
  CHECK(p.arg(line.data(), 39) == "a39");
}

TEST_CASE("request: ArgList moves keep their spans, inline or on the heap") {
  for (size_t n : {3u, 8u, 9u, 40u}) {
    CAPTURE(n);
    ArgList a;
    for (size_t i = 0; i < n; ++i) REQUIRE(a.push({i, i + 1}));
    ArgList b(std::move(a));
    CHECK(a.size() == 0);
    REQUIRE(b.size() == n);
    for (size_t i = 0; i < n; ++i) CHECK(b[i] == ByteSpan{i, i + 1});
    // The moved-from list is usable again.
    for (size_t i = 0; i < 20; ++i) REQUIRE(a.push({i, 0}));
    CHECK(a.size() == 20);
    ArgList c;
    c = std::move(b);
    REQUIRE(c.size() == n);
    CHECK(c[n - 1] == ByteSpan{n - 1, n});
    c.clear();
    CHECK(c.size() == 0);
  }
}

TEST_CASE("request: status stays put after Complete or Error until reset") {
  RequestParser p;
  std::string good = "*1\r\n$4\r\nPING\r\n";
  REQUIRE(p.parse(good.data(), good.size()) == ParseStatus::Complete);
  CHECK(p.parse(good.data(), good.size()) == ParseStatus::Complete);
  CHECK(p.size() == good.size());
  p.reset();
  std::string bad = "*x\r\n";
  REQUIRE(p.parse(bad.data(), bad.size()) == ParseStatus::Error);
  CHECK(p.parse(good.data(), good.size()) == ParseStatus::Error);
  p.reset();
  CHECK(p.parse(good.data(), good.size()) == ParseStatus::Complete);
}

TEST_CASE("request: inline commands re-encode as multibulk") {
  std::string line = "SET \"a b\" 'c\\'d' \"\\x00\\r\\n\"\r\n";
  RequestParser p;
  REQUIRE(p.parse(line.data(), line.size()) == ParseStatus::Complete);
  REQUIRE(p.isInline());
  std::string out = "prefix";
  appendMultibulk(out, line.data(), p.args());
  CHECK(out == "prefix" + multibulk({"SET", "a b", "c'd", "\0\r\n"s}));

  // And back: the encoding parses to the same arguments.
  std::string encoded = out.substr(6);
  RequestParser q;
  REQUIRE(q.parse(encoded.data(), encoded.size()) == ParseStatus::Complete);
  CHECK_FALSE(q.isInline());
  CHECK(q.size() == encoded.size());
  REQUIRE(q.argc() == 4);
  CHECK(q.arg(encoded.data(), 3) == "\0\r\n"s);

  std::string empty;
  appendMultibulk(empty, "", {});
  CHECK(empty == "*0\r\n");
}

// O(total bytes): waiting on a large argument must not rescan it. Byte by byte over 8 MiB is
// 8 million calls; any per-call rescan would take hours, so finishing at all is the proof.
TEST_CASE("request: an 8 MiB argument costs linear work however it arrives") {
  const std::string payload(8u << 20, 'x');
  std::string input = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$" + std::to_string(payload.size()) +
                      "\r\n" + payload + "\r\n";
  const auto started = std::chrono::steady_clock::now();
  for (size_t step : {size_t{64} << 10, size_t{1}}) {
    CAPTURE(step);
    RequestParser p;
    const ParseStatus st = framing_test::feedGrowingToEnd(
        input.size(), step, [&](size_t len) { return p.parse(input.data(), len); });
    REQUIRE(st == ParseStatus::Complete);
    CHECK(p.size() == input.size());
    CHECK(p.arg(input.data(), 2).size() == payload.size());
  }
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(seconds < 20.0);
}

TEST_CASE("request: a long inline line arriving byte by byte is searched once") {
  RequestLimits limits;
  limits.maxInlineLength = 4u << 20;
  std::string line(limits.maxInlineLength - 2, 'a');
  line += "\r\n";
  RequestParser p(limits);
  const ParseStatus st = framing_test::feedGrowingToEnd(
      line.size(), 1, [&](size_t len) { return p.parse(line.data(), len); });
  REQUIRE(st == ParseStatus::Complete);
  CHECK(p.argc() == 1);
  CHECK(p.args()[0] == ByteSpan{0, line.size() - 2});
}

}  // namespace
}  // namespace backends::resp
