#include "backends/resp/reply_parser.h"

#include <doctest/doctest.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/support/framing_test_support.h"

namespace backends::resp {
namespace {

using namespace std::string_literals;

struct Result {
  ParseStatus status = ParseStatus::NeedMore;
  size_t length = 0;
  size_t offset = 0;
  char type = 0;
  int64_t value = 0;
  std::string error;

  friend bool operator==(const Result&, const Result&) = default;
};

std::string show(const Result& r) {
  const std::string s = framing_test::statusName(r.status);
  return s + " length=" + std::to_string(r.length) + " offset=" + std::to_string(r.offset) +
         " type='" + std::string(1, r.type) + "' value=" + std::to_string(r.value) +
         " error='" + r.error + "'";
}

Result complete(size_t length, char type, int64_t value = 0, size_t offset = 0) {
  Result r;
  r.status = ParseStatus::Complete;
  r.length = length;
  r.offset = offset;
  r.type = type;
  r.value = value;
  return r;
}

Result error(std::string message) { return framing_test::errorResult<Result>(std::move(message)); }

Result capture(const ReplyParser& p, ParseStatus st) {
  if (st == ParseStatus::NeedMore) return {};
  if (st == ParseStatus::Error) return error(std::string(p.errorMessage()));
  const ReplyFrame& f = p.frame();
  return complete(f.length, f.type, f.value, f.offset);
}

Result parseCut(const std::string& input, const framing_test::Reads& reads,
                const ReplyLimits& limits = {}) {
  ReplyParser p(limits);
  return framing_test::feedReads(
      input, reads, [&](const char* data, size_t len) { return p.parse(data, len); },
      [&](ParseStatus st, const char*) { return capture(p, st); });
}

Result parseWhole(const std::string& input, const ReplyLimits& limits = {}) {
  return parseCut(input, framing_test::wholeRead(input), limits);
}

// Byte by byte over one buffer (growing len): cheap enough for large replies.
Result parseByteByByte(const std::string& input, size_t* stoppedAt = nullptr) {
  ReplyParser p;
  const ParseStatus st = framing_test::feedGrowing(
      input.size(), 1, [&](size_t len) { return p.parse(input.data(), len); }, stoppedAt);
  return capture(p, st);
}

void checkAllCuts(const std::string& input, const ReplyLimits& limits = {}) {
  framing_test::checkAllCuts(
      input, [&](const framing_test::Reads& reads) { return parseCut(input, reads, limits); });
}

// ---- explicit cases ------------------------------------------------------------------------

// From the RESP3 specification's examples: an attribute before the top-level value.
const std::string kAttributed =
    "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
    "*2\r\n:2039123\r\n:9543892\r\n";
const size_t kAttributeLength = kAttributed.find("*2\r\n:2039123");

TEST_CASE("reply: every RESP2 and RESP3 type") {
  struct Case {
    std::string input;
    Result expected;
  };
  const std::vector<Case> cases = {
      {"+OK\r\n", complete(5, '+')},
      {"+\r\n", complete(3, '+')},
      {"-ERR unknown command\r\n", complete(22, '-')},
      {":0\r\n", complete(4, ':', 0)},
      {":-9223372036854775808\r\n", complete(23, ':', INT64_MIN)},
      {":+42\r\n", complete(6, ':', 42)},
      {"$5\r\nhello\r\n", complete(11, '$', 5)},
      {"$0\r\n\r\n", complete(6, '$', 0)},
      {"$4\r\n\r\n\r\n\r\n", complete(10, '$', 4)},
      {"$-1\r\n", complete(5, '$', -1)},
      {"*-1\r\n", complete(5, '*', -1)},
      {"*0\r\n", complete(4, '*', 0)},
      {"*2\r\n$3\r\nfoo\r\n$-1\r\n", complete(18, '*', 2)},
      {"*2\r\n*1\r\n:1\r\n*0\r\n", complete(16, '*', 2)},
      {"*3\r\n*-1\r\n*2\r\n+a\r\n-b\r\n:3\r\n", complete(25, '*', 3)},
      {",3.14\r\n", complete(7, ',')},
      {",-inf\r\n", complete(7, ',')},
      {"#t\r\n", complete(4, '#')},
      {"#f\r\n", complete(4, '#')},
      {"_\r\n", complete(3, '_')},
      {"(3492890328409238509324850943850943825024385\r\n", complete(46, '(')},
      {"!21\r\nSYNTAX invalid syntax\r\n", complete(28, '!', 21)},
      {"=15\r\ntxt:Some string\r\n", complete(22, '=', 15)},
      {"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", complete(29, '%', 2)},
      {"~2\r\n+a\r\n#f\r\n", complete(12, '~', 2)},
      {">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n", complete(29, '>', 3)},
      {"%0\r\n", complete(4, '%', 0)},
      {kAttributed, complete(kAttributed.size(), '*', 2, kAttributeLength)},
      // Attributes inside an aggregate annotate one element and are not counted.
      {"*2\r\n|1\r\n+ttl\r\n:3\r\n:1\r\n:2\r\n", complete(26, '*', 2)},
      {"|0\r\n:7\r\n", complete(8, ':', 7, 4)},
      {"|1\r\n+a\r\n+x\r\n|1\r\n+b\r\n_\r\n#t\r\n", complete(27, '#', 0, 23)},
      {"%1\r\n|1\r\n+k\r\n+v\r\n*0\r\n~0\r\n", complete(24, '%', 1)},
  };
  for (const Case& c : cases) {
    CAPTURE(c.input);
    CHECK_MESSAGE(parseWhole(c.input) == c.expected, show(parseWhole(c.input)));
    // A following reply is left alone.
    CHECK(parseWhole(c.input + "+NEXT\r\n") == c.expected);
    // Every strict prefix is incomplete.
    for (size_t k = 0; k < c.input.size(); ++k) {
      CHECK(parseWhole(c.input.substr(0, k)).status == ParseStatus::NeedMore);
    }
    checkAllCuts(c.input);
  }
}

TEST_CASE("reply: frame helpers") {
  ReplyFrame f;
  f.type = '$';
  f.value = -1;
  CHECK(f.isNull());
  f.type = ':';
  CHECK_FALSE(f.isNull());  // a negative integer is not a null
  f.type = '_';
  f.value = 0;
  CHECK(f.isNull());
  f.type = '!';
  CHECK(f.isError());
  f.type = '%';
  CHECK(f.isAggregate());
  f.type = '|';
  CHECK_FALSE(f.isAggregate());
}

TEST_CASE("reply: malformed replies") {
  struct Case {
    std::string input;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"@", "invalid reply type byte"},
      {"*2\r\n:1\r\nX", "invalid reply type byte"},
      {"\r\n", "invalid reply type byte"},
      {"$?\r\n", "streamed RESP3 strings are not supported"},
      {"*?\r\n", "streamed RESP3 aggregates are not supported"},
      {"%?\r\n", "streamed RESP3 aggregates are not supported"},
      {"$-2\r\n", "invalid bulk length"},
      {"!-1\r\n", "invalid bulk length"},
      {"$abc\r\n", "invalid bulk length"},
      {"$\r\n", "invalid bulk length"},
      {"$99999999999999999999\r\n", "invalid bulk length"},
      {"$5\r\nhelloXY", "bulk payload not followed by CRLF"},
      {"$5\r\nhell\r\n\r\n", "bulk payload not followed by CRLF"},
      {"*-2\r\n", "invalid aggregate length"},
      {"%-1\r\n", "invalid aggregate length"},
      {"~x\r\n", "invalid aggregate length"},
      {":12a\r\n", "invalid integer"},
      {":\r\n", "invalid integer"},
      {":-\r\n", "invalid integer"},
      {":9223372036854775808\r\n", "invalid integer"},
      {"#x\r\n", "invalid boolean"},
      {"#\r\n", "invalid boolean"},
      {"_x\r\n", "invalid null"},
      {",\r\n", "invalid double"},
      {"(12x\r\n", "invalid big number"},
      {"+OK\n", "line not terminated by CRLF"},
      {":1\n", "line not terminated by CRLF"},
      {"$" + std::string(40, '1'), "header line too long"},
      {":" + std::string(40, '1'), "header line too long"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.input);
    CHECK(parseWhole(c.input) == error(c.message));
    checkAllCuts(c.input);
  }
  // Simple strings and doubles may be long; they are waited for.
  CHECK(parseWhole("+" + std::string(1000, 'a')).status == ParseStatus::NeedMore);
}

TEST_CASE("reply: bulk length limit is checked on the header") {
  ReplyLimits limits;
  limits.maxBulkLength = 10;
  CHECK(parseWhole("$10\r\n", limits).status == ParseStatus::NeedMore);
  CHECK(parseWhole("$11\r\n", limits) == error("invalid bulk length"));
  CHECK(parseWhole("*1\r\n!11\r\n", limits) == error("invalid bulk length"));
  CHECK(parseWhole("$536870913\r\n") == error("invalid bulk length"));
}

TEST_CASE("reply: nesting depth is bounded") {
  auto nested = [](size_t depth) {
    std::string s;
    for (size_t i = 0; i < depth; ++i) s += "*1\r\n";
    return s + ":1\r\n";
  };
  CHECK(parseWhole(nested(kMaxReplyDepth)) ==
        complete(nested(kMaxReplyDepth).size(), '*', 1));
  CHECK(parseWhole(nested(kMaxReplyDepth + 1)) == error("reply nested too deeply"));
  // Attributes count as a level while they are open.
  std::string attributed;
  for (size_t i = 0; i <= kMaxReplyDepth; ++i) attributed += "|1\r\n+k\r\n";
  attributed += ":1\r\n";
  CHECK(parseWhole(attributed).status == ParseStatus::Error);
}

TEST_CASE("reply: status stays put after Complete or Error until reset") {
  ReplyParser p;
  const std::string ok = "+OK\r\n";
  REQUIRE(p.parse(ok.data(), ok.size()) == ParseStatus::Complete);
  CHECK(p.parse(ok.data(), ok.size()) == ParseStatus::Complete);
  p.reset();
  REQUIRE(p.parse("@", 1) == ParseStatus::Error);
  CHECK(p.parse(ok.data(), ok.size()) == ParseStatus::Error);
  p.reset();
  CHECK(p.parse(ok.data(), ok.size()) == ParseStatus::Complete);
  CHECK(p.frame().length == 5);
}

// ---- random replies ------------------------------------------------------------------------

// Writes random valid replies and remembers where each value's type byte is.
struct Generator {
  Generator(std::mt19937& r, bool withResp3, int depthLimit)
      : rng(r), resp3(withResp3), maxDepth(depthLimit) {}

