// ringctl_svg_ring.h: the round part of a ringctl picture, drawn around the origin (the
// caller translates it into place). The keyspace runs clockwise from the top. Each sector of
// the annulus is split radially by who owns it, nodes stacked inside-out in legend order, so
// a node evenly spread over the ring shows as an even band as thick as its share, and a node
// owning one long arc shows as a solid stretch of colour there.
#pragma once

#include <string>
#include <vector>

#include "proxy/ringctl/ringctl_svg_sectors.h"

namespace proxy::ringctl::svg {

// The ownership annulus between radii r0 and r1; colours[n] fills node n. One path per node
// (its stack's outer edge, filled to the centre, painted outermost first), then the hole.
// Dashed circles mark where the band edges would lie if every node held ideals[n] of every
// sector, so the eye can tell a band thicker or thinner than it should be (up to 12 nodes;
// beyond that they would merge into grey). Past kMaxBandNodes nodes the bands would be
// thinner than 2 px, a moiré of their own: the annulus is then plain grey.
inline constexpr size_t kMaxBandNodes = 32;
std::string ownershipAnnulus(const Sectors& s, const std::vector<const char*>& colours,
                             const std::vector<double>& ideals, double r0, double r1);

// The moved track between r0 and r1: grey, with red rising from r0 as far as the fraction of
// each sector that changes owner (full thickness: all of it moves). Draw before the annulus.
std::string movedTrack(const Sectors& s, double r0, double r1);

// Ticks and labels at 0, 25, 50 and 75% of the keyspace, just outside radius r.
std::string positionTicks(double r);

}  // namespace proxy::ringctl::svg
