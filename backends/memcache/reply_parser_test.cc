#include "backends/memcache/reply_parser.h"

#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/support/framing_test_support.h"
#include "backends/memcache/memcache_reply_framer.h"
#include "backends/memcache/request_parser.h"

namespace backends::memcache {
namespace {

using namespace std::string_literals;

struct Result {
  ParseStatus status = ParseStatus::NeedMore;
  size_t length = 0;
  bool isError = false;
  size_t values = 0;
  uint16_t binaryStatus = 0;
  size_t lastLine = 0;
  std::string error;

  friend bool operator==(const Result&, const Result&) = default;
};

std::string show(const Result& r) {
  const std::string s = framing_test::statusName(r.status);
  return s + " length=" + std::to_string(r.length) + (r.isError ? " isError" : "") +
         " values=" + std::to_string(r.values) + " status=" + std::to_string(r.binaryStatus) +
         " error='" + r.error + "'";
}

Result complete(size_t length, size_t values = 0, bool isError = false, uint16_t binaryStatus = 0,
                size_t lastLine = 0) {
  Result r;
  r.status = ParseStatus::Complete;
  r.length = length;
  r.isError = isError;
  r.values = values;
  r.binaryStatus = binaryStatus;
  r.lastLine = lastLine;
  return r;
}

Result capture(const ReplyParser& p, ParseStatus st) {
  if (st == ParseStatus::NeedMore) return {};
  if (st == ParseStatus::Error) {
    return framing_test::errorResult<Result>(std::string(p.errorMessage()));
  }
  const ReplyFrame& f = p.frame();
  return complete(f.length, f.values, f.isError, f.binaryStatus, p.lastLineOffset());
}

Result parseCut(const std::string& input, ReplyKind kind, const framing_test::Reads& reads,
                const ReplyLimits& limits = {}) {
  ReplyParser p(limits);
  return framing_test::feedReads(
      input, reads, [&](const char* data, size_t len) { return p.parse(data, len, kind); },
      [&](ParseStatus st, const char*) { return capture(p, st); });
}

Result parseWhole(const std::string& input, ReplyKind kind, const ReplyLimits& limits = {}) {
  return parseCut(input, kind, framing_test::wholeRead(input), limits);
}

Result checkAllCuts(const std::string& input, ReplyKind kind, const ReplyLimits& limits = {}) {
  return framing_test::checkAllCuts(input, [&](const framing_test::Reads& reads) {
    return parseCut(input, kind, reads, limits);
  });
}

std::string value(const std::string& key, const std::string& data, const std::string& cas = "") {
  return "VALUE " + key + " 0 " + std::to_string(data.size()) + (cas.empty() ? "" : " " + cas) +
         "\r\n" + data + "\r\n";
}

std::string packet(uint8_t opcode, uint16_t status, std::string_view key, std::string_view val) {
  std::string out;
  appendBinaryResponse(out, opcode, status, 1, 0, "", key, val);
  return out;
}

TEST_SUITE("memcache reply parser") {

TEST_CASE("text retrieval replies: values, then END") {
  CHECK(checkAllCuts("END\r\n", ReplyKind::TextRetrieval).status == ParseStatus::Complete);
  CHECK(checkAllCuts("END\r\n", ReplyKind::TextRetrieval).values == 0);
  for (const std::string& reply :
       {value("a", "1") + "END\r\n", value("a", "x\r\nEND\r\n", "12") + "END\r\n",
        value("k", "") + value("kk", "END") + value("kkk", std::string(300, 'v'), "9") + "END\r\n"}) {
    const Result r = checkAllCuts(reply, ReplyKind::TextRetrieval);
    CHECK(r.status == ParseStatus::Complete);
    CHECK(r.length == reply.size());
    CHECK_FALSE(r.isError);
    CHECK(r.lastLine == reply.size() - 5);
  }
  CHECK(parseWhole(value("a", "1") + value("b", "2") + "END\r\n", ReplyKind::TextRetrieval).values == 2);
  // Only the first reply is framed.
  CHECK(parseWhole("END\r\nEND\r\n", ReplyKind::TextRetrieval).length == 5);
}

TEST_CASE("text one-line replies") {
  for (std::string_view line : {"STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED",
                                "TOUCHED", "OK", "12345", "VERSION 1.6.21", "END", ""}) {
    const std::string reply = std::string(line) + "\r\n";
    CHECK(checkAllCuts(reply + "STORED\r\n", ReplyKind::TextLine) == complete(reply.size()));
  }
}

TEST_CASE("stats replies: lines until END, or a lone RESET or OK") {
  const std::string stats = "STAT pid 1\r\nSTAT uptime 20\r\nSTAT version 1.6.21\r\nEND\r\n";
  CHECK(checkAllCuts(stats, ReplyKind::TextStats) == [&] {
    Result r = complete(stats.size());
    r.lastLine = stats.size() - 5;
    return r;
  }());
  const std::string items = "ITEM foo [5 b; 0 s]\r\nITEM bar [1 b; 0 s]\r\nEND\r\n";
  CHECK(checkAllCuts(items, ReplyKind::TextStats).length == items.size());
  CHECK(checkAllCuts("END\r\n", ReplyKind::TextStats).length == 5);
  CHECK(checkAllCuts("RESET\r\nEND\r\n", ReplyKind::TextStats).length == 7);
  CHECK(checkAllCuts("OK\r\n", ReplyKind::TextStats).length == 4);
  // OK and RESET end a stats reply only as its first line.
  CHECK(checkAllCuts("STAT a 1\r\nOK\r\nEND\r\n", ReplyKind::TextStats).length == 19);
  const Result err = checkAllCuts("CLIENT_ERROR usage: stats detail on|off|dump\r\n", ReplyKind::TextStats);
  CHECK(err.isError);
  CHECK(err.status == ParseStatus::Complete);
}

TEST_CASE("meta replies: one line, VA with its data") {
  for (const char* reply : {"HD\r\n", "HD c123 Oabc k foo\r\n", "EN\r\n", "NF O1\r\n",
                                  "NS\r\n", "EX c5\r\n", "MN\r\n",
                                  "ME foo exp=-1 la=5 cas=2 fetch=no cls=1 size=63\r\n"}) {
    CHECK(checkAllCuts(reply, ReplyKind::Meta) == complete(std::strlen(reply)));
  }
  for (const std::string& reply : {"VA 5 f0 c12\r\nhello\r\n"s, "VA 0\r\n\r\n"s, "VA 4 t-1\r\nHD\r\n\r\n"s}) {
    const Result r = checkAllCuts(reply + "HD\r\n", ReplyKind::Meta);
    CHECK(r.status == ParseStatus::Complete);
    CHECK(r.length == reply.size());
    CHECK(r.values == 1);
    CHECK(r.lastLine == 0);
  }
}

TEST_CASE("error lines end a reply of any text kind, even halfway through") {
  for (ReplyKind kind : {ReplyKind::TextRetrieval, ReplyKind::TextLine, ReplyKind::TextStats,
                         ReplyKind::Meta}) {
    for (std::string_view line : {"ERROR", "ERROR unknown command", "CLIENT_ERROR bad data chunk",
                                  "SERVER_ERROR out of memory storing object"}) {
      const std::string reply = std::string(line) + "\r\n";
      const Result r = checkAllCuts(reply + "END\r\n", kind);
      CHECK(r.status == ParseStatus::Complete);
      CHECK(r.length == reply.size());
      CHECK(r.isError);
    }
  }
  const std::string partial = value("a", "1") + value("b", "22");
  const std::string reply = partial + "SERVER_ERROR out of memory writing get response\r\n";
  Result r = checkAllCuts(reply + "END\r\n", ReplyKind::TextRetrieval);
  CHECK(r.status == ParseStatus::Complete);
  CHECK(r.length == reply.size());
  CHECK(r.isError);
  CHECK(r.values == 2);
  CHECK(r.lastLine == partial.size());

  const std::string stats = "STAT a 1\r\nSERVER_ERROR out of memory writing stats\r\n";
  r = checkAllCuts(stats, ReplyKind::TextStats);
  CHECK(r.isError);
  CHECK(r.length == stats.size());
}

TEST_CASE("malformed text replies are unframeable") {
  ReplyLimits limits;
  limits.maxLineLength = 40;
  limits.maxValueLength = 100;
  struct Case {
    std::string reply;
    ReplyKind kind;
  };
  for (const Case& c :
       {Case{"STORED\r\n", ReplyKind::TextRetrieval},
        Case{"VALUE a 0\r\n", ReplyKind::TextRetrieval},
        Case{"VALUE a 0 -1\r\n", ReplyKind::TextRetrieval},
        Case{"VALUE a 0 x\r\nx\r\nEND\r\n", ReplyKind::TextRetrieval},
        Case{"VALUE a 0 101\r\n", ReplyKind::TextRetrieval},
        Case{"VALUE a 0 99999999999999999999999\r\n", ReplyKind::TextRetrieval},
        Case{"VALUE a 0 1 2 3\r\nx\r\nEND\r\n", ReplyKind::TextRetrieval},
        Case{"VALUE a 0 1\r\nxy\r\nEND\r\n", ReplyKind::TextRetrieval},
        Case{"VALUE a 0 1\r\nx\nEND\r\n", ReplyKind::TextRetrieval},
        Case{"END\n", ReplyKind::TextRetrieval},
        Case{"\n", ReplyKind::TextLine},
        Case{"STORED\n", ReplyKind::TextLine},
        Case{std::string(41, 'x') + "\r\n", ReplyKind::TextLine},
        Case{std::string(60, 'x'), ReplyKind::TextStats},
        Case{"VA x\r\n", ReplyKind::Meta},
        Case{"VA\r\n", ReplyKind::Meta},
        Case{"VA 101\r\n", ReplyKind::Meta},
        Case{"VA 2\r\nabc\r\n", ReplyKind::Meta}}) {
    CAPTURE(c.reply);
    const Result r = checkAllCuts(c.reply, c.kind, limits);
    CHECK(r.status == ParseStatus::Error);
    CHECK_FALSE(r.error.empty());
  }
  // The length limit is checked on the header, before the value is waited for.
  CHECK(parseWhole("VALUE a 0 101\r\n", ReplyKind::TextRetrieval, limits).status == ParseStatus::Error);
  CHECK(parseWhole("VALUE a 0 100\r\n", ReplyKind::TextRetrieval, limits).status == ParseStatus::NeedMore);
  // A line of exactly the limit is fine.
  CHECK(parseWhole(std::string(40, 'x') + "\r\n", ReplyKind::TextLine, limits).status == ParseStatus::Complete);
}

TEST_CASE("binary replies: one packet, or a STAT sequence") {
  const std::string hit = packet(kOpcodeGetK, kBinaryStatusOk, "key", "value");
  Result r = checkAllCuts(hit + hit, ReplyKind::Binary);
  CHECK(r.status == ParseStatus::Complete);
  CHECK(r.length == hit.size());
  CHECK(r.values == 1);
  CHECK_FALSE(r.isError);

  struct Case {
    uint16_t status;
    bool isError;
  };
  for (const Case& c : {Case{kBinaryStatusKeyNotFound, false}, Case{kBinaryStatusKeyExists, false},
                        Case{kBinaryStatusNotStored, false}, Case{kBinaryStatusTooLarge, true},
                        Case{kBinaryStatusInvalidArguments, true},
                        Case{kBinaryStatusNonNumeric, true}, Case{kBinaryStatusUnknownCommand, true},
                        Case{kBinaryStatusOutOfMemory, true}}) {
    r = checkAllCuts(packet(kOpcodeGet, c.status, "", "Not found"), ReplyKind::Binary);
    CHECK(r.status == ParseStatus::Complete);
    CHECK(r.binaryStatus == c.status);
    CHECK(r.isError == c.isError);
  }

  const std::string stats = packet(kOpcodeStat, 0, "pid", "1") + packet(kOpcodeStat, 0, "uptime", "20") +
                            packet(kOpcodeStat, 0, "", "");
  r = checkAllCuts(stats + hit, ReplyKind::BinaryStat);
  CHECK(r.status == ParseStatus::Complete);
  CHECK(r.length == stats.size());
  CHECK(r.values == 3);
  CHECK_FALSE(r.isError);
  const std::string failed = packet(kOpcodeStat, kBinaryStatusKeyNotFound, "", "Not found");
  r = checkAllCuts(failed + hit, ReplyKind::BinaryStat);
  CHECK(r.length == failed.size());
  CHECK(r.binaryStatus == kBinaryStatusKeyNotFound);
}

TEST_CASE("binary hostile replies") {
  const std::string hit = packet(kOpcodeGet, 0, "", "value");
  for (size_t n = 0; n < hit.size(); ++n) {
    CHECK(parseWhole(hit.substr(0, n), ReplyKind::Binary).status == ParseStatus::NeedMore);
  }
  std::string bad = hit;
  bad[0] = '\x80';  // a request's magic
  CHECK(checkAllCuts(bad, ReplyKind::Binary).status == ParseStatus::Error);
  std::string overlap = hit;
  overlap[3] = 9;  // key longer than the 5-byte body
  CHECK(checkAllCuts(overlap, ReplyKind::Binary).status == ParseStatus::Error);
  ReplyLimits limits;
  limits.maxValueLength = 10;
  std::string huge = hit.substr(0, 24);
  huge[8] = '\x7f';
  CHECK(parseWhole(huge, ReplyKind::Binary, limits).status == ParseStatus::Error);
  // The second packet of a STAT sequence is checked as the first.
  CHECK(checkAllCuts(packet(kOpcodeStat, 0, "a", "1") + bad, ReplyKind::BinaryStat).status ==
        ParseStatus::Error);
}

TEST_CASE("a 1 MiB value fed a byte at a time costs linear work") {
  const std::string data(1 << 20, 'v');
  const std::string reply = value("big", data, "7") + "END\r\n";
  ReplyParser p;
  // One parser for the three, reset in between.
  const auto byteByByte = [&p](const std::string& in, ReplyKind kind) {
    p.reset();
    return framing_test::feedGrowing(in.size(), 1,
                                     [&](size_t len) { return p.parse(in.data(), len, kind); });
  };
  CHECK(byteByByte(reply, ReplyKind::TextRetrieval) == ParseStatus::Complete);
  CHECK(p.frame().length == reply.size());

  const std::string meta = "VA " + std::to_string(data.size()) + " c1\r\n" + data + "\r\n";
  CHECK(byteByByte(meta, ReplyKind::Meta) == ParseStatus::Complete);
  CHECK(p.frame().length == meta.size());

  const std::string bin = packet(kOpcodeGet, 0, "", data);
  CHECK(byteByByte(bin, ReplyKind::Binary) == ParseStatus::Complete);
  CHECK(p.frame().length == bin.size());
}

TEST_CASE("splitRetrieval gives each item and key, to merge shards in the client's order") {
  const std::string shardA = value("k1", "one", "11") + value("k3", "three\r\n") + "END\r\n";
  const std::string shardB = value("k2", "") + "END\r\n";
  RetrievalReply a;
  RetrievalReply b;
  REQUIRE(splitRetrieval(shardA.data(), shardA.size(), a) == ParseStatus::Complete);
  REQUIRE(splitRetrieval(shardB.data(), shardB.size(), b) == ParseStatus::Complete);
  REQUIRE(a.items.size() == 2);
  REQUIRE(b.items.size() == 1);
  CHECK(a.length == shardA.size());
  CHECK(a.last == ByteSpan{shardA.size() - 5, 5});
  CHECK_FALSE(a.isError);

  // The client asked "get k1 k2 k3 k4" (k4 missing everywhere).
  std::map<std::string, std::string> byKey;
  for (const auto& [reply, split] : {std::pair{&shardA, &a}, std::pair{&shardB, &b}}) {
    for (const RetrievalItem& item : split->items) {
      byKey[reply->substr(item.key.offset, item.key.length)] =
          reply->substr(item.item.offset, item.item.length);
    }
  }
  std::string merged;
  for (const char* key : {"k1", "k2", "k3", "k4"}) {
    if (auto it = byKey.find(key); it != byKey.end()) merged += it->second;
  }
  merged += "END\r\n";
  CHECK(merged == value("k1", "one", "11") + value("k2", "") + value("k3", "three\r\n") + "END\r\n");

  // Capacity is reused; an error-terminated reply gives the items before the error.
  const std::string broken = value("x", "1") + "SERVER_ERROR out of memory\r\n";
  REQUIRE(splitRetrieval(broken.data(), broken.size(), a) == ParseStatus::Complete);
  CHECK(a.items.size() == 1);
  CHECK(a.isError);
  CHECK(broken.substr(a.last.offset, a.last.length) == "SERVER_ERROR out of memory\r\n");
  CHECK(broken.substr(a.items[0].key.offset, a.items[0].key.length) == "x");

  CHECK(splitRetrieval(shardA.data(), shardA.size() - 1, a) == ParseStatus::NeedMore);
  CHECK(a.items.empty());
  const std::string notRetrieval = "STORED\r\n";
  CHECK(splitRetrieval(notRetrieval.data(), notRetrieval.size(), a) == ParseStatus::Error);
  const std::string empty = "END\r\n";
  REQUIRE(splitRetrieval(empty.data(), empty.size(), a) == ParseStatus::Complete);
  CHECK(a.items.empty());
}

TEST_CASE("the upstream ReplyFramer adapter frames by the request's hint") {
  MemcacheReplyFramer adapter;
  upstream::ReplyFramer& framer = adapter;
  const std::string stream = value("k", "v") + "END\r\n" + "STORED\r\n" + "SERVER_ERROR busy\r\n" +
                             packet(kOpcodeNoop, 0, "", "") + "HD\r\n";
  const std::vector<ReplyKind> kinds = {ReplyKind::TextRetrieval, ReplyKind::TextLine,
                                        ReplyKind::TextLine, ReplyKind::Binary, ReplyKind::Meta};
  size_t pos = 0;
  std::vector<bool> errors;
  for (ReplyKind kind : kinds) {
    const upstream::Frame f = framer.frame(stream.data() + pos, stream.size() - pos, replyHint(kind));
    REQUIRE(f.status == upstream::FrameStatus::Complete);
    errors.push_back(f.isError);
    pos += f.length;
    framer.reset();
  }
  CHECK(pos == stream.size());
  CHECK(errors == std::vector<bool>{false, false, true, false, false});
  CHECK(framer.frame(stream.data(), 3, replyHint(ReplyKind::TextLine)).status ==
        upstream::FrameStatus::NeedMore);
  framer.reset();
  CHECK(framer.frame(stream.data(), stream.size(), kReplyKindCount).status ==
        upstream::FrameStatus::Error);
  framer.reset();
  CHECK(framer.frame("\x80", 1, replyHint(ReplyKind::Binary)).status ==
        upstream::FrameStatus::NeedMore);
}

TEST_CASE("request reply kinds and reply framing agree over a random pipeline") {
  // Each request's replyKind() is what the framer needs for the reply the backend sends.
  struct Pair {
    std::string request;
    std::string reply;
  };
  const std::vector<Pair> pairs = {
      {"get a b\r\n", value("a", "1") + value("b", "22", "5") + "END\r\n"},
      {"gets a\r\n", "END\r\n"},
      {"gat 10 a\r\n", "SERVER_ERROR oops\r\n"},
      {"set k 0 0 1\r\nx\r\n", "STORED\r\n"},
      {"incr k 1\r\n", "2\r\n"},
      {"stats\r\n", "STAT pid 1\r\nEND\r\n"},
      {"stats reset\r\n", "RESET\r\n"},
      {"version\r\n", "VERSION 1.6.21\r\n"},
      {"mg k v\r\n", "VA 2 f0\r\nhi\r\n"},
      {"mg k\r\n", "EN\r\n"},
      {"ms k 2\r\nhi\r\n", "HD\r\n"},
      {"ma k v\r\n", "VA 1\r\n3\r\n"},
      {"mn\r\n", "MN\r\n"},
      {"bogus\r\n", "ERROR\r\n"},
      {[] {
         std::string r;
         appendBinaryRequest(r, kOpcodeGetK, 1, 0, "", "k", "");
         return r;
       }(),
       packet(kOpcodeGetK, 0, "k", "val")},
      {[] {
         std::string r;
         appendBinaryRequest(r, kOpcodeStat, 1, 0, "", "", "");
         return r;
       }(),
       packet(kOpcodeStat, 0, "pid", "1") + packet(kOpcodeStat, 0, "", "")},
  };
  std::mt19937 rng(3);
  std::string replies;
  std::vector<uint32_t> hints;
  std::vector<size_t> lengths;
  for (int i = 0; i < 300; ++i) {
    const Pair& pr = pairs[rng() % pairs.size()];
    RequestParser rp;
    REQUIRE(rp.parse(pr.request.data(), pr.request.size()) != RequestStatus::NeedMore);
    hints.push_back(replyHint(rp.replyKind()));
    lengths.push_back(pr.reply.size());
    replies += pr.reply;
  }
  for (framing_test::Arrival arrival : framing_test::kArrivals) {
    CAPTURE(arrival);
    MemcacheReplyFramer framer;
    size_t next = 0;
    const size_t fed = framing_test::readPipeline(
        replies, arrival, 200, rng, [&] { return next == hints.size(); },
        [&](const char* data, size_t len) -> size_t {
          if (next == hints.size()) return 0;  // every reply is in: no hint for more
          const upstream::Frame f = framer.frame(data, len, hints[next]);
          if (f.status == upstream::FrameStatus::NeedMore) return 0;
          REQUIRE(f.status == upstream::FrameStatus::Complete);
          CHECK(f.length == lengths[next]);
          framer.reset();
          ++next;
          return f.length;
        });
    CHECK(fed == replies.size());
  }
}

TEST_CASE("random replies frame the same however they are cut") {
  std::mt19937 rng(9);
  const std::vector<std::string> pieces = {"VALUE k 0 3\r\nabc\r\n", "END\r\n", "STAT a 1\r\n",
                                           "VA 2 f\r\nhi\r\n", "HD\r\n", "SERVER_ERROR x\r\n",
                                           "\r", "\n", "VALUE", " ", "7", "OK\r\n", "\x81",
                                           packet(kOpcodeStat, 0, "a", "b"), packet(kOpcodeGet, 1, "", "")};
  ReplyLimits limits;
  limits.maxLineLength = 30;
  limits.maxValueLength = 50;
  for (int i = 0; i < 200; ++i) {
    std::string input;
    const size_t n = 1 + rng() % 6;
    for (size_t j = 0; j < n; ++j) input += pieces[rng() % pieces.size()];
    for (uint32_t kind = 0; kind < kReplyKindCount; ++kind) {
      checkAllCuts(input, static_cast<ReplyKind>(kind), limits);
    }
  }
}

TEST_CASE("status stays put after Complete or Error until reset") {
  ReplyParser p;
  const std::string ok = "STORED\r\n";
  REQUIRE(p.parse(ok.data(), ok.size(), ReplyKind::TextLine) == ParseStatus::Complete);
  CHECK(p.parse(ok.data(), ok.size(), ReplyKind::TextLine) == ParseStatus::Complete);
  p.reset();
  REQUIRE(p.parse(ok.data(), ok.size(), ReplyKind::TextRetrieval) == ParseStatus::Error);
  CHECK(p.parse(ok.data(), ok.size(), ReplyKind::TextRetrieval) == ParseStatus::Error);
  p.reset();
  CHECK(p.parse(ok.data(), ok.size(), ReplyKind::TextLine) == ParseStatus::Complete);
}

}  // TEST_SUITE

}  // namespace
}  // namespace backends::memcache
