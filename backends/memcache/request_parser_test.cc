#include "backends/memcache/request_parser.h"

#include <doctest/doctest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "tests/support/framing_test_support.h"

namespace backends::memcache {
namespace {

using namespace std::string_literals;

// What a parse produced, detached from the buffer so that runs over differently cut input
// can be compared.
struct Result {
  RequestStatus status = RequestStatus::NeedMore;
  size_t size = 0;
  Dialect dialect = Dialect::Text;
  Command command = Command::Unknown;
  ReplyKind reply = ReplyKind::TextLine;
  std::vector<std::string> tokens;
  std::vector<std::string> keys;
  std::string prefix;
  std::string data;
  bool noreply = false;
  std::string noreplyToken;
  uint64_t metaFlags = 0;
  std::string opaqueToken;
  uint8_t opcode = 0;
  uint32_t opaque = 0;
  uint64_t cas = 0;
  std::string extras;
  RequestError error = RequestError::None;
  std::string message;
  std::string errorReply;

  friend bool operator==(const Result&, const Result&) = default;
};

std::string show(const Result& r) {
  std::string s = framing_test::statusName(r.status);
  s += " size=" + std::to_string(r.size) + " command=" + std::to_string(int(r.command)) +
       " dialect=" + std::to_string(int(r.dialect)) + " keys=[";
  for (const auto& k : r.keys) s += "'" + k + "' ";
  s += "] prefix='" + r.prefix + "' data.size=" + std::to_string(r.data.size()) +
       (r.noreply ? " noreply" : "") + " error=" + std::to_string(int(r.error)) + " message='" +
       r.message + "'";
  return s;
}

std::string text(const char* base, ByteSpan s) { return std::string(base + s.offset, s.length); }

Result capture(const RequestParser& p, RequestStatus st, const char* data) {
  Result r;
  r.status = st;
  if (st == RequestStatus::NeedMore) return r;
  r.dialect = p.dialect();
  r.error = p.error();
  r.message = std::string(p.errorMessage());
  appendErrorReply(r.errorReply, p);
  r.opcode = p.binary().opcode;
  r.opaque = p.binary().opaque;
  if (st == RequestStatus::Error) return r;
  r.size = p.size();
  r.command = p.command();
  r.reply = p.replyKind();
  for (size_t i = 0; i < p.tokens().size(); ++i) r.tokens.emplace_back(p.token(data, i));
  for (size_t i = 0; i < p.keys().size(); ++i) r.keys.emplace_back(p.key(data, i));
  r.prefix = text(data, p.prefix());
  r.data = text(data, p.data());
  r.noreply = p.noreply();
  r.noreplyToken = text(data, p.noreplySpan());
  r.metaFlags = p.metaFlags();
  r.opaqueToken = text(data, p.opaqueSpan());
  r.cas = p.binary().cas;
  r.extras = text(data, p.binary().extras);
  return r;
}

// Feeds the input as it would arrive through `reads`, to a fresh parser.
Result parseCut(const std::string& input, const framing_test::Reads& reads,
                const RequestLimits& limits = {}) {
  RequestParser p(limits);
  return framing_test::feedReads(
      input, reads, [&](const char* data, size_t len) { return p.parse(data, len); },
      [&](RequestStatus st, const char* data) { return capture(p, st, data); });
}

Result parseWhole(const std::string& input, const RequestLimits& limits = {}) {
  return parseCut(input, framing_test::wholeRead(input), limits);
}

Result checkAllCuts(const std::string& input, const RequestLimits& limits = {}) {
  return framing_test::checkAllCuts(
      input, [&](const framing_test::Reads& reads) { return parseCut(input, reads, limits); });
}

// For large inputs: one buffer, parsed with a growing length (no copies).
Result parseGrowingInPlace(const std::string& input, size_t step,
                           const RequestLimits& limits = {}) {
  RequestParser p(limits);
  const RequestStatus st = framing_test::feedGrowing(
      input.size(), step, [&](size_t len) { return p.parse(input.data(), len); });
  return capture(p, st, input.data());
}

std::string binaryRequest(uint8_t opcode, std::string_view extras, std::string_view key,
                          std::string_view value, uint32_t opaque = 0x01020304,
                          uint64_t cas = 0) {
  std::string out;
  appendBinaryRequest(out, opcode, opaque, cas, extras, key, value);
  return out;
}

// A header whose lengths are whatever the test says, followed by `body`.
std::string rawBinary(uint8_t magic, uint8_t opcode, uint16_t keyLength, uint8_t extrasLength,
                      uint32_t bodyLength, uint32_t opaque, const std::string& body) {
  std::string h(24, '\0');
  h[0] = static_cast<char>(magic);
  h[1] = static_cast<char>(opcode);
  h[2] = static_cast<char>(keyLength >> 8);
  h[3] = static_cast<char>(keyLength);
  h[4] = static_cast<char>(extrasLength);
  for (int i = 0; i < 4; ++i) h[8 + i] = static_cast<char>(bodyLength >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) h[12 + i] = static_cast<char>(opaque >> (24 - 8 * i));
  return h + body;
}

// One valid sample of every text and meta command.
const std::map<Command, std::string>& samples() {
  static const std::map<Command, std::string> kSamples = {
      {Command::Get, "get k\r\n"},
      {Command::Gets, "gets a b\r\n"},
      {Command::Gat, "gat 10 k\r\n"},
      {Command::Gats, "gats -1 a b\r\n"},
      {Command::Set, "set k 1 0 3\r\nabc\r\n"},
      {Command::Add, "add k 0 0 1 noreply\r\nx\r\n"},
      {Command::Replace, "replace k 4294967295 -5 2\r\nxy\r\n"},
      {Command::Append, "append k 0 0 0\r\n\r\n"},
      {Command::Prepend, "prepend k 0 0 1\r\n-\r\n"},
      {Command::Cas, "cas k 0 0 1 18446744073709551615\r\nx\r\n"},
      {Command::Delete, "delete k\r\n"},
      {Command::Incr, "incr k 5\r\n"},
      {Command::Decr, "decr k 18446744073709551615 noreply\r\n"},
      {Command::Touch, "touch k 10\r\n"},
      {Command::Version, "version\r\n"},
      {Command::Quit, "quit\r\n"},
      {Command::Verbosity, "verbosity 1\r\n"},
      {Command::FlushAll, "flush_all\r\n"},
      {Command::Stats, "stats slabs\r\n"},
      {Command::MetaGet, "mg k v f\r\n"},
      {Command::MetaSet, "ms k 2 T0\r\nhi\r\n"},
      {Command::MetaDelete, "md k q\r\n"},
      {Command::MetaArithmetic, "ma k MI D5\r\n"},
      {Command::MetaNoop, "mn\r\n"},
      {Command::MetaDebug, "me k\r\n"},
  };
  return kSamples;
}

TEST_SUITE("memcache request parser") {

TEST_CASE("every text and meta command in the table frames, however it is cut") {
  for (const TextCommandInfo& info : textCommands()) {
    CAPTURE(info.name);
    REQUIRE(samples().count(info.command) == 1);
    const std::string& sample = samples().at(info.command);
    const Result r = checkAllCuts(sample);
    CHECK(r.status == RequestStatus::Complete);
    CHECK(r.command == info.command);
    CHECK(r.dialect == info.dialect);
    CHECK(r.reply == info.reply);
    CHECK(r.size == sample.size());
    CHECK(r.tokens.at(0) == info.name);
    CHECK(r.keys.size() == (info.firstKey == 0 ? 0 : info.multiKey ? r.tokens.size() - info.firstKey : 1));
    CHECK(r.data.empty() == (info.bytesToken == 0 || sample.find("\r\n\r\n") != std::string::npos));
    CHECK(findTextCommand(info.name) == &info);
    CHECK(textCommandInfo(info.command) == &info);
  }
  CHECK(findTextCommand("GET") == nullptr);  // memcached's verbs are case-sensitive
  CHECK(findTextCommand("mz") == nullptr);
  CHECK(textCommandInfo(Command::Binary) == nullptr);
}

TEST_CASE("retrieval commands give every key and the tokens before them") {
  Result r = checkAllCuts("get a bb ccc\r\n");
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.keys == std::vector<std::string>{"a", "bb", "ccc"});
  CHECK(r.prefix == "get");
  CHECK(r.reply == ReplyKind::TextRetrieval);

  r = checkAllCuts("gat  100   k1 k2\n");  // runs of spaces and a bare LF, as memcached takes
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.command == Command::Gat);
  CHECK(r.keys == std::vector<std::string>{"k1", "k2"});
  CHECK(r.prefix == "gat  100");
  CHECK(r.size == 17);

