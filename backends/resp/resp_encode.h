// resp_encode.h: appending encoded RESP values to an output string, for the replies the proxy
// writes itself (PING, errors, merged fan-out results) and for re-encoding inline requests.
// The caller owns the string and reuses it, so these allocate only when it has to grow.
// Where RESP2 has no such type, the value is written the way Redis writes it to a RESP2
// client (a map as a flat array, a boolean as 0/1, a double as a bulk string).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace backends::resp {

// The protocol a client speaks: RESP2 until it sends `HELLO 3`.
enum class Protocol : uint8_t { Resp2 = 2, Resp3 = 3 };

// `+text\r\n`. CR and LF cannot be framed in a simple string; they become spaces, as Redis
// does for its own error and status lines.
void appendSimpleString(std::string& out, std::string_view text);
// `-text\r\n`; `text` starts with the error code: "ERR unknown command".
void appendError(std::string& out, std::string_view text);
// `:value\r\n`.
void appendInteger(std::string& out, int64_t value);
// `$len\r\nbytes\r\n`; any bytes.
void appendBulk(std::string& out, std::string_view bytes);
// RESP2 `$-1\r\n`, RESP3 `_\r\n`.
void appendNull(std::string& out, Protocol protocol);
// RESP2 `*-1\r\n` (a null array, as for a timed-out BLPOP), RESP3 `_\r\n`.
void appendNullArray(std::string& out, Protocol protocol);
// `*count\r\n`; the caller appends `count` values.
void appendArrayHeader(std::string& out, size_t count);
// RESP3 `%pairs\r\n`, RESP2 `*2*pairs\r\n`; the caller appends key, value, key, value...
void appendMapHeader(std::string& out, size_t pairs, Protocol protocol);
// RESP3 `~count\r\n`, RESP2 `*count\r\n`.
void appendSetHeader(std::string& out, size_t count, Protocol protocol);
// RESP3 `,value\r\n`, RESP2 the same text as a bulk string. Shortest text that reads back as
// the same double; `inf`, `-inf` and `nan` as RESP3 spells them.
void appendDouble(std::string& out, double value, Protocol protocol);
// RESP3 `#t\r\n` / `#f\r\n`, RESP2 `:1\r\n` / `:0\r\n`.
void appendBoolean(std::string& out, bool value, Protocol protocol);

}  // namespace backends::resp
