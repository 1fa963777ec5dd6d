// A transition (previous_servers) for a Redis session: before a request runs, each of its keys
// whose owner changed is brought to its new owner, so the request finds it there.
//
// The move is one MIGRATE on the previous owner, without COPY and without REPLACE:
//   - MIGRATE moves a key atomically on its source (dump, restore on the target, delete
//     locally), with its TTL, whatever its type. Once moved, the old owner no longer has it,
//     so nothing can move it a second time: a key deleted or overwritten on its new owner
//     through one proxy is never brought back by another proxy or by the migrator.
//   - Without REPLACE, a key the new owner already has is never overwritten: its copy is the
//     newer one (every proxy in the transition writes there). The old owner answers BUSYKEY,
//     and its stale copy is deleted, so it cannot come back later either.
//   - NOKEY: the key is not on the old owner (moved already, or it never existed).
// Any other answer (the new owner unreachable, a timeout) fails the request with the reason:
// running it on the new owner could read or change a key that is still on the old one.
//
// Order is kept as on one Redis connection: the request runs after its MIGRATEs are
// answered, and the client's later requests after it (the request is deferred, as a
// blocking command is). Keys whose owner did not change pay one pointer test per request.
#include "proxy/redis/redis_session.h"

namespace proxy {

namespace resp = backends::resp;

bool RedisSession::startMigration(const CommandSpec& spec, const char* req, const PoolRoute& route) {
  s_.keys.clear();
  if (!keyIndexes(spec, argc(), [&](size_t i) { return arg(req, i); }, s_.keys) || s_.keys.empty()) return false;
  const Placement& pl = host_.placement(pool());
  const auto& backends = host_.snapshot().backends;
  RedisRequest* r = nullptr;
  MigrateMerge* m = nullptr;
  const int db = db_ == SessionHost::kPoolDb ? route.config.redisDb : db_;
  const int timeout = route.config.timeoutMs > 0 ? route.config.timeoutMs : 5000;
  for (uint32_t index : s_.keys) {
    const std::string_view key = arg(req, index);
    const uint32_t from = route.previousOwner(key);
    const uint32_t to = pl.backendOf(key);
    if (from == to) continue;
    if (r == nullptr) {
      r = newRedisRequest();
      m = &r->begin<MigrateMerge>();
    }
    // MIGRATE host port key db timeout [AUTH password], run by the old owner.
    const backends::upstream::Endpoint& target = backends[to].endpoint;
    s_.bytes.clear();
    const bool auth = !route.config.redisAuth.empty();
    resp::appendArrayHeader(s_.bytes, auth ? 8 : 6);
    resp::appendBulk(s_.bytes, "MIGRATE");
    resp::appendBulk(s_.bytes, target.host);
    resp::appendBulk(s_.bytes, std::to_string(target.port));
    resp::appendBulk(s_.bytes, key);
    resp::appendBulk(s_.bytes, std::to_string(db));
    resp::appendBulk(s_.bytes, std::to_string(timeout));
    if (auth) {
      resp::appendBulk(s_.bytes, "AUTH");
      resp::appendBulk(s_.bytes, route.config.redisAuth);
    }
    m->keys.emplace_back(key);
    m->from.push_back(from);
    stats().transitionChecks++;
    sendTo(*r, r->addFragment(), from, s_.bytes.data(), s_.bytes.size());
  }
  if (r == nullptr) return false;
  enqueue(r);
  if (r->waiting == 0) fragmentsDone(*r);
  return true;
}

void RedisSession::onMigrateReply(RedisRequest& r, MigrateMerge& m, uint32_t fragment, const char* data, size_t len,
                                  bool isError) {
  const std::string_view reply(data, len);
  if (isError && reply.rfind("-BUSYKEY", 0) == 0 && fragment < m.keys.size()) {
    // The new owner has the key already, and its copy is the newer one: delete the old copy
    // so that it can never come back (before the request runs: it waits for this too).
    stats().transitionStale++;
    s_.bytes.clear();
    resp::appendArrayHeader(s_.bytes, 2);
    resp::appendBulk(s_.bytes, "DEL");
    resp::appendBulk(s_.bytes, m.keys[fragment]);
    const uint32_t from = m.from[fragment];
    sendTo(r, r.addFragment(), from, s_.bytes.data(), s_.bytes.size());
  } else if (isError && fragment < m.keys.size()) {
    stats().transitionFailures++;
    if (r.error.empty()) {
      r.error = "ERR ringproxy could not move '" + m.keys[fragment] + "' to its new owner: ";
      r.error.append(reply.substr(1, len >= 3 ? len - 3 : 0));
    }
  } else if (!isError && reply == "+OK\r\n" && fragment < m.keys.size()) {
    stats().transitionMoves++;
  }
  if (r.fragmentSettled()) fragmentsDone(r);
}

}  // namespace proxy
