#include "backends/resp/resp_encode.h"

#include <charconv>
#include <cmath>

namespace backends::resp {

namespace {

void appendLine(std::string& out, char type, std::string_view text) {
  out.push_back(type);
  const size_t at = out.size();
  out.append(text);
  for (size_t i = at; i < out.size(); ++i) {
    if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  }
  out.append("\r\n", 2);
}

// `<type><number>\r\n`, formatted on the stack so that one append does the work.
template <typename Int>
void appendNumberLine(std::string& out, char type, Int value) {
  char buf[24];
  buf[0] = type;
  char* end = std::to_chars(buf + 1, buf + sizeof(buf) - 2, value).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(buf, static_cast<size_t>(end - buf));
}

}  // namespace

void appendSimpleString(std::string& out, std::string_view text) { appendLine(out, '+', text); }

void appendError(std::string& out, std::string_view text) { appendLine(out, '-', text); }

void appendInteger(std::string& out, int64_t value) { appendNumberLine(out, ':', value); }

void appendBulk(std::string& out, std::string_view bytes) {
  appendNumberLine(out, '$', bytes.size());
  out.append(bytes);
  out.append("\r\n", 2);
}

void appendNull(std::string& out, Protocol protocol) {
  if (protocol == Protocol::Resp3) {
    out.append("_\r\n", 3);
  } else {
    out.append("$-1\r\n", 5);
  }
}

void appendNullArray(std::string& out, Protocol protocol) {
  if (protocol == Protocol::Resp3) {
    out.append("_\r\n", 3);
  } else {
    out.append("*-1\r\n", 5);
  }
}

void appendArrayHeader(std::string& out, size_t count) { appendNumberLine(out, '*', count); }

void appendMapHeader(std::string& out, size_t pairs, Protocol protocol) {
  if (protocol == Protocol::Resp3) {
    appendNumberLine(out, '%', pairs);
  } else {
    appendNumberLine(out, '*', pairs * 2);
  }
}

void appendSetHeader(std::string& out, size_t count, Protocol protocol) {
  appendNumberLine(out, protocol == Protocol::Resp3 ? '~' : '*', count);
}

void appendDouble(std::string& out, double value, Protocol protocol) {
  char buf[32];
  std::string_view text;
  if (std::isnan(value)) {
    text = "nan";  // to_chars may write "-nan", which RESP3 does not know
  } else if (std::isinf(value)) {
    text = value > 0 ? "inf" : "-inf";
  } else {
    // Shortest round-trip form: at most 24 characters for a double.
    char* end = std::to_chars(buf, buf + sizeof(buf), value).ptr;
    text = std::string_view(buf, static_cast<size_t>(end - buf));
  }
  if (protocol == Protocol::Resp3) {
    out.push_back(',');
    out.append(text);
    out.append("\r\n", 2);
  } else {
    appendBulk(out, text);
  }
}

void appendBoolean(std::string& out, bool value, Protocol protocol) {
  if (protocol == Protocol::Resp3) {
    out.append(value ? "#t\r\n" : "#f\r\n", 4);
  } else {
    out.append(value ? ":1\r\n" : ":0\r\n", 4);
  }
}

}  // namespace backends::resp
