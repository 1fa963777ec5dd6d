#include "proxy/control/admin_server.h"

#include <cstring>

#include "proxy/control/control.h"
#include "proxy/runtime/log.h"
#include "proxy/control/stats_format.h"

namespace proxy {

namespace {
constexpr size_t kMaxRequest = 8 * 1024;
constexpr uint64_t kRequestTimeoutMs = 5000;

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

std::string queryParam(const std::string& target, const std::string& name) {
  const size_t q = target.find('?');
  if (q == std::string::npos) return "";
  std::string query = target.substr(q + 1);
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    const std::string pair = query.substr(pos, amp - pos);
    const size_t eq = pair.find('=');
    if (eq != std::string::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    pos = amp + 1;
  }
  return "";
}
}  // namespace

struct AdminServer::Conn {
  AdminServer* server = nullptr;
  uv_tcp_t tcp{};
  uv_timer_t timer{};
  uv_write_t write{};
  std::string in;
  std::string out;
  int closing = 0;  // handles still to close

  void close() {
    if (closing > 0) return;
    closing = 2;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
    auto done = [](uv_handle_t* h) {
      auto* c = static_cast<Conn*>(h->data);
      if (--c->closing == 0) delete c;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), done);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), done);
  }
};

bool AdminServer::start(const std::string& host, int port, std::string& error) {
  uv_loop_t* loop = control_.loop();
  sockaddr_storage addr{};
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    error = "bad address '" + host + "' (give a literal IP address)";
    return false;
  }
  uv_tcp_init(loop, &server_);
  server_.data = this;
  open_ = true;
  int rc = uv_tcp_bind(&server_, reinterpret_cast<sockaddr*>(&addr), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 64, [](uv_stream_t* s, int status) {
      if (status == 0) static_cast<AdminServer*>(s->data)->onConnection();
    });
  }
  if (rc < 0) {
    error = "cannot listen on " + host + ":" + std::to_string(port) + ": " + uv_strerror(rc);
    close();
    return false;
  }
  return true;
}

void AdminServer::close() {
  if (!open_) return;
  open_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
}

void AdminServer::onConnection() {
  auto* c = new Conn();
  c->server = this;
  uv_tcp_init(control_.loop(), &c->tcp);
  uv_timer_init(control_.loop(), &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&server_), reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->close();
    return;
  }
  if (mode_ == Mode::StatsPort) {  // twemproxy: write the JSON, then close
    c->out = twemproxyStatsJson(control_.collectStats(), *control_.snapshot());
    respond(c);
    return;
  }
  uv_timer_start(&c->timer, [](uv_timer_t* t) { static_cast<Conn*>(t->data)->close(); }, kRequestTimeoutMs, 0);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static char scratch[4096];  // control thread only; bytes are copied out at once
        *buf = uv_buf_init(scratch, sizeof scratch);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* c = static_cast<Conn*>(s->data);
        if (n < 0) {
          c->close();
          return;
        }
        c->in.append(buf->base, static_cast<size_t>(n));
        AdminServer* self = c->server;
        const size_t end = c->in.find("\r\n\r\n");
        std::string method, target, contentType = "text/plain; charset=utf-8";
        int status = 200;
        std::string body;
        if (end == std::string::npos && c->in.size() <= kMaxRequest) return;  // wait for the rest
        if (end == std::string::npos || end + 4 > kMaxRequest) {
          status = 413;
          body = "request too large\n";
        } else {
          const size_t lineEnd = c->in.find("\r\n");
          const std::string line = c->in.substr(0, lineEnd);
          const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
          if (sp1 == std::string::npos || sp2 == sp1 || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
            status = 400;
            body = "malformed request line\n";
          } else {
            method = line.substr(0, sp1);
            target = line.substr(sp1 + 1, sp2 - sp1 - 1);
            body = self->handle(method, target, status, contentType);
          }
        }
        uv_read_stop(s);
        c->out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\nContent-Type: " + contentType +
                 "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
                 (method == "HEAD" ? "" : body);
        self->respond(c);
      });
}

void AdminServer::respond(Conn* c) {
  uv_buf_t buf = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
  c->write.data = c;
  const int rc = uv_write(&c->write, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1,
                          [](uv_write_t* w, int) { static_cast<Conn*>(w->data)->close(); });
  if (rc < 0) c->close();
}

std::string AdminServer::handle(const std::string& method, const std::string& target, int& status,
                                std::string& contentType) {
  const std::string path = target.substr(0, target.find('?'));
  const bool get = method == "GET" || method == "HEAD";
  if (path == "/reload") {
    if (method != "POST") {
      status = 405;
      return "use POST /reload\n";
    }
    std::string error;
    contentType = "application/json";
    if (control_.reload("POST /reload", &error)) {
      return "{\"ok\":true,\"generation\":" + std::to_string(control_.reloadStats().generation) + "}\n";
    }
    status = 422;
    std::string escaped;
    for (char ch : error) {
      if (ch == '"' || ch == '\\') escaped += '\\';
      escaped += (ch == '\n') ? ' ' : ch;
    }
    return "{\"ok\":false,\"error\":\"" + escaped + "\"}\n";
  }
  if (path == "/metrics" || path == "/stats" || path == "/ring" || path == "/status") {
    if (!get) {
      status = 405;
      return "use GET " + path + "\n";
    }
  } else {
    status = 404;
    return "not found; try /metrics, /stats, /status, /ring?pool=NAME or POST /reload\n";
  }
  if (path == "/metrics") {
    contentType = "text/plain; version=0.0.4; charset=utf-8";
    return prometheusText(control_.collectStats(), *control_.snapshot(), control_.reloadStats());
  }
  if (path == "/status" && queryParam(target, "format") == "tsv")
    return statusTsv(control_.collectStats(), *control_.snapshot(), control_.reloadStats());
  contentType = "application/json";
  if (path == "/stats") return twemproxyStatsJson(control_.collectStats(), *control_.snapshot()) + "\n";
  if (path == "/status")
    return statusJson(control_.collectStats(), *control_.snapshot(), control_.reloadStats(),
                      static_cast<int>(control_.workers().size())) +
           "\n";
  const std::string pool = queryParam(target, "pool");
  std::string body = ringJson(*control_.snapshot(), pool);
  if (body.empty()) {
    status = pool.empty() ? 400 : 404;
    contentType = "text/plain; charset=utf-8";
    return pool.empty() ? "give the pool: /ring?pool=NAME\n" : "no pool '" + pool + "'\n";
  }
  return body + "\n";
}

}  // namespace proxy
