// json_writer.h: a minimal streaming JSON writer (objects, arrays, strings, numbers) for
// ringctl's --json output and the admin endpoints. Commas are inserted automatically.
//
// The output is always valid JSON, whatever bytes the strings hold: names come from config
// files, and YAML lets those carry control characters and bytes that are not UTF-8, while a
// strict JSON reader refuses both (and an exporter that cannot parse the stats sees nothing).
// So strings are escaped as follows:
//   - '"' and '\\' with a backslash; \n, \r and \t as those two-character escapes; every
//     other control character (below 0x20) as \u00XX;
//   - well-formed UTF-8 sequences pass through as they are (so "é" stays two bytes);
//   - every byte that is not part of a well-formed sequence (a stray continuation byte, an
//     overlong form, an encoded surrogate, a sequence cut short, 0xF5..0xFF) becomes \ufffd,
//     the replacement character, one per byte: a reader sees that something was replaced and
//     how many bytes, and two names that differ only in bad bytes of equal count collide.
// Numbers that JSON cannot hold (NaN, infinities) are written as null.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/common/utf8.h"

namespace proxy {

// Appends `s` to `out` as a JSON string literal, quotes included, escaped as above.
inline void appendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < s.size();) {
    size_t plain = i;  // a run of ASCII other than controls, '"' and '\\' goes out in one append
    for (; plain < s.size(); ++plain) {
      const auto b = static_cast<unsigned char>(s[plain]);
      if (b < 0x20 || b >= 0x80 || b == '"' || b == '\\') break;
    }
    out.append(s.substr(i, plain - i));
    i = plain;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t n = utf8SequenceLength(s, i);
      if (n == 0) {
        out += "\\ufffd";
        i += 1;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:  // the other control characters
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
    }
    i += 1;
  }
  out += '"';
}

class JsonWriter {
 public:
  JsonWriter& beginObject() { return open('{'); }
  JsonWriter& endObject() { return close('}'); }
  JsonWriter& beginArray() { return open('['); }
  JsonWriter& endArray() { return close(']'); }

  // Inside an object: the next value's key.
  JsonWriter& key(std::string_view k) {
    comma();
    appendString(k);
    out_ += ':';
    afterKey_ = true;
    return *this;
  }
  JsonWriter& value(std::string_view s) {
    comma();
    appendString(s);
    return *this;
  }
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(bool b) {
    comma();
    out_ += b ? "true" : "false";
    return *this;
  }
  JsonWriter& value(double d) {
    comma();
    if (!std::isfinite(d)) {
      out_ += "null";
      return *this;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", d);  // round-trips exactly
    out_ += buf;
    return *this;
  }
  JsonWriter& value(int64_t i) {
    comma();
    out_ += std::to_string(i);
    return *this;
  }
  JsonWriter& value(uint64_t u) {
    comma();
    out_ += std::to_string(u);
    return *this;
  }
  JsonWriter& value(int i) { return value(int64_t(i)); }
  JsonWriter& value(unsigned u) { return value(uint64_t(u)); }
  JsonWriter& null() {
    comma();
    out_ += "null";
    return *this;
  }

  const std::string& str() const { return out_; }

 private:
  JsonWriter& open(char c) {
    comma();
    out_ += c;
    first_.push_back(true);
    return *this;
  }
  JsonWriter& close(char c) {
    out_ += c;
    first_.pop_back();
    return *this;
  }
  void comma() {
    if (afterKey_) {
      afterKey_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  void appendString(std::string_view s) { appendJsonString(out_, s); }

  std::string out_;
  std::vector<bool> first_;
  bool afterKey_ = false;
};

}  // namespace proxy
