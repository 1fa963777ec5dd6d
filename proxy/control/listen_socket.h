// listen_socket.h: opens the listening sockets on the control thread, before any worker
// starts, so that "address in use" or a bad listen address is reported at startup with the
// pool's name. TCP listeners get one socket per worker with SO_REUSEPORT (the kernel spreads
// new connections across workers); a unix socket is bound once and shared (dup) by workers.
#pragma once

#include <string>
#include <vector>

#include "config/topology.h"

namespace proxy {

// Returns one fd per worker, or an empty vector with `error` set.
std::vector<int> openListenSockets(const config::Pool& pool, int workers, std::string& error);

}  // namespace proxy