  r = checkAllCuts("gets noreply\r\n");  // a key, not a flag, for a get
  CHECK(r.keys == std::vector<std::string>{"noreply"});
  CHECK_FALSE(r.noreply);

  // UTF-8 keys are fine, and a 250-byte key is the longest.
  CHECK(parseWhole("get caf\xc3\xa9\r\n").status == RequestStatus::Complete);
  CHECK(parseWhole("get " + std::string(250, 'k') + "\r\n").status == RequestStatus::Complete);
}

TEST_CASE("only the first request of a buffer is framed") {
  const Result r = parseWhole("get a\r\nget b\r\n");
  CHECK(r.size == 7);
  CHECK(r.keys == std::vector<std::string>{"a"});
  const Result s = parseWhole("set k 0 0 1\r\nx\r\nmn\r\n");
  CHECK(s.size == 16);
  CHECK(s.data == "x");
}

TEST_CASE("storage commands: data block, noreply, cas") {
  Result r = checkAllCuts("set k 5 100 7 noreply\r\nab\r\ncd\n\r\n");
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.data == "ab\r\ncd\n");  // the block is data: CRLF inside it is no terminator
  CHECK(r.noreply);
  CHECK(r.noreplyToken == "noreply");
  CHECK(r.keys == std::vector<std::string>{"k"});

  r = checkAllCuts("cas k 0 0 2 42 noreply\r\nhi\r\n");
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.command == Command::Cas);
  CHECK(r.noreply);

  // memcached ignores a last optional token that is not noreply.
  r = checkAllCuts("set k 0 0 1 whatever\r\nx\r\n");
  CHECK(r.status == RequestStatus::Complete);
  CHECK_FALSE(r.noreply);
}

