// ringctl migrate: moves every key of a pool in transition (previous_servers) to its owner on
// the current ring, with the same primitive the proxy uses on a key's first touch: MIGRATE
// without COPY or REPLACE, run by the server the key is on (see redis_transition.cc for why
// it is safe beside live proxies). BUSYKEY means the new owner already has a newer copy: the
// old one is deleted. NOKEY means it went meanwhile (moved by a proxy, expired, deleted).
//
// Every server of previous_servers is scanned (SCAN, in every database that has keys), and
// each key whose owner changed is moved; then a verification pass scans again. The run is
// idempotent and can be stopped at any time: a key is either still on its old server (the
// next run moves it) or already moved. A server that fails is reported and retried until it
// is back (or --give-up seconds pass); no key is skipped for good. Exit 0 only when a
// verification pass finds nothing left to move.
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "config/load.h"
#include "proxy/common/json_writer.h"
#include "proxy/common/transition_scripts.h"
#include "proxy/ringctl/ringctl_commands.h"
#include "ring/ring.h"

namespace proxy::ringctl {

namespace {

using Clock = std::chrono::steady_clock;

using transition::kFixTtl;  // the scripts the proxy runs too
using transition::kReconcile;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Totals {
  uint64_t scanned = 0;   // keys seen on the previous servers
  uint64_t toMove = 0;    // ... whose owner changed
  uint64_t moved = 0;     // MIGRATE answered OK
  uint64_t stale = 0;     // the new owner had it already: old copy deleted
  uint64_t gone = 0;      // NOKEY: moved or deleted meanwhile
  uint64_t failed = 0;    // a move that failed (retried by the next pass)
  uint64_t bytes = 0;     // MEMORY USAGE of the keys moved, on their old server
};

// Progress: a bar redrawn in place on a terminal, a line per `every` seconds otherwise.
class Progress {
 public:
  Progress(bool quiet) : tty_(!quiet && isatty(STDERR_FILENO) != 0), quiet_(quiet), start_(Clock::now()) {}
  void show(const std::string& pool, const std::string& server, const Totals& t, uint64_t estimate, bool force) {
    if (quiet_) return;
    const double elapsed = secondsSince(start_);
    if (!force && elapsed - last_ < (tty_ ? 0.2 : 2.0)) return;
    last_ = elapsed;
    const double rate = elapsed > 0 ? double(t.scanned) / elapsed : 0;
    const double left = estimate > t.scanned && rate > 0 ? double(estimate - t.scanned) / rate : 0;
    char line[512];
    if (tty_) {
      const double done = estimate > 0 ? std::min(1.0, double(t.scanned) / double(estimate)) : 1.0;
      const int width = 24, filled = static_cast<int>(done * width);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.append(static_cast<size_t>(width - filled), '.');
      std::snprintf(line, sizeof line,
                    "\r%s %s [%s] %3.0f%% scanned %llu moved %llu stale %llu failed %llu %.1f MiB %.0f keys/s ETA %.0fs ",
                    pool.c_str(), server.c_str(), bar.c_str(), done * 100, (unsigned long long)t.scanned,
                    (unsigned long long)t.moved, (unsigned long long)t.stale, (unsigned long long)t.failed,
                    double(t.bytes) / 1048576.0, rate, left);
    } else {
      std::snprintf(line, sizeof line,
                    "%s %s: scanned %llu, moved %llu, stale %llu, failed %llu, %.1f MiB, %.0f keys/s, ETA %.0fs\n",
                    pool.c_str(), server.c_str(), (unsigned long long)t.scanned, (unsigned long long)t.moved,
                    (unsigned long long)t.stale, (unsigned long long)t.failed, double(t.bytes) / 1048576.0, rate,
                    left);
    }
    std::fputs(line, stderr);
    std::fflush(stderr);
  }
  void end() {
    if (tty_) std::fputs("\n", stderr);
  }

