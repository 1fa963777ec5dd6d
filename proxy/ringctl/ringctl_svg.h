// ringctl_svg.h: draws rings as SVG for people who would rather look than read: each arc of
// the keyspace coloured by its owner; for a diff, the old ring outside, the new inside, and
// the arcs that change owner marked in a red band between them.
#pragma once

#include <string>

#include "ring/ring.h"

namespace proxy::ringctl {

std::string ringSvg(const ring::Ring& r, const std::string& title);
std::string diffSvg(const ring::Ring& before, const ring::Ring& after, const std::string& title);

}  // namespace proxy::ringctl
