// CLIENT for a Redis session: the proxy answers for its own clients, as a Redis server answers
// for its own. LIST and KILL cover the clients of this client's pool, on every worker
// (runtime/client_directory.h); the per-connection hints clients send during their
// handshake are accepted; PAUSE and the like, which would act on a server's clients, are
// refused with the reason.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <charconv>

#include "proxy/redis/redis_session.h"

namespace proxy {

namespace resp = backends::resp;

namespace {

// "ip:port" as Redis prints it (IPv6 without brackets, as Redis does), or a unix socket's path.
std::string socketAddress(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  auto* sa = reinterpret_cast<sockaddr*>(&ss);
  if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in6->sin6_port));
  }
  if (ss.ss_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    return std::string(un->sun_path) + ":0";
  }
  return "?";
}

bool parseId(std::string_view s, uint64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

void RedisSession::onStart(int fd) {
  entry_.id = clientId_;
  entry_.addr = socketAddress(fd, true);
  entry_.laddr = socketAddress(fd, false);
  entry_.fd = fd;
  entry_.worker = host_.id();
  entry_.pool = poolRoute()->config.name;
  entry_.createdMs = uv_now(host_.loop());
  entry_.activeMs.store(entry_.createdMs, std::memory_order_relaxed);
  entry_.db.store(poolRoute()->config.redisDb, std::memory_order_relaxed);
  entry_.session = this;
  ClientDirectory::instance().add(&entry_);
}

bool RedisSession::takeKill() {
  if (!entry_.kill.exchange(false, std::memory_order_relaxed)) return false;
  ClientDirectory::instance().killDone();
  return true;
}

void RedisSession::cmdClient(const CommandSpec&, const char* req) {
  s_.bytes.clear();
  const std::string sub = asciiLower(arg(req, 1));
  if (sub == "setname" && argc() == 3) {
    const std::string_view name = arg(req, 2);
    if (std::any_of(name.begin(), name.end(), [](char c) { return c <= ' ' || c > '~'; })) {
      replyError("ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    ClientDirectory::instance().setName(&entry_, std::string(name));
    resp::appendSimpleString(s_.bytes, "OK");
  } else if (sub == "getname" && argc() == 2) {
    if (entry_.name.empty()) resp::appendNull(s_.bytes, protocol_);
    else resp::appendBulk(s_.bytes, entry_.name);
  } else if (sub == "id" && argc() == 2) {
    resp::appendInteger(s_.bytes, static_cast<int64_t>(clientId_));
  } else if ((sub == "setinfo" && argc() == 4) || ((sub == "no-evict" || sub == "no-touch") && argc() == 3) ||
             (sub == "reply" && argc() == 3 && asciiLower(arg(req, 2)) == "on")) {
    // Per-connection hints with no effect through a proxy: accepted, as clients send them
    // during their handshake and treat an error as fatal.
    resp::appendSimpleString(s_.bytes, "OK");
  } else if (sub == "list") {
    clientList(req);
    return;
  } else if (sub == "info" && argc() == 2) {
    clientList(nullptr);  // this client's line alone
    return;
  } else if (sub == "kill" && argc() >= 3) {
    clientKill(req);
    return;
  } else if (sub == "pause" || sub == "unpause" || sub == "tracking" || sub == "caching" || sub == "unblock" ||
             sub == "getredir" || sub == "trackinginfo") {
    replyError("ERR ringproxy does not support 'CLIENT " + std::string(arg(req, 1)) +
               "': it would act on one server's connections, which the proxy shares among its clients");
    return;
  } else {
    replyError("ERR ringproxy does not support 'CLIENT " + std::string(arg(req, 1)) +
               "' (the proxy answers LIST, KILL, INFO, SETNAME, GETNAME, ID, SETINFO, NO-EVICT, NO-TOUCH)");
    return;
  }
  replyLocal(s_.bytes);
}

void RedisSession::clientList(const char* req) {
  // CLIENT LIST [TYPE normal|pubsub|...] [ID id ...]; with req null, this client only (INFO).
  std::string type;
  std::vector<uint64_t> ids;
  if (req == nullptr) ids.push_back(clientId_);
  for (size_t i = 2; req != nullptr && i < argc(); ++i) {
    const std::string opt = asciiLower(arg(req, i));
    if (opt == "type" && i + 1 < argc()) {
      type = asciiLower(arg(req, ++i));
      if (type != "normal" && type != "pubsub" && type != "master" && type != "replica" && type != "slave") {
        replyError("ERR Unknown client type '" + std::string(arg(req, i)) + "'");
        return;
      }
    } else if (opt == "id" && i + 1 < argc()) {
      while (i + 1 < argc()) {
        uint64_t id = 0;
        if (!parseId(arg(req, ++i), id)) {
          replyError("ERR Invalid client ID");
          return;
        }
        ids.push_back(id);
      }
    } else {
      replyError("ERR syntax error");
      return;
    }
  }
  const uint64_t now = uv_now(host_.loop());
  std::string text;
  for (const ClientDirectory::Snapshot& c : ClientDirectory::instance().list()) {
    if (c.pool != entry_.pool) continue;  // a pool is one server to its clients
    const bool pubsub = c.sub + c.psub + c.ssub > 0;
    if (!ids.empty() && std::find(ids.begin(), ids.end(), c.id) == ids.end()) continue;
    if (!type.empty() && (type == "pubsub") != pubsub) continue;
    if (type == "master" || type == "replica" || type == "slave") continue;
    const uint64_t age = now > c.createdMs ? (now - c.createdMs) / 1000 : 0;
    const uint64_t idle = now > c.activeMs ? (now - c.activeMs) / 1000 : 0;
    std::string flags = c.inMulti ? "x" : pubsub ? "P" : "N";
    text += "id=" + std::to_string(c.id) + " addr=" + c.addr + " laddr=" + c.laddr + " fd=" + std::to_string(c.fd) +
            " name=" + c.name + " age=" + std::to_string(age) + " idle=" + std::to_string(idle) + " flags=" + flags +
            " db=" + std::to_string(c.db) + " sub=" + std::to_string(c.sub) + " psub=" + std::to_string(c.psub) +
            " ssub=" + std::to_string(c.ssub) + " multi=" + (c.inMulti ? "0" : "-1") +
            " qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=" +
            c.lastCommand + " user=default redir=-1 resp=" + std::to_string(c.resp) + " lib-name= lib-ver=\n";
  }
  s_.bytes.clear();
  if (req == nullptr) {
    resp::appendBulk(s_.bytes, text);
  } else {
    // RESP3 clients get a verbatim string from Redis; a bulk string reads the same to them.
    resp::appendBulk(s_.bytes, text);
  }
  replyLocal(s_.bytes);
}

void RedisSession::clientKill(const char* req) {
  // CLIENT KILL addr:port (the old form: +OK or an error), or filters ID, ADDR, LADDR, TYPE,
  // USER, SKIPME, MAXAGE (the number of clients killed).
  struct Filter {
    uint64_t id = 0;
    bool byId = false;
    std::string addr, laddr, type, user;
    bool skipMe = true;
    int64_t maxAge = -1;
  } f;
  const bool oldForm = argc() == 3;
  if (oldForm) {
    f.addr = std::string(arg(req, 2));
    f.skipMe = false;
  } else {
    if ((argc() - 2) % 2 != 0) {
      replyError("ERR syntax error");
      return;
    }
    for (size_t i = 2; i + 1 < argc(); i += 2) {
      const std::string opt = asciiLower(arg(req, i));
      const std::string_view v = arg(req, i + 1);
      if (opt == "id") {
        if (!parseId(v, f.id)) {
          replyError("ERR client-id should be greater than 0");
          return;
        }
        f.byId = true;
      } else if (opt == "addr") {
        f.addr = std::string(v);
      } else if (opt == "laddr") {
        f.laddr = std::string(v);
      } else if (opt == "type") {
        f.type = asciiLower(v);
      } else if (opt == "user") {
        f.user = std::string(v);
      } else if (opt == "skipme") {
        const std::string yes = asciiLower(v);
        if (yes != "yes" && yes != "no") {
          replyError("ERR syntax error");
          return;
        }
        f.skipMe = yes == "yes";
      } else if (opt == "maxage") {
        uint64_t age = 0;
        if (!parseId(v, age)) {
          replyError("ERR syntax error");
          return;
        }
        f.maxAge = static_cast<int64_t>(age);
      } else {
        replyError("ERR syntax error");
        return;
      }
    }
  }
  const uint64_t now = uv_now(host_.loop());
  const std::string& myPool = entry_.pool;
  std::vector<ClientSession*> local;
  bool killMe = false;
  const size_t n = ClientDirectory::instance().kill(host_.id(), [&](const ClientEntry& e) {
    if (e.pool != myPool) return false;
    if (f.byId && e.id != f.id) return false;
    if (!f.addr.empty() && e.addr != f.addr) return false;
    if (!f.laddr.empty() && e.laddr != f.laddr) return false;
    if (!f.user.empty() && f.user != "default") return false;
    if (!f.type.empty()) {
      const bool pubsub = e.subscriptions.load() + e.patterns.load() + e.shardSubscriptions.load() > 0;
      if ((f.type == "pubsub") != pubsub || (f.type != "pubsub" && f.type != "normal")) return false;
    }
    if (f.maxAge >= 0 && (now - e.createdMs) / 1000 < static_cast<uint64_t>(f.maxAge)) return false;
    if (e.id == clientId_) {
      if (f.skipMe) return false;
      killMe = true;
    }
    return true;
  }, local);
  for (ClientSession* s : local)
    if (s != this) s->closeNow();  // same worker: closed now; others at their worker's next sweep
  if (oldForm) {
    if (n == 0) {
      replyError("ERR No such client");
      return;
    }
    replyLocal("+OK\r\n");
  } else {
    s_.bytes.clear();
    resp::appendInteger(s_.bytes, static_cast<int64_t>(n));
    replyLocal(s_.bytes);
  }
  if (killMe) closeAfterFlush();  // as Redis: the reply first, then the connection closes
}

}  // namespace proxy