 private:
  bool tty_, quiet_;
  Clock::time_point start_;
  double last_ = -1;
};

// Keys per second, at most: a token bucket refilled continuously.
class RateLimit {
 public:
  explicit RateLimit(double perSecond) : rate_(perSecond), tokens_(perSecond > 0 ? perSecond : 0) {}
  void take(double n) {
    if (rate_ <= 0) return;
    tokens_ -= n;
    while (tokens_ < 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      const auto now = Clock::now();
      tokens_ = std::min(rate_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
      last_ = now;
    }
    last_ = Clock::now();
  }

 private:
  double rate_, tokens_;
  Clock::time_point last_ = Clock::now();
};

struct Conn {
  redisContext* c = nullptr;
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() {
    if (c != nullptr) redisFree(c);
  }
};

redisReply* command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
}

// Connects to `s`, authenticated; empty error on success.
std::string connect(const config::Pool& pool, const config::Server& s, Conn& conn) {
  timeval tv{5, 0};
  conn.c = redisConnectWithTimeout(s.endpoint.host.c_str(), s.endpoint.port, tv);
  if (conn.c == nullptr) return "out of memory";
  if (conn.c->err) return conn.c->errstr;
  redisSetTimeout(conn.c, timeval{30, 0});
  if (std::vector<std::string> auth = pool.backendAuthArgs(); !auth.empty()) {
    auth.insert(auth.begin(), "AUTH");
    redisReply* r = command(conn.c, auth);
    const std::string why = r == nullptr ? conn.c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "";
    freeReplyObject(r);
    if (!why.empty()) return "AUTH: " + why;
  }
  return "";
}

// The databases of `c` that hold keys (INFO keyspace: "db3:keys=10,...").
std::vector<int> databasesWithKeys(redisContext* c, uint64_t& keys) {
  std::vector<int> dbs;
  keys = 0;
  redisReply* r = command(c, {"INFO", "keyspace"});
  if (r != nullptr && r->type == REDIS_REPLY_STRING) {
    const std::string text(r->str, r->len);
    size_t at = 0;
    while ((at = text.find("\ndb", at)) != std::string::npos) {
      at += 3;
      dbs.push_back(std::atoi(text.c_str() + at));
      const size_t k = text.find("keys=", at);
      if (k != std::string::npos) keys += std::strtoull(text.c_str() + k + 5, nullptr, 10);
    }
    if (text.rfind("db", 0) == 0) dbs.insert(dbs.begin(), std::atoi(text.c_str() + 2));
  }
  freeReplyObject(r);
  return dbs;
}

// A connection to a new owner, opened once per server pass and selected into `db`; nullptr
// (with `why`) when it cannot be had.
Conn* targetConn(const config::Pool& pool, const ring::NodeSpec& owner, int db, std::map<std::string, Conn>& targets,
                 std::string& why) {
  Conn& target = targets[owner.address];
  if (target.c == nullptr) {
    config::Server s;
    s.endpoint.host = owner.address.substr(0, owner.address.rfind(':'));
    s.endpoint.port = static_cast<uint16_t>(std::atoi(owner.address.substr(owner.address.rfind(':') + 1).c_str()));
    if (const std::string e = connect(pool, s, target); !e.empty()) {
      why = owner.labelOrIdentity() + ": " + e;
      targets.erase(owner.address);
      return nullptr;
    }
  }
  freeReplyObject(command(target.c, {"SELECT", std::to_string(db)}));
  return &target;
}

struct Options2 {
  double rate = 0;  // keys per second; 0: no limit
  int giveUpSeconds = 300;
  bool verifyOnly = false;
};

// One pass over one server: moves (or, verifying, counts) every key whose owner changed.
// Returns "" or why the server could not be finished (to be retried).
std::string passOverServer(const config::Pool& pool, const config::Server& source, const ring::Ring& current,
                           const Options2& opt, RateLimit& limit, Totals& t, Progress& progress, uint64_t& left) {
  Conn conn;
  std::string why = connect(pool, source, conn);
  if (!why.empty()) return why;
  std::map<std::string, Conn> targets;  // by address, opened when a stale copy needs settling
  uint64_t estimate = 0;
  const std::vector<int> dbs = databasesWithKeys(conn.c, estimate);
  const std::string self = source.endpoint.str();
  const int timeoutMs = pool.timeoutMs > 0 ? std::max(pool.timeoutMs, 5000) : 5000;
  for (int db : dbs) {
    if (redisReply* r = command(conn.c, {"SELECT", std::to_string(db)}); r == nullptr || r->type == REDIS_REPLY_ERROR) {
      freeReplyObject(r);
      return "SELECT " + std::to_string(db) + " failed";
    } else {
      freeReplyObject(r);
    }
    std::string cursor = "0";
    do {
      redisReply* r = command(conn.c, {"SCAN", cursor, "COUNT", "500"});
      if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        why = r == nullptr ? conn.c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected SCAN reply";
        freeReplyObject(r);
        return "SCAN: " + why;
      }
      cursor.assign(r->element[0]->str, r->element[0]->len);
      std::vector<std::pair<std::string, const ring::NodeSpec*>> moving;
      for (size_t i = 0; i < r->element[1]->elements; ++i) {
        const redisReply* k = r->element[1]->element[i];
        std::string key(k->str, k->len);
        t.scanned++;
        const ring::NodeSpec& owner = current.spec().nodes[current.ownerOf(key)];
        if (owner.addressOrIdentity() != self) moving.emplace_back(std::move(key), &owner);
      }
      freeReplyObject(r);
      t.toMove += moving.size();
      if (opt.verifyOnly) {
        left += moving.size();
        moving.clear();
      }
      limit.take(double(moving.size()));
      // Pipelined: MEMORY USAGE then MIGRATE per key, replies read in order.
      for (const auto& [key, owner] : moving) {
        const std::string host = owner->address.substr(0, owner->address.rfind(':'));
        const std::string port = owner->address.substr(owner->address.rfind(':') + 1);
        std::vector<std::string> usage{"MEMORY", "USAGE", key};
        std::vector<std::string> expiry{"PEXPIRETIME", key};
        std::vector<std::string> migrate{"MIGRATE", host, port, key, std::to_string(db), std::to_string(timeoutMs)};
        if (const std::vector<std::string> auth = pool.backendAuthArgs(); !auth.empty()) {
          migrate.push_back(auth.size() == 2 ? "AUTH2" : "AUTH");
          migrate.insert(migrate.end(), auth.begin(), auth.end());
        }
        for (const auto* args : {&usage, &expiry, &migrate}) {
          std::vector<const char*> argv;
          std::vector<size_t> lens;
          for (const std::string& a : *args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
          }
          redisAppendCommandArgv(conn.c, static_cast<int>(args->size()), argv.data(), lens.data());
        }
      }
      std::vector<std::pair<std::string, const ring::NodeSpec*>> staleKeys;  // settled after the replies
      struct SlowMove {
        std::string key;
        const ring::NodeSpec* owner;
        long long before;
      };
      std::vector<SlowMove> slow;  // moved, but the MIGRATE took long: its TTL may be stretched
      const auto batchStart = Clock::now();
      for (const auto& [key, owner] : moving) {
        void* raw = nullptr;
        if (redisGetReply(conn.c, &raw) != REDIS_OK) return std::string("connection lost: ") + conn.c->errstr;
        auto* usage = static_cast<redisReply*>(raw);
        const uint64_t size = usage->type == REDIS_REPLY_INTEGER ? static_cast<uint64_t>(usage->integer) : 0;
        freeReplyObject(usage);
        if (redisGetReply(conn.c, &raw) != REDIS_OK) return std::string("connection lost: ") + conn.c->errstr;
        auto* exp = static_cast<redisReply*>(raw);
        const long long before = exp->type == REDIS_REPLY_INTEGER ? exp->integer : -1;
        freeReplyObject(exp);
        if (redisGetReply(conn.c, &raw) != REDIS_OK) return std::string("connection lost: ") + conn.c->errstr;
        auto* m = static_cast<redisReply*>(raw);
        const std::string text = m->str != nullptr ? std::string(m->str, m->len) : "";
        if (m->type == REDIS_REPLY_STATUS && text == "OK") {
          t.moved++;
          t.bytes += size;
          if (before >= 0 && secondsSince(batchStart) > 1.0) slow.push_back({key, owner, before});
        } else if (m->type == REDIS_REPLY_STATUS && text == "NOKEY") {
          t.gone++;
        } else if (m->type == REDIS_REPLY_ERROR && text.rfind("BUSYKEY", 0) == 0) {
          staleKeys.emplace_back(key, owner);
        } else {
          t.failed++;
          left++;
          if (why.empty()) why = "MIGRATE " + key + " to " + owner->labelOrIdentity() + ": " + text;
        }
        freeReplyObject(m);
      }
      for (const SlowMove& s : slow) {
        Conn* target = targetConn(pool, *s.owner, db, targets, why);
        if (target == nullptr) return why;
        const auto window = static_cast<long long>(secondsSince(batchStart) * 1000) + 1000;
        freeReplyObject(command(target->c, {"EVAL", kFixTtl, "1", s.key, std::to_string(s.before), std::to_string(window)}));
      }
      // The new owner's copy wins and the old one must never come back. A copy that landed
      // late (a MIGRATE that timed out) gets the old copy's absolute expiry first, only if it
      // is the same bytes (the proxy does the same; see redis_transition.cc).
      for (const auto& [key, owner] : staleKeys) {
        redisReply* dump = command(conn.c, {"DUMP", key});
        redisReply* at = command(conn.c, {"PEXPIRETIME", key});
        if (dump == nullptr || at == nullptr) {
          freeReplyObject(dump);
          freeReplyObject(at);
          return std::string("connection lost: ") + conn.c->errstr;
        }
        if (dump->type == REDIS_REPLY_STRING && at->type == REDIS_REPLY_INTEGER && at->integer != -2) {
          Conn* target = targetConn(pool, *owner, db, targets, why);
          if (target == nullptr) {
            freeReplyObject(dump);
            freeReplyObject(at);
            return why;
          }
          redisReply* e = command(target->c, {"EVAL", kReconcile, "1", key, std::string(dump->str, dump->len),
                                              std::to_string(at->integer)});
          if (e == nullptr) return owner->labelOrIdentity() + ": connection lost";
          freeReplyObject(e);
        }
        freeReplyObject(dump);
        freeReplyObject(at);
        redisReply* d = command(conn.c, {"DEL", key});
        if (d == nullptr) return std::string("connection lost: ") + conn.c->errstr;
        freeReplyObject(d);
        t.stale++;
      }
      progress.show(pool.name, self, t, estimate, false);
    } while (cursor != "0");
  }
  return why;
}

}  // namespace

