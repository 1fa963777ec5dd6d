#include "proxy/ringctl/ringctl_svg.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "proxy/ringctl/ringctl_svg_legend.h"
#include "proxy/ringctl/ringctl_svg_ring.h"
#include "proxy/ringctl/ringctl_svg_sectors.h"
#include "proxy/ringctl/ringctl_svg_text.h"

namespace proxy::ringctl {
namespace {

using namespace svg;

// Panel layout: title across the top, the ring on the left, the numbers on the right.
constexpr double kWidth = 1060, kTitleH = 64;
constexpr double kCx = 270, kCy = kTitleH + 250, kRingBottom = kCy + 250;
constexpr double kHole = 118, kOuter = 192;        // the ownership annulus
constexpr double kTrackIn = 198, kTrackOut = 218;  // the moved track (diff)
constexpr double kColumn = 545, kColumnTop = kTitleH + 20;

std::string header(const std::string& title, const std::string& subtitle) {
  std::string out;
  appendf(out, "<title>%s</title>\n", xmlText(title).c_str());
  appendf(out, "<text class=\"title\" x=\"16\" y=\"28\" font-size=\"17\" font-weight=\"bold\">%s</text>\n",
          xmlText(title).c_str());
  appendf(out, "<text class=\"subtitle\" x=\"16\" y=\"48\" fill=\"#555\">%s</text>\n", xmlText(subtitle).c_str());
  return out;
}

bool hasArcs(const ring::Ring& r) {
  return r.spec().distribution == ring::Distribution::Ketama || r.spec().distribution == ring::Distribution::Vnode;
}

// "8192 points" (arc rings), "4 slots" (modula: one per unit of weight), "" (random).
std::string pointWords(const ring::Ring& r) {
  if (r.spec().distribution == ring::Distribution::Random) return "";
  return std::to_string(r.positions().size()) + (hasArcs(r) ? " points" : " slots");
}

std::string describe(const ring::Ring& r) {
  std::string out = std::string(ring::distributionName(r.spec().distribution)) + ", hash " +
                    std::string(ring::hashKindName(r.spec().hash));
  appendf(out, ", %zu node%s", r.nodeCount(), r.nodeCount() == 1 ? "" : "s");
  if (!pointWords(r).empty()) out += ", " + pointWords(r);
  return out;
}

std::string sectorWords(size_t count) {
  std::string out;
  appendf(out, "%zu sectors of %.3g\u00b0", count, 360.0 / double(count));
  return out;
}

// The caption under the legend: how to read the annulus. `which` names the ring drawn.
std::vector<std::string> ringCaption(const ring::Ring& r, const Sectors& s, const std::string& which) {
  const bool ideals = r.nodeCount() <= kPaletteSize;  // ownershipAnnulus draws them up to there
  std::vector<std::string> lines;
  if (r.nodeCount() > kMaxBandNodes) {
    lines = {"Ring: " + which + ", clockwise from the top; grey: more nodes than can be",
             "drawn as bands (each would be under 2 px). The list above is what to read."};
  } else if (hasArcs(r)) {
    lines = {"Ring: " + which + ", clockwise from the top, in " + sectorWords(s.count) + ";",
             "each sector is split inside-out (legend order) by how much of it",
             std::string("each node owns.") + (ideals ? " Dashed circles: band edges at the ideal shares." : "")};
  } else {
    lines = {"Ring: " + which + ", each node's band as thick as its share, inside-out",
             std::string("in legend order.") + (ideals ? " Dashed circles: band edges at the ideal shares." : "")};
  }
  if (r.spec().distribution == ring::Distribution::Modula)
    lines.push_back("modula: hash % slots interleaves every node's keys evenly over the ring.");
  if (r.spec().distribution == ring::Distribution::Random)
    lines.push_back("random: each request goes to a random node; no key has a fixed place.");
  if (!ideals && r.nodeCount() <= kMaxBandNodes)
    lines.push_back("Colours repeat every 12 nodes: the stacking order tells them apart.");
  return lines;
}

std::string ringGroup(const std::string& inner) {
  std::string out;
  appendf(out, "<g transform=\"translate(%.0f,%.0f)\">\n", kCx, kCy);
  return out + inner + "</g>\n";
}

// Lines of text centred in the ring's hole; the first may be emphasised.
std::string holeText(const std::vector<std::string>& lines, const char* firstFill, int firstSize) {
  std::string out;
  double y = -double(lines.size() - 1) * 10 + 4;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == 0)
      appendf(out,
              "<text text-anchor=\"middle\" y=\"%.1f\" font-size=\"%d\" font-weight=\"bold\" fill=\"%s\">%s</text>\n",
              y, firstSize, firstFill, xmlText(lines[i]).c_str());
    else
      appendf(out, "<text text-anchor=\"middle\" y=\"%.1f\" fill=\"#333\">%s</text>\n", y, xmlText(lines[i]).c_str());
    y += i == 0 ? 22 : 17;
  }
  return out;
}

