// ring_diff.h: exact arithmetic over rings. How much of the keyspace each node owns (arc
// lengths over the positions keys can actually take, not sampling), and how much changes owner
// between two rings, with the flows between nodes and the ideal minimum a perfect placement
// would move. Used by ringctl and by the proxy's reload log.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ring/ring.h"

namespace ring {

struct NodeShare {
  std::string label;
  std::string address;
  uint32_t weight = 0;
  size_t points = 0;
  double share = 0;  // fraction of the keyspace this node owns
  double ideal = 0;  // weight / total weight (Random: 1 / nodes, as twemproxy ignores weights)
};

struct ShareReport {
  std::vector<NodeShare> nodes;  // in spec order
  double peakOverMean = 0;       // largest share/ideal: 1.0 is perfect balance
  bool exact = true;             // false only where shares were estimated by sampling
};

ShareReport computeShares(const Ring& ring);

struct Flow {
  std::string from;  // label in the old ring ("" when the key had no owner there)
  std::string to;    // label in the new ring
  double share = 0;  // fraction of the whole keyspace that moves along this flow
};

struct RingDiff {
  bool applicable = true;  // false for Random placement, where keys have no fixed owner
  bool exact = true;       // false when the two rings hash keys differently (then: sampled)
  double moved = 0;        // fraction of the keyspace whose owner changes
  double idealMin = 0;     // the least any placement must move to reach the new weights
  std::vector<Flow> flows; // largest first
};

// Nodes are matched across rings by address (NodeSpec::addressOrIdentity), so a server renamed
// in place counts as the same backend.
RingDiff diffRings(const Ring& before, const Ring& after);

// A stretch of positions [first, last] with one owner in each of two rings.
struct ArcSegment {
  uint64_t first = 0;
  uint64_t last = 0;
  uint32_t ownerBefore = 0;  // node index in the first ring
  uint32_t ownerAfter = 0;   // node index in the second ring
};

// Visits the segments of two Ketama/Vnode rings over the same key positions, in position order
// (pass the same ring twice to walk one ring's arcs). Used for exact diffs and for drawing.
void forEachArcSegment(const Ring& a, const Ring& b, const std::function<void(const ArcSegment&)>& visit);

}  // namespace ring
