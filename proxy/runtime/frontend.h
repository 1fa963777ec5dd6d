// frontend.h: a client protocol's side of one worker. The runtime accepts connections and
// knows nothing of protocols; for each pool it asks that pool's protocol's frontend for a
// session. A frontend also owns what its sessions share on that worker and use only within
// one call (request parsers lent while input is pending, scratch space, the request free
// list), so an idle connection stays small.
//
// Frontends are made by a factory the program's wiring provides (control/frontends.cc), so
// that runtime/ does not depend on redis/ or memcache/.
#pragma once

#include <cstddef>
#include <memory>

#include "config/topology.h"

namespace proxy {

class ClientSession;
class SessionHost;

class Frontend {
 public:
  virtual ~Frontend() = default;
  // A new session for a client accepted on pool `pool` of `host` (not started yet).
  virtual ClientSession* newSession(SessionHost& host, size_t pool) = 0;
  // Frees scratch space a burst left large (a 100 MiB MSET split, a 60 MiB ECHO), so the
  // process's memory returns to its baseline afterwards. Called by the worker once a second,
  // off the request path.
  virtual void trimScratch() {}
};

// Frees `v`'s storage when it holds more than `bytes` of capacity (keeps it otherwise: steady
// traffic reuses it without allocating).
template <typename V>
void releaseIfOver(V& v, size_t bytes) {
  if (v.capacity() * sizeof(typename V::value_type) > bytes) V().swap(v);
}

using FrontendFactory = std::unique_ptr<Frontend> (*)(config::Protocol protocol);

}  // namespace proxy
