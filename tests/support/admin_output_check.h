// admin_output_check.h: strict checkers for what the admin endpoints write, shared by the unit
// tests (proxy/control) and the formatter fuzz target (tests/fuzz). Both formats are checked
// the way a strict consumer reads them:
//   - JSON as RFC 8259 says (no control character or invalid UTF-8 in a string, only the
//     escapes it lists, no lone surrogate escape), which is what Python's json.loads and
//     Prometheus exporters insist on;
//   - Prometheus text exposition 0.0.4: every line a "# ..." comment or
//     `name{label="value",...} value`, label values using only the \\, \" and \n escapes and
//     holding UTF-8.
// Each returns an empty string when the text is valid, else what is wrong and where.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/common/utf8.h"

namespace checks {

class JsonChecker {
 public:
  explicit JsonChecker(std::string_view text) : s_(text) {}

  std::string run() {
    if (!proxy::isValidUtf8(s_)) return "not UTF-8";
    skipSpace();
    if (!value(0)) return error_ + " at byte " + std::to_string(pos_);
    skipSpace();
    if (pos_ != s_.size()) return "trailing bytes at " + std::to_string(pos_);
    return "";
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool fail(const char* why) {
    error_ = why;
    return false;
  }
  bool at(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  void skipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) pos_++;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return fail("bad literal");
    pos_ += word.size();
    return true;
  }
  bool digits() {
    const size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') pos_++;
    return pos_ > start;
  }
  bool number() {
    if (at('-')) pos_++;
    if (at('0')) {
      pos_++;
    } else if (!digits()) {
      return fail("bad number");
    }
    if (at('.')) {
      pos_++;
      if (!digits()) return fail("bad fraction");
    }
    if (at('e') || at('E')) {
      pos_++;
      if (at('+') || at('-')) pos_++;
      if (!digits()) return fail("bad exponent");
    }
    return true;
  }
  int hex4() {
    if (s_.size() - pos_ < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_ + i];
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    pos_ += 4;
    return v;
  }
  bool string() {
    pos_++;  // the opening quote
    while (pos_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return fail("control character in a string");
      if (c != '\\') continue;
      if (pos_ >= s_.size()) return fail("string cut after a backslash");
      const char e = s_[pos_++];
      if (e == 'u') {
        const int u = hex4();
        if (u < 0) return fail("bad \\u escape");
        if (u >= 0xDC00 && u <= 0xDFFF) return fail("lone low surrogate escape");
        if (u >= 0xD800 && u <= 0xDBFF) {
          if (s_.substr(pos_, 2) != "\\u") return fail("lone high surrogate escape");
          pos_ += 2;
          const int low = hex4();
          if (low < 0xDC00 || low > 0xDFFF) return fail("high surrogate without its low half");
        }
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return fail("unknown escape");
      }
    }
    return fail("unterminated string");
  }
  bool value(int depth) {
    if (depth > kMaxDepth) return fail("too deep");
    if (pos_ >= s_.size()) return fail("value expected");
    switch (s_[pos_]) {
      case '{': return container(depth, '}', true);
      case '[': return container(depth, ']', false);
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }
  bool container(int depth, char close, bool object) {
    pos_++;
    skipSpace();
    if (at(close)) {
      pos_++;
      return true;
    }
    for (;;) {
      skipSpace();
      if (object) {
        if (!at('"')) return fail("key expected");
        if (!string()) return false;
        skipSpace();
        if (!at(':')) return fail("':' expected");
        pos_++;
        skipSpace();
      }
      if (!value(depth + 1)) return false;
      skipSpace();
      if (at(',')) {
        pos_++;
        continue;
      }
      if (at(close)) {
        pos_++;
        return true;
      }
      return fail("',' or end of container expected");
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

inline std::string checkJson(std::string_view text) { return JsonChecker(text).run(); }

// One sample of Prometheus text, labels unescaped.
struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  std::string value;
};

inline bool isPromNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

inline bool isPromValue(std::string_view v) {
  if (v == "NaN" || v == "+Inf" || v == "-Inf") return true;
  size_t i = 0;
  if (i < v.size() && (v[i] == '-' || v[i] == '+')) i++;
  size_t digits = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') i++, digits++;
  if (i < v.size() && v[i] == '.') {
    i++;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') i++, digits++;
  }
  if (digits == 0) return false;
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    i++;
    if (i < v.size() && (v[i] == '-' || v[i] == '+')) i++;
    size_t exp = 0;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') i++, exp++;
    if (exp == 0) return false;
  }
  return i == v.size();
}

// Parses one sample line; "" on success.
inline std::string parsePromSample(std::string_view line, PromSample& out) {
  size_t i = 0;
  while (i < line.size() && isPromNameChar(line[i], i == 0)) i++;
  if (i == 0) return "no metric name";
  out.name = std::string(line.substr(0, i));
  out.labels.clear();
  if (i < line.size() && line[i] == '{') {
    i++;
    while (i < line.size() && line[i] != '}') {
      const size_t start = i;
      while (i < line.size() && isPromNameChar(line[i], i == start) && line[i] != ':') i++;
      if (i == start) return "no label name";
      std::string name(line.substr(start, i - start));
      if (line.substr(i, 2) != "=\"") return "'=\"' expected after label " + name;
      i += 2;
      std::string value;
      for (;;) {
        const size_t special = line.find_first_of("\"\\", i);
        if (special == std::string_view::npos) return "unterminated label value";
        value.append(line.substr(i, special - i));
        i = special;
        const char c = line[i++];
        if (c == '"') break;
        if (i >= line.size()) return "label value cut after a backslash";
        const char e = line[i++];
        if (e == '\\') value += '\\';
        else if (e == '"') value += '"';
        else if (e == 'n') value += '\n';
        else return std::string("unknown escape \\") + e + " in a label value";
      }
      if (!proxy::isValidUtf8(value)) return "label value is not UTF-8";
      out.labels.emplace_back(std::move(name), std::move(value));
      if (i < line.size() && line[i] == ',') i++;
      else if (i < line.size() && line[i] != '}') return "',' or '}' expected after label " + out.labels.back().first;
    }
    if (i >= line.size()) return "unterminated label set";
    i++;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') return "' value' expected";
  out.value = std::string(line.substr(i + 1));
  if (!isPromValue(out.value)) return "bad value '" + out.value + "'";
  return "";
}

// Checks a whole scrape; the samples go to `samples` when given.
inline std::string checkPrometheus(std::string_view text, std::vector<PromSample>* samples = nullptr) {
  if (!text.empty() && text.back() != '\n') return "does not end in a line feed";
  size_t pos = 0;
  size_t lineNo = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    lineNo++;
    const std::string where = "line " + std::to_string(lineNo) + ": ";
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (!proxy::isValidUtf8(line)) return where + "comment is not UTF-8";
      continue;
    }
    PromSample sample;
    const std::string error = parsePromSample(line, sample);
    if (!error.empty()) return where + error;
    if (samples != nullptr) samples->push_back(std::move(sample));
  }
  return "";
}

}  // namespace checks
