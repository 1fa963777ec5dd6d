// listen_socket.h: opens the listening sockets on the control thread, before any worker
// starts, so that "address in use" or a bad listen address is reported at startup with the
// pool's name. TCP listeners get one socket per worker with SO_REUSEPORT (the kernel spreads
// new connections across workers); a unix socket is bound once and shared (dup) by workers.
//
// SO_REUSEPORT would also let a second ringproxy (same user) bind the same port and take
// half of the connections, silently. So an address this process does not hold yet is taken
// exclusively: the first socket binds without SO_REUSEPORT, which fails with EADDRINUSE if
// any other socket listens there, and only once it is bound is SO_REUSEPORT set on it so the
// other workers' sockets can join. A unix socket path is refused while another process
// listens on it; a stale socket file (nobody accepts) is replaced.
#pragma once

#include <string>
#include <vector>

#include "config/topology.h"

namespace proxy {

// Returns one fd per worker, or an empty vector with `error` set. `heldByUs`: this process
// already listens at the address (a reload that renames a pool), so sharing it is expected
// and the exclusivity check would refuse our own socket.
std::vector<int> openListenSockets(const config::Pool& pool, int workers, bool heldByUs, std::string& error);

}  // namespace proxy
