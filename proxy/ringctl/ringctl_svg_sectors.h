// ringctl_svg_sectors.h: a ring reduced to what a picture can show. A 1024-vnode ring has
// thousands of arcs far narrower than a pixel, so drawing each one gives moiré; instead the
// keyspace is cut into equal angular sectors and for each we keep how much of it every node
// owns (and, for a diff, how much of it changes owner). Exact for Ketama/Vnode rings.
// The sector count follows the ring: half a degree where there are few arcs (they show
// crisply), else 1, 2 or 4 degrees so that each node has ~16 points in a sector, a steady
// band rather than noise, with nodes x sectors kept within 3600 so the SVG stays small.
#pragma once

#include <cstddef>
#include <vector>

#include "ring/ring.h"

namespace proxy::ringctl::svg {

struct Sectors {
  size_t count = 0;           // sectors around the ring; sector s spans [s, s+1) / count
  size_t nodes = 0;           // node indexes of the ring drawn (the new ring for a diff)
  std::vector<double> owned;  // owned[s * nodes + n]: fraction of sector s that node n owns
  std::vector<double> moved;  // diff only: fraction of each sector whose owner changes
  bool movedSampled = false;  // moved was estimated from sampled keys, not from arcs
};

// Each node's ownership per sector. Modula and Random have no arcs: every node owns its
// share of every sector (modula interleaves hash % slots far below a sector's width).
Sectors ringSectors(const ring::Ring& r);

// The new ring's ownership per sector, and the fraction of each that changes owner (nodes
// matched by address, as ring::diffRings does). Exact when both rings are arc rings over the
// same key positions; otherwise from keys sampled with a fixed seed (deterministic), placed
// where the new ring puts them. No moved data when either ring is Random.
Sectors diffSectors(const ring::Ring& before, const ring::Ring& after);

}  // namespace proxy::ringctl::svg
