#include "backends/memcache/request_parser.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <new>

#include "backends/memcache/byte_order.h"

namespace backends::memcache {

namespace {

// memcached's own wording, so that clients see the same errors through the proxy.
constexpr std::string_view kBadFormat = "bad command line format";
constexpr std::string_view kBadExptime = "invalid exptime argument";
constexpr std::string_view kBadDelta = "invalid numeric delta argument";
constexpr std::string_view kDeleteUsage = "bad command line format.  Usage: delete <key> [noreply]";
constexpr std::string_view kWrongTokenCount = "wrong number of tokens";

// Largest binary body: a value of maxValueLength plus the longest key and extras.
constexpr size_t kMaxBinaryOverhead = kMaxKeyLength + 255;

// Printable, non-space bytes (UTF-8 included): protocol.txt's "no control characters or
// whitespace" for text keys.
bool isKeyByte(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u != 0x7f;
}

bool isTextKey(const char* p, size_t n) noexcept {
  if (n == 0 || n > kMaxKeyLength) return false;
  for (size_t i = 0; i < n; ++i) {
    if (!isKeyByte(p[i])) return false;
  }
  return true;
}

// Plain decimal digits whose value is at most `max`. Stricter than memcached's strtoul-based
// checks (no sign, no spaces), which only ever refuses what no client sends.
bool parseDigits(const char* p, size_t n, uint64_t max, uint64_t* out) noexcept {
  if (n == 0) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned d = static_cast<unsigned char>(p[i]) - '0';
    if (d > 9) return false;
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool isU32(std::string_view s) noexcept {
  uint64_t v = 0;
  return parseDigits(s.data(), s.size(), UINT32_MAX, &v);
}
bool isU64(std::string_view s) noexcept {
  uint64_t v = 0;
  return parseDigits(s.data(), s.size(), UINT64_MAX, &v);
}
// memcached reads exptimes as int32 (negative: already expired).
bool isI32(std::string_view s) noexcept {
  uint64_t v = 0;
  if (!s.empty() && s[0] == '-') return parseDigits(s.data() + 1, s.size() - 1, uint64_t{1} << 31, &v);
  return parseDigits(s.data(), s.size(), INT32_MAX, &v);
}

// Does the line start (after spaces) with a get family verb and a space, within `n` bytes?
// Decides which line limit applies before the whole line has arrived.
bool isRetrievalLine(const char* p, size_t n) noexcept {
  size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  const std::string_view rest(p + i, n - i);
  return rest.starts_with("get ") || rest.starts_with("gets ") || rest.starts_with("gat ") ||
         rest.starts_with("gats ");
}

constexpr std::array<int8_t, 256> kBase64Values = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < kAlphabet.size(); ++i) {
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  return t;
}();

bool isBase64Key(std::string_view key) noexcept {
  char decoded[base64DecodedCapacity(kMaxKeyLength)];
  size_t n = 0;
  return key.size() <= kMaxKeyLength && decodeBase64(key, decoded, &n);
}

void appendPacket(std::string& out, uint8_t magic, uint8_t opcode, uint16_t vbucketOrStatus,
                  uint32_t opaque, uint64_t cas, std::string_view extras, std::string_view key,
                  std::string_view value) {
  const size_t body = extras.size() + key.size() + value.size();
  char h[kBinaryHeaderLength];
  h[0] = static_cast<char>(magic);
  h[1] = static_cast<char>(opcode);
  h[2] = static_cast<char>(key.size() >> 8);
  h[3] = static_cast<char>(key.size());
  h[4] = static_cast<char>(extras.size());
  h[5] = 0;  // data type: raw bytes
  h[6] = static_cast<char>(vbucketOrStatus >> 8);
  h[7] = static_cast<char>(vbucketOrStatus);
  for (int i = 0; i < 4; ++i) h[8 + i] = static_cast<char>(body >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) h[12 + i] = static_cast<char>(opaque >> (24 - 8 * i));
  for (int i = 0; i < 8; ++i) h[16 + i] = static_cast<char>(cas >> (56 - 8 * i));
  out.reserve(out.size() + kBinaryHeaderLength + body);
  out.append(h, kBinaryHeaderLength);
  out.append(extras);
  out.append(key);
  out.append(value);
}

}  // namespace

// --- RequestParser ---------------------------------------------------------------------------

void RequestParser::reset() noexcept {
  state_ = State::Start;
  status_ = RequestStatus::NeedMore;
  dialect_ = Dialect::Text;
  command_ = Command::Unknown;
  replyKind_ = ReplyKind::TextLine;
  noreply_ = false;
  scanned_ = 0;
  lineLimit_ = 0;
  size_ = 0;
  firstKey_ = 0;
  keyCount_ = 0;
  prefix_ = {};
  data_ = {};
  noreplySpan_ = {};
  opaqueSpan_ = {};
  metaFlags_ = 0;
  tokens_.clear();
  binary_ = {};
  binaryInfo_ = nullptr;
  error_ = RequestError::None;
  errorMessage_ = {};
}

void RequestParser::reject(RequestError error, std::string_view message) noexcept {
  // Checks run from the most to the least telling; the first failure is the one reported.
  if (error_ != RequestError::None) return;
  error_ = error;
  errorMessage_ = message;
}

RequestStatus RequestParser::finish(size_t size) noexcept {
  size_ = size;
  state_ = State::Done;
  status_ = error_ == RequestError::None     ? RequestStatus::Complete
            : error_ == RequestError::BadKey ? RequestStatus::BadKey
                                             : RequestStatus::Invalid;
  return status_;
}

RequestStatus RequestParser::fail(RequestError error, std::string_view message) noexcept {
  // Overrides a pending skippable error: the stream is lost whatever else was wrong.
  error_ = error;
  errorMessage_ = message;
  state_ = State::Done;
  status_ = RequestStatus::Error;
  return status_;
}

uint16_t RequestParser::binaryErrorStatus() const noexcept {
  switch (error_) {
    case RequestError::None:
      return kBinaryStatusOk;
    case RequestError::UnknownCommand:
      return kBinaryStatusUnknownCommand;
    case RequestError::TooLarge:
      return kBinaryStatusTooLarge;
    case RequestError::OutOfMemory:
      return kBinaryStatusOutOfMemory;
    default:
      return kBinaryStatusInvalidArguments;
  }
}

RequestStatus RequestParser::parse(const char* request, size_t len) noexcept {
  switch (state_) {
    case State::Done:
      return status_;
    case State::Start: {
      if (len == 0) return RequestStatus::NeedMore;
      const auto first = static_cast<unsigned char>(request[0]);
      if (first >= kBinaryRequestMagic) {
        dialect_ = Dialect::Binary;
        command_ = Command::Binary;
        replyKind_ = ReplyKind::Binary;
        // memcached closes on a bad binary magic; no text command starts with such a byte
        // either, and waiting for a newline that a binary client never sends helps no one.
        if (first != kBinaryRequestMagic) return fail(RequestError::BadMagic, "bad magic byte");
        state_ = State::Binary;
        return parseBinary(request, len);
      }
      state_ = State::Line;
      lineLimit_ = limits_.maxLineLength;
      return parseLine(request, len);
    }
    case State::Line:
      return parseLine(request, len);
    case State::Data:
      return parseData(request, len);
    case State::Binary:
      return parseBinary(request, len);
  }
  return status_;
}

RequestStatus RequestParser::parseLine(const char* request, size_t len) noexcept {
  size_t newline = 0;
  for (;;) {
    // The '\n' may come after at most lineLimit_ bytes. Only bytes not yet searched are.
    const size_t window = std::min(len, lineLimit_ + 1);
    const void* hit =
        scanned_ < window ? std::memchr(request + scanned_, '\n', window - scanned_) : nullptr;
    if (hit != nullptr) {
      newline = static_cast<size_t>(static_cast<const char*>(hit) - request);
      break;
    }
    if (len <= lineLimit_) {
      scanned_ = len;
      return RequestStatus::NeedMore;
    }
    // More than lineLimit_ bytes and no newline. Only a get may be longer, and whether it is
    // one is read from its first maxLineLength bytes, so the outcome never depends on cuts.
    if (lineLimit_ == limits_.maxLineLength &&
        limits_.maxRetrievalLineLength > limits_.maxLineLength &&
        isRetrievalLine(request, limits_.maxLineLength)) {
      scanned_ = window;
      lineLimit_ = limits_.maxRetrievalLineLength;
      continue;
    }
    return fail(RequestError::LineTooLong, "line too long");
  }

  size_t end = newline;
  if (end > 0 && request[end - 1] == '\r') --end;
  if (!tokenize(request, end)) return fail(RequestError::OutOfMemory, "out of memory");
  const size_t lineSize = newline + 1;

  if (tokens_.size() == 0) {
    reject(RequestError::UnknownCommand, "empty command");
    return finish(lineSize);
  }
  const std::string_view verb = token(request, 0);
  const TextCommandInfo* info = findTextCommand(verb);
  if (info == nullptr) {
    if (verb.size() == 2 && verb[0] == 'm') dialect_ = Dialect::Meta;
    prefix_ = tokens_[0];
    reject(RequestError::UnknownCommand, "unknown command");
    return finish(lineSize);
  }
  command_ = info->command;
  dialect_ = info->dialect;
  replyKind_ = info->reply;

  // A data block is framed before anything else is judged: whatever is wrong with the line,
  // the block must be skipped with it. Without a readable length it cannot be.
  if (info->bytesToken != 0) {
    if (tokens_.size() <= info->bytesToken) {
      return fail(RequestError::BadLength, kBadFormat);
    }
    const std::string_view bytes = token(request, info->bytesToken);
    uint64_t length = 0;
    if (!parseDigits(bytes.data(), bytes.size(), UINT64_MAX, &length)) {
      return fail(RequestError::BadLength, kBadFormat);
    }
    if (length > limits_.maxValueLength) {
      return fail(RequestError::BadLength, "object too large for cache");
    }
    data_ = {lineSize, static_cast<size_t>(length)};
  }

  if (info->dialect == Dialect::Meta) {
    validateMeta(request, *info);
  } else {
    validateText(request, *info);
  }

  if (info->bytesToken != 0) {
    state_ = State::Data;
    return parseData(request, len);
  }
  return finish(lineSize);
}

bool RequestParser::tokenize(const char* request, size_t end) noexcept {
  // memcached splits on spaces only (a tab is part of a token, and makes a key invalid).
  // Only the get family can have many tokens: the verb, a gat's exptime and maxKeys keys at
  // most; past that it is refused anyway, so the rest of the line is not split. Every other
  // line is bounded by maxLineLength (at most kOtherTokens tokens), so the cap never drops a
  // token of theirs (a noreply, a meta flag), however small maxKeys is set.
  constexpr size_t kOtherTokens = 2048 / 2 + 2;
  const size_t keys = std::max(limits_.maxKeys, kOtherTokens);
  const size_t maxTokens = keys > SIZE_MAX - 3 ? SIZE_MAX : keys + 3;
  size_t i = 0;
  while (i < end) {
    if (request[i] == ' ') {
      ++i;
      continue;
    }
    const size_t start = i;
    const void* space = std::memchr(request + i, ' ', end - i);
    i = space != nullptr ? static_cast<size_t>(static_cast<const char*>(space) - request) : end;
    if (tokens_.size() == maxTokens) break;
    if (!tokens_.push({start, i - start})) return false;
  }
  return true;
}

void RequestParser::validateText(const char* request, const TextCommandInfo& info) noexcept {
  const size_t n = tokens_.size();
  prefix_ = tokens_[0];
  if (n < info.minTokens || (info.maxTokens != 0 && n > info.maxTokens)) {
    // memcached answers a wrong token count with a bare ERROR.
    reject(RequestError::UnknownCommand, kWrongTokenCount);
    return;
  }
  if (info.noreply && n > info.minTokens && token(request, n - 1) == "noreply") {
    noreply_ = true;
    noreplySpan_ = tokens_[n - 1];
  }
  if (info.firstKey != 0) {
    firstKey_ = info.firstKey;
    keyCount_ = info.multiKey ? n - info.firstKey : 1;
    prefix_ = {tokens_[0].offset, tokens_[info.firstKey - 1].end() - tokens_[0].offset};
    if (info.multiKey && keyCount_ > limits_.maxKeys) {
      reject(RequestError::TooManyKeys, "too many keys");
      keyCount_ = 0;
      return;
    }
    for (size_t k = 0; k < keyCount_; ++k) {
      const ByteSpan key = tokens_[firstKey_ + k];
      if (!isTextKey(request + key.offset, key.length)) {
        reject(RequestError::BadKey, kBadFormat);
        break;
      }
    }
  }

  switch (info.command) {
    case Command::Gat:
    case Command::Gats:
      if (!isI32(token(request, 1))) reject(RequestError::BadFormat, kBadExptime);
      break;
    case Command::Set:
    case Command::Add:
    case Command::Replace:
    case Command::Append:
    case Command::Prepend:
    case Command::Cas:
      if (!isU32(token(request, 2)) || !isI32(token(request, 3)) ||
          (info.command == Command::Cas && !isU64(token(request, 5)))) {
        reject(RequestError::BadFormat, kBadFormat);
      }
      break;
    case Command::Delete: {
      // memcached still takes the legacy `delete <key> 0 [noreply]`.
      const bool zero = n >= 3 && token(request, 2) == "0";
      const bool ok = n == 2 || (n == 3 && (zero || noreply_)) || (n == 4 && zero && noreply_);
      if (!ok) reject(RequestError::BadFormat, kDeleteUsage);
      break;
    }
    case Command::Incr:
    case Command::Decr:
      if (!isU64(token(request, 2))) reject(RequestError::BadFormat, kBadDelta);
      break;
    case Command::Touch:
      if (!isI32(token(request, 2))) reject(RequestError::BadFormat, kBadExptime);
      break;
    case Command::FlushAll:
      if (n - (noreply_ ? 1 : 0) >= 2 && !isI32(token(request, 1))) {
        reject(RequestError::BadFormat, kBadExptime);
      }
      break;
    default:
      break;
  }
}

void RequestParser::validateMeta(const char* request, const TextCommandInfo& info) noexcept {
  const size_t n = tokens_.size();
  prefix_ = tokens_[0];
  if (n < info.minTokens) {
    reject(RequestError::UnknownCommand, kWrongTokenCount);
    return;
  }
  if (info.firstKey == 0) return;  // mn: memcached ignores whatever follows
  firstKey_ = 1;
  keyCount_ = 1;
  const ByteSpan key = tokens_[1];
  if (key.length > kMaxKeyLength) reject(RequestError::BadKey, kBadFormat);

  // Flags are one letter each, optionally followed by a token (T30, O123); memcached refuses
  // repeats and anything not starting with a letter.
  for (size_t i = info.bytesToken != 0 ? 3 : 2; i < n; ++i) {
    const ByteSpan flag = tokens_[i];
    const char c = request[flag.offset];
    const uint64_t bit = metaFlagBit(c);
    if (bit == 0) {
      reject(RequestError::BadFormat, "invalid flag");
      continue;
    }
    if ((metaFlags_ & bit) != 0) {
      reject(RequestError::BadFormat, "duplicate flag");
      continue;
    }
    metaFlags_ |= bit;
    if (c == 'q') {
      noreply_ = true;
      noreplySpan_ = flag;
    } else if (c == 'O') {
      opaqueSpan_ = flag;
    }
  }

  const std::string_view keyText = view(request, key);
  if (hasMetaFlag('b')) {
    if (!isBase64Key(keyText)) reject(RequestError::BadKey, "error decoding key");
  } else if (!isTextKey(keyText.data(), keyText.size())) {
    reject(RequestError::BadKey, kBadFormat);
  }
}

RequestStatus RequestParser::parseData(const char* request, size_t len) noexcept {
  // The block is never looked at, only its terminator: waiting for a large value costs O(1)
  // per call.
  const size_t end = data_.end();
  if (len < end + 2) return RequestStatus::NeedMore;
  if (request[end] != '\r' || request[end + 1] != '\n') {
    return fail(RequestError::BadDataTerminator, "bad data chunk");
  }
  return finish(end + 2);
}

RequestStatus RequestParser::parseBinary(const char* request, size_t len) noexcept {
  if (len < kBinaryHeaderLength) return RequestStatus::NeedMore;
  BinaryRequest& b = binary_;
  if (scanned_ == 0) {  // the header is decoded once
    scanned_ = kBinaryHeaderLength;
    b.opcode = static_cast<uint8_t>(request[1]);
    b.keyLength = readBigEndian16(request + 2);
    b.extrasLength = static_cast<uint8_t>(request[4]);
    b.dataType = static_cast<uint8_t>(request[5]);
    b.vbucket = readBigEndian16(request + 6);
    b.bodyLength = readBigEndian32(request + 8);
    b.opaque = readBigEndian32(request + 12);
    b.cas = readBigEndian64(request + 16);
    binaryInfo_ = binaryOpcodeInfo(b.opcode);
    if (binaryInfo_ != nullptr) replyKind_ = binaryInfo_->reply;
    // Refused on the header, before any of the body is buffered; the header is readable, so
    // the client can be told why before it is closed.
    if (b.bodyLength > limits_.maxValueLength + kMaxBinaryOverhead) {
      return fail(RequestError::TooLarge, "body too large");
    }
  }
  const size_t total = kBinaryHeaderLength + b.bodyLength;
  if (len < total) return RequestStatus::NeedMore;

  if (size_t{b.keyLength} + b.extrasLength > b.bodyLength) {
    reject(RequestError::BadFormat, "key and extras longer than the body");
    return finish(total);
  }
  b.extras = {kBinaryHeaderLength, b.extrasLength};
  b.key = {b.extras.end(), b.keyLength};
  b.value = {b.key.end(), b.bodyLength - b.keyLength - b.extrasLength};
  data_ = b.value;
  if (b.keyLength > 0) {
    if (!tokens_.push(b.key)) return fail(RequestError::OutOfMemory, "out of memory");
    keyCount_ = 1;
  }

  const BinaryOpcodeInfo* info = binaryInfo_;
  if (info == nullptr) {
    reject(RequestError::UnknownCommand, "unknown command");
    return finish(total);
  }
  noreply_ = info->quiet;
  // Binary keys may hold any byte; only their length is memcached's business.
  if (b.keyLength > kMaxKeyLength) reject(RequestError::BadKey, "key too long");
  const auto allowed = [](Presence p, bool present) {
    return p == Presence::Optional || present == (p == Presence::Required);
  };
  if ((b.extrasLength != info->extras && b.extrasLength != info->extrasAlt) ||
      !allowed(info->key, b.keyLength > 0) || !allowed(info->value, b.value.length > 0)) {
    reject(RequestError::BadFormat, "invalid arguments");
  }
  return finish(total);
}

// --- Building requests and answers ---------------------------------------------------------

void appendGet(std::string& out, std::string_view prefix, std::span<const std::string_view> keys) {
  size_t total = prefix.size() + 2;
  for (std::string_view k : keys) total += 1 + k.size();
  out.reserve(out.size() + total);
  out.append(prefix);
  for (std::string_view k : keys) {
    out.push_back(' ');
    out.append(k);
  }
  out.append("\r\n");
}

void appendGet(std::string& out, const char* request, ByteSpan prefix,
               std::span<const ByteSpan> keys) {
  size_t total = prefix.length + 2;
  for (const ByteSpan& k : keys) total += 1 + k.length;
  out.reserve(out.size() + total);
  out.append(request + prefix.offset, prefix.length);
  for (const ByteSpan& k : keys) {
    out.push_back(' ');
    out.append(request + k.offset, k.length);
  }
  out.append("\r\n");
}

void appendBinaryResponse(std::string& out, uint8_t opcode, uint16_t status, uint32_t opaque,
                          uint64_t cas, std::string_view extras, std::string_view key,
                          std::string_view value) {
  appendPacket(out, kBinaryResponseMagic, opcode, status, opaque, cas, extras, key, value);
}

void appendBinaryRequest(std::string& out, uint8_t opcode, uint32_t opaque, uint64_t cas,
                         std::string_view extras, std::string_view key, std::string_view value,
                         uint16_t vbucket) {
  appendPacket(out, kBinaryRequestMagic, opcode, vbucket, opaque, cas, extras, key, value);
}

bool appendErrorReply(std::string& out, const RequestParser& parser) {
  const RequestError error = parser.error();
  if (error == RequestError::None || error == RequestError::BadMagic) return false;
  if (parser.dialect() == Dialect::Binary) {
    const uint16_t status = parser.binaryErrorStatus();
    // memcached's write_bin_error texts.
    const std::string_view text = status == kBinaryStatusUnknownCommand ? "Unknown command"
                                  : status == kBinaryStatusTooLarge     ? "Too large."
                                  : status == kBinaryStatusOutOfMemory  ? "Out of memory"
                                                                        : "Invalid arguments";
    appendBinaryResponse(out, parser.binary().opcode, status, parser.binary().opaque, 0, {}, {},
                         text);
    return true;
  }
  // memcached drops error lines for a text request carrying noreply (its client reads no
  // reply for it: one would be taken for the next command's). Meta errors are always sent,
  // as are errors that close the connection anyway.
  if (parser.dialect() == Dialect::Text && parser.noreply() &&
      parser.status() != RequestStatus::Error) {
    return false;
  }
  if (error == RequestError::UnknownCommand) {
    out.append("ERROR\r\n");
    return true;
  }
  const std::string_view message = parser.errorMessage();
  out.reserve(out.size() + 15 + message.size());
  out.append("CLIENT_ERROR ");
  out.append(message);
  out.append("\r\n");
  return true;
}

bool decodeBase64(std::string_view in, char* out, size_t* outLength) noexcept {
  const size_t n = in.size();
  if (n == 0 || n % 4 != 0) return false;
  size_t pad = 0;
  if (in[n - 1] == '=') pad = in[n - 2] == '=' ? 2 : 1;
  size_t w = 0;
  for (size_t i = 0; i < n; i += 4) {
    const bool last = i + 4 == n;
    const size_t digits = last ? 4 - pad : 4;
    uint32_t v = 0;
    for (size_t j = 0; j < 4; ++j) {
      int d = 0;
      if (j < digits) {
        // '=' maps to -1: padding anywhere but at the very end is refused here.
        d = kBase64Values[static_cast<unsigned char>(in[i + j])];
        if (d < 0) return false;
      }
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out[w++] = static_cast<char>(v >> 16);
    if (digits > 2) out[w++] = static_cast<char>(v >> 8);
    if (digits > 3) out[w++] = static_cast<char>(v);
  }
  *outLength = w;
  return true;
}

}  // namespace backends::memcache