TEST_CASE("one-line commands and their noreply forms") {
  struct Case {
    std::string line;
    Command command;
    bool noreply;
  };
  for (const Case& c : {Case{"delete k noreply\r\n", Command::Delete, true},
                        Case{"delete k 0\r\n", Command::Delete, false},
                        Case{"delete k 0 noreply\r\n", Command::Delete, true},
                        Case{"incr k 1 noreply\r\n", Command::Incr, true},
                        Case{"touch k -1 noreply\r\n", Command::Touch, true},
                        Case{"verbosity 1 noreply\r\n", Command::Verbosity, true},
                        Case{"flush_all noreply\r\n", Command::FlushAll, true},
                        Case{"flush_all 10\r\n", Command::FlushAll, false},
                        Case{"flush_all 10 noreply\r\n", Command::FlushAll, true},
                        Case{"stats detail dump\r\n", Command::Stats, false},
                        Case{"version extra tokens\r\n", Command::Version, false}}) {
    CAPTURE(c.line);
    const Result r = checkAllCuts(c.line);
    CHECK(r.status == RequestStatus::Complete);
    CHECK(r.command == c.command);
    CHECK(r.noreply == c.noreply);
  }
  CHECK(parseWhole("stats\r\n").reply == ReplyKind::TextStats);
}

TEST_CASE("unknown commands and wrong token counts are skipped with ERROR") {
  for (const std::string& line : {"foo bar\r\n"s, "GET k\r\n"s, "mz k\r\n"s, "\r\n"s, "   \n"s,
                                 "get\r\n"s, "gat 10\r\n"s, "incr k\r\n"s, "touch k\r\n"s,
                                 "delete\r\n"s, "mg\r\n"s, "verbosity\r\n"s,
                                 "flush_all 1 noreply x\r\n"s}) {
    CAPTURE(line);
    const Result r = checkAllCuts(line);
    CHECK(r.status == RequestStatus::Invalid);
    CHECK(r.error == RequestError::UnknownCommand);
    CHECK(r.size == line.size());
    CHECK(r.errorReply == "ERROR\r\n");
  }
  CHECK(parseWhole("mz k\r\n").dialect == Dialect::Meta);

  // A storage line with a readable length but too many tokens: its block is skipped with it.
  const Result r = checkAllCuts("set k 0 0 1 noreply extra\r\nx\r\nget a\r\n");
  CHECK(r.status == RequestStatus::Invalid);
  CHECK(r.size == 30);
  const Result cas = checkAllCuts("cas k 0 0 1\r\nx\r\n");  // no cas unique
  CHECK(cas.status == RequestStatus::Invalid);
  CHECK(cas.size == 16);
}

TEST_CASE("bad keys are skippable, data block included") {
  const std::string longKey(251, 'k');
  for (const std::string& line : {"get " + longKey + "\r\n", "get a b\tc\r\n"s,
                                 "get a \x01" "b\r\n"s, "get a\x7f\r\n"s, "get ok a\rb\r\n"s,
                                 "delete " + longKey + "\r\n", "incr \x02 1\r\n"s,
                                 "mg " + longKey + " v\r\n", "md a\x01\r\n"s,
                                 "me " + longKey + "\r\n"}) {
    CAPTURE(line);
    const Result r = checkAllCuts(line);
    CHECK(r.status == RequestStatus::BadKey);
    CHECK(r.error == RequestError::BadKey);
    CHECK(r.size == line.size());
    CHECK(r.errorReply == "CLIENT_ERROR bad command line format\r\n");
  }
  const std::string set = "set " + longKey + " 0 0 5\r\nhello\r\n";
  Result r = checkAllCuts(set + "get a\r\n");
  CHECK(r.status == RequestStatus::BadKey);
  CHECK(r.size == set.size());
  r = checkAllCuts("ms a\tb 2\r\nhi\r\n");
  CHECK(r.status == RequestStatus::BadKey);
  CHECK(r.size == 14);
  // The block must still be framed: a bad key does not save a bad terminator.
  CHECK(parseWhole("set a\x01 0 0 1\r\nxy\r\n").status == RequestStatus::Error);
}

