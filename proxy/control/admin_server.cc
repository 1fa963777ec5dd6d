#include "proxy/control/admin_server.h"

#include "proxy/control/admin_tls.h"

#include <utility>

#include "proxy/common/json_writer.h"
#include "proxy/control/control.h"
#include "proxy/control/http_request.h"
#include "proxy/control/stats_format.h"
#include "proxy/runtime/log.h"

namespace proxy {

namespace {

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 503: return "Service Unavailable";
  }
  return "Error";
}

SharedRendering::Text text(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

// Warn about the connection cap at most this often: a flood of connections should not
// become a flood of log lines.
constexpr uint64_t kCapWarningIntervalMs = 60000;

}  // namespace

struct AdminServer::Conn {
  AdminServer* server = nullptr;
  std::list<Conn*>::iterator position;  // in server->conns_ until close()
  uv_tcp_t tcp{};
  uv_timer_t timer{};  // the read deadline, then the write deadline
  uv_write_t write{};
  std::string in;
  // The answer: an HTTP head of its own (empty on the stats port) and a body that may be
  // shared with other connections; both live until the write has completed or was cancelled.
  std::string head;
  SharedRendering::Text body;
  std::unique_ptr<AdminTls> tls;  // the listener serves TLS (--admin-tls-cert)
  std::string handshakeOut;       // TLS records being written during the handshake
  uv_write_t handshakeWrite{};
  bool handshakeWriting = false;
  bool tcpOpen = false;    // initialised, so closed by close()
  bool timerOpen = false;
  bool closed = false;
  int closing = 0;  // handles still to close

