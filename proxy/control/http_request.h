// http_request.h: the admin listener's HTTP request parser, apart from the sockets so that
// unit tests and a fuzz target can feed it bytes directly.
//
// The admin listener reads a request's head (request line and header lines, up to the blank
// line) into one buffer and asks parseRequestHead() about it after every read. The answer
// only ever moves from NeedMore to a final verdict as bytes arrive: a malformed line is
// refused as soon as its line break is in, without waiting for the rest, and a head that
// does not end within `maxHead` bytes is refused as too large. Bodies are not read: no
// endpoint takes one.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace proxy {

struct HttpRequest {
  std::string method;   // a token, e.g. "GET"
  std::string target;   // as sent, e.g. "/ring?pool=alpha"
  std::string version;  // "HTTP/1.1"
  size_t headBytes = 0;  // request line, headers and the blank line
  size_t headers = 0;    // header lines
  std::string authorization;  // the first Authorization header's value, as sent ("" if none)

  // The target up to its '?'.
  [[nodiscard]] std::string_view path() const;
  // The value of the first query parameter `name`, with %XX sequences decoded ("" when
  // absent); '+' stays '+'.
  [[nodiscard]] std::string queryParam(std::string_view name) const;
};

enum class HttpHead {
  NeedMore,   // no blank line yet, nothing wrong so far, under maxHead bytes
  Complete,   // `out` holds the request
  TooLarge,   // the head does not end within maxHead bytes (answer 413)
  Malformed,  // a line break ends a line that is not what HTTP/1.1 allows there (answer 400)
};

// `in`: the bytes received so far, from the start of the connection. On Malformed, `why`
// says what was wrong (for the 400 answer's body).
[[nodiscard]] HttpHead parseRequestHead(std::string_view in, size_t maxHead, HttpRequest& out, std::string& why);

}  // namespace proxy