TEST_CASE("bad numbers in a framed request are skippable") {
  struct Case {
    std::string line;
    std::string reply;
  };
  for (const Case& c :
       {Case{"set k x 0 1\r\nv\r\n", "CLIENT_ERROR bad command line format\r\n"},
        Case{"set k 4294967296 0 1\r\nv\r\n", "CLIENT_ERROR bad command line format\r\n"},
        Case{"add k 0 2147483648 1\r\nv\r\n", "CLIENT_ERROR bad command line format\r\n"},
        Case{"cas k 0 0 1 -3\r\nv\r\n", "CLIENT_ERROR bad command line format\r\n"},
        Case{"incr k -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"},
        Case{"decr k 18446744073709551616\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"},
        Case{"touch k soon\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
        Case{"gat x k\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
        Case{"flush_all later\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
        Case{"delete k 5\r\n",
             "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"},
        Case{"delete k noreply 0\r\n",
             "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"},
        Case{"mg k v v\r\n", "CLIENT_ERROR duplicate flag\r\n"},
        Case{"mg k 9\r\n", "CLIENT_ERROR invalid flag\r\n"},
        Case{"ms k 1 -\r\nx\r\n", "CLIENT_ERROR invalid flag\r\n"}}) {
    CAPTURE(c.line);
    const Result r = checkAllCuts(c.line);
    CHECK(r.status == RequestStatus::Invalid);
    CHECK(r.error == RequestError::BadFormat);
    CHECK(r.size == c.line.size());
    CHECK(r.errorReply == c.reply);
  }
}

TEST_CASE("errors of text noreply requests go unanswered, as memcached does") {
  for (const std::string& line : {"set k x 0 1 noreply\r\nv\r\n"s, "incr \x01 1 noreply\r\n"s,
                                  "touch k soon noreply\r\n"s, "delete k 5 noreply\r\n"s}) {
    CAPTURE(line);
    const Result r = checkAllCuts(line);
    CHECK((r.status == RequestStatus::Invalid || r.status == RequestStatus::BadKey));
    CHECK(r.noreply);
    CHECK(r.errorReply.empty());
  }
  // A wrong token count is refused before noreply is looked at: ERROR is sent.
  CHECK(parseWhole("set k 0 0 1 noreply x\r\nv\r\n").errorReply == "ERROR\r\n");
  // Meta errors are always sent, quiet or not; so are errors that close the client.
  CHECK(parseWhole("mg k q q\r\n").errorReply == "CLIENT_ERROR duplicate flag\r\n");
  CHECK(parseWhole("set k 0 0 1 noreply\r\nvv\r\n").errorReply ==
        "CLIENT_ERROR bad data chunk\r\n");
  // Binary quiet opcodes too.
  const std::string getq = rawBinary(0x80, kOpcodeGetQ, 0, 0, 0, 9, "");
  const Result r = parseWhole(getq);
  CHECK(r.status == RequestStatus::Invalid);
  CHECK(r.noreply);
  CHECK_FALSE(r.errorReply.empty());
}

TEST_CASE("unframeable storage headers and data blocks close the client") {
  RequestLimits small;
  small.maxValueLength = 100;
  struct Case {
    std::string input;
    RequestError error;
  };
  for (const Case& c : {Case{"set k 0 0 -1\r\n", RequestError::BadLength},
                        Case{"set k 0 0 abc\r\nabc\r\n", RequestError::BadLength},
                        Case{"set k 0 0 99999999999999999999\r\n", RequestError::BadLength},
                        Case{"set k 0 0 101\r\n", RequestError::BadLength},
                        Case{"set k 0 0\r\n", RequestError::BadLength},
                        Case{"cas k 0\r\n", RequestError::BadLength},
                        Case{"ms k\r\n", RequestError::BadLength},
                        Case{"ms k -2\r\nhi\r\n", RequestError::BadLength},
                        Case{"set k 0 0 1\r\nxy\r\n", RequestError::BadDataTerminator},
                        Case{"set k 0 0 1\r\nx\n\r\n", RequestError::BadDataTerminator},
                        Case{"ms k 2\r\nhi\n\n", RequestError::BadDataTerminator}}) {
    CAPTURE(c.input);
    const Result r = checkAllCuts(c.input, small);
    CHECK(r.status == RequestStatus::Error);
    CHECK(r.error == c.error);
    CHECK(r.errorReply.starts_with("CLIENT_ERROR "));
  }
  // The limit is checked on the header, before the block is waited for.
  CHECK(parseWhole("set k 0 0 101\r\n", small).status == RequestStatus::Error);
  CHECK(parseWhole("set k 0 0 100\r\n", small).status == RequestStatus::NeedMore);
  CHECK(parseWhole("set k 0 0 1\r\nxy\r\n").errorReply == "CLIENT_ERROR bad data chunk\r\n");
}

TEST_CASE("line limits: short for most commands, long for gets") {
  RequestLimits small;
  small.maxLineLength = 32;
  small.maxRetrievalLineLength = 64;
  const std::string setLine = "set " + std::string(40, 'k') + " 0 0 1\r\nx\r\n";
  Result r = checkAllCuts(setLine, small);
  CHECK(r.status == RequestStatus::Error);
  CHECK(r.error == RequestError::LineTooLong);
  CHECK(r.errorReply == "CLIENT_ERROR line too long\r\n");
  // A line never ending is refused as soon as the limit is passed.
  CHECK(parseWhole(std::string(33, 'x'), small).status == RequestStatus::Error);
  CHECK(parseWhole(std::string(32, 'x'), small).status == RequestStatus::NeedMore);

  // Exactly 32 bytes before the newline is fine (its CR counts), 33 are not.
  const std::string exact = "touch " + std::string(23, 'k') + " 1\r\n";
  REQUIRE(exact.size() == 33);
  CHECK(checkAllCuts(exact, small).status == RequestStatus::Complete);
  CHECK(checkAllCuts("touch " + std::string(24, 'k') + " 1\r\n", small).error ==
        RequestError::LineTooLong);

  std::string get = "get";
  while (get.size() < 60) get += " k" + std::to_string(get.size());
  r = checkAllCuts(get + "\r\n", small);
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.keys.size() > 10);
  r = checkAllCuts("  gets " + std::string(70, 'k') + "\r\n", small);
  CHECK(r.status == RequestStatus::Error);
  CHECK(r.error == RequestError::LineTooLong);
  // "getx" is no get: the short limit applies.
  CHECK(checkAllCuts("getx " + std::string(40, 'k') + "\r\n", small).status ==
        RequestStatus::Error);

  // The defaults: a 60 KiB multi-get passes, a 65 KiB one does not.
  std::string big = "get";
  for (int i = 0; big.size() < 60 * 1024; ++i) big += " key:" + std::to_string(i);
  r = parseGrowingInPlace(big + "\r\n", 1);
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.keys.size() > 5000);
  CHECK(r.keys == parseWhole(big + "\r\n").keys);
  std::string huge = "get " + std::string(65 * 1024, 'k') + "\r\n";
  CHECK(parseGrowingInPlace(huge, 1).error == RequestError::LineTooLong);
}

TEST_CASE("too many keys are refused, the line skipped") {
  RequestLimits limits;
  limits.maxKeys = 3;
  CHECK(checkAllCuts("get a b c\r\n", limits).status == RequestStatus::Complete);
  CHECK(checkAllCuts("gat 1 a b c\r\n", limits).status == RequestStatus::Complete);
  for (const std::string& line : {"get a b c d\r\n"s, "gats 1 a b c d e f g h\r\n"s}) {
    const Result r = checkAllCuts(line, limits);
    CHECK(r.status == RequestStatus::Invalid);
    CHECK(r.error == RequestError::TooManyKeys);
    CHECK(r.size == line.size());
    CHECK(r.errorReply == "CLIENT_ERROR too many keys\r\n");
  }
}

TEST_CASE("meta commands: key, quiet and opaque flags, base64 keys, data") {
  Result r = checkAllCuts("mg foo v f t q O123 k\r\n");
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.dialect == Dialect::Meta);
  CHECK(r.reply == ReplyKind::Meta);
  CHECK(r.keys == std::vector<std::string>{"foo"});
  CHECK(r.noreply);
  CHECK(r.noreplyToken == "q");
  CHECK(r.opaqueToken == "O123");
  const uint64_t expected = RequestParser::metaFlagBit('v') | RequestParser::metaFlagBit('f') |
                            RequestParser::metaFlagBit('t') | RequestParser::metaFlagBit('q') |
                            RequestParser::metaFlagBit('O') | RequestParser::metaFlagBit('k');
  CHECK(r.metaFlags == expected);

  r = checkAllCuts("ms foo 5 T60 F3 q\r\nhello\r\n");
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.command == Command::MetaSet);
  CHECK(r.data == "hello");
  CHECK(r.noreply);
  CHECK(r.metaFlags == (RequestParser::metaFlagBit('T') | RequestParser::metaFlagBit('F') |
                        RequestParser::metaFlagBit('q')));

  r = checkAllCuts("md foo\r\n");
  CHECK(r.status == RequestStatus::Complete);
  CHECK_FALSE(r.noreply);
  CHECK(r.opaqueToken.empty());

  r = checkAllCuts("mn\r\n");
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.keys.empty());

  // Flag b: the key is base64; the parser checks it decodes, the proxy hashes the bytes.
  RequestParser p;
  const std::string b64 = "mg Zm9vYmFy b v\r\n";
  REQUIRE(p.parse(b64.data(), b64.size()) == RequestStatus::Complete);
  CHECK(p.keyIsBase64());
  CHECK(p.key(b64.data(), 0) == "Zm9vYmFy");
  char decoded[base64DecodedCapacity(kMaxKeyLength)];
  size_t n = 0;
  REQUIRE(decodeBase64(p.key(b64.data(), 0), decoded, &n));
  CHECK(std::string_view(decoded, n) == "foobar");
  // Up to 250 encoded bytes (memcached checks the key before decoding it).
  const std::string long64 = std::string(246, 'A') + "==";
  CHECK(checkAllCuts("mg " + long64 + " b\r\n").status == RequestStatus::Complete);

  for (const std::string& line : {"mg Zm9v! b\r\n"s, "mg Zm9 b\r\n"s, "md =Zm9 b\r\n"s}) {
    CAPTURE(line);
    r = checkAllCuts(line);
    CHECK(r.status == RequestStatus::BadKey);
    CHECK(r.errorReply == "CLIENT_ERROR error decoding key\r\n");
  }
}