  std::mt19937& rng;
  bool resp3;
  int maxDepth;
  std::vector<size_t> typeOffsets;
  size_t topOffset = 0;
  char topType = 0;

  std::string text(size_t max) {
    std::string s(rng() % (max + 1), ' ');
    for (char& c : s) c = static_cast<char>(0x20 + rng() % 95);
    return s;
  }
  std::string bytes() {
    const size_t n = rng() % 8 == 0 ? rng() % 2000 : rng() % 16;
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 3 == 0 ? "\r\n$*:"[rng() % 5] : rng());
    return s;
  }
  int64_t integer() {
    switch (rng() % 5) {
      case 0: return INT64_MIN;
      case 1: return INT64_MAX;
      case 2: return -static_cast<int64_t>(rng() % 1000);
      default: return static_cast<int64_t>(rng());
    }
  }

  void value(std::string& out, int depth) {
    if (resp3 && rng() % 12 == 0) {  // an attribute annotating this value
      typeOffsets.push_back(out.size());
      const size_t pairs = rng() % 3;
      out += "|" + std::to_string(pairs) + "\r\n";
      for (size_t i = 0; i < 2 * pairs; ++i) value(out, depth + 1);
    }
    if (depth == 0) topOffset = out.size();
    typeOffsets.push_back(out.size());
    const bool canNest = depth < maxDepth;
    const int kinds = resp3 ? 17 : 7;
    const int kind = static_cast<int>(rng() % kinds);
    if (depth == 0) topType = "+-:$$**,#_(!=%~>*"[kind];
    switch (kind) {
      case 0: out += "+" + text(20) + "\r\n"; break;
      case 1: out += "-ERR " + text(30) + "\r\n"; break;
      case 2: out += ":" + std::to_string(integer()) + "\r\n"; break;
      case 3: {
        const std::string b = bytes();
        out += "$" + std::to_string(b.size()) + "\r\n" + b + "\r\n";
        break;
      }
      case 4: out += "$-1\r\n"; break;
      case 5:
      case 6: {
        if (!canNest || rng() % 6 == 0) {
          out += rng() % 2 ? "*-1\r\n" : "*0\r\n";
          break;
        }
        const size_t n = rng() % 5;
        out += "*" + std::to_string(n) + "\r\n";
        for (size_t i = 0; i < n; ++i) value(out, depth + 1);
        break;
      }
      case 7: {
        static const char* const kDoubles[] = {"1.5", "-0.25", "inf", "-inf", "nan", "1e+300", "0"};
        out += ","s + kDoubles[rng() % 7] + "\r\n";
        break;
      }
      case 8: out += rng() % 2 ? "#t\r\n" : "#f\r\n"; break;
      case 9: out += "_\r\n"; break;
      case 10: out += "(" + std::to_string(rng()) + std::to_string(rng()) + "\r\n"; break;
      case 11: {
        const std::string b = "ERR " + bytes();
        out += "!" + std::to_string(b.size()) + "\r\n" + b + "\r\n";
        break;
      }
      case 12: {
        const std::string b = "txt:" + bytes();
        out += "=" + std::to_string(b.size()) + "\r\n" + b + "\r\n";
        break;
      }
      default: {  // 13 % map, 14 ~ set, 15 > push, 16 * array
        const char type = "%~>*"[kind - 13];
        const size_t n = canNest ? rng() % 4 : 0;
        out += type + std::to_string(n) + "\r\n";
        for (size_t i = 0; i < (type == '%' ? 2 * n : n); ++i) value(out, depth + 1);
        break;
      }
    }
  }

