// The commands a Redis session answers itself: connection state (PING, ECHO, QUIT, SELECT,
// AUTH, HELLO, CLIENT ...) and introspection clients need (COMMAND).
#include <algorithm>
#include <cctype>
#include <charconv>

#include "proxy/redis_session.h"
#include "proxy/worker.h"

namespace proxy {

namespace resp = backends::resp;

namespace {

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The version the proxy reports in HELLO: the Redis protocol generation it speaks.
constexpr std::string_view kReportedRedisVersion = "7.0.0";

}  // namespace

void RedisSession::runLocal(const CommandSpec& spec, const char* req) {
  const std::string_view n = spec.name;
  scratch_.clear();
  if (n == "ping") {
    cmdPing(req);
  } else if (n == "echo") {
    resp::appendBulk(scratch_, arg(req, 1));
    replyLocal(scratch_);
  } else if (n == "quit") {
    scratch_ = "+OK\r\n";
    replyLocal(scratch_);
    if (head_ != nullptr) tail_->closeAfter = true;  // queued behind earlier replies
    else closeAfterFlush();
  } else if (n == "select") {
    cmdSelect(req);
  } else if (n == "auth") {
    cmdAuth(req);
  } else if (n == "hello") {
    cmdHello(req);
  } else if (n == "command") {
    cmdCommand(req);
  } else if (n == "client") {
    cmdClient(req);
  } else if (n == "time") {
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    resp::appendArrayHeader(scratch_, 2);
    resp::appendBulk(scratch_, std::to_string(tv.tv_sec));
    resp::appendBulk(scratch_, std::to_string(tv.tv_usec));
    replyLocal(scratch_);
  } else {
    replyError("ERR ringproxy does not support '" + std::string(n) + "' yet");
  }
}

void RedisSession::cmdPing(const char* req) {
  if (argc() > 2) {
    replyError("ERR wrong number of arguments for 'ping' command");
    return;
  }
  if (argc() == 2) resp::appendBulk(scratch_, arg(req, 1));
  else resp::appendSimpleString(scratch_, "PONG");
  replyLocal(scratch_);
}

void RedisSession::cmdSelect(const char* req) {
  int64_t db = 0;
  const std::string_view a = arg(req, 1);
  auto [p, ec] = std::from_chars(a.data(), a.data() + a.size(), db);
  if (ec != std::errc() || p != a.data() + a.size()) {
    replyError("ERR value is not an integer or out of range");
    return;
  }
  if (db != 0) {
    replyError("ERR ringproxy serves one database per pool (redis_db in the config); only SELECT 0 is accepted");
    return;
  }
  resp::appendSimpleString(scratch_, "OK");
  replyLocal(scratch_);
}

void RedisSession::cmdAuth(const char* req) {
  const std::string& password = worker_.snapshot().pools[pool_].config.redisAuth;
  if (argc() > 3) {
    replyError("ERR wrong number of arguments for 'auth' command");
    return;
  }
  if (password.empty()) {
    replyError("ERR AUTH <password> called without any password configured for the default user. "
               "Are you sure your configuration is correct?");
    return;
  }
  // AUTH password, or AUTH default password (Redis 6 ACL form with the default user).
  const bool userOk = argc() == 2 || arg(req, 1) == "default";
  if (userOk && arg(req, argc() - 1) == password) {
    authenticated_ = true;
    resp::appendSimpleString(scratch_, "OK");
    replyLocal(scratch_);
    return;
  }
  replyError("WRONGPASS invalid username-password pair or user is disabled.");
}

void RedisSession::cmdHello(const char* req) {
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
  std::string name = clientName_;
  bool authOk = !authRequired();
  for (; i < argc(); ++i) {
    const std::string_view opt = arg(req, i);
    if (equalsIgnoreCase(opt, "AUTH") && i + 2 < argc()) {
      const std::string& password = worker_.snapshot().pools[pool_].config.redisAuth;
      const bool ok = !password.empty() && arg(req, i + 1) == "default" && arg(req, i + 2) == password;
      if (!ok) {
        replyError(password.empty() ? "ERR AUTH <password> called without any password configured for the default user. "
                                      "Are you sure your configuration is correct?"
                                    : "WRONGPASS invalid username-password pair or user is disabled.");
        return;
      }
      authOk = true;
      i += 2;
    } else if (equalsIgnoreCase(opt, "SETNAME") && i + 1 < argc()) {
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
  clientName_ = name;
  scratch_.clear();
  resp::appendMapHeader(scratch_, 7, protocol_);
  resp::appendBulk(scratch_, "server");
  resp::appendBulk(scratch_, "redis");
  resp::appendBulk(scratch_, "version");
  resp::appendBulk(scratch_, kReportedRedisVersion);
  resp::appendBulk(scratch_, "proto");
  resp::appendInteger(scratch_, static_cast<int>(protocol_));
  resp::appendBulk(scratch_, "id");
  resp::appendInteger(scratch_, static_cast<int64_t>(clientId_));
  resp::appendBulk(scratch_, "mode");
  resp::appendBulk(scratch_, "standalone");
  resp::appendBulk(scratch_, "role");
  resp::appendBulk(scratch_, "master");
  resp::appendBulk(scratch_, "modules");
  resp::appendArrayHeader(scratch_, 0);
  replyLocal(scratch_);
}

void RedisSession::appendCommandInfo(std::string& out, const CommandSpec& spec) {
  // [name, arity, flags, first key, last key, step]: the RESP2-era fields every client reads.
  resp::appendArrayHeader(out, 6);
  resp::appendBulk(out, spec.name);
  resp::appendInteger(out, spec.arity);
  resp::appendSetHeader(out, 1, protocol_);
  resp::appendSimpleString(out, spec.write ? "write" : "readonly");
  resp::appendInteger(out, spec.keys.first);
  resp::appendInteger(out, spec.keys.last);
  resp::appendInteger(out, spec.keys.step);
}

void RedisSession::cmdCommand(const char* req) {
  const auto table = commandTable();
  auto supported = [](const CommandSpec& s) { return s.route != Route::Unsupported; };
  if (argc() == 1) {
    resp::appendArrayHeader(scratch_, std::count_if(table.begin(), table.end(), supported));
    for (const CommandSpec& s : table)
      if (supported(s)) appendCommandInfo(scratch_, s);
    replyLocal(scratch_);
    return;
  }
  const std::string sub = lower(arg(req, 1));
  if (sub == "count") {
    resp::appendInteger(scratch_, std::count_if(table.begin(), table.end(), supported));
  } else if (sub == "info") {
    resp::appendArrayHeader(scratch_, argc() - 2);
    for (size_t i = 2; i < argc(); ++i) {
      const CommandSpec* s = findCommand(arg(req, i));
      if (s != nullptr && supported(*s)) appendCommandInfo(scratch_, *s);
      else resp::appendNullArray(scratch_, protocol_);
    }
  } else if (sub == "docs") {
    // No documentation is served; an empty map is what clients accept for "nothing known".
    resp::appendMapHeader(scratch_, 0, protocol_);
  } else if (sub == "list") {
    resp::appendArrayHeader(scratch_, std::count_if(table.begin(), table.end(), supported));
    for (const CommandSpec& s : table)
      if (supported(s)) resp::appendBulk(scratch_, s.name);
  } else {
    replyError("ERR unknown subcommand '" + std::string(arg(req, 1)) + "'. Try COMMAND HELP.");
    return;
  }
  replyLocal(scratch_);
}

void RedisSession::cmdClient(const char* req) {
  if (argc() < 2) {
    replyError("ERR wrong number of arguments for 'client' command");
    return;
  }
  const std::string sub = lower(arg(req, 1));
  if (sub == "setname" && argc() == 3) {
    const std::string_view name = arg(req, 2);
    if (std::any_of(name.begin(), name.end(), [](char c) { return c <= ' ' || c > '~'; })) {
      replyError("ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    clientName_ = std::string(name);
    resp::appendSimpleString(scratch_, "OK");
  } else if (sub == "getname" && argc() == 2) {
    if (clientName_.empty()) resp::appendNull(scratch_, protocol_);
    else resp::appendBulk(scratch_, clientName_);
  } else if (sub == "id" && argc() == 2) {
    resp::appendInteger(scratch_, static_cast<int64_t>(clientId_));
  } else if ((sub == "setinfo" && argc() == 4) || ((sub == "no-evict" || sub == "no-touch") && argc() == 3) ||
             (sub == "reply" && argc() == 3 && equalsIgnoreCase(arg(req, 2), "on"))) {
    // Per-connection hints with no effect through a proxy: accepted, as clients send them
    // during their handshake and treat an error as fatal.
    resp::appendSimpleString(scratch_, "OK");
  } else if (sub == "info" && argc() == 2) {
    const std::string line = "id=" + std::to_string(clientId_) + " name=" + clientName_ +
                             " db=0 resp=" + std::to_string(static_cast<int>(protocol_)) + " lib-name= lib-ver=\n";
    resp::appendBulk(scratch_, line);
  } else {
    replyError("ERR ringproxy does not support 'CLIENT " + std::string(arg(req, 1)) +
               "' (the proxy answers SETNAME, GETNAME, ID, INFO, SETINFO, NO-EVICT, NO-TOUCH)");
    return;
  }
  replyLocal(scratch_);
}

}  // namespace proxy
