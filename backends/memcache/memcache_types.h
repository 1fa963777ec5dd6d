// memcache_types.h: the small vocabulary shared by the memcached framers (text, meta and
// binary dialects, requests and replies). Like the RESP framers, they never copy bytes: they
// answer with a status and with spans (offset, length) into the caller's buffer, counted from
// the first byte of the current request or reply, so results survive the caller growing,
// reallocating or compacting that buffer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace backends::memcache {

// What one call to the reply framer found. (Requests have a richer RequestStatus, because
// some malformed requests can be answered and skipped without losing the stream.)
enum class ParseStatus : uint8_t {
  Complete,  // one whole reply is framed; its results are readable
  NeedMore,  // valid so far; call again with the same start and more bytes
  Error,     // the stream can no longer be framed: close the connection
};

// A byte range inside one request or reply, relative to its first byte.
struct ByteSpan {
  size_t offset = 0;
  size_t length = 0;

  [[nodiscard]] size_t end() const noexcept { return offset + length; }
  friend bool operator==(const ByteSpan&, const ByteSpan&) = default;
};

// memcached's KEY_MAX_LENGTH, for every dialect (binary keys may announce up to 65535).
inline constexpr size_t kMaxKeyLength = 250;

// The binary protocol's fixed header: magic, opcode, key length (2), extras length, data
// type, vbucket (request) or status (response) (2), total body length (4), opaque (4), cas
// (8). Multi-byte fields are big-endian.
inline constexpr size_t kBinaryHeaderLength = 24;
inline constexpr uint8_t kBinaryRequestMagic = 0x80;
inline constexpr uint8_t kBinaryResponseMagic = 0x81;

// Binary response statuses the proxy produces or has to tell apart.
inline constexpr uint16_t kBinaryStatusOk = 0x0000;
inline constexpr uint16_t kBinaryStatusKeyNotFound = 0x0001;
inline constexpr uint16_t kBinaryStatusKeyExists = 0x0002;
inline constexpr uint16_t kBinaryStatusTooLarge = 0x0003;
inline constexpr uint16_t kBinaryStatusInvalidArguments = 0x0004;
inline constexpr uint16_t kBinaryStatusNotStored = 0x0005;
inline constexpr uint16_t kBinaryStatusNonNumeric = 0x0006;
inline constexpr uint16_t kBinaryStatusUnknownCommand = 0x0081;
inline constexpr uint16_t kBinaryStatusOutOfMemory = 0x0082;

// A memcached reply cannot be framed on its own bytes: "END\r\n" ends a get but is not a
// reply to a set. So each request records what its reply looks like, and the upstream
// connection hands that back to the framer (ReplyFramer's `hint`, see reply_parser.h).
enum class ReplyKind : uint8_t {
  TextRetrieval,  // get/gets/gat/gats: `VALUE <key> <flags> <bytes> [<cas>]` + data, ..., END
  TextLine,       // one line: STORED, DELETED, a number, TOUCHED, VERSION x, OK, ...
  TextStats,      // `STAT ...` (or ITEM/PREFIX) lines until END; or one RESET / OK line
  Meta,           // one line; `VA <size> ...` carries a data block too
  Binary,         // one packet
  BinaryStat,     // packets until one with an empty key (or an error)
};
inline constexpr uint32_t kReplyKindCount = 6;

}  // namespace backends::memcache