TEST_CASE("decodeBase64 follows RFC 4648 strictly") {
  const auto decode = [](std::string_view in) -> std::string {
    char out[64];
    size_t n = 0;
    if (!decodeBase64(in, out, &n)) return "<bad>";
    return std::string(out, n);
  };
  CHECK(decode("Zg==") == "f");
  CHECK(decode("Zm8=") == "fo");
  CHECK(decode("Zm9v") == "foo");
  CHECK(decode("Zm9vYg==") == "foob");
  CHECK(decode("Zm9vYmE=") == "fooba");
  CHECK(decode("Zm9vYmFy") == "foobar");
  CHECK(decode("AP8A/+7d") == "\x00\xff\x00\xff\xee\xdd"s);
  for (std::string_view bad : {"", "Zm9", "Zm9vY", "Zm=v", "Z===", "====", "Zm9v!A==", "Zg=a",
                               "Zm9 ", "Zg==Zg=="}) {
    CAPTURE(bad);
    CHECK(decode(bad) == "<bad>");
  }
}

TEST_CASE("binary requests: every opcode in the table") {
  for (const BinaryOpcodeInfo& info : binaryOpcodes()) {
    CAPTURE(info.name);
    CHECK(binaryOpcodeInfo(info.opcode) == &info);
    const std::string extras(info.extras, 'e');
    const std::string key = info.key == Presence::Forbidden ? "" : "key";
    const std::string value = info.value == Presence::Forbidden ? "" : "value";
    const std::string packet = binaryRequest(info.opcode, extras, key, value, 0xdeadbeef, 77);
    const Result r = checkAllCuts(packet);
    CHECK(r.status == RequestStatus::Complete);
    CHECK(r.dialect == Dialect::Binary);
    CHECK(r.command == Command::Binary);
    CHECK(r.reply == info.reply);
    CHECK(r.size == packet.size());
    CHECK(r.opcode == info.opcode);
    CHECK(r.opaque == 0xdeadbeef);
    CHECK(r.cas == 77);
    CHECK(r.extras == extras);
    CHECK(r.keys == (key.empty() ? std::vector<std::string>{} : std::vector<std::string>{key}));
    CHECK(r.data == value);
    CHECK(r.noreply == info.quiet);
    CHECK(r.tokens.empty());
    CHECK(binaryOpcodeInfo(info.baseOpcode)->quiet == false);
  }
  // The quiet variants the protocol defines, and FLUSH's optional expiry.
  for (uint8_t op : {kOpcodeGetQ, kOpcodeGetKQ, kOpcodeSetQ, kOpcodeAddQ, kOpcodeReplaceQ,
                     kOpcodeDeleteQ, kOpcodeIncrementQ, kOpcodeDecrementQ, kOpcodeQuitQ,
                     kOpcodeFlushQ, kOpcodeAppendQ, kOpcodePrependQ, kOpcodeGatQ, kOpcodeGatKQ}) {
    CHECK(binaryOpcodeInfo(op)->quiet);
  }
  CHECK(parseWhole(binaryRequest(kOpcodeFlush, "\0\0\0\x10"s, "", "")).status ==
        RequestStatus::Complete);
  CHECK(parseWhole(binaryRequest(kOpcodeStat, "", "items", "")).keys ==
        std::vector<std::string>{"items"});
  // Binary keys may hold any byte.
  CHECK(parseWhole(binaryRequest(kOpcodeGet, "", "a b\r\n\0"s, "")).status ==
        RequestStatus::Complete);
}

