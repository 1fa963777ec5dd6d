#include "proxy/control/client_factory.h"

#include "proxy/memcache/memcache_session.h"
#include "proxy/redis/redis_session.h"

namespace proxy {

ClientSession* makeSession(Worker& worker, size_t pool, config::Protocol protocol) {
  switch (protocol) {
    case config::Protocol::Redis:
      return new RedisSession(worker, pool);
    case config::Protocol::Memcache:
      return new MemcacheSession(worker, pool);
  }
  return nullptr;
}

}  // namespace proxy