  // Closes the handles; the Conn is deleted once they have closed. A pending write is
  // cancelled first (libuv calls its callback with UV_ECANCELED before the handle's close
  // callback), so `head` and `body` outlive it.
  void close() {
    if (closed) return;
    closed = true;
    server->conns_.erase(position);
    auto done = [](uv_handle_t* h) {
      auto* c = static_cast<Conn*>(h->data);
      if (--c->closing == 0) delete c;
    };
    if (tcpOpen) {
      closing++;
      uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
      uv_close(reinterpret_cast<uv_handle_t*>(&tcp), done);
    }
    if (timerOpen) {
      closing++;
      uv_close(reinterpret_cast<uv_handle_t*>(&timer), done);
    }
    if (closing == 0) delete this;
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
  loopback_ = isLoopbackAddress(host);
  int rc = uv_tcp_init(loop, &server_);
  if (rc < 0) {
    error = std::string("cannot create a socket: ") + uv_strerror(rc);
    return false;
  }
  server_.data = this;
  open_ = true;
  rc = uv_tcp_bind(&server_, reinterpret_cast<sockaddr*>(&addr), 0);
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
  while (!conns_.empty()) conns_.front()->close();
}

uint64_t AdminServer::nowMs() {
  // The loop's time brought up to date: a rendering may have held the loop a while.
  uv_update_time(control_.loop());
  return uv_now(control_.loop());
}

void AdminServer::closeOldest() {
  const uint64_t now = nowMs();
  if (lastCapWarningMs_ == 0 || now - lastCapWarningMs_ >= kCapWarningIntervalMs) {
    lastCapWarningMs_ = now;
    LOG_WARN("%s: %zu connections open, closing the oldest (clients that do not read what they are sent?)",
             mode_ == Mode::StatsPort ? "stats port" : "admin listener", conns_.size());
  }
  conns_.front()->close();
}

void AdminServer::onConnection() {
  if (conns_.size() >= kMaxConnections) closeOldest();
  auto* c = new Conn();
  c->server = this;
  c->position = conns_.insert(conns_.end(), c);
  uv_loop_t* loop = control_.loop();
  c->tcp.data = c;
  c->timer.data = c;
  c->tcpOpen = uv_tcp_init(loop, &c->tcp) == 0;
  c->timerOpen = uv_timer_init(loop, &c->timer) == 0;
  // Without its socket handle the connection stays in the backlog; without its timer it
  // would have no deadline. Neither fails on Linux short of a broken loop.
  if (!c->tcpOpen || !c->timerOpen ||
      uv_accept(reinterpret_cast<uv_stream_t*>(&server_), reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->close();
    return;
  }
  int sendBuffer = kSendBufferBytes;
  if (const int rc = uv_send_buffer_size(reinterpret_cast<uv_handle_t*>(&c->tcp), &sendBuffer); rc < 0)
    LOG_WARN("admin connection: cannot set SO_SNDBUF: %s", uv_strerror(rc));
  if (mode_ == Mode::StatsPort) {  // twemproxy: write the JSON, then close
    c->body = statsJson_.get([this] { return nowMs(); },
                             [&] { return twemproxyStatsJson(control_.collectStats(), *control_.snapshot()); });
    send(c);
    return;
  }
  uv_timer_start(&c->timer, [](uv_timer_t* t) { static_cast<Conn*>(t->data)->close(); }, kRequestTimeoutMs, 0);
  if (tlsContext_ != nullptr) c->tls = std::make_unique<AdminTls>(tlsContext_);
  const int rc = uv_read_start(
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
        if (c->tls == nullptr) {
          c->in.append(buf->base, static_cast<size_t>(n));
        } else {
          // The handshake's records go out as they come; the request is what they decrypt.
          if (!c->tls->receive(std::string_view(buf->base, static_cast<size_t>(n)), c->in)) {
            c->close();
            return;
          }
          std::string out = c->tls->takeCipher();
          if (!out.empty()) {
            if (c->handshakeWriting) {  // one handshake flight at a time is all TLS sends
              c->close();
              return;
            }
            c->handshakeOut = std::move(out);
            uv_buf_t b = uv_buf_init(c->handshakeOut.data(), static_cast<unsigned>(c->handshakeOut.size()));
            c->handshakeWrite.data = c;
            c->handshakeWriting = true;
            if (uv_write(&c->handshakeWrite, s, &b, 1, [](uv_write_t* w, int status) {
                  auto* conn = static_cast<Conn*>(w->data);
                  conn->handshakeWriting = false;
                  if (status < 0) conn->close();
                }) < 0) {
              c->close();
              return;
            }
          }
          if (c->in.empty()) return;
        }
        c->server->onRead(c);
      });
  if (rc < 0) c->close();
}

void AdminServer::onRead(Conn* c) {
  HttpRequest request;
  std::string why;
  Answer answer;
  switch (parseRequestHead(c->in, kMaxRequestHead, request, why)) {
    case HttpHead::NeedMore:
      // Never more than kMaxRequestHead + one read: beyond it the verdict is TooLarge.
      return;
    case HttpHead::TooLarge:
      answer.status = 413;
      answer.body = text("request too large\n");
      break;
    case HttpHead::Malformed:
      answer.status = 400;
      answer.body = text(why + "\n");
      break;
    case HttpHead::Complete:
      answer = handle(request);
      break;
  }
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&c->tcp));
  c->in.clear();
  c->in.shrink_to_fit();
  const size_t bodySize = answer.body ? answer.body->size() : 0;
  c->head = "HTTP/1.1 " + std::to_string(answer.status) + " " + reason(answer.status) +
            "\r\nContent-Type: " + answer.contentType + "\r\nContent-Length: " + std::to_string(bodySize) +
            "\r\n" + answer.extraHeaders + "Connection: close\r\n\r\n";
  if (request.method != "HEAD") c->body = std::move(answer.body);
  if (c->tls != nullptr) {
    // One answer per connection: encrypted whole, then sent as the plain answer would be.
    std::string plain = std::move(c->head);
    if (c->body) plain += *c->body;
    c->head.clear();
    if (!c->tls->seal(plain)) {
      c->close();
      return;
    }
    c->body = std::make_shared<const std::string>(c->tls->takeCipher());
  }
  send(c);
}

void AdminServer::send(Conn* c) {
  uv_buf_t bufs[2];
  unsigned count = 0;
  // libuv only reads from these buffers (uv_buf_t has no const variant).
  if (!c->head.empty()) bufs[count++] = uv_buf_init(c->head.data(), static_cast<unsigned>(c->head.size()));
  if (c->body && !c->body->empty())
    bufs[count++] = uv_buf_init(const_cast<char*>(c->body->data()), static_cast<unsigned>(c->body->size()));
  if (count == 0) {
    c->close();
    return;
  }
  uv_timer_start(&c->timer, [](uv_timer_t* t) { static_cast<Conn*>(t->data)->close(); }, kWriteTimeoutMs, 0);
  c->write.data = c;
  const int rc = uv_write(&c->write, reinterpret_cast<uv_stream_t*>(&c->tcp), bufs, count,
                          [](uv_write_t* w, int) { static_cast<Conn*>(w->data)->close(); });
  if (rc < 0) c->close();
}

