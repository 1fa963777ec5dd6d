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
//     and its stale copy is deleted, so it cannot come back later either. One case needs
//     care: a MIGRATE that timed out (the new owner stalled) may still land there later, with
//     its TTL counted from then. So before the old copy goes, its DUMP and expiry time are
//     read, and a script on the new owner gives its copy the old absolute expiry if, and only
//     if, the two copies are the same bytes (a newer write is never touched).
//   - NOKEY: the key is not on the old owner (moved already, or it never existed).
// Any other answer (the new owner unreachable, a timeout) fails the request with the reason:
// running it on the new owner could read or change a key that is still on the old one.
//
// Order is kept as on one Redis connection: the request runs after its MIGRATEs are
// answered, and the client's later requests after it (the request is deferred, as a
// blocking command is). Outside a transition a request pays one pointer test; in one, a key
// whose owner did not change pays one more ring lookup (the hash is computed once for both).
#include "proxy/common/transition_scripts.h"
#include "proxy/redis/redis_session.h"

namespace proxy {

namespace resp = backends::resp;

namespace {

using transition::kFixTtl;  // the scripts the migrator runs too
using transition::kReconcile;

// The payload of a bulk reply ("$3\r\nabc\r\n" -> "abc"); false for anything else.
bool bulkPayload(std::string_view reply, std::string& out) {
  if (reply.size() < 4 || reply[0] != '$' || reply[1] == '-') return false;
  const size_t header = reply.find("\r\n");
  if (header == std::string_view::npos || reply.size() < header + 4) return false;
  out.assign(reply.substr(header + 2, reply.size() - header - 4));
  return true;
}

}  // namespace

void RedisSession::migrationStep(RedisRequest& r, MigrateMerge& m, uint32_t key, MigrateMerge::Step step) {
  using Step = MigrateMerge::Step;
  MigrateMerge::Key& k = m.keys[key];
  s_.bytes.clear();
  auto onKey = [&](std::string_view verb) {  // VERB key, on the old owner
    resp::appendArrayHeader(s_.bytes, 2);
    resp::appendBulk(s_.bytes, verb);
    resp::appendBulk(s_.bytes, k.name);
  };
  auto script = [&](std::string_view body, std::string_view a, std::string_view b) {  // on the new owner
    resp::appendArrayHeader(s_.bytes, 6);
    resp::appendBulk(s_.bytes, "EVAL");
    resp::appendBulk(s_.bytes, body);
    resp::appendBulk(s_.bytes, "1");
    resp::appendBulk(s_.bytes, k.name);
    resp::appendBulk(s_.bytes, a);
    resp::appendBulk(s_.bytes, b);
  };
  switch (step) {
    case Step::Dump: onKey("DUMP"); break;
    case Step::ExpireTime: onKey("PEXPIRETIME"); break;
    case Step::Delete: onKey("DEL"); break;
    case Step::Reconcile: script(kReconcile, k.dump, k.expireAt); break;
    case Step::FixTtl: script(kFixTtl, k.before, std::to_string(uv_now(host_.loop()) - k.sentMs + 1000)); break;
    case Step::ExpiryBefore:
    case Step::Migrate: return;
  }
  const bool onNewOwner = step == Step::Reconcile || step == Step::FixTtl;
  m.parts.push_back({key, step});
  sendTo(r, r.addFragment(), onNewOwner ? k.to : k.from, s_.bytes.data(), s_.bytes.size());
}

bool RedisSession::startMigration(const CommandSpec& spec, const char* req, const PoolRoute& route) {
  const Placement& pl = host_.placement(pool());
  if (spec.keys.first == 1 && spec.keys.last == 1 && spec.keys.numkeysAt == 0 && spec.keys.optionsFrom == 0 &&
      argc() >= 2) {
    // Most commands have one key, the first argument: settle the common case (it did not
    // move) without building a key list.
    uint32_t from = 0, to = 0;
    if (!movedKey(route, pl, arg(req, 1), from, to)) return false;
  }
  s_.keys.clear();
  if (!keyIndexes(spec, argc(), [&](size_t i) { return arg(req, i); }, s_.keys) || s_.keys.empty()) return false;
  const auto& backends = host_.snapshot().backends;
  const uint64_t generation = host_.snapshot().generation;
  RedisRequest* r = nullptr;
  MigrateMerge* m = nullptr;
  const int db = db_ == SessionHost::kPoolDb ? route.config.redisDb : db_;
  const int timeout = route.config.timeoutMs > 0 ? route.config.timeoutMs : 5000;
  for (uint32_t index : s_.keys) {
    const std::string_view key = arg(req, index);
    uint32_t from = 0, to = 0;
    if (!movedKey(route, pl, key, from, to) || frontend_.settled.contains(generation, key)) continue;
    if (r == nullptr) {
      r = newRedisRequest();
      m = &r->begin<MigrateMerge>();
    }
    // MIGRATE host port key db timeout [AUTH password | AUTH2 user password], run by the old owner.
    const backends::upstream::Endpoint& target = backends[to].endpoint;
    s_.bytes.clear();
    const std::vector<std::string> auth = route.config.backendAuthArgs();
    resp::appendArrayHeader(s_.bytes, 6 + (auth.empty() ? 0 : 1 + auth.size()));
    resp::appendBulk(s_.bytes, "MIGRATE");
    resp::appendBulk(s_.bytes, target.host);
    resp::appendBulk(s_.bytes, std::to_string(target.port));
    resp::appendBulk(s_.bytes, key);
    resp::appendBulk(s_.bytes, std::to_string(db));
    resp::appendBulk(s_.bytes, std::to_string(timeout));
    if (!auth.empty()) {
      resp::appendBulk(s_.bytes, auth.size() == 2 ? "AUTH2" : "AUTH");
      for (const std::string& a : auth) resp::appendBulk(s_.bytes, a);
    }
    MigrateMerge::Key k;
    k.name.assign(key);
    k.from = from;
    k.to = to;
    k.sentMs = uv_now(host_.loop());
    m->keys.push_back(std::move(k));
    const auto keyIndex = static_cast<uint32_t>(m->keys.size() - 1);
    stats().transitionChecks++;
    // Its expiry first, on the same connection (so answered first): a slow MIGRATE may need it.
    const std::string migrate = s_.bytes;
    s_.bytes.clear();
    resp::appendArrayHeader(s_.bytes, 2);
    resp::appendBulk(s_.bytes, "PEXPIRETIME");
    resp::appendBulk(s_.bytes, key);
    m->parts.push_back({keyIndex, MigrateMerge::Step::ExpiryBefore});
    sendTo(*r, r->addFragment(), from, s_.bytes.data(), s_.bytes.size());
    m->parts.push_back({keyIndex, MigrateMerge::Step::Migrate});
    sendTo(*r, r->addFragment(), from, migrate.data(), migrate.size());
  }
  if (r == nullptr) return false;
  enqueue(r);
  if (r->waiting == 0) fragmentsDone(*r);
  return true;
}

void RedisSession::onMigrateReply(RedisRequest& r, MigrateMerge& m, uint32_t fragment, const char* data, size_t len,
                                  bool isError) {
  using Step = MigrateMerge::Step;
  const std::string_view reply(data, len);
  if (fragment < m.parts.size()) {
    const MigrateMerge::Part part = m.parts[fragment];
    MigrateMerge::Key& k = m.keys[part.key];
    switch (part.step) {
      case Step::ExpiryBefore:
        if (!isError && len >= 3 && reply[0] == ':') k.before.assign(reply.substr(1, len - 3));
        break;
      case Step::FixTtl:
        break;
      case Step::Migrate:
        if (!isError) {
          frontend_.settled.add(host_.snapshot().generation, k.name);  // OK or NOKEY: not on the old owner
          if (reply == "+OK\r\n") {
            stats().transitionMoves++;
            // A MIGRATE that took over a second may have stretched the key's TTL by as much.
            if (uv_now(host_.loop()) - k.sentMs > 1000 && !k.before.empty() && k.before[0] != '-')
              migrationStep(r, m, part.key, Step::FixTtl);
          }
        } else if (reply.rfind("-BUSYKEY", 0) == 0) {
          // The new owner has the key already, and its copy wins. Settle the expiry of a copy
          // that landed late (see the top), then delete the old one, so that it can never come
          // back (the request waits for all of this).
          stats().transitionStale++;
          k.pending = 2;
          migrationStep(r, m, part.key, Step::Dump);
          migrationStep(r, m, part.key, Step::ExpireTime);
        } else {
          stats().transitionFailures++;
          if (r.error.empty()) {
            r.error = "ERR ringproxy could not move '" + k.name + "' to its new owner: ";
            r.error.append(reply.substr(1, len >= 3 ? len - 3 : 0));
          }
        }
        break;
      case Step::Dump:
      case Step::ExpireTime:
        if (part.step == Step::Dump && !isError && !bulkPayload(reply, k.dump)) k.dump.clear();
        if (part.step == Step::ExpireTime && !isError && len >= 3 && reply[0] == ':') k.expireAt.assign(reply.substr(1, len - 3));
        if (--k.pending == 0) {
          // A copy to compare and an expiry to give it (-2: the old copy went meanwhile).
          if (!k.dump.empty() && !k.expireAt.empty() && k.expireAt != "-2") migrationStep(r, m, part.key, Step::Reconcile);
          else migrationStep(r, m, part.key, Step::Delete);
        }
        break;
      case Step::Reconcile:
        migrationStep(r, m, part.key, Step::Delete);
        break;
      case Step::Delete:
        frontend_.settled.add(host_.snapshot().generation, k.name);
        break;
    }
  }
  if (r.fragmentSettled()) fragmentsDone(r);
}

}  // namespace proxy
