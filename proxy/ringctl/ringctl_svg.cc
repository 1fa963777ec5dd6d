#include "proxy/ringctl/ringctl_svg.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <numbers>

#include "ring/ring_diff.h"

namespace proxy::ringctl {
namespace {

constexpr double kSize = 640, kCenter = kSize / 2;

std::string colourFor(size_t i) {
  // Golden-angle hues: neighbours in the node list get clearly different colours.
  char buf[48];
  std::snprintf(buf, sizeof buf, "hsl(%d,65%%,55%%)", static_cast<int>(std::fmod(i * 137.508, 360.0)));
  return buf;
}

std::string escapeXml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// An annular sector between fractions f0..f1 of the circle (0 at the top, clockwise).
std::string sector(double f0, double f1, double r0, double r1, const std::string& fill) {
  if (f1 - f0 <= 0) return "";
  if (f1 - f0 >= 1) f1 = f0 + 0.999999;
  auto pt = [](double f, double r, double& x, double& y) {
    const double a = 2 * std::numbers::pi * f - std::numbers::pi / 2;
    x = kCenter + r * std::cos(a);
    y = kCenter + r * std::sin(a);
  };
  double x0, y0, x1, y1, x2, y2, x3, y3;
  pt(f0, r1, x0, y0);
  pt(f1, r1, x1, y1);
  pt(f1, r0, x2, y2);
  pt(f0, r0, x3, y3);
  const int large = (f1 - f0) > 0.5 ? 1 : 0;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "<path d=\"M%.2f %.2f A%.1f %.1f 0 %d 1 %.2f %.2f L%.2f %.2f A%.1f %.1f 0 %d 0 %.2f %.2f Z\" fill=\"%s\"/>\n",
                x0, y0, r1, r1, large, x1, y1, x2, y2, r0, r0, large, x3, y3, fill.c_str());
  return buf;
}

double fractionOf(const ring::Ring& r, uint64_t pos) {
  return static_cast<double>(static_cast<long double>(pos) / (static_cast<long double>(r.positionMax()) + 1));
}

bool isArc(const ring::Ring& r) {
  return r.spec().distribution == ring::Distribution::Ketama || r.spec().distribution == ring::Distribution::Vnode;
}

// Merges adjacent segments with the same owners so the picture has one path per visible arc.
struct Band {
  double f0 = 0, f1 = 0;
  uint32_t a = UINT32_MAX, b = UINT32_MAX;
};

std::vector<Band> bands(const ring::Ring& a, const ring::Ring& b) {
  std::vector<Band> out;
  if (isArc(a) && isArc(b)) {
    ring::forEachArcSegment(a, b, [&](const ring::ArcSegment& s) {
      const double f0 = fractionOf(a, s.first), f1 = fractionOf(a, s.last) + 1.0 / (double(a.positionMax()) + 1);
      if (!out.empty() && out.back().a == s.ownerBefore && out.back().b == s.ownerAfter) {
        out.back().f1 = f1;
      } else {
        out.push_back({f0, f1, s.ownerBefore, s.ownerAfter});
      }
    });
    return out;
  }
  // Modula and random have no geometry: draw each node's share as one slice.
  const auto shares = ring::computeShares(a);
  double f = 0;
  for (size_t i = 0; i < shares.nodes.size(); ++i) {
    out.push_back({f, f + shares.nodes[i].share, uint32_t(i), uint32_t(i)});
    f += shares.nodes[i].share;
  }
  return out;
}

std::string legend(const ring::Ring& r, double y, std::map<std::string, size_t>& colourIndex) {
  std::string out;
  const auto shares = ring::computeShares(r);
  for (const auto& n : shares.nodes) {
    const size_t c = colourIndex.emplace(n.address, colourIndex.size()).first->second;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                  "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" font-family=\"sans-serif\">%s  %.2f%%</text>\n",
                  kSize + 10, y, colourFor(c).c_str(), kSize + 28, y + 11, escapeXml(n.label).c_str(), n.share * 100);
    out += buf;
    y += 18;
  }
  return out;
}

std::string header(const std::string& title, size_t legendRows) {
  char buf[256];
  const double height = std::max(kSize, 40.0 + 18.0 * double(legendRows));
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
                kSize + 320, height, kSize + 320, height);
  return std::string(buf) + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" +
         "<text x=\"10\" y=\"20\" font-size=\"14\" font-family=\"sans-serif\">" + escapeXml(title) + "</text>\n";
}

}  // namespace

std::string ringSvg(const ring::Ring& r, const std::string& title) {
  std::map<std::string, size_t> colourIndex;
  std::string body = legend(r, 30, colourIndex);
  for (const Band& b : bands(r, r)) {
    const size_t c = colourIndex[r.spec().nodes[b.a].addressOrIdentity()];
    body += sector(b.f0, b.f1, 200, 280, colourFor(c));
  }
  return header(title, r.nodeCount()) + body + "</svg>\n";
}

std::string diffSvg(const ring::Ring& before, const ring::Ring& after, const std::string& title) {
  std::map<std::string, size_t> colourIndex;
  std::string body = "<text x=\"" + std::to_string(int(kSize + 10)) +
                     "\" y=\"30\" font-size=\"12\" font-family=\"sans-serif\">outer: before, inner: after, red: moved</text>\n";
  body += legend(before, 50, colourIndex);
  body += legend(after, 50 + 18.0 * double(before.nodeCount()) + 10, colourIndex);
  const bool comparable = isArc(before) && isArc(after) && before.positionMax() == after.positionMax() &&
                          before.keyShift() == after.keyShift() && before.spec().hash == after.spec().hash;
  const auto drawOne = [&](const ring::Ring& r, double r0, double r1) {
    for (const Band& b : bands(r, r)) body += sector(b.f0, b.f1, r0, r1, colourFor(colourIndex[r.spec().nodes[b.a].addressOrIdentity()]));
  };
  drawOne(before, 230, 290);
  drawOne(after, 150, 210);
  if (comparable) {
    for (const Band& b : bands(before, after)) {
      if (before.spec().nodes[b.a].addressOrIdentity() != after.spec().nodes[b.b].addressOrIdentity())
        body += sector(b.f0, b.f1, 212, 228, "#d00000");
    }
  }
  return header(title, before.nodeCount() + after.nodeCount() + 2) + body + "</svg>\n";
}

}  // namespace proxy::ringctl
