// ringctl_svg_legend.h: the text side of a ringctl picture: per node, a bar of its share with
// a tick at its ideal share and both numbers; the moved bar of a diff against its ideal
// minimum; the flows table. Each function draws at column x from baseline y and returns the
// baseline below what it drew. Numbers carry classes (share, moved) so tests can read them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ring/ring_diff.h"

namespace proxy::ringctl::svg {

struct NodeRow {
  std::string label;
  const char* colour = "";
  double share = 0;     // of the (new) ring's keyspace
  double ideal = 0;     // weight-proportional share
  std::string tooltip;  // full name and exact numbers, shown on hover
  std::string status;   // "" or e.g. "new"; "removed" rows show their old share instead
  double oldShare = 0;  // removed rows only
};

// Bars share one scale (pass 0: fit these rows) so they compare at a glance.
double nodeRows(std::string& out, double x, double y, const std::vector<NodeRow>& rows, double scale = 0);
double barScale(const std::vector<NodeRow>& rows);

// "moved 25.10% (ideal minimum 25.00%)" over a bar of the whole keyspace.
double movedBar(std::string& out, double x, double y, const ring::RingDiff& d);

// The largest flows (old owner -> new owner, share of the keyspace); colourOf maps a label.
double flowRows(std::string& out, double x, double y, const std::vector<ring::Flow>& flows,
                const std::function<const char*(const std::string&)>& colourOf);

// Small grey lines of explanation.
double caption(std::string& out, double x, double y, const std::vector<std::string>& lines);

// A bold heading for a block of rows.
double heading(std::string& out, double x, double y, const std::string& text);

}  // namespace proxy::ringctl::svg
