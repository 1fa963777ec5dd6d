// admin_server.h: the two listeners on the control thread.
//  - The stats port (-s/-a): twemproxy's contract exactly: whoever connects receives the stats
//    JSON and the connection closes.
//  - The admin HTTP listener (--admin ADDR:PORT): GET /metrics (Prometheus), GET /stats (the
//    same JSON), GET /ring?pool=P, GET /status (for `ringctl status`), POST /reload.
// Both run on the control loop, never on a worker: a slow or hostile admin client cannot
// disturb the data path. Requests are bounded (8 KiB, 5 s) and answered with 4xx when bad.
#pragma once

#include <uv.h>

#include <string>

namespace proxy {

class Control;

class AdminServer {
 public:
  enum class Mode { StatsPort, Http };

  AdminServer(Control& control, Mode mode) : control_(control), mode_(mode) {}
  // Binds and listens; false with `error` set when the address cannot be used.
  bool start(const std::string& host, int port, std::string& error);
  void close();

 private:
  struct Conn;
  void onConnection();
  void respond(Conn* c);
  std::string handle(const std::string& method, const std::string& target, int& status, std::string& contentType);

  Control& control_;
  Mode mode_;
  uv_tcp_t server_{};
  bool open_ = false;
};

}  // namespace proxy
