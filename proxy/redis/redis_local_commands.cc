// The commands a Redis session answers itself: connection state (PING, ECHO, QUIT, SELECT,
// AUTH, HELLO, CLIENT ...) and introspection clients need (COMMAND).
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <vector>

#include "proxy/redis/redis_session.h"
#include "proxy/runtime/stats.h"

namespace proxy {

namespace resp = backends::resp;

namespace {

const char* routeSummary(Route route) {
  switch (route) {
    case Route::Local: return "answered by ringproxy itself";
    case Route::Keyed: return "forwarded to the server that owns its key(s); all keys must share one server";
    case Route::FanoutMget: return "split into one MGET per server, replies merged in key order";
    case Route::FanoutMset: return "split into one MSET per server; OK when every part succeeded";
    case Route::FanoutSum: return "split into one request per server; the integer replies are summed";
    case Route::Blocking:
      return "sent on the client's own connection to the server that owns its key(s), with the command's own "
             "timeout; all keys must share one server";
    case Route::Unsupported: return "not supported through ringproxy";
  }
  return "";
}

// What COMMAND DOCS adds for the forms of a command the proxy refuses (refusalOf).
const char* checkSummary(ArgCheck check) {
  switch (check) {
    case ArgCheck::None: return "";
    case ArgCheck::SortPatterns:
      return "; a BY or GET pattern with '*' is refused: it reads other keys, which may live on other servers";
    case ArgCheck::UsageOnly:
      return "; USAGE only: the other subcommands administer one server and are refused";
  }
  return "";
}

// COMMAND GETKEYS|GETKEYSANDFLAGS <command> <arg> ...: the keys this proxy routes the request
// by, from routedKeys, the checks routing itself relies on, appended to `out` as Redis answers
// them. What has no keys gets Redis's own errors, and a request the proxy refuses gets the
// refusal's reason: the error's text is returned (empty when `out` holds the reply).
std::string getKeysReply(size_t argc, ArgReader arg, bool withFlags, resp::Protocol protocol,
                         std::vector<uint32_t>& keys, std::string& out) {
  const CommandSpec* spec = findCommand(arg(0));
  if (spec == nullptr) return "ERR Invalid command specified";
  keys.clear();
  std::string why;
  switch (routedKeys(*spec, argc, arg, keys, why)) {
    case KeyRouting::Routed: break;
    case KeyRouting::NoKeys: return "ERR The command has no key arguments";
    case KeyRouting::WrongArity: return "ERR Invalid number of arguments specified for command";
    case KeyRouting::Malformed: return "ERR Invalid arguments specified for command";
    case KeyRouting::Refused: return "ERR " + why;
  }
  resp::appendArrayHeader(out, keys.size());
  for (uint32_t i : keys) {
    if (!withFlags) {
      resp::appendBulk(out, arg(i));
      continue;
    }
    // The proxy knows whether a command writes, not how it treats each key: every key of a
    // command that writes is flagged RW, which never understates an access.
    resp::appendArrayHeader(out, 2);
    resp::appendBulk(out, arg(i));
    resp::appendSetHeader(out, 1, protocol);
    resp::appendSimpleString(out, spec->write() ? "RW" : "RO");
  }
  return {};
}

// The version HELLO reports when no backend answered INFO: the protocol generation spoken.
constexpr std::string_view kReportedRedisVersion = "7.0.0";

}  // namespace

void RedisSession::cmdQuit(const CommandSpec&, const char*) {
  // Nothing after QUIT runs: earlier replies, then +OK, then the connection closes.
  replyLocal("+OK\r\n");
  closeAfterFlush();
}

void RedisSession::cmdPure(const CommandSpec& spec, const char* req) {
  s_.bytes.clear();
  if (spec.pure == &RedisSession::pingReply && inSubscribedMode() && argc() <= 2) {
    // A subscribed RESP2 client gets PING's answer as Redis sends it there: ["pong", arg],
    // in order with its subscription frames.
    PubSubState::Out o;
    resp::appendArrayHeader(o.bytes, 2);
    resp::appendBulk(o.bytes, "pong");
    resp::appendBulk(o.bytes, argc() == 2 ? arg(req, 1) : std::string_view());
    rare_->pubsub->out.push_back(std::move(o));
    flushPubSub();
    return;
  }
  if (!(this->*spec.pure)(req, s_.bytes)) {
    replyError("ERR wrong number of arguments for '" + std::string(spec.name) + "' command");
    return;
  }
  replyLocal(s_.bytes);
}

bool RedisSession::pingReply(const char* req, std::string& out) {
  if (argc() > 2) return false;
  if (argc() == 2) resp::appendBulk(out, arg(req, 1));
  else resp::appendSimpleString(out, "PONG");
  return true;
}

bool RedisSession::echoReply(const char* req, std::string& out) {
  resp::appendBulk(out, arg(req, 1));
  return true;
}

bool RedisSession::timeReply(const char*, std::string& out) {
  uv_timeval64_t tv;
  uv_gettimeofday(&tv);
  resp::appendArrayHeader(out, 2);
  resp::appendBulk(out, std::to_string(tv.tv_sec));
  resp::appendBulk(out, std::to_string(tv.tv_usec));
  return true;
}

void RedisSession::mergeInfo(RedisRequest& r, const InfoMerge& m) {
  // One INFO for the pool: the backends' version, the proxy's own section, and the keyspace
  // summed over the shards (the pool's redis_db is what the client sees as db0).
  const PoolRoute* route = poolRoute();
  if (route == nullptr) {
    resp::appendError(r.reply, "ERR this pool was removed from the configuration");
    return;
  }
  const config::Pool& pool = route->config;
  const std::string dbPrefix = "db" + std::to_string(pool.redisDb) + ":";
  std::string version = "unknown";
  int64_t keys = 0, expires = 0, up = 0;
  double ttlSum = 0;
  for (uint32_t f = 0; f < r.fragmentCount(); ++f) {
    const Fragment& frag = r.fragment(f);
    // RESP2 backends answer INFO with a bulk string, RESP3 ones with a verbatim string ("txt:").
    if (frag.failed || frag.reply.empty() || (frag.reply[0] != '$' && frag.reply[0] != '=')) continue;
    up++;
    std::string_view text(frag.reply);
    if (frag.reply[0] == '=') {
      const size_t txt = text.find("txt:");
      if (txt != std::string_view::npos) text.remove_prefix(txt + 4);
    }
    size_t pos = 0;
    while (pos < text.size()) {
      size_t eol = text.find('\n', pos);
      if (eol == std::string_view::npos) eol = text.size();
      std::string_view line = text.substr(pos, eol - pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      pos = eol + 1;
      if (line.rfind("redis_version:", 0) == 0 && version == "unknown") version = std::string(line.substr(14));
      if (line.rfind("redis_version:", 0) == 0 && m.hello) break;  // all HELLO needs
      if (line.rfind(dbPrefix, 0) == 0) {
        // db0:keys=N,expires=M,avg_ttl=T
        int64_t k = 0, e = 0, t = 0;
        std::sscanf(std::string(line.substr(dbPrefix.size())).c_str(), "keys=%ld,expires=%ld,avg_ttl=%ld", &k, &e, &t);
        keys += k;
        expires += e;
        ttlSum += double(t) * double(k);
      }
    }
  }
  if (version != "unknown") route->gauges->setBackendVersion(version);
  if (m.hello) {
    appendHelloReply(r.reply, version != "unknown" ? version : std::string(kReportedRedisVersion));
    return;
  }
  const uint8_t sections = m.sections;
  std::string info;
  auto startSection = [&](const char* title) {
    if (!info.empty()) info += "\r\n";  // sections are separated by an empty line
    info += title;
  };
  if (sections & InfoMerge::kServer) {
    startSection("# Server\r\n");
    info += "redis_version:" + version + "\r\nredis_mode:standalone\r\n";
    info += "process_id:" + std::to_string(uv_os_getpid()) + "\r\n";
    info += "tcp_port:" + std::to_string(pool.listen.port) + "\r\n";
    info += "uptime_in_seconds:" + std::to_string(processUptimeSeconds()) + "\r\n";
    info += "loading:0\r\n";
  }
  if (sections & InfoMerge::kProxy) {
    startSection("# Proxy\r\n");
    info += "proxy:ringproxy\r\nproxy_version:" RINGPROXY_VERSION "\r\n";
    info += "pool:" + pool.name + "\r\n";
    info += "backends:" + std::to_string(r.fragmentCount()) + "\r\n";
    info += "backends_answering:" + std::to_string(up) + "\r\n";
    info += "worker:" + std::to_string(host_.id()) + "\r\n";
  }
  if (sections & InfoMerge::kKeyspace) {
    startSection("# Keyspace\r\n");
    if (keys > 0) {
      info += "db0:keys=" + std::to_string(keys) + ",expires=" + std::to_string(expires) +
              ",avg_ttl=" + std::to_string(static_cast<int64_t>(ttlSum / double(keys))) + "\r\n";
    }
  }
  resp::appendBulk(r.reply, info);
}

void RedisSession::cmdSelect(const CommandSpec&, const char* req) {
  s_.bytes.clear();
  int64_t db = 0;
  const std::string_view a = arg(req, 1);
  auto [p, ec] = std::from_chars(a.data(), a.data() + a.size(), db);
  if (ec != std::errc() || p != a.data() + a.size()) {
    replyError("ERR value is not an integer or out of range");
    return;
  }
  // Redis checks the index against its `databases` setting; the pool says what the backends
  // have (databases, default 16, as Redis's).
  if (db < 0 || db >= static_cast<int64_t>(poolRoute()->config.databases)) {
    replyError("ERR DB index is out of range");
    return;
  }
  // From now on this client's requests travel on connections in that database, on every
  // backend (the pool's redis_db is only the default).
  db_ = static_cast<int>(db) == poolRoute()->config.redisDb ? SessionHost::kPoolDb : static_cast<int>(db);
  entry_.db.store(static_cast<int>(db), std::memory_order_relaxed);
  resp::appendSimpleString(s_.bytes, "OK");
  replyLocal(s_.bytes);
}

void RedisSession::cmdAuth(const CommandSpec&, const char* req) {
  s_.bytes.clear();
  const config::Pool& pool = poolRoute()->config;
  if (argc() > 3) {
    replyError("ERR wrong number of arguments for 'auth' command");
    return;
  }
  if (pool.redisAuth.empty() && pool.users.empty()) {
    replyError("ERR AUTH <password> called without any password configured for the default user. "
               "Are you sure your configuration is correct?");
    return;
  }
  // AUTH password (the default user), or AUTH user password (Redis 6 ACL form).
  if (login(argc() == 3 ? arg(req, 1) : std::string_view("default"), arg(req, argc() - 1))) {
    resp::appendSimpleString(s_.bytes, "OK");
    replyLocal(s_.bytes);
    return;
  }
  replyError("WRONGPASS invalid username-password pair or user is disabled.");
}

namespace {

std::string sha256Hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), digest, &n, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

// Compared in constant time: how long a wrong password takes must not say how much was right.
bool sameSecret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

}  // namespace

bool RedisSession::login(std::string_view user, std::string_view password) {
  const config::Pool& pool = poolRoute()->config;
  if (user == "default" && !pool.redisAuth.empty() && sameSecret(password, pool.redisAuth)) {
    authenticated_ = true;
    user_.reset();
    return true;
  }
  for (const config::User& u : pool.users) {
    if (u.name != user) continue;
    const bool ok = u.passwordSha256.empty() ? sameSecret(password, u.password)
                                             : sameSecret(sha256Hex(password), u.passwordSha256);
    if (!ok) break;
    authenticated_ = true;
    user_ = std::make_unique<UserLimits>(UserLimits{u.name, u.readOnly, u.keyPrefix});
    return true;
  }
  stats().authFailures++;
  return false;
}

bool RedisSession::permitted(const CommandSpec& spec, const char* req) {
  const UserLimits& u = *user_;
  if (u.readOnly && spec.write()) {
    stats().permissionDenied++;
    replyError("NOPERM User " + u.name + " has no permissions to run the '" + std::string(spec.name) + "' command");
    return false;
  }
  if (u.keyPrefix.empty()) return true;
  if (!commandHasKeys(spec)) {
    // Keyless commands that read or change the whole keyspace would reach other users' keys.
    static constexpr std::string_view kKeyspaceWide[] = {"keys", "scan", "randomkey", "dbsize", "flushdb",
                                                        "flushall", "swapdb", "function", "script"};
    for (std::string_view name : kKeyspaceWide) {
      if (spec.name == name) {
        stats().permissionDenied++;
        replyError("NOPERM User " + u.name + " has no permissions to run the '" + std::string(spec.name) +
                   "' command (it is limited to keys starting with " + u.keyPrefix + ")");
        return false;
      }
    }
    return true;
  }
  s_.keys.clear();
  if (!keyIndexes(spec, argc(), [&](size_t i) { return arg(req, i); }, s_.keys)) return true;  // refused later
  for (uint32_t k : s_.keys) {
    if (arg(req, k).substr(0, u.keyPrefix.size()) != u.keyPrefix) {
      stats().permissionDenied++;
      replyError("NOPERM No permissions to access a key");
      return false;
    }
  }
  return true;
}

void RedisSession::cmdAcl(const CommandSpec&, const char* req) {
  // ACL WHOAMI is a client's own business; the rest administers one server.
  if (argc() == 2 && equalsLower(arg(req, 1), "whoami")) {
    if (authRequired()) {
      replyError("NOAUTH Authentication required.");
      return;
    }
    s_.bytes.clear();
    resp::appendBulk(s_.bytes, user_ != nullptr ? std::string_view(user_->name) : std::string_view("default"));
    replyLocal(s_.bytes);
    return;
  }
  replyError("ERR ringproxy: 'acl' is refused (but ACL WHOAMI): it administers one server: send it to the backends "
             "directly");
}

void RedisSession::cmdHello(const CommandSpec&, const char* req) {
  resp::Protocol proto = protocol_;
  size_t i = 1;
  if (argc() > 1) {
    const std::string_view v = arg(req, 1);
    if (v == "2") proto = resp::Protocol::Resp2;
    else if (v == "3") proto = resp::Protocol::Resp3;
    else {
      int64_t n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || p != v.data() + v.size()) replyError("ERR Protocol version is not an integer or out of range");
      else replyError("NOPROTO unsupported protocol version");
      return;
    }
    i = 2;
  }
  std::string name = entry_.name;
  bool authOk = !authRequired();
  for (; i < argc(); ++i) {
    const std::string_view opt = arg(req, i);
    if (equalsLower(opt, "auth") && i + 2 < argc()) {
      const config::Pool& pool = poolRoute()->config;
      if (pool.redisAuth.empty() && pool.users.empty()) {
        replyError("ERR AUTH <password> called without any password configured for the default user. "
                   "Are you sure your configuration is correct?");
        return;
      }
      if (!login(arg(req, i + 1), arg(req, i + 2))) {
        replyError("WRONGPASS invalid username-password pair or user is disabled.");
        return;
      }
      authOk = true;
      i += 2;
    } else if (equalsLower(opt, "setname") && i + 1 < argc()) {
      name = std::string(arg(req, i + 1));
      i += 1;
    } else {
      replyError("ERR Syntax error in HELLO option '" + std::string(opt) + "'");
      return;
    }
  }
  if (!authOk) {
    replyError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> "
               "AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol "
               "version at the same time");
    return;
  }
  authenticated_ = authenticated_ || authOk;
  protocol_ = proto;
  entry_.resp.store(static_cast<int>(proto), std::memory_order_relaxed);
  if (name != entry_.name) ClientDirectory::instance().setName(&entry_, std::move(name));
  // The backends' version, as INFO reports it: known once any INFO (or an earlier HELLO) of
  // this pool has been answered; else asked of the backends now (the reply waits its turn
  // behind the client's earlier requests like any other).
  const std::string version = poolRoute()->gauges->backendVersion();
  if (version.empty()) {
    RedisRequest* r = newRedisRequest();
    broadcast<InfoMerge>(*r, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n").hello = true;
    if (r->waiting == 0) fragmentsDone(*r);
    return;
  }
  s_.bytes.clear();
  appendHelloReply(s_.bytes, version);
  replyLocal(s_.bytes);
}