const std::vector<ring::ShareReport>& AdminServer::keySharesOf(const RoutingSnapshot& snapshot) {
  if (snapshot.generation != keySharesGeneration_) {
    keyShares_ = proxy::keySharesOf(snapshot);
    keySharesGeneration_ = snapshot.generation;
  }
  return keyShares_;
}

std::string AdminServer::renderMetrics() {
  const std::shared_ptr<const RoutingSnapshot> snapshot = control_.snapshot();
  return prometheusText(control_.collectStats(), *snapshot, control_.reloadStats(), keySharesOf(*snapshot),
                        readProcessSample());
}

AdminServer::Answer AdminServer::handle(const HttpRequest& request) {
  Answer a;
  const std::string_view path = request.path();
  const std::string& method = request.method;
  const bool get = method == "GET" || method == "HEAD";
  const auto now = [this] { return nowMs(); };
  if (!token_.empty()) {
    // Compared in constant time: how long a wrong token takes must not say how much was right.
    const std::string expected = "Bearer " + token_;
    const std::string& got = request.authorization;
    unsigned char diff = got.size() == expected.size() ? 0 : 1;
    for (size_t i = 0; i < expected.size(); ++i) diff |= static_cast<unsigned char>(expected[i] ^ (i < got.size() ? got[i] : 0));
    if (diff != 0) {
      a.status = 401;
      a.extraHeaders = "WWW-Authenticate: Bearer\r\n";
      a.body = text("this admin listener requires Authorization: Bearer <token> (--admin-token-file)\n");
      return a;
    }
  } else if (path == "/reload" && !loopback_) {
    a.status = 403;
    a.body = text("POST /reload on a listener that is not on loopback needs --admin-token-file\n");
    return a;
  }
  if (path == "/reload") {
    if (method != "POST") {
      a.status = 405;
      a.body = text("use POST /reload\n");
      return a;
    }
    // The error quotes the config file, whose bytes may be anything: the writer keeps the
    // reply valid JSON.
    std::string error;
    a.contentType = "application/json";
    JsonWriter j;
    j.beginObject();
    if (control_.reload("POST /reload", &error)) {
      j.key("ok").value(true).key("generation").value(control_.reloadStats().generation);
    } else {
      a.status = 422;
      j.key("ok").value(false).key("error").value(error);
    }
    j.endObject();
    a.body = text(j.str() + "\n");
    return a;
  }
  if (path != "/metrics" && path != "/stats" && path != "/ring" && path != "/status") {
    a.status = 404;
    a.body = text("not found; try /metrics, /stats, /status, /ring?pool=NAME or POST /reload\n");
    return a;
  }
  if (!get) {
    a.status = 405;
    a.body = text("use GET " + std::string(path) + "\n");
    return a;
  }
  if (path == "/metrics") {
    a.contentType = "text/plain; version=0.0.4; charset=utf-8";
    a.body = metrics_.get(now, [this] { return renderMetrics(); });
    return a;
  }
  if (path == "/status" && request.queryParam("format") == "tsv") {
    a.body = text(statusTsv(control_.collectStats(), *control_.snapshot(), control_.reloadStats()));
    return a;
  }
  a.contentType = "application/json";
  if (path == "/stats") {
    a.body = statsJson_.get(now, [&] { return twemproxyStatsJson(control_.collectStats(), *control_.snapshot()) + "\n"; });
    return a;
  }
  if (path == "/status") {
    a.body = status_.get(now, [&] {
      return statusJson(control_.collectStats(), *control_.snapshot(), control_.reloadStats(),
                        static_cast<int>(control_.workers().size())) +
             "\n";
    });
    return a;
  }
  const std::string pool = request.queryParam("pool");
  std::string body = ringJson(*control_.snapshot(), pool);
  if (body.empty()) {
    a.status = pool.empty() ? 400 : 404;
    a.contentType = "text/plain; charset=utf-8";
    a.body = text(pool.empty() ? "give the pool: /ring?pool=NAME\n" : "no pool '" + pool + "'\n");
    return a;
  }
  a.body = text(body + "\n");
  return a;
}

}  // namespace proxy
