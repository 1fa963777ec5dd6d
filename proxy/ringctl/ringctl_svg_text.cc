#include "proxy/ringctl/ringctl_svg_text.h"

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace proxy::ringctl::svg {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// Decodes one UTF-8 character at s[i], advancing i; anything malformed (overlong, surrogate,
// out of range, truncated) is one U+FFFD for its first byte, so decoding always progresses.
char32_t decodeOne(std::string_view s, size_t& i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t len;
  char32_t cp, min;
  if (c < 0x80) {
    ++i;
    return c;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    ++i;
    return kReplacement;
  }
  if (i + len > s.size()) {
    ++i;
    return kReplacement;
  }
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) {
      ++i;
      return kReplacement;
    }
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return kReplacement;
  }
  i += len;
  return cp;
}

bool allowedInXml(char32_t cp) {
  // Labels are one line, so tab and newline are refused too, not only what XML forbids.
  return cp >= 0x20 && cp != 0x7F && cp != 0xFFFE && cp != 0xFFFF;
}

void appendEscaped(std::string& out, char32_t cp) {
  switch (cp) {
    case '<':
      out += "&lt;";
      return;
    case '>':
      out += "&gt;";
      return;
    case '&':
      out += "&amp;";
      return;
    case '"':
      out += "&quot;";
      return;
    case '\'':
      out += "&apos;";
      return;
    default:
      break;
  }
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::vector<char32_t> decode(std::string_view s) {
  std::vector<char32_t> cps;
  for (size_t i = 0; i < s.size();) {
    const char32_t cp = decodeOne(s, i);
    cps.push_back(allowedInXml(cp) ? cp : kReplacement);
  }
  return cps;
}

}  // namespace

std::string xmlText(std::string_view s) { return xmlShort(s, SIZE_MAX); }

std::string xmlShort(std::string_view s, size_t maxChars) {
  const std::vector<char32_t> cps = decode(s);
  const bool cut = cps.size() > maxChars;
  const size_t keep = cut ? (maxChars > 0 ? maxChars - 1 : 0) : cps.size();
  std::string out;
  for (size_t i = 0; i < keep; ++i) appendEscaped(out, cps[i]);
  if (cut) appendEscaped(out, 0x2026);  // …
  return out;
}

int pctDecimals(double reference) {
  const double v = reference * 100;
  if (v >= 1 || v <= 0) return 2;
  if (v >= 0.1) return 3;
  if (v >= 0.01) return 4;
  return 5;
}

std::string pct(double fraction, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f%%", decimals, fraction * 100);
  return buf;
}

void appendf(std::string& out, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (static_cast<size_t>(n) < sizeof buf) {
    out.append(buf, static_cast<size_t>(n));
    return;
  }
  std::string big(static_cast<size_t>(n) + 1, '\0');
  va_start(ap, fmt);
  std::vsnprintf(big.data(), big.size(), fmt, ap);
  va_end(ap);
  big.resize(static_cast<size_t>(n));
  out += big;
}

const char* nodeColour(size_t index) {
  // Ordered so neighbours in the legend (and so in the ring's stacking) differ in hue and
  // lightness; no reds or pinks (kMovedColour owns red).
  static constexpr const char* kPalette[kPaletteSize] = {
      "#1f77b4",  // blue
      "#ff9f1c",  // orange
      "#2ca02c",  // green
      "#9467bd",  // purple
      "#17becf",  // cyan
      "#bcbd22",  // olive
      "#7f7f7f",  // grey
      "#aec7e8",  // light blue
      "#8c6d31",  // tan
      "#98df8a",  // light green
      "#c5b0d5",  // lavender
      "#ffd97a",  // light yellow
  };
  return kPalette[index % kPaletteSize];
}

}  // namespace proxy::ringctl::svg
