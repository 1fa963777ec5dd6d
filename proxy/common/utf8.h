// utf8.h: where well-formed UTF-8 ends. Names in a config file are bytes (YAML lets a file
// carry any of them), while JSON and Prometheus text must be UTF-8; the writers of both ask
// this one function which bytes they may pass through and which they must replace.
#pragma once

#include <cstddef>
#include <string_view>

namespace proxy {

// The length (1 to 4) of the well-formed UTF-8 sequence that starts at s[i], or 0 when none
// does there: a stray continuation byte, an overlong form (C0, C1, E0 80..9F, F0 80..8F), a
// UTF-16 surrogate (ED A0..BF), a code point past U+10FFFF (F4 90.., F5..FF), or a sequence cut
// short. The byte ranges are those of the Unicode standard's table of well-formed sequences.
inline size_t utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // below: an overlong form
    if (lead == 0xED) high = 0x9F;  // above: a surrogate
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // below: an overlong form
    if (lead == 0xF4) high = 0x8F;  // above: past U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < length) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return length;
}

// True when every byte of `s` belongs to a well-formed sequence.
inline bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace proxy
