// admin_server.h: the two listeners on the control thread.
//  - The stats port (-s/-a): twemproxy's contract exactly: whoever connects receives the stats
//    JSON and the connection closes.
//  - The admin HTTP listener (--admin ADDR:PORT): GET /metrics (Prometheus), GET /stats (the
//    same JSON), GET /ring?pool=P, GET /status (for `ringctl status`), POST /reload.
// Both run on the control loop, never on a worker: a slow or hostile admin client cannot
// disturb the data path. What one client can cost the control thread is bounded too:
//  - a request head is at most kMaxRequestHead bytes and must arrive within kRequestTimeoutMs
//    (else 413, or the connection is closed); bad requests get a 4xx;
//  - an answer must be taken within kWriteTimeoutMs, else the connection is closed, and the
//    kernel holds at most kSendBufferBytes of it per connection (SO_SNDBUF, which Linux
//    doubles; autotuning would let it hold 4 MiB of a client that does not read);
//  - at most kMaxConnections are open per listener: one more closes the oldest, so clients
//    that connect and never read cannot lock out the monitoring that does read;
//  - the large answers (stats JSON, /metrics, /status) are rendered once and shared by every
//    connection sending them at the same time (shared_rendering.h), so the memory they take
//    does not grow with the number of clients.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "proxy/control/shared_rendering.h"
#include "proxy/runtime/tls_server.h"
#include "ring/ring_diff.h"

namespace proxy {

class Control;
struct HttpRequest;

// 127.0.0.0/8 and ::1: a listener there cannot be reached from other machines.
inline bool isLoopbackAddress(const std::string& host) { return host.rfind("127.", 0) == 0 || host == "::1"; }
struct RoutingSnapshot;

class AdminServer {
 public:
  enum class Mode { StatsPort, Http };

  static constexpr size_t kMaxRequestHead = 8 * 1024;
  static constexpr uint64_t kRequestTimeoutMs = 5000;
  static constexpr uint64_t kWriteTimeoutMs = 10000;
  static constexpr size_t kMaxConnections = 64;
  static constexpr int kSendBufferBytes = 256 * 1024;
  // A rendering is shared with newcomers for at most this long (see shared_rendering.h).
  static constexpr uint64_t kShareRenderingMs = 1000;

  // `token`: required of every request as "Authorization: Bearer <token>" ("" : none).
  // `tls`: the listener serves HTTPS with it (null: plain HTTP).
  AdminServer(Control& control, Mode mode, std::string token = "", std::shared_ptr<ServerTlsContext> tls = nullptr)
      : control_(control), mode_(mode), token_(std::move(token)), tlsContext_(std::move(tls)) {}
  // Binds and listens; false with `error` set when the address cannot be used.
  bool start(const std::string& host, int port, std::string& error);
  // Stops listening and closes every connection still open.
  void close();

 private:
  struct Conn;
  // What an HTTP request is answered with; the body may be a shared rendering.
  struct Answer {
    int status = 200;
    std::string contentType = "text/plain; charset=utf-8";
    std::string extraHeaders;  // whole lines, each ending in CRLF
    SharedRendering::Text body;
  };

  void onConnection();
  void onRead(Conn* c);
  void send(Conn* c);
  Answer handle(const HttpRequest& request);
  void closeOldest();
  uint64_t nowMs();
  std::string renderMetrics();
  // Each pool's ring shares for /metrics, computed once per snapshot (they change only with the
  // configuration, and cost a walk over every point of every ring).
  const std::vector<ring::ShareReport>& keySharesOf(const RoutingSnapshot& snapshot);

  Control& control_;
  Mode mode_;
  std::string token_;
  std::shared_ptr<ServerTlsContext> tlsContext_;
  bool loopback_ = true;  // the listener's address is a loopback one
  uv_tcp_t server_{};
  bool open_ = false;
  std::list<Conn*> conns_;  // open connections, oldest first
  uint64_t lastCapWarningMs_ = 0;
  SharedRendering statsJson_{kShareRenderingMs};
  SharedRendering metrics_{kShareRenderingMs};
  SharedRendering status_{kShareRenderingMs};
  uint64_t keySharesGeneration_ = 0;  // the snapshot keyShares_ describe (generations start at 1)
  std::vector<ring::ShareReport> keyShares_;
};

}  // namespace proxy