  std::string reply() {
    typeOffsets.clear();
    std::string out;
    value(out, 0);
    return out;
  }
};

TEST_CASE("reply: random RESP3 replies frame the same however they are cut") {
  std::mt19937 rng(2024);
  Generator gen(rng, true, 6);
  for (int round = 0; round < 400; ++round) {
    const std::string reply = gen.reply();
    CAPTURE(reply);
    const Result whole = parseWhole(reply + ":1\r\n");
    REQUIRE(whole.status == ParseStatus::Complete);
    CHECK(whole.length == reply.size());
    CHECK(whole.offset == gen.topOffset);
    CHECK(whole.type == gen.topType);
    if (reply.size() < 600) {
      checkAllCuts(reply);
    } else {
      size_t at = 0;
      CHECK(parseByteByByte(reply, &at) == whole);
      CHECK(at == reply.size());
    }
  }
}

TEST_CASE("reply: pipelined replies arriving in random reads") {
  std::mt19937 rng(99);
  Generator gen(rng, true, 6);
  std::string stream;
  std::vector<size_t> lengths;
  for (int i = 0; i < 300; ++i) {
    const std::string r = gen.reply();
    lengths.push_back(r.size());
    stream += r;
  }
  for (framing_test::Arrival arrival : framing_test::kArrivals) {
    CAPTURE(arrival);
    ReplyParser p;
    std::vector<size_t> got;
    framing_test::readPipeline(
        stream, arrival, 500, rng, [&] { return got.size() == lengths.size(); },
        [&](const char* data, size_t len) -> size_t {
          const ParseStatus st = p.parse(data, len);
          if (st == ParseStatus::NeedMore) return 0;
          REQUIRE(st == ParseStatus::Complete);
          got.push_back(p.frame().length);
          p.reset();
          return got.back();
        });
    CHECK(got == lengths);
  }
}