// Big pools: a row per node would run to thousands of pixels, and what matters there is
// which nodes stray furthest from their ideal share. So past kMaxRows rows, list the
// kMaxRows/2 furthest above and below it (most loaded first) and sum up the rest.
constexpr size_t kMaxRows = 40;

double limitedRows(std::string& body, double y, std::vector<NodeRow> rows) {
  if (rows.size() <= kMaxRows) return nodeRows(body, kColumn, y, rows);
  const double scale = barScale(rows);
  const auto ratio = [](const NodeRow& r) { return r.ideal > 0 ? r.share / r.ideal : 0; };
  std::stable_sort(rows.begin(), rows.end(), [&](const NodeRow& a, const NodeRow& b) { return ratio(a) > ratio(b); });
  const size_t half = kMaxRows / 2;
  y = nodeRows(body, kColumn, y, {rows.begin(), rows.begin() + half}, scale);
  const double hi = ratio(rows[half]), lo = ratio(rows[rows.size() - half - 1]);
  std::string more;
  appendf(more, "\u2026 %zu more nodes hold %.3f to %.3f times their ideal share (ringctl shares lists all)",
          rows.size() - kMaxRows, lo, hi);
  y = caption(body, kColumn + 18, y - 3, {more}) + 5;
  return nodeRows(body, kColumn, y, {rows.end() - half, rows.end()}, scale);
}

std::string tooltip(const ring::NodeShare& n, double totalWeight) {
  std::string out = n.label;
  if (n.address != n.label) out += " (" + n.address + ")";
  appendf(out, ": %.4f%% of the keyspace, ideal %.4f%% (weight %u of %.0f), %zu points", n.share * 100, n.ideal * 100,
          n.weight, totalWeight, n.points);
  return out;
}

double totalWeight(const ring::ShareReport& rep) {
  double w = 0;
  for (const auto& n : rep.nodes) w += n.weight;
  return w;
}

}  // namespace

SvgPanel sharesPanel(const ring::Ring& r, const ring::ShareReport& rep, const std::string& title,
                     const std::string& source) {
  std::vector<const char*> colours;
  std::vector<double> ideals;
  for (size_t i = 0; i < r.nodeCount(); ++i) colours.push_back(nodeColour(i));
  for (const auto& n : rep.nodes) ideals.push_back(n.ideal);
  const Sectors sectors = ringSectors(r);

  std::string drawing = ownershipAnnulus(sectors, colours, ideals, kHole, kOuter);
  if (r.spec().distribution != ring::Distribution::Random) drawing += positionTicks(kOuter);  // random has no places
  char peak[32];
  std::snprintf(peak, sizeof peak, "peak/mean %.4f", rep.peakOverMean);
  drawing += holeText({std::to_string(r.nodeCount()) + (r.nodeCount() == 1 ? " node" : " nodes"), pointWords(r), peak},
                      "#222", 16);

  std::string body = header(title, describe(r) + " \u00b7 " + source) + ringGroup(drawing);
  double y = heading(body, kColumn, kColumnTop, "share of the keyspace per node (tick: ideal, by weight)");
  std::vector<NodeRow> rows;
  const double weight = totalWeight(rep);
  for (size_t i = 0; i < rep.nodes.size(); ++i) {
    const auto& n = rep.nodes[i];
    rows.push_back({n.label, colours[i], n.share, n.ideal, tooltip(n, weight), "", 0});
  }
  y = limitedRows(body, y, rows) + 8;
  std::vector<std::string> lines = ringCaption(r, sectors, "the keyspace");
  if (hasArcs(r) && r.nodeCount() <= kMaxBandNodes)
    lines.push_back("An even band is a node spread evenly over the ring.");
  y = caption(body, kColumn, y, lines);
  return {body, std::max(kRingBottom, y + 10)};
}

