#include "proxy/control/frontends.h"

#include "proxy/memcache/memcache_frontend.h"
#include "proxy/redis/redis_frontend.h"

namespace proxy {

std::unique_ptr<Frontend> makeFrontend(config::Protocol protocol) {
  switch (protocol) {
    case config::Protocol::Redis:
      return std::make_unique<RedisFrontend>();
    case config::Protocol::Memcache:
      return std::make_unique<MemcacheFrontend>();
  }
  return nullptr;
}

}  // namespace proxy