TEST_CASE("binary hostile frames") {
  const std::string get = binaryRequest(kOpcodeGet, "", "k", "");
  for (size_t n = 0; n < get.size(); ++n) {
    CHECK(parseWhole(get.substr(0, n)).status == RequestStatus::NeedMore);
  }

  // Bad magic: nothing sensible to answer; close.
  Result r = checkAllCuts(rawBinary(0x81, kOpcodeGet, 1, 0, 1, 0, "k"));
  CHECK(r.status == RequestStatus::Error);
  CHECK(r.error == RequestError::BadMagic);
  CHECK(r.errorReply.empty());
  CHECK(parseWhole("\xff" "get k\r\n").error == RequestError::BadMagic);

  // A body over the limit: refused on the header, with a binary error to send before closing.
  RequestLimits limits;
  limits.maxValueLength = 1000;
  const std::string tooLong = rawBinary(0x80, kOpcodeSet, 1, 8, 1000 + 250 + 255 + 1, 0xabcd, "");
  r = checkAllCuts(tooLong, limits);
  CHECK(r.status == RequestStatus::Error);
  CHECK(r.error == RequestError::TooLarge);
  std::string expected;
  appendBinaryResponse(expected, kOpcodeSet, kBinaryStatusTooLarge, 0xabcd, 0, "", "", "Too large.");
  CHECK(r.errorReply == expected);
  CHECK(parseWhole(rawBinary(0x80, kOpcodeSet, 1, 8, 0xffffffff, 0, "")).error ==
        RequestError::TooLarge);

  // Key + extras > body: skipped by its body length, answered "Invalid arguments".
  const std::string overlap = rawBinary(0x80, kOpcodeGet, 5, 4, 6, 0x77, "abcdef");
  r = checkAllCuts(overlap + get);
  CHECK(r.status == RequestStatus::Invalid);
  CHECK(r.size == overlap.size());
  expected.clear();
  appendBinaryResponse(expected, kOpcodeGet, kBinaryStatusInvalidArguments, 0x77, 0, "", "",
                       "Invalid arguments");
  CHECK(r.errorReply == expected);

  // Unknown opcode with a sane length: skipped, answered "Unknown command" with its opaque.
  const std::string unknown = rawBinary(0x80, 0x50, 0, 0, 3, 0x99, "xyz");
  r = checkAllCuts(unknown);
  CHECK(r.status == RequestStatus::Invalid);
  CHECK(r.error == RequestError::UnknownCommand);
  CHECK(r.size == unknown.size());
  expected.clear();
  appendBinaryResponse(expected, 0x50, kBinaryStatusUnknownCommand, 0x99, 0, "", "",
                       "Unknown command");
  CHECK(r.errorReply == expected);
  CHECK(parseWhole(rawBinary(0x80, 0x1b, 0, 4, 4, 0, "\0\0\0\1"s)).error ==  // VERBOSITY
        RequestError::UnknownCommand);

  // Shapes memcached refuses.
  for (const std::string& bad : {binaryRequest(kOpcodeGet, "xxxx", "k", ""),
                                 binaryRequest(kOpcodeGet, "", "", ""),
                                 binaryRequest(kOpcodeGet, "", "k", "v"),
                                 binaryRequest(kOpcodeSet, "", "k", "v"),
                                 binaryRequest(kOpcodeSetQ, "12345678", "", "v"),
                                 binaryRequest(kOpcodeIncrement, std::string(8, '\0'), "k", ""),
                                 binaryRequest(kOpcodeNoop, "", "k", ""),
                                 binaryRequest(kOpcodeVersion, "", "", "v"),
                                 binaryRequest(kOpcodeFlush, "xx", "", ""),
                                 binaryRequest(kOpcodeTouch, "tttt", "k", "v"),
                                 binaryRequest(kOpcodeStat, "", "", "v")}) {
    r = checkAllCuts(bad);
    CHECK(r.status == RequestStatus::Invalid);
    CHECK(r.error == RequestError::BadFormat);
    CHECK(r.size == bad.size());
  }

  // A 251-byte key.
  r = checkAllCuts(binaryRequest(kOpcodeGetK, "", std::string(251, 'k'), ""));
  CHECK(r.status == RequestStatus::BadKey);
  CHECK(r.errorReply.substr(6, 2) == "\x00\x04"s);
}

