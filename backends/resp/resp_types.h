// resp_types.h: the small vocabulary shared by the RESP framers. A framer never copies bytes:
// it answers with a status and with spans (offset, length) into the caller's buffer, counted
// from the start of the current request or reply, so they stay valid when the caller grows,
// reallocates or compacts that buffer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace backends::resp {

// What one call to a framer's parse() found.
enum class ParseStatus : uint8_t {
  Complete,  // one whole request/reply is framed; its results are readable
  NeedMore,  // valid so far; call again with the same start and more bytes
  Error,     // the stream can no longer be framed: reply with the error, then close
};

// A byte range inside one request or reply, relative to its first byte. Offsets rather than
// pointers so that results survive a reallocation of the caller's buffer.
struct ByteSpan {
  size_t offset = 0;
  size_t length = 0;

  friend bool operator==(const ByteSpan&, const ByteSpan&) = default;
};

}  // namespace backends::resp