TEST_CASE("reply: large payloads and long lines cost linear work") {
  const auto started = std::chrono::steady_clock::now();
  const std::string payload(8u << 20, 'v');
  const std::string reply = "*2\r\n$" + std::to_string(payload.size()) + "\r\n" + payload +
                            "\r\n+" + std::string(1u << 20, 's') + "\r\n";
  for (size_t step : {size_t{64} << 10, size_t{1}}) {
    CAPTURE(step);
    ReplyParser p;
    const ParseStatus st = framing_test::feedGrowingToEnd(
        reply.size(), step, [&](size_t len) { return p.parse(reply.data(), len); });
    REQUIRE(st == ParseStatus::Complete);
    CHECK(p.frame().length == reply.size());
  }
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  CHECK(seconds < 20.0);
}

// ---- splitAggregate ------------------------------------------------------------------------

std::vector<std::string> split(const std::string& reply, ParseStatus expected) {
  std::vector<ByteSpan> spans = {{1, 2}};  // stale content must be cleared
  auto buf = framing_test::freshCopy(reply, reply.size());
  REQUIRE(splitAggregate(buf.get(), reply.size(), spans) == expected);
  std::vector<std::string> out;
  for (const ByteSpan& s : spans) out.push_back(reply.substr(s.offset, s.length));
  return out;
}