TEST_CASE("1 MiB values, fed a byte at a time without rescanning") {
  const std::string value(1 << 20, 'v');
  const std::string set = "set big 0 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  Result r = parseGrowingInPlace(set, 1);
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.size == set.size());
  CHECK(r.data == value);
  CHECK(r == parseWhole(set));
  CHECK(parseGrowingInPlace(set, 4093) == r);

  const std::string ms = "ms big " + std::to_string(value.size()) + " T0\r\n" + value + "\r\n";
  r = parseGrowingInPlace(ms, 1);
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.data == value);

  const std::string bin = binaryRequest(kOpcodeSet, std::string(8, '\0'), "big", value);
  r = parseGrowingInPlace(bin, 1);
  CHECK(r.status == RequestStatus::Complete);
  CHECK(r.data == value);
}

TEST_CASE("status stays put after a verdict until reset") {
  RequestParser p;
  const std::string in = "get a\r\nget b\r\n";
  REQUIRE(p.parse(in.data(), in.size()) == RequestStatus::Complete);
  CHECK(p.parse(in.data(), in.size()) == RequestStatus::Complete);
  CHECK(p.size() == 7);
  p.reset();
  const std::string bad = "bogus\r\n";
  REQUIRE(p.parse(bad.data(), bad.size()) == RequestStatus::Invalid);
  CHECK(p.parse(bad.data(), bad.size()) == RequestStatus::Invalid);
  p.reset();
  const std::string broken = "set k 0 0 x\r\n";
  REQUIRE(p.parse(broken.data(), broken.size()) == RequestStatus::Error);
  CHECK(p.parse(broken.data(), broken.size()) == RequestStatus::Error);
  p.reset();
  REQUIRE(p.parse(in.data() + 7, 7) == RequestStatus::Complete);
  CHECK(p.key(in.data() + 7, 0) == "b");
  CHECK(p.error() == RequestError::None);
  std::string none;
  CHECK_FALSE(appendErrorReply(none, p));
}

TEST_CASE("appendGet rebuilds a get for a subset of its keys") {
  RequestParser p;
  const std::string in = "gat 100 a bb ccc dddd\r\n";
  REQUIRE(p.parse(in.data(), in.size()) == RequestStatus::Complete);
  const std::vector<ByteSpan> some = {p.keys()[3], p.keys()[1]};
  std::string out;
  appendGet(out, in.data(), p.prefix(), some);
  CHECK(out == "gat 100 dddd bb\r\n");
  const Result again = parseWhole(out);
  CHECK(again.keys == std::vector<std::string>{"dddd", "bb"});
  CHECK(again.prefix == "gat 100");

  out.clear();
  const std::vector<std::string_view> keys = {"x", "y"};
  appendGet(out, "gets", keys);
  CHECK(out == "gets x y\r\n");
}

