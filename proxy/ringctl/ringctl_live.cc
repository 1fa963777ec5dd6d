// ringctl's live commands: `status` asks a running proxy's admin endpoint what it is doing;
// `balance` asks every backend how many keys it holds and compares that with the ring.
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <thread>

#include "config/load.h"
#include "proxy/common/json_writer.h"
#include "proxy/ringctl/ringctl_commands.h"
#include "ring/ring_diff.h"

namespace proxy::ringctl {
namespace {

// A plain TCP connection with a deadline, for the admin endpoint and memcached backends.
int connectTo(const std::string& host, const std::string& port, int timeoutMs, std::string& error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    error = "cannot resolve " + host;
    return -1;
  }
  const int fd = socket(res->ai_family, SOCK_STREAM, 0);
  if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    error = "cannot connect to " + host + ":" + port + ": " + std::strerror(errno);
    close(fd);
    freeaddrinfo(res);
    return -1;
  }
  freeaddrinfo(res);
  timeval tv{timeoutMs / 1000, (timeoutMs % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `request` and reads until the peer closes (or `until` appears).
bool exchange(int fd, const std::string& request, std::string& reply, const char* until) {
  if (!request.empty() && send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
    return false;
  char buf[16384];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return n == 0;
    reply.append(buf, static_cast<size_t>(n));
    if (until != nullptr && reply.find(until) != std::string::npos) return true;
  }
}

// `token`: sent as "Authorization: Bearer <token>" when not empty (ringproxy --admin-token-file).
bool httpGet(const std::string& addr, const std::string& path, const std::string& token, std::string& body,
             std::string& error) {
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos) {
    error = "give the admin address as HOST:PORT (ringproxy --admin HOST:PORT)";
    return false;
  }
  const int fd = connectTo(addr.substr(0, colon), addr.substr(colon + 1), 5000, error);
  if (fd < 0) return false;
  std::string reply;
  const std::string auth = token.empty() ? "" : "Authorization: Bearer " + token + "\r\n";
  const bool ok =
      exchange(fd, "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n" + auth + "Connection: close\r\n\r\n", reply, nullptr);
  close(fd);
  const size_t end = reply.find("\r\n\r\n");
  if (!ok || end == std::string::npos || reply.compare(0, 12, "HTTP/1.1 200") != 0) {
    error = "unexpected answer from " + addr + path + ": " + reply.substr(0, reply.find("\r\n"));
    return false;
  }
  body = reply.substr(end + 4);
  return true;
}

std::vector<std::vector<std::string>> tsvLines(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    size_t pos = 0;
    for (;;) {
      const size_t tab = line.find('\t', pos);
      fields.push_back(line.substr(pos, tab == std::string::npos ? std::string::npos : tab - pos));
      if (tab == std::string::npos) break;
      pos = tab + 1;
    }
    out.push_back(std::move(fields));
  }
  return out;
}

}  // namespace