int runMigrate(const Options& o) {
  config::Topology topo;
  config::LoadError err;
  if (!config::loadTopologyFile(o.configFile, topo, err)) {
    std::fprintf(stderr, "ringctl: %s\n", err.str().c_str());
    return kExitBadInput;
  }
  Options2 opt;
  opt.rate = o.rate;
  opt.giveUpSeconds = o.giveUpSeconds;
  Progress progress(o.json);
  RateLimit limit(opt.rate);
  JsonWriter j;
  j.beginObject().key("pools").beginArray();
  bool allDone = true, any = false;
  const auto started = Clock::now();
  for (const config::Pool& pool : topo.pools) {
    if (!o.pool.empty() && pool.name != o.pool) continue;
    if (!pool.inTransition()) {
      if (!o.pool.empty()) std::fprintf(stderr, "ringctl: pool %s is not in a transition (no previous_servers)\n", pool.name.c_str());
      continue;
    }
    if (pool.protocol != config::Protocol::Redis) {
      if (!o.json)
        std::printf("pool %s: memcache: nothing to migrate (moved keys are copied over as they are read); deploy "
                    "the new config when the hit ratio is back\n", pool.name.c_str());
      continue;
    }
    any = true;
    const ring::Ring current(pool.ringSpec());
    Totals t;
    uint64_t left = 0;
    std::string lastError;
    // Passes until a verification pass finds nothing to move; a failing server is retried
    // until --give-up seconds have passed without progress.
    auto lastProgress = Clock::now();
    for (int pass = 0;; ++pass) {
      left = 0;
      bool failed = false;
      for (const config::Server& s : pool.previousServers) {
        const uint64_t before = t.moved + t.stale + t.gone;
        const std::string why = passOverServer(pool, s, current, opt, limit, t, progress, left);
        if (t.moved + t.stale + t.gone != before) lastProgress = Clock::now();
        if (!why.empty()) {
          failed = true;
          lastError = s.label + ": " + why;
          std::fprintf(stderr, "%sringctl: pool %s: server %s: %s; retrying\n", isatty(STDERR_FILENO) ? "\n" : "",
                       pool.name.c_str(), s.label.c_str(), why.c_str());
        }
      }
      progress.show(pool.name, "", t, 0, true);
      if (!failed && left == 0) {
        // Verify: one more pass that only counts.
        Options2 verify = opt;
        verify.verifyOnly = true;
        Totals vt;
        bool verifyFailed = false;
        for (const config::Server& s : pool.previousServers) {
          RateLimit none(0);
          Progress quiet(true);
          if (!passOverServer(pool, s, current, verify, none, vt, quiet, left).empty()) verifyFailed = true;
        }
        if (!verifyFailed && left == 0) break;
      }
      if (secondsSince(lastProgress) > opt.giveUpSeconds) {
        allDone = false;
        std::fprintf(stderr, "ringctl: pool %s: giving up after %d s without progress (%s); run again to resume\n",
                     pool.name.c_str(), opt.giveUpSeconds, lastError.c_str());
        break;
      }
      std::this_thread::sleep_for(std::chrono::seconds(failed ? 1 : 0));
    }
    progress.end();
    j.beginObject().key("pool").value(pool.name).key("scanned").value(t.scanned).key("moved").value(t.moved);
    j.key("stale").value(t.stale).key("gone").value(t.gone).key("failed").value(t.failed).key("bytes").value(t.bytes);
    j.key("left").value(left).key("seconds").value(secondsSince(started)).endObject();
    if (!o.json)
      std::printf("pool %s: %llu keys scanned, %llu moved (%.1f MiB), %llu old copies deleted (newer on the new owner), "
                  "%llu gone meanwhile, %llu moves retried; %llu left to move\n",
                  pool.name.c_str(), (unsigned long long)t.scanned, (unsigned long long)t.moved,
                  double(t.bytes) / 1048576.0, (unsigned long long)t.stale, (unsigned long long)t.gone,
                  (unsigned long long)t.failed, (unsigned long long)left);
  }
  j.endArray().key("done").value(allDone).endObject();
  if (o.json) std::printf("%s\n", j.str().c_str());
  if (!any && !o.json) std::printf("no pool is in a transition: nothing to move\n");
  return allDone ? kExitOk : kExitBadInput;
}

}  // namespace proxy::ringctl