void RedisSession::appendHelloReply(std::string& out, std::string_view version) {
  resp::appendMapHeader(out, 7, protocol_);
  resp::appendBulk(out, "server");
  resp::appendBulk(out, "redis");
  resp::appendBulk(out, "version");
  resp::appendBulk(out, version);
  resp::appendBulk(out, "proto");
  resp::appendInteger(out, static_cast<int>(protocol_));
  resp::appendBulk(out, "id");
  resp::appendInteger(out, static_cast<int64_t>(clientId_));
  resp::appendBulk(out, "mode");
  resp::appendBulk(out, "standalone");
  resp::appendBulk(out, "role");
  resp::appendBulk(out, "master");
  resp::appendBulk(out, "modules");
  resp::appendArrayHeader(out, 0);
}

void RedisSession::appendCommandInfo(std::string& out, const CommandSpec& spec) {
  // [name, arity, flags, first key, last key, step]: the RESP2-era fields every client reads.
  // A command whose keys move with its arguments (numkeys, STREAMS, STORE) is flagged
  // movablekeys, as Redis flags it, so a client asks COMMAND GETKEYS where they are; a
  // command without keys (a channel is not one) has 0 0 0.
  const KeySpec& k = spec.keys;
  const bool keys = commandHasKeys(spec);
  const bool movable = keys && (k.numkeysAt > 0 || k.streams || k.optionsFrom > 0);
  resp::appendArrayHeader(out, 6);
  resp::appendBulk(out, spec.name);
  resp::appendInteger(out, spec.arity);
  resp::appendSetHeader(out, movable ? 2 : 1, protocol_);
  resp::appendSimpleString(out, spec.write() ? "write" : "readonly");
  if (movable) resp::appendSimpleString(out, "movablekeys");
  resp::appendInteger(out, keys ? k.first : 0);
  resp::appendInteger(out, keys ? k.last : 0);
  resp::appendInteger(out, keys && k.first > 0 ? k.step : 0);
}

