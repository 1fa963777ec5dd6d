// client_factory.h: makes the session object for a pool's protocol.
#pragma once

#include <cstddef>

#include "config/topology.h"

namespace proxy {

class ClientSession;
class Worker;

ClientSession* makeSession(Worker& worker, size_t pool, config::Protocol protocol);

}  // namespace proxy
