// request_parser.h: frames memcached client requests of all three dialects, told apart per
// request by the first byte as memcached does: 0x80 starts a binary packet, anything else a
// text line (classic commands, or meta commands `mg`/`ms`/`md`/`ma`/`mn`/`me`).
//
// Data flow: a client session reads into its input buffer and calls parse() with the bytes
// from the start of the current request. NeedMore means "read more and call again with the
// same start"; the parser resumes where it stopped (a line is searched for its newline once,
// a data block or binary body is skipped by length), so a slowly arriving 1 MiB value costs
// O(bytes) in total. Complete gives the request's byte length, its command, its keys and the
// spans the proxy needs (data block, noreply token, the tokens before a get's keys) as spans
// into those bytes: single-key requests are forwarded as they are, multi-key gets are rebuilt
// per shard with appendGet(). After consuming size() bytes the session calls reset().
//
// Two kinds of failure (see RequestStatus):
//  - BadKey / Invalid: the request is malformed but framed (its size() is known and its bytes
//    have arrived): answer appendErrorReply() and skip size() bytes; the connection goes on.
//  - Error: the stream cannot be framed any more (a data length that is not a number, a data
//    block not followed by CRLF, a line or body over the limits, a bad binary magic): answer
//    appendErrorReply() when it writes something, then close the client.
//
// Quiet requests (text `noreply`, meta `q`, binary ...Q opcodes) may get no reply from a
// backend, which a FIFO of pending replies cannot wait for: noreply() and noreplySpan() say
// where the quiet marker is so the proxy can forward a loud request and drop its reply.
//
// Tokens and keys live in a small inline array (16 spans), so the common request allocates
// nothing; a many-key get grows a heap block that is kept for the next request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "backends/io/small_span_list.h"
#include "backends/memcache/commands.h"
#include "backends/memcache/memcache_types.h"

