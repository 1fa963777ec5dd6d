#include "proxy/ringctl/ringctl_svg_legend.h"

#include <algorithm>

#include "proxy/ringctl/ringctl_svg_text.h"

namespace proxy::ringctl::svg {
namespace {

constexpr double kRow = 20;         // row pitch
constexpr size_t kLabelChars = 22;  // about 160 px of 12 px text, the width before the bars
constexpr double kBarX = 175, kBarW = 180;
constexpr size_t kMaxFlows = 12;  // more would bury the picture; the rest is summed

void swatch(std::string& out, double x, double y, const char* colour) {
  appendf(out,
          "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\" stroke=\"#333\" stroke-width=\"0.5\"/>",
          x, y - 10, colour);
}

}  // namespace

double heading(std::string& out, double x, double y, const std::string& text) {
  appendf(out, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">%s</text>\n", x, y, xmlText(text).c_str());
  return y + kRow;
}

double barScale(const std::vector<NodeRow>& rows) {
  double scale = 0;  // the longest bar or ideal tick, with room to spare
  for (const NodeRow& r : rows) scale = std::max({scale, r.share, r.ideal, r.oldShare});
  return scale > 0 ? scale * 1.05 : 1;
}

double nodeRows(std::string& out, double x, double y, const std::vector<NodeRow>& rows, double scale) {
  if (scale <= 0) scale = barScale(rows);
  for (const NodeRow& r : rows) {
    const bool removed = r.status == "removed";
    out += "<g class=\"node\">";
    appendf(out, "<title>%s</title>", xmlText(r.tooltip).c_str());
    swatch(out, x, y, r.colour);
    std::string label = xmlShort(r.label, kLabelChars);
    if (!r.status.empty() && !removed) label += " <tspan fill=\"#555\">(" + xmlText(r.status) + ")</tspan>";
    appendf(out, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\"%s>%s</text>", x + 18, y, removed ? " fill=\"#777\"" : "",
            label.c_str());
    appendf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"12\" fill=\"#eee\"/>", x + kBarX, y - 10, kBarW);
    if (removed) {
      // What it held before, hollow: it holds nothing now.
      appendf(out,
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"11\" fill=\"none\" stroke=\"%s\" "
              "stroke-dasharray=\"3 2\"/>",
              x + kBarX + 0.5, y - 9.5, kBarW * r.oldShare / scale, r.colour);
      appendf(out, "<text class=\"removed\" x=\"%.1f\" y=\"%.1f\">removed (had %s)</text>", x + kBarX + kBarW + 10, y,
              pct(r.oldShare).c_str());
    } else {
      appendf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"12\" fill=\"%s\"/>", x + kBarX, y - 10,
              kBarW * r.share / scale, r.colour);
      const double tick = x + kBarX + kBarW * r.ideal / scale;
      appendf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2\"/>", tick,
              y - 13, tick, y + 5);
      const int decimals = pctDecimals(std::max(r.share, r.ideal));
      appendf(out, "<text class=\"share\" x=\"%.1f\" y=\"%.1f\">%s <tspan fill=\"#555\">(ideal %s)</tspan></text>",
              x + kBarX + kBarW + 10, y, pct(r.share, decimals).c_str(), pct(r.ideal, decimals).c_str());
    }
    out += "</g>\n";
    y += kRow;
  }
  return y;
}

double movedBar(std::string& out, double x, double y, const ring::RingDiff& d) {
  constexpr double kW = 220;  // the whole keyspace: how much of it moves, at a glance
  out += "<g class=\"moved-bar\">";
  appendf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"14\" fill=\"#e6e6e6\"/>", x, y - 11, kW);
  appendf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"14\" fill=\"%s\"/>", x, y - 11,
          kW * std::clamp(d.moved, 0.0, 1.0), kMovedColour);
  const double tick = x + kW * std::clamp(d.idealMin, 0.0, 1.0);
  appendf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2\"/>", tick,
          y - 15, tick, y + 7);
  const int decimals = pctDecimals(std::max(d.moved, d.idealMin));
  appendf(out,
          "<text class=\"moved\" x=\"%.1f\" y=\"%.1f\">moved %s <tspan fill=\"#555\">(ideal minimum %s)</tspan></text>",
          x + kW + 10, y, pct(d.moved, decimals).c_str(), pct(d.idealMin, decimals).c_str());
  out += "</g>\n";
  return y + kRow + 4;
}

double flowRows(std::string& out, double x, double y, const std::vector<ring::Flow>& flows,
                const std::function<const char*(const std::string&)>& colourOf) {
  if (flows.empty()) {
    appendf(out, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">no key changes owner</text>\n", x, y);
    return y + kRow;
  }
  double largest = 0, rest = 0;
  for (const auto& f : flows) largest = std::max(largest, f.share);
  for (size_t i = 0; i < flows.size(); ++i) {
    const ring::Flow& f = flows[i];
    if (i >= kMaxFlows) {
      rest += f.share;
      continue;
    }
    out += "<g class=\"flow\">";
    appendf(out, "<title>%s -&gt; %s: %.4f%% of the keyspace</title>", xmlText(f.from).c_str(), xmlText(f.to).c_str(),
            f.share * 100);
    swatch(out, x, y, colourOf(f.from));
    appendf(out, "<text x=\"%.1f\" y=\"%.1f\">%s</text>", x + 18, y, xmlShort(f.from, 16).c_str());
    appendf(out, "<text x=\"%.1f\" y=\"%.1f\">\u2192</text>", x + 140, y);
    swatch(out, x + 158, y, colourOf(f.to));
    appendf(out, "<text x=\"%.1f\" y=\"%.1f\">%s</text>", x + 176, y, xmlShort(f.to, 16).c_str());
    appendf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"10\" fill=\"%s\"/>", x + 300, y - 9,
            largest > 0 ? 100 * f.share / largest : 0, kMovedColour);
    appendf(out, "<text class=\"flow-share\" x=\"%.1f\" y=\"%.1f\">%s</text>", x + 410, y, pct(f.share).c_str());
    out += "</g>\n";
    y += kRow;
  }
  if (rest > 0) {
    appendf(out, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">and %zu more flows, %s in all</text>\n", x + 16, y,
            flows.size() - kMaxFlows, pct(rest).c_str());
    y += kRow;
  }
  return y;
}

double caption(std::string& out, double x, double y, const std::vector<std::string>& lines) {
  for (const auto& line : lines) {
    appendf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\">%s</text>\n", x, y, xmlText(line).c_str());
    y += 15;
  }
  return y;
}

}  // namespace proxy::ringctl::svg
