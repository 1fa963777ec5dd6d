#include "proxy/ringctl/ringctl_svg_ring.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "proxy/ringctl/ringctl_svg_text.h"

namespace proxy::ringctl::svg {
namespace {

// Radii are kept in tenths of a pixel: finer is invisible, and equal neighbours merge into
// one arc command, which keeps long single-owner stretches (ketama) small in the file.
using Tenths = long;

Tenths tenths(double r) { return std::lround(r * 10); }

void appendPoint(std::string& d, char cmd, double fraction, Tenths r) {
  const double a = 2 * std::numbers::pi * fraction - std::numbers::pi / 2;
  const double radius = static_cast<double>(r) / 10;
  appendf(d, "%c%.1f %.1f", cmd, radius * std::cos(a), radius * std::sin(a));
}

// A closed path following radius[s] around the circle, stepping radially between sectors.
// It encloses the centre; the caller paints the hole over it.
std::string profilePath(const std::vector<Tenths>& radius, const char* fill) {
  const size_t count = radius.size();
  const double n = static_cast<double>(count);
  std::string d;
  for (size_t b = 0; b < count;) {
    size_t e = b + 1;
    while (e < count && radius[e] == radius[b]) ++e;
    appendPoint(d, b == 0 ? 'M' : 'L', double(b) / n, radius[b]);
    if (e - b == 1) {
      appendPoint(d, 'L', double(e) / n, radius[b]);  // half a degree: a chord is exact enough
    } else {
      // Arcs of at most a quarter turn, so the large-arc flag is always 0 and a whole circle
      // (one owner everywhere) never degenerates into a zero-length arc.
      const size_t quarter = std::max<size_t>(1, count / 4);
      for (size_t k = b; k < e;) {
        const size_t next = std::min(e, k + quarter);
        const double r = static_cast<double>(radius[b]) / 10;
        appendf(d, "A%.1f %.1f 0 0 1", r, r);
        appendPoint(d, ' ', double(next) / n, radius[b]);
        k = next;
      }
    }
    b = e;
  }
  std::string out;
  appendf(out, "<path fill=\"%s\" d=\"%sZ\"/>\n", fill, d.c_str());
  return out;
}

std::string disc(double r, const char* fill) {
  std::string out;
  appendf(out, "<circle r=\"%.1f\" fill=\"%s\"/>\n", r, fill);
  return out;
}

}  // namespace

std::string ownershipAnnulus(const Sectors& s, const std::vector<const char*>& colours,
                             const std::vector<double>& ideals, double r0, double r1) {
  std::string out = "<g class=\"ownership\">\n";
  if (s.nodes > kMaxBandNodes) {
    out += disc(r1, "#d9d9d9");
  } else {
    // edge[k][sector]: the outer edge of node k's band. Nodes are painted from the outermost
    // in, each filling everything inside its edge, so what shows of node k is its band.
    std::vector<std::vector<Tenths>> edge(s.nodes, std::vector<Tenths>(s.count));
    std::vector<double> total(s.nodes, 0.0);
    for (size_t sec = 0; sec < s.count; ++sec) {
      double cum = 0;
      for (size_t n = 0; n < s.nodes; ++n) {
        const double part = s.owned[sec * s.nodes + n];
        cum += part;
        total[n] += part;
        edge[n][sec] = tenths(r0 + std::min(cum, 1.0) * (r1 - r0));
      }
    }
    for (size_t n = s.nodes; n-- > 0;) {
      if (total[n] <= 0) continue;  // owns nothing (e.g. points beyond a 16-bit hash): no band
      out += profilePath(edge[n], colours[n]);
    }
  }
  if (ideals.size() == s.nodes && s.nodes <= kPaletteSize) {
    double cum = 0;
    for (size_t n = 0; n + 1 < s.nodes; ++n) {
      cum += ideals[n];
      appendf(out,
              "<circle class=\"ideal\" r=\"%.1f\" fill=\"none\" stroke=\"#000\" stroke-opacity=\"0.55\" "
              "stroke-width=\"0.9\" stroke-dasharray=\"3 3\"/>\n",
              r0 + std::min(cum, 1.0) * (r1 - r0));
    }
  }
  out += disc(r0, "white");
  appendf(out, "<circle r=\"%.1f\" fill=\"none\" stroke=\"#555\" stroke-width=\"0.6\"/>\n", r1);
  appendf(out, "<circle r=\"%.1f\" fill=\"none\" stroke=\"#555\" stroke-width=\"0.6\"/>\n", r0);
  out += "</g>\n";
  return out;
}

std::string movedTrack(const Sectors& s, double r0, double r1) {
  std::string out = "<g class=\"moved-track\">\n";
  appendf(out, "<circle r=\"%.1f\" fill=\"none\" stroke=\"#e6e6e6\" stroke-width=\"%.1f\"/>\n", (r0 + r1) / 2, r1 - r0);
  std::vector<Tenths> edge(s.count);
  for (size_t sec = 0; sec < s.count; ++sec) edge[sec] = tenths(r0 + std::clamp(s.moved[sec], 0.0, 1.0) * (r1 - r0));
  out += profilePath(edge, kMovedColour);
  out += disc(r0, "white");
  out += "</g>\n";
  return out;
}

std::string positionTicks(double r) {
  static constexpr const char* kLabels[] = {"0", "25%", "50%", "75%"};
  static constexpr const char* kAnchor[] = {"middle", "start", "middle", "end"};
  std::string out = "<g class=\"ticks\" stroke=\"#555\">\n";
  for (int q = 0; q < 4; ++q) {
    const double a = std::numbers::pi / 2 * q - std::numbers::pi / 2;
    const double c = std::cos(a), sn = std::sin(a);
    appendf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", r * c, r * sn, (r + 7) * c, (r + 7) * sn);
    appendf(out, "<text stroke=\"none\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">%s</text>\n", (r + 10) * c,
            (r + 10) * sn + (q == 0   ? -2
                             : q == 2 ? 11
                                      : 4),
            kAnchor[q], kLabels[q]);
  }
  out += "</g>\n";
  return out;
}

}  // namespace proxy::ringctl::svg