SvgPanel diffPanel(const ring::Ring& before, const ring::Ring& after, const ring::RingDiff& d, const std::string& title,
                   const std::string& source) {
  // A node keeps its colour across the two rings (matched by address, as the diff matches).
  std::map<std::string, size_t> colourIndex;
  for (const auto& n : before.spec().nodes) colourIndex.emplace(n.addressOrIdentity(), colourIndex.size());
  for (const auto& n : after.spec().nodes) colourIndex.emplace(n.addressOrIdentity(), colourIndex.size());
  std::map<std::string, const char*> byLabel;  // flows name nodes by label
  for (const auto& n : before.spec().nodes)
    byLabel[n.labelOrIdentity()] = nodeColour(colourIndex[n.addressOrIdentity()]);
  for (const auto& n : after.spec().nodes)
    byLabel[n.labelOrIdentity()] = nodeColour(colourIndex[n.addressOrIdentity()]);
  std::vector<const char*> colours;
  for (const auto& n : after.spec().nodes) colours.push_back(nodeColour(colourIndex[n.addressOrIdentity()]));

  const ring::ShareReport now = ring::computeShares(after), was = ring::computeShares(before);
  std::vector<double> ideals;
  for (const auto& n : now.nodes) ideals.push_back(n.ideal);
  const Sectors sectors = diffSectors(before, after);
  std::string drawing;
  if (d.applicable && !sectors.moved.empty()) drawing += movedTrack(sectors, kTrackIn, kTrackOut);
  drawing += ownershipAnnulus(sectors, colours, ideals, kHole, kOuter);
  if (after.spec().distribution != ring::Distribution::Random)
    drawing += positionTicks(d.applicable ? kTrackOut : kOuter);
  const int decimals = pctDecimals(std::max(d.moved, d.idealMin));
  if (d.applicable)
    drawing += holeText({pct(d.moved, decimals), "of keys move", "ideal minimum " + pct(d.idealMin, decimals)},
                        kMovedColour, 22);
  else
    drawing += holeText({"random", "keys have no", "fixed owner"}, "#222", 16);

  std::string subtitle = std::string(ring::distributionName(before.spec().distribution)) + " \u2192 " + describe(after);
  if (d.applicable) subtitle += d.exact ? ", exact" : ", estimated from 2^20 sampled keys (the hash changed)";
  std::string body = header(title, subtitle + " \u00b7 " + source) + ringGroup(drawing);

  double y = heading(body, kColumn, kColumnTop, "keys that change owner (tick: the least any placement must move)");
  if (d.applicable) {
    y = movedBar(body, kColumn, y, d);
  } else {
    y = caption(body, kColumn, y - 4, {"random distribution: keys have no fixed owner, nothing to diff."}) + 6;
  }

  y = heading(body, kColumn, y + 4, "new share of the keyspace per node (tick: ideal, by weight)");
  std::map<std::string, const ring::NodeShare*> old;
  for (const auto& n : was.nodes) old[n.address] = &n;
  std::vector<NodeRow> rows;
  const double weight = totalWeight(now);
  for (size_t i = 0; i < now.nodes.size(); ++i) {
    const auto& n = now.nodes[i];
    rows.push_back({n.label, colours[i], n.share, n.ideal, tooltip(n, weight), old.count(n.address) ? "" : "new", 0});
  }
  y = limitedRows(body, y, rows);
  std::map<std::string, bool> kept;
  for (const auto& n : now.nodes) kept[n.address] = true;
  std::vector<NodeRow> removed;
  size_t unlisted = 0;
  double unlistedShare = 0;
  for (const auto& n : was.nodes) {
    if (kept.count(n.address)) continue;
    if (removed.size() == kMaxRows / 2) {  // a big pool shrinking: name the first, sum the rest
      ++unlisted;
      unlistedShare += n.share;
      continue;
    }
    char tip[64];
    std::snprintf(tip, sizeof tip, ": removed; it held %.4f%% of the keyspace", n.share * 100);
    removed.push_back({n.label, nodeColour(colourIndex[n.address]), 0, 0, n.label + tip, "removed", n.share});
  }
  y = nodeRows(body, kColumn, y, removed);
  if (unlisted > 0) {
    std::string more;
    appendf(more, "\u2026 and %zu more removed nodes, which held %s", unlisted, pct(unlistedShare).c_str());
    y = caption(body, kColumn + 18, y - 3, {more}) + 5;
  }
  y += 6;

  if (d.applicable) {
    y = heading(body, kColumn, y, "flows: old owner \u2192 new owner, share of the keyspace");
    y = flowRows(body, kColumn, y, d.flows,
                 [&](const std::string& label) {
                   const auto it = byLabel.find(label);
                   return it == byLabel.end() ? "#ffffff" : it->second;
                 }) +
        6;
  }
  std::vector<std::string> lines = ringCaption(after, sectors, "the new ring");
  if (d.applicable) {
    lines.push_back("Red track: the part of each sector whose keys change owner (full: all).");
    if (sectors.movedSampled) {
      lines.push_back("The red track is estimated from 2^18 sampled keys: these rings");
      lines.push_back("cannot be compared arc by arc.");
    }
  }
  y = caption(body, kColumn, y, lines);
  return {body, std::max(kRingBottom, y + 10)};
}

SvgPanel notePanel(const std::string& title, const std::string& note) {
  std::string body = header(title, note);
  return {body, kTitleH + 6};
}

std::string svgDocument(const std::vector<SvgPanel>& panels) {
  double height = 0;
  for (const auto& p : panels) height += p.height;
  height = std::max(height, 1.0);
  std::string out;  // no XML declaration: UTF-8 is XML's default, and "<svg" opens the file
  appendf(out,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
          "font-family=\"DejaVu Sans, Verdana, sans-serif\" font-size=\"12\">\n",
          kWidth, height, kWidth, height);
  out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  double y = 0;
  for (size_t i = 0; i < panels.size(); ++i) {
    if (i > 0)
      appendf(out, "<line x1=\"0\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#bbb\" stroke-width=\"1\"/>\n", y,
              kWidth, y);
    appendf(out, "<g class=\"picture\" transform=\"translate(0,%.0f)\">\n", y);
    out += panels[i].body;
    out += "</g>\n";
    y += panels[i].height;
  }
  out += "</svg>\n";
  return out;
}

}  // namespace proxy::ringctl