TEST_CASE("reply: splitAggregate gives each top-level element") {
  using V = std::vector<std::string>;
  CHECK(split("*3\r\n$1\r\na\r\n$-1\r\n$3\r\nc\r\n\r\n", ParseStatus::Complete) ==
        V{"$1\r\na\r\n", "$-1\r\n", "$3\r\nc\r\n\r\n"});
  CHECK(split("*2\r\n*2\r\n:1\r\n:2\r\n+x\r\n", ParseStatus::Complete) ==
        V{"*2\r\n:1\r\n:2\r\n", "+x\r\n"});
  CHECK(split("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", ParseStatus::Complete) ==
        V{"+a\r\n", ":1\r\n", "+b\r\n", ":2\r\n"});
  CHECK(split("~1\r\n#t\r\n", ParseStatus::Complete) == V{"#t\r\n"});
  CHECK(split(">2\r\n+message\r\n+x\r\n", ParseStatus::Complete) == V{"+message\r\n", "+x\r\n"});
  CHECK(split(kAttributed, ParseStatus::Complete) == V{":2039123\r\n", ":9543892\r\n"});
  // An element's own attribute belongs to its span.
  CHECK(split("*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n", ParseStatus::Complete) ==
        V{"|1\r\n+a\r\n+b\r\n:1\r\n", ":2\r\n"});
  CHECK(split("*0\r\n", ParseStatus::Complete).empty());
  CHECK(split("*-1\r\n", ParseStatus::Complete).empty());
  // Trailing bytes (the next reply) are outside the spans.
  CHECK(split("*1\r\n:1\r\n+next\r\n", ParseStatus::Complete) == V{":1\r\n"});
  // Not an aggregate, cut short, or malformed.
  CHECK(split("$1\r\na\r\n", ParseStatus::Error).empty());
  CHECK(split("|1\r\n+a\r\n+b\r\n:1\r\n", ParseStatus::Error).empty());
  CHECK(split("*2\r\n:1\r\n", ParseStatus::NeedMore).empty());
  CHECK(split("*2\r\n:1\r\n@", ParseStatus::Error).empty());
}

TEST_CASE("reply: splitAggregate over random aggregates re-frames to the whole") {
  std::mt19937 rng(5);
  Generator gen(rng, true, 6);
  int checked = 0;
  for (int round = 0; round < 2000 && checked < 200; ++round) {
    const std::string reply = gen.reply();
    ReplyParser p;
    REQUIRE(p.parse(reply.data(), reply.size()) == ParseStatus::Complete);
    if (!p.frame().isAggregate() || p.frame().isNull()) continue;
    ++checked;
    std::vector<ByteSpan> spans;
    REQUIRE(splitAggregate(reply.data(), reply.size(), spans) == ParseStatus::Complete);
    const uint64_t expected =
        static_cast<uint64_t>(p.frame().value) * (p.frame().type == '%' ? 2 : 1);
    REQUIRE(spans.size() == expected);
    // Spans are contiguous, follow the header and end where the reply ends.
    size_t pos = reply.find('\n', p.frame().offset) + 1;
    for (const ByteSpan& s : spans) {
      CHECK(s.offset == pos);
      pos += s.length;
    }
    CHECK(pos == reply.size());
  }
  CHECK(checked > 50);
}

// ---- differential test against hiredis ----------------------------------------------------

// hiredis 0.14 knows only RESP2 and nests at most 8 arrays (ridx 0..7).
enum class Outcome { Incomplete, Complete, Error };

struct Observed {
  Outcome outcome = Outcome::Incomplete;
  size_t at = 0;  // bytes fed when the outcome was first reported
  friend bool operator==(const Observed&, const Observed&) = default;
};

std::string show(const Observed& o) {
  const char* names[] = {"Incomplete", "Complete", "Error"};
  return std::string(names[static_cast<int>(o.outcome)]) + "@" + std::to_string(o.at);
}

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};

// Bytes the reader has taken in and not yet consumed.
size_t unconsumed(const redisReader* r) { return r->len - r->pos; }

Observed hiredisWhole(const std::string& input) {
  std::unique_ptr<redisReader, ReaderDeleter> r(redisReaderCreate());
  REQUIRE(redisReaderFeed(r.get(), input.data(), input.size()) == REDIS_OK);
  void* reply = nullptr;
  if (redisReaderGetReply(r.get(), &reply) != REDIS_OK) return {Outcome::Error, input.size()};
  if (reply == nullptr) return {Outcome::Incomplete, input.size()};
  freeReplyObject(reply);
  return {Outcome::Complete, input.size() - unconsumed(r.get())};
}

