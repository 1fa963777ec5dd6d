#include "proxy/control/http_request.h"

#include <strings.h>

namespace proxy {
namespace {

// RFC 9110's tchar: the characters of a method or a header field name.
bool isTokenChar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
  }
  return false;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!isTokenChar(c)) return false;
  return true;
}

// A request target: visible ASCII, and bytes above 0x7F (raw UTF-8 that a lenient client
// did not percent-encode); never a space or a control character.
bool isTarget(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7F) return false;
  return true;
}

// "HTTP/" DIGIT "." DIGIT
bool isVersion(std::string_view s) {
  return s.size() == 8 && s.substr(0, 5) == "HTTP/" && s[5] >= '0' && s[5] <= '9' && s[6] == '.' && s[7] >= '0' &&
         s[7] <= '9';
}

bool parseRequestLine(std::string_view line, HttpRequest& out, std::string& why) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    why = "malformed request line (expected METHOD TARGET HTTP/1.1)";
    return false;
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!isToken(method)) {
    why = "malformed request line: bad method";
    return false;
  }
  if (!isTarget(target)) {
    why = "malformed request line: bad target";
    return false;
  }
  if (!isVersion(version)) {
    why = "malformed request line: bad HTTP version";
    return false;
  }
  out.method = method;
  out.target = target;
  out.version = version;
  return true;
}

// "name: value": a token, a colon right after it (RFC 9112 forbids a space before it), then
// spaces, tabs and any byte but a control character. A line starting with a space (the
// obsolete line folding) has no name, so it is refused.
bool isHeaderLine(std::string_view line) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || !isToken(line.substr(0, colon))) return false;
  for (unsigned char c : line.substr(colon + 1))
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  return true;
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percentDecoded(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexDigit(s[i + 1]) >= 0 && hexDigit(s[i + 2]) >= 0) {
      out += static_cast<char>(hexDigit(s[i + 1]) * 16 + hexDigit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];  // a '%' not followed by two hex digits stays as it is
    }
  }
  return out;
}

}  // namespace

std::string_view HttpRequest::path() const {
  const std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string HttpRequest::queryParam(std::string_view name) const {
  const size_t q = target.find('?');
  if (q == std::string::npos) return "";
  const std::string_view query = std::string_view(target).substr(q + 1);
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string_view::npos) amp = query.size();
    const std::string_view pair = query.substr(pos, amp - pos);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && percentDecoded(pair.substr(0, eq)) == name)
      return percentDecoded(pair.substr(eq + 1));
    pos = amp + 1;
  }
  return "";
}

HttpHead parseRequestHead(std::string_view in, size_t maxHead, HttpRequest& out, std::string& why) {
  // Only the first maxHead bytes are looked at, and each line only once its line feed is in,
  // lines in order: so a verdict given on a prefix is the verdict on any longer input.
  const std::string_view window = in.substr(0, maxHead);
  size_t pos = 0;
  size_t lines = 0;
  for (;;) {
    const size_t lf = window.find('\n', pos);
    if (lf == std::string_view::npos) break;
    if (lf == pos || window[lf - 1] != '\r') {
      why = "line ends in a bare LF (HTTP lines end in CRLF)";
      return HttpHead::Malformed;
    }
    const std::string_view line = window.substr(pos, lf - 1 - pos);
    pos = lf + 1;
    if (lines == 0) {
      if (!parseRequestLine(line, out, why)) return HttpHead::Malformed;
    } else if (line.empty()) {
      out.headBytes = pos;
      out.headers = lines - 1;
      return HttpHead::Complete;
    } else if (!isHeaderLine(line)) {
      why = "malformed header line";
      return HttpHead::Malformed;
    } else if (out.authorization.empty() && line.size() > 14 && strncasecmp(line.data(), "authorization:", 14) == 0) {
      std::string_view value = line.substr(14);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      out.authorization.assign(value);
    }
    lines++;
  }
  // Before the request line is complete, its method already shows what is not HTTP (a TLS
  // handshake, binary bytes): refused at once instead of after the read timeout.
  if (lines == 0) {
    const std::string_view partial = window.substr(0, window.find(' '));
    for (unsigned char c : partial) {
      if (!isTokenChar(c) && c != '\r') {
        why = "malformed request line: bad method";
        return HttpHead::Malformed;
      }
    }
  }
  return in.size() > maxHead ? HttpHead::TooLarge : HttpHead::NeedMore;
}

}  // namespace proxy