int runStatus(const Options& o) {
  if (o.positional.size() != 1) {
    std::fprintf(stderr, "ringctl: status takes the admin address: ringctl status HOST:PORT\n");
    return kExitUsage;
  }
  const std::string& addr = o.positional[0];
  std::string body, error, token;
  if (!o.tokenFile.empty()) {
    std::ifstream in(o.tokenFile);
    if (!in || !std::getline(in, token) || token.empty()) {
      std::fprintf(stderr, "ringctl: --token-file %s: cannot read a token from it\n", o.tokenFile.c_str());
      return kExitBadInput;
    }
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
  }
  if (o.json) {
    if (!httpGet(addr, "/status", token, body, error)) {
      std::fprintf(stderr, "ringctl: %s\n", error.c_str());
      return kExitBadInput;
    }
    std::fputs(body.c_str(), stdout);
    return kExitOk;
  }
  // Two samples a second apart give the rates.
  std::string first;
  if (!httpGet(addr, "/status?format=tsv", token, first, error)) {
    std::fprintf(stderr, "ringctl: %s\n", error.c_str());
    return kExitBadInput;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  if (!httpGet(addr, "/status?format=tsv", token, body, error)) {
    std::fprintf(stderr, "ringctl: %s\n", error.c_str());
    return kExitBadInput;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::map<std::string, double> before;
  for (const auto& f : tsvLines(first))
    if (f.size() >= 12 && f[0] == "backend") before[f[1] + "/" + f[2]] = std::stod(f[6]);
  for (const auto& f : tsvLines(body)) {
    if (f.size() >= 2 && f[0] == "generation") std::printf("generation %s\n", f[1].c_str());
    if (f.size() >= 3 && f[0] == "reloads") std::printf("reloads %s (failed %s)\n", f[1].c_str(), f[2].c_str());
    if (f.size() >= 6 && f[0] == "pool")
      std::printf("pool %s on %s: %s clients, %s requests, %s errors\n", f[1].c_str(), f[2].c_str(), f[3].c_str(),
                  f[4].c_str(), f[5].c_str());
    if (f.size() >= 7 && f[0] == "transition")
      std::printf("pool %s in transition from %s: %s keys checked on their previous owner, %s moved by requests, "
                  "%s old copies deleted, %s moves failed\n",
                  f[1].c_str(), f[2].c_str(), f[3].c_str(), f[4].c_str(), f[5].c_str(), f[6].c_str());
  }
  std::printf("  %-10s %-28s %-22s %-6s %10s %10s %9s %9s %8s  %s\n", "pool", "backend", "address", "health", "req/s",
              "requests", "failures", "timeouts", "inflight", "last error");
  for (const auto& f : tsvLines(body)) {
    if (f.size() < 12 || f[0] != "backend") continue;
    const double rate = (std::stod(f[6]) - before[f[1] + "/" + f[2]]) / seconds;
    const bool up = f[4] != "0" || f[8] == "0";
    std::printf("  %-10s %-28s %-22s %-6s %10.1f %10s %9s %9s %8s  %s\n", f[1].c_str(), f[2].c_str(), f[3].c_str(),
                up ? (f[4] != "0" ? "up" : "idle") : "down", rate, f[6].c_str(), f[8].c_str(), f[9].c_str(),
                f[10].c_str(), f[11].c_str());
  }
  return kExitOk;
}

int runBalance(const Options& o) {
  config::Topology topo;
  config::LoadError err;
  if (!config::loadTopologyFile(o.configFile, topo, err)) {
    std::fprintf(stderr, "ringctl: %s\n", err.str().c_str());
    return kExitBadInput;
  }
  JsonWriter j;
  j.beginObject().key("pools").beginArray();
  bool anyFailed = false;
  for (const config::Pool& pool : topo.pools) {
    if (!o.pool.empty() && pool.name != o.pool) continue;
    const ring::Ring r(pool.ringSpec());
    const ring::ShareReport shares = ring::computeShares(r);
    std::map<std::string, long long> counts;  // by address
    std::map<std::string, std::string> errors;
    long long total = 0;
    for (const config::Server& s : pool.servers) {
      long long n = -1;
      std::string why;
      if (pool.protocol == config::Protocol::Redis) {
        timeval tv{2, 0};
        redisContext* c = s.endpoint.isUnix() ? redisConnectUnixWithTimeout(s.endpoint.path.c_str(), tv)
                                              : redisConnectWithTimeout(s.endpoint.host.c_str(), s.endpoint.port, tv);
        if (c == nullptr || c->err) {
          why = c ? c->errstr : "out of memory";
        } else {
          const std::vector<std::string> auth = pool.backendAuthArgs();
          if (auth.size() == 1) freeReplyObject(redisCommand(c, "AUTH %s", auth[0].c_str()));
          if (auth.size() == 2) freeReplyObject(redisCommand(c, "AUTH %s %s", auth[0].c_str(), auth[1].c_str()));
          if (pool.redisDb != 0) freeReplyObject(redisCommand(c, "SELECT %d", pool.redisDb));
          auto* reply = static_cast<redisReply*>(redisCommand(c, "DBSIZE"));
          if (reply != nullptr && reply->type == REDIS_REPLY_INTEGER) n = reply->integer;
          else why = reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "no reply";
          freeReplyObject(reply);
        }
        if (c != nullptr) redisFree(c);
      } else {
        std::string error;
        const int fd = connectTo(s.endpoint.host, std::to_string(s.endpoint.port), 2000, error);
        std::string reply;
        if (fd >= 0 && exchange(fd, "stats\r\n", reply, "END\r\n")) {
          const size_t p = reply.find("STAT curr_items ");
          if (p != std::string::npos) n = std::atoll(reply.c_str() + p + 16);
        } else {
          why = error.empty() ? "no reply to stats" : error;
        }
        if (fd >= 0) close(fd);
      }
      if (n < 0) {
        errors[s.endpoint.str()] = why.empty() ? "unknown error" : why;
        anyFailed = true;
      } else {
        counts[s.endpoint.str()] = n;
        total += n;
      }
    }
    if (!o.json) {
      std::printf("pool %s: %lld keys on %zu servers\n", pool.name.c_str(), total, pool.servers.size());
      std::printf("  %-32s %12s %10s %10s %8s\n", "node", "keys", "actual", "expected", "ratio");
    }
    j.beginObject().key("pool").value(pool.name).key("keys").value(int64_t(total)).key("nodes").beginArray();
    for (const auto& n : shares.nodes) {
      const auto it = counts.find(n.address);
      j.beginObject().key("node").value(n.label).key("address").value(n.address).key("expected").value(n.share);
      if (it == counts.end()) {
        j.key("error").value(errors[n.address]).endObject();
        if (!o.json) std::printf("  %-32s %12s %10s %9.4f%%   %s\n", n.label.c_str(), "?", "?", n.share * 100, errors[n.address].c_str());
        continue;
      }
      const double actual = total > 0 ? double(it->second) / double(total) : 0;
      j.key("keys").value(int64_t(it->second)).key("actual").value(actual).endObject();
      if (!o.json)
        std::printf("  %-32s %12lld %9.4f%% %9.4f%% %8.3f\n", n.label.c_str(), it->second, actual * 100, n.share * 100,
                    n.share > 0 ? actual / n.share : 0);
    }
    j.endArray().endObject();
  }
  j.endArray().endObject();
  if (o.json) std::printf("%s\n", j.str().c_str());
  return anyFailed ? kExitBadInput : kExitOk;
}

}  // namespace proxy::ringctl