Observed hiredisByteByByte(const std::string& input) {
  std::unique_ptr<redisReader, ReaderDeleter> r(redisReaderCreate());
  for (size_t i = 0; i < input.size(); ++i) {
    REQUIRE(redisReaderFeed(r.get(), input.data() + i, 1) == REDIS_OK);
    void* reply = nullptr;
    if (redisReaderGetReply(r.get(), &reply) != REDIS_OK) return {Outcome::Error, i + 1};
    if (reply != nullptr) {
      freeReplyObject(reply);
      REQUIRE(unconsumed(r.get()) == 0);
      return {Outcome::Complete, i + 1};
    }
  }
  return {Outcome::Incomplete, input.size()};
}

Observed oursWhole(const std::string& input) {
  auto buf = framing_test::freshCopy(input, input.size());
  ReplyParser p;
  switch (p.parse(buf.get(), input.size())) {
    case ParseStatus::Complete: return {Outcome::Complete, p.frame().length};
    case ParseStatus::NeedMore: return {Outcome::Incomplete, input.size()};
    case ParseStatus::Error: break;
  }
  return {Outcome::Error, input.size()};
}

Observed oursByteByByte(const std::string& input) {
  size_t at = 0;
  const Result r = parseByteByByte(input, &at);
  switch (r.status) {
    case ParseStatus::Complete: return {Outcome::Complete, at};
    case ParseStatus::NeedMore: return {Outcome::Incomplete, input.size()};
    case ParseStatus::Error: break;
  }
  return {Outcome::Error, at};
}

void agreeWithHiredis(const std::string& input) {
  CAPTURE(input);
  const Observed ours = oursWhole(input);
  const Observed theirs = hiredisWhole(input);
  CHECK_MESSAGE(ours == theirs, "whole: ours ", show(ours), " hiredis ", show(theirs));
  const Observed oursBytes = oursByteByByte(input);
  const Observed theirsBytes = hiredisByteByByte(input);
  CHECK_MESSAGE(oursBytes == theirsBytes, "byte by byte: ours ", show(oursBytes), " hiredis ",
                show(theirsBytes));
}

TEST_CASE("reply: agrees with hiredis on random valid RESP2 replies") {
  std::mt19937 rng(314159);
  Generator gen(rng, false, 7);
  for (int round = 0; round < 1500; ++round) {
    const std::string reply = gen.reply();
    REQUIRE(oursWhole(reply) == Observed{Outcome::Complete, reply.size()});
    agreeWithHiredis(reply);
    // With the next reply already buffered, both stop at the same byte.
    const std::string next = gen.reply();
    agreeWithHiredis(reply + next);
    // Cut short anywhere: both wait.
    if (!reply.empty()) agreeWithHiredis(reply.substr(0, rng() % reply.size()));
  }
}

TEST_CASE("reply: agrees with hiredis on replies with a bad type byte") {
  std::mt19937 rng(271828);
  Generator gen(rng, false, 7);
  // Bytes that open no value in RESP2 nor in RESP3.
  const std::string invalid = "@^&xA09 \r\n\t?.;{\x80\xff";
  for (int round = 0; round < 1500; ++round) {
    std::string reply = gen.reply();
    const size_t at = gen.typeOffsets[rng() % gen.typeOffsets.size()];
    reply[at] = invalid[rng() % invalid.size()];
    CAPTURE(at);
    REQUIRE(oursWhole(reply).outcome == Outcome::Error);
    agreeWithHiredis(reply);
  }
}

TEST_CASE("reply: agrees with hiredis over a long pipeline") {
  std::mt19937 rng(1618);
  Generator gen(rng, false, 7);
  std::string stream;
  for (int i = 0; i < 500; ++i) stream += gen.reply();

  std::vector<size_t> ours;
  for (size_t start = 0; start < stream.size();) {
    ReplyParser p;
    REQUIRE(p.parse(stream.data() + start, stream.size() - start) == ParseStatus::Complete);
    start += p.frame().length;
    ours.push_back(start);
  }

  std::unique_ptr<redisReader, ReaderDeleter> r(redisReaderCreate());
  std::vector<size_t> theirs;
  size_t fed = 0;
  while (theirs.size() < ours.size()) {
    void* reply = nullptr;
    REQUIRE(redisReaderGetReply(r.get(), &reply) == REDIS_OK);
    if (reply == nullptr) {
      REQUIRE(fed < stream.size());
      const size_t n = std::min<size_t>(1 + rng() % 1000, stream.size() - fed);
      REQUIRE(redisReaderFeed(r.get(), stream.data() + fed, n) == REDIS_OK);
      fed += n;
      continue;
    }
    freeReplyObject(reply);
    theirs.push_back(fed - unconsumed(r.get()));
  }
  CHECK(theirs == ours);
}

}  // namespace
}  // namespace backends::resp
