// ringctl_hosts.h: `ringctl check`'s look-ups of server host names. A name that does not
// resolve is a warning, not an error: the proxy resolves names when it starts (as twemproxy
// does), and a name may well resolve only where the proxy runs, not where the file is checked.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "config/load.h"
#include "config/topology.h"

namespace proxy::ringctl {

// How long all the look-ups of one check may take together. They run concurrently, so this is
// about one resolver time-out, whatever the number of names: a little more than glibc's default
// 5 s per try, so that a query lost once (name servers drop some of a burst) is still answered
// by its retry instead of ending as a false warning.
inline constexpr std::chrono::seconds kResolveBudget{6};

// True when `host` is an IP address written out (as getaddrinfo reads one): nothing to look up.
bool isAddressLiteral(const std::string& host);

// Looks up `names` concurrently, for at most `budget` in all. Returns, for each name that did
// not resolve, why not: the resolver's message, or that no answer came in time. Names that
// resolved are absent.
std::map<std::string, std::string> unresolvedNames(const std::vector<std::string>& names,
                                                   std::chrono::milliseconds budget);

// One warning per server (servers and previous_servers) whose host name does not resolve, as
// FILE:LINE: KEY: "host NAME does not resolve (WHY)", ordered by line. Unix sockets and address
// literals are not looked up.
std::vector<config::LoadError> unresolvedHostWarnings(const config::Topology& topology,
                                                      std::chrono::milliseconds budget);

}  // namespace proxy::ringctl
