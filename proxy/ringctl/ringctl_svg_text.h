// ringctl_svg_text.h: what the SVG pictures need to put text and numbers into XML safely.
// Node and pool names come from the config and may hold <, &, quotes, control bytes or
// broken UTF-8; the picture must still parse, so every name passes through xmlText.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace proxy::ringctl::svg {

// `s` as XML character data or attribute text: invalid UTF-8 and characters XML 1.0 forbids
// (control characters, U+FFFE/U+FFFF) become U+FFFD, then <>&"' are escaped.
std::string xmlText(std::string_view s);

// xmlText of at most maxChars characters (not bytes: never splits a UTF-8 sequence), ending in
// an ellipsis when cut, so a long name cannot run over the bars beside it.
std::string xmlShort(std::string_view s, size_t maxChars);

// A fraction as a percentage ("12.85%"). Two decimals, or more below 1% so that a share in a
// big pool keeps three significant digits ("0.104%"): pctDecimals(reference) says how many,
// so numbers shown side by side (a share and its ideal) share one precision.
int pctDecimals(double reference);
std::string pct(double fraction, int decimals);
inline std::string pct(double fraction) { return pct(fraction, pctDecimals(fraction)); }

// Appends printf-style text (numbers in the C locale, which ringctl never changes).
void appendf(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Node colours: a fixed palette with no red in it, so the red of moved keys cannot be taken
// for a node. It repeats after kPaletteSize nodes; the legend's order then tells them apart.
inline constexpr size_t kPaletteSize = 12;
const char* nodeColour(size_t index);
inline constexpr const char* kMovedColour = "#d7191c";

}  // namespace proxy::ringctl::svg