void RedisSession::cmdCommand(const CommandSpec&, const char* req) {
  s_.bytes.clear();
  const auto table = commandTable();
  auto supported = [](const CommandSpec& s) { return s.route != Route::Unsupported; };
  if (argc() == 1) {
    resp::appendArrayHeader(s_.bytes, std::count_if(table.begin(), table.end(), supported));
    for (const CommandSpec& s : table)
      if (supported(s)) appendCommandInfo(s_.bytes, s);
    replyLocal(s_.bytes);
    return;
  }
  const std::string sub = asciiLower(arg(req, 1));
  if (sub == "count") {
    resp::appendInteger(s_.bytes, std::count_if(table.begin(), table.end(), supported));
  } else if (sub == "info") {
    resp::appendArrayHeader(s_.bytes, argc() - 2);
    for (size_t i = 2; i < argc(); ++i) {
      const CommandSpec* s = findCommand(arg(req, i));
      if (s != nullptr && supported(*s)) appendCommandInfo(s_.bytes, *s);
      else resp::appendNullArray(s_.bytes, protocol_);
    }
  } else if (sub == "getkeys" || sub == "getkeysandflags") {
    if (argc() < 4) {
      replyError("ERR wrong number of arguments for 'command|" + sub + "' command");
      return;
    }
    const std::string error = getKeysReply(argc() - 2, [&](size_t i) { return arg(req, i + 2); },
                                           sub == "getkeysandflags", protocol_, s_.keys, s_.bytes);
    if (!error.empty()) {
      replyError(error);
      return;
    }
  } else if (sub == "docs") {
    // COMMAND DOCS [name ...]: for each command, how the proxy treats it (clients such as
    // redis-cli use this for help text); a refused command says why. Unknown names are left
    // out, as Redis leaves them out.
    std::vector<const CommandSpec*> docs;
    if (argc() == 2) {
      for (const CommandSpec& c : table) docs.push_back(&c);
    } else {
      for (size_t i = 2; i < argc(); ++i) {
        const CommandSpec* c = findCommand(arg(req, i));
        if (c != nullptr) docs.push_back(c);
      }
    }
    resp::appendMapHeader(s_.bytes, docs.size(), protocol_);
    for (const CommandSpec* c : docs) {
      resp::appendBulk(s_.bytes, c->name);
      resp::appendMapHeader(s_.bytes, 3, protocol_);
      resp::appendBulk(s_.bytes, "summary");
      std::string summary = routeSummary(c->route);
      if (c->route == Route::Unsupported) summary += std::string(": ") + std::string(refusalReason(c->refusal));
      else summary += checkSummary(c->check);
      resp::appendBulk(s_.bytes, summary);
      resp::appendBulk(s_.bytes, "group");
      resp::appendBulk(s_.bytes, "ringproxy");
      resp::appendBulk(s_.bytes, "arity");
      resp::appendInteger(s_.bytes, c->arity);
    }
  } else if (sub == "list") {
    resp::appendArrayHeader(s_.bytes, std::count_if(table.begin(), table.end(), supported));
    for (const CommandSpec& s : table)
      if (supported(s)) resp::appendBulk(s_.bytes, s.name);
  } else {
    replyError("ERR unknown subcommand '" + std::string(arg(req, 1)) + "'. Try COMMAND HELP.");
    return;
  }
  replyLocal(s_.bytes);
}

}  // namespace proxy
