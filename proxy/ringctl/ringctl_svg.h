// ringctl_svg.h: pictures of rings for people who would rather look than read. One panel per
// pool, stacked in one SVG document (svgDocument), each titled:
//   shares: the ring as an annulus, each sector split by who owns it (ringctl_svg_ring.h),
//           and per node its share of the keyspace against its ideal, with both numbers;
//   diff:   the new ring the same way, a red track outside it showing where keys change
//           owner, the moved share against the ideal minimum, and the flows table;
//   note:   a pool with nothing to draw (added or removed by a diff) still gets its line.
// Output is deterministic and small: a 10-node, 1024-vnode ring is about 100 KB.
#pragma once

#include <string>
#include <vector>

#include "ring/ring.h"
#include "ring/ring_diff.h"

namespace proxy::ringctl {

struct SvgPanel {
  std::string body;  // drawn from y = 0
  double height = 0;
};

// `rep` is computeShares(r), passed in so the picture shows the numbers --json prints.
// `source` names where the ring came from (the config file), shown under the title.
SvgPanel sharesPanel(const ring::Ring& r, const ring::ShareReport& rep, const std::string& title,
                     const std::string& source);
SvgPanel diffPanel(const ring::Ring& before, const ring::Ring& after, const ring::RingDiff& d, const std::string& title,
                   const std::string& source);
SvgPanel notePanel(const std::string& title, const std::string& note);

std::string svgDocument(const std::vector<SvgPanel>& panels);

}  // namespace proxy::ringctl