TEST_CASE("appendBinaryResponse lays out the header as the protocol says") {
  std::string out;
  appendBinaryResponse(out, kOpcodeGetK, kBinaryStatusKeyNotFound, 0x01020304,
                       0x1122334455667788ull, "EXT", "key", "value");
  const std::string expected =
      "\x81\x0c\x00\x03\x03\x00\x00\x01"      // magic, opcode, key length, extras, type, status
      "\x00\x00\x00\x0b"                      // body: 3 + 3 + 5
      "\x01\x02\x03\x04"                      // opaque
      "\x11\x22\x33\x44\x55\x66\x77\x88"      // cas
      "EXTkeyvalue"s;
  CHECK(out == expected);
}

TEST_CASE("many keys spill to the heap and back") {
  RequestParser p;
  std::string many = "get";
  for (int i = 0; i < 5000; ++i) many += " k" + std::to_string(i);
  many += "\r\n";
  REQUIRE(p.parse(many.data(), many.size()) == RequestStatus::Complete);
  CHECK(p.keys().size() == 5000);
  CHECK(p.key(many.data(), 4999) == "k4999");
  p.reset();
  const std::string few = "get a b\r\n";
  REQUIRE(p.parse(few.data(), few.size()) == RequestStatus::Complete);
  CHECK(p.keys().size() == 2);
  CHECK(p.key(few.data(), 1) == "b");

  SpanList a;
  for (size_t i = 0; i < 40; ++i) REQUIRE(a.push({i, 1}));
  SpanList b(std::move(a));
  CHECK(b.size() == 40);
  CHECK(b[39] == ByteSpan{39, 1});
  CHECK(a.size() == 0);
  SpanList c;
  REQUIRE(c.push({5, 5}));
  SpanList d(std::move(c));
  CHECK(d[0] == ByteSpan{5, 5});
}

// A client session's loop over a pipeline of all three dialects, valid and skippable
// requests mixed: parse from the start of the unconsumed bytes, consume size(), reset; the
// buffer grows by appends and is compacted from time to time.
TEST_CASE("pipelines of mixed dialects, arriving in random reads") {
  std::vector<std::string> pool;
  for (const auto& [command, sample] : samples()) {
    if (command != Command::Quit) pool.push_back(sample);
  }
  pool.push_back(binaryRequest(kOpcodeGetKQ, "", "bin", ""));
  pool.push_back(binaryRequest(kOpcodeSet, std::string(8, '\0'), "bin", "some\r\nvalue"));
  pool.push_back(binaryRequest(kOpcodeNoop, "", "", ""));
  pool.push_back(rawBinary(0x80, 0x60, 0, 0, 2, 5, "??"));        // unknown opcode
  pool.push_back(rawBinary(0x80, kOpcodeGet, 9, 0, 2, 5, "??"));  // key longer than body
  pool.push_back("get " + std::string(300, 'x') + " ok\r\n");     // bad key
  pool.push_back("set \x01 0 0 3\r\nabc\r\n");                    // bad key, block skipped
  pool.push_back("frobnicate\r\n");
  pool.push_back("mg k q O1 k b\r\n");  // "k" is no base64: bad key
  pool.push_back("ms bWV0YQ== 3 b\r\nxyz\r\n");

  std::mt19937 rng(11);
  std::string stream;
  std::vector<Result> expected;
  for (int i = 0; i < 400; ++i) {
    const std::string& r = pool[rng() % pool.size()];
    const Result alone = parseWhole(r);
    REQUIRE(alone.status != RequestStatus::NeedMore);
    REQUIRE(alone.status != RequestStatus::Error);
    REQUIRE(alone.size == r.size());
    expected.push_back(alone);
    stream += r;
  }

  for (framing_test::Arrival arrival : framing_test::kArrivals) {
    CAPTURE(arrival);
    RequestParser p;
    std::vector<Result> got;
    const size_t fed = framing_test::readPipeline(
        stream, arrival, 300, rng, [&] { return got.size() == expected.size(); },
        [&](const char* data, size_t len) -> size_t {
          const RequestStatus st = p.parse(data, len);
          if (st == RequestStatus::NeedMore) return 0;
          REQUIRE(st != RequestStatus::Error);  // skippable refusals are consumed like requests
          got.push_back(capture(p, st, data));
          const size_t size = p.size();
          p.reset();
          return size;
        });
    CHECK(fed == stream.size());
    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK_MESSAGE(got[i] == expected[i], i, ": ", show(got[i]), " vs ", show(expected[i]));
    }
  }
}

TEST_CASE("random garbage frames the same however it is cut") {
  std::mt19937 rng(5);
  const std::string alphabet = "getsam \r\n0123456789-kqbv\x80\x01";
  RequestLimits limits;
  limits.maxLineLength = 40;
  limits.maxRetrievalLineLength = 60;
  limits.maxValueLength = 20;
  for (int i = 0; i < 300; ++i) {
    std::string input;
    const size_t n = 1 + rng() % 50;
    for (size_t j = 0; j < n; ++j) input += alphabet[rng() % alphabet.size()];
    if (rng() % 2) input = (rng() % 2 ? "set k 0 0 " : "get ") + input;
    checkAllCuts(input, limits);
  }
}

}  // TEST_SUITE

}  // namespace
}  // namespace backends::memcache