namespace backends::memcache {

// Limits checked as soon as a line or header announces a size, before any of it is buffered.
struct RequestLimits {
  // Bytes of a request line before its '\n'. memcached itself closes a client whose line has
  // no newline within 2048 bytes, unless it is a get.
  size_t maxLineLength = 2048;
  // The same for get/gets/gat/gats lines, which carry many keys.
  size_t maxRetrievalLineLength = 64 * 1024;
  // Keys of one get family request (more: Invalid, TooManyKeys).
  size_t maxKeys = 10000;
  // Bytes of a text/meta data block, and of a binary value (its body may add a key and
  // extras). memcached's default item size limit is 1 MiB; this only bounds buffering.
  size_t maxValueLength = 64u * 1024 * 1024;
};

enum class RequestStatus : uint8_t {
  Complete,  // one request framed and valid: results readable
  NeedMore,  // valid so far; call again with the same start and more bytes
  BadKey,    // framed, but a key breaks memcached's rules: answer, skip size(), go on
  Invalid,   // framed, but otherwise malformed or unknown: answer, skip size(), go on
  Error,     // unframeable: answer if appendErrorReply() writes something, then close
};

enum class RequestError : uint8_t {
  None,
  // Skippable (BadKey, Invalid).
  BadKey,          // empty, longer than 250 bytes, a control character, bad base64 (meta b)
  UnknownCommand,  // unknown verb or opcode, or a wrong token count (memcached: ERROR)
  BadFormat,       // a bad number, flag or binary shape
  TooManyKeys,     // more than RequestLimits::maxKeys keys
  // Unframeable (Error).
  LineTooLong,
  BadLength,          // a data length that is missing, not a number, or over the limit
  BadDataTerminator,  // a data block not followed by "\r\n"
  BadMagic,           // a first byte above 0x80: neither a binary request nor a text line
  TooLarge,           // a binary body over the limit (the header is readable: replyable)
  OutOfMemory,
};

// The fixed header and the body layout of a binary request.
struct BinaryRequest {
  uint8_t opcode = 0;
  uint8_t dataType = 0;
  uint16_t vbucket = 0;
  uint16_t keyLength = 0;
  uint8_t extrasLength = 0;
  uint32_t bodyLength = 0;
  uint32_t opaque = 0;  // as sent, to be echoed in the response
  uint64_t cas = 0;
  // Empty when the lengths do not add up (key + extras > body).
  ByteSpan extras;
  ByteSpan key;
  ByteSpan value;
};

// Spans of a request's tokens: 16 inline (a get with a handful of keys allocates nothing), the
// heap beyond that, kept across requests up to 4096 spans (64 KiB).
using SpanList = io::SmallSpanList<ByteSpan, 16, 4096>;

class RequestParser {
 public:
  explicit RequestParser(const RequestLimits& limits = {}) noexcept : limits_(limits) {}
  // For a parser lent from a pool to connections with different limits; call between requests.
  void setLimits(const RequestLimits& limits) noexcept { limits_ = limits; }
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Frames the request starting at `request[0]`; `len` bytes are available (bytes past the
  // request, such as the next pipelined one, are not touched). Call again with the same start
  // (the buffer may have moved) and a larger len after NeedMore. Once a status other than
  // NeedMore is returned, further calls return it again until reset().
  [[nodiscard]] RequestStatus parse(const char* request, size_t len) noexcept;

  // Forgets the current request; call after consuming size() bytes (or to start over).
  void reset() noexcept;

  // Results below are valid after Complete, BadKey or Invalid unless said otherwise.

  // The request's length in bytes: the line and its data block with both terminators, or
  // the binary header and body.
  [[nodiscard]] size_t size() const noexcept { return size_; }
  // The last verdict (NeedMore before one).
  [[nodiscard]] RequestStatus status() const noexcept { return status_; }
  // Known as soon as the first byte is (Error included).
  [[nodiscard]] Dialect dialect() const noexcept { return dialect_; }
  // Unknown for an unknown verb or opcode (and Binary for every binary packet).
  [[nodiscard]] Command command() const noexcept { return command_; }
  // What the backend's reply will look like: the upstream ReplyFramer's hint.
  [[nodiscard]] ReplyKind replyKind() const noexcept { return replyKind_; }

  // Text and meta: every token of the line, the verb first.
  [[nodiscard]] std::span<const ByteSpan> tokens() const noexcept {
    return {tokens_.data(), dialect_ == Dialect::Binary ? 0 : tokens_.size()};
  }
  [[nodiscard]] std::string_view token(const char* request, size_t i) const noexcept {
    return view(request, tokens_[i]);
  }
  // The keys: every key of a get, the one key of other commands, none for keyless ones.
  // A meta key with the b flag is as sent (base64): see keyIsBase64() and decodeBase64().
  [[nodiscard]] std::span<const ByteSpan> keys() const noexcept {
    return {tokens_.data() + firstKey_, keyCount_};
  }
  [[nodiscard]] std::string_view key(const char* request, size_t i) const noexcept {
    return view(request, keys()[i]);
  }
  // Text: the tokens before the first key, spaces between them included ("get", "gat 100"),
  // so a get can be rebuilt with a subset of its keys. The verb alone for keyless commands.
  [[nodiscard]] ByteSpan prefix() const noexcept { return prefix_; }
  // Storage commands and ms: the data block, without its CRLF. Binary: the value.
  [[nodiscard]] ByteSpan data() const noexcept { return data_; }
  // A quiet request: text `noreply`, meta `q` flag, or a quiet binary opcode.
  [[nodiscard]] bool noreply() const noexcept { return noreply_; }
  // Text and meta: the `noreply` token or the `q` flag (empty when absent, and for binary).
  [[nodiscard]] ByteSpan noreplySpan() const noexcept { return noreplySpan_; }

  // Meta: the flags given, one bit per letter (see metaFlagBit()); 0 for other dialects.
  [[nodiscard]] uint64_t metaFlags() const noexcept { return metaFlags_; }
  [[nodiscard]] bool hasMetaFlag(char flag) const noexcept {
    return (metaFlags_ & metaFlagBit(flag)) != 0;
  }
  // Meta: the O flag's token, `O` included (empty when absent).
  [[nodiscard]] ByteSpan opaqueSpan() const noexcept { return opaqueSpan_; }
  // Meta: the key is base64 (flag b); the proxy hashes the decoded bytes.
  [[nodiscard]] bool keyIsBase64() const noexcept { return hasMetaFlag('b'); }

  // Binary: the header and layout. Also readable after an Error of kind TooLarge.
  [[nodiscard]] const BinaryRequest& binary() const noexcept { return binary_; }
  // Binary: the opcode's table entry (nullptr when unknown).
  [[nodiscard]] const BinaryOpcodeInfo* binaryInfo() const noexcept { return binaryInfo_; }

  // After anything but Complete and NeedMore: what went wrong, and a message worded like
  // memcached's (for `CLIENT_ERROR <message>`). Never contains CR or LF.
  [[nodiscard]] RequestError error() const noexcept { return error_; }
  [[nodiscard]] std::string_view errorMessage() const noexcept { return errorMessage_; }
  // The binary status that answers error(): 0x0081 for an unknown opcode, 0x0004 for
  // invalid arguments, 0x0003 for a body too large.
  [[nodiscard]] uint16_t binaryErrorStatus() const noexcept;

  static constexpr uint64_t metaFlagBit(char flag) noexcept {
    if (flag >= 'A' && flag <= 'Z') return uint64_t{1} << (flag - 'A');
    if (flag >= 'a' && flag <= 'z') return uint64_t{1} << (26 + flag - 'a');
    return 0;
  }

 private:
  enum class State : uint8_t { Start, Line, Data, Binary, Done };

  static std::string_view view(const char* request, ByteSpan s) noexcept {
    return {request + s.offset, s.length};
  }

  RequestStatus parseLine(const char* request, size_t len) noexcept;
  RequestStatus parseData(const char* request, size_t len) noexcept;
  RequestStatus parseBinary(const char* request, size_t len) noexcept;
  // Splits the line [0, end) on spaces into tokens_; false when out of memory.
  [[nodiscard]] bool tokenize(const char* request, size_t end) noexcept;
  // Checks a framed text/meta request; records a skippable error in pending*.
  void validateText(const char* request, const TextCommandInfo& info) noexcept;
  void validateMeta(const char* request, const TextCommandInfo& info) noexcept;
  void reject(RequestError error, std::string_view message) noexcept;
  RequestStatus finish(size_t size) noexcept;
  RequestStatus fail(RequestError error, std::string_view message) noexcept;

  RequestLimits limits_;
  State state_ = State::Start;
  RequestStatus status_ = RequestStatus::NeedMore;
  Dialect dialect_ = Dialect::Text;
  Command command_ = Command::Unknown;
  ReplyKind replyKind_ = ReplyKind::TextLine;
  bool noreply_ = false;
  size_t scanned_ = 0;    // line: bytes already searched for '\n' (never searched twice)
  size_t lineLimit_ = 0;  // line: the longest line accepted so far (grows for a get)
  size_t size_ = 0;
  size_t firstKey_ = 0;
  size_t keyCount_ = 0;
  ByteSpan prefix_;
  ByteSpan data_;
  ByteSpan noreplySpan_;
  ByteSpan opaqueSpan_;
  uint64_t metaFlags_ = 0;
  SpanList tokens_;
  BinaryRequest binary_;
  const BinaryOpcodeInfo* binaryInfo_ = nullptr;
  RequestError error_ = RequestError::None;
  std::string_view errorMessage_;
};

// --- Building requests and answers ---------------------------------------------------------

// Appends `<prefix> <key> <key>...\r\n`: a get (or gets, gat <exptime>, gats <exptime>) for
// some of a request's keys, `prefix` being RequestParser::prefix(). One allocation at most.
void appendGet(std::string& out, std::string_view prefix, std::span<const std::string_view> keys);
// The same with spans into `request`, as RequestParser gives them.
void appendGet(std::string& out, const char* request, ByteSpan prefix,
               std::span<const ByteSpan> keys);

// Appends one binary packet. Responses carry `status` where requests carry a vbucket.
void appendBinaryResponse(std::string& out, uint8_t opcode, uint16_t status, uint32_t opaque,
                          uint64_t cas, std::string_view extras, std::string_view key,
                          std::string_view value);
void appendBinaryRequest(std::string& out, uint8_t opcode, uint32_t opaque, uint64_t cas,
                         std::string_view extras, std::string_view key, std::string_view value,
                         uint16_t vbucket = 0);

// Appends the answer to a request the parser refused (BadKey, Invalid or Error): `ERROR` for
// an unknown text/meta command, `CLIENT_ERROR <message>` for other text and meta errors, a
// binary error response with the request's opcode and opaque for binary ones. Returns false,
// appending nothing, when nothing went wrong, when there is nothing sensible to say (a bad
// magic byte), or when memcached would say nothing: a skippable error in a text request that
// carries noreply (meta and binary errors are sent even for quiet requests).
bool appendErrorReply(std::string& out, const RequestParser& parser);

// --- Base64 keys (meta flag b) --------------------------------------------------------------

[[nodiscard]] constexpr size_t base64DecodedCapacity(size_t encodedLength) noexcept {
  return encodedLength / 4 * 3;
}
// Decodes standard base64 (RFC 4648 alphabet, '=' padding, length a multiple of 4), the form
// memcached's meta commands take binary keys in. `out` must hold
// base64DecodedCapacity(in.size()) bytes. False for empty or malformed input.
[[nodiscard]] bool decodeBase64(std::string_view in, char* out, size_t* outLength) noexcept;

}  // namespace backends::memcache
