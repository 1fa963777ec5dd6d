// json_writer.h: a minimal streaming JSON writer (objects, arrays, strings, numbers) for
// ringctl's --json output and the admin endpoint. Commas are inserted automatically.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace proxy {

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
  void appendString(std::string_view s) {
    out_ += '"';
    for (unsigned char c : s) {
      switch (c) {
        case '"': out_ += "\\\""; break;
        case '\\': out_ += "\\\\"; break;
        case '\n': out_ += "\\n"; break;
        case '\r': out_ += "\\r"; break;
        case '\t': out_ += "\\t"; break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out_ += buf;
          } else {
            out_ += static_cast<char>(c);
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;
  bool afterKey_ = false;
};

}  // namespace proxy
