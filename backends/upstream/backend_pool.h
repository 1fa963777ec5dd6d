// backend_pool.h: a worker's connections to one backend server (server_connections of them,
// twemproxy's setting). Requests are spread over the connections by least in-flight count, so
// one slow reply does not hold up the requests behind it when there is another connection.
// Owned by one worker thread; never shared.
#pragma once

#include <memory>
#include <vector>

#include "backends/upstream/upstream_conn.h"

namespace backends::upstream {

class BackendPool {
 public:
  using FramerFactory = std::unique_ptr<ReplyFramer> (*)();

  BackendPool(uv_loop_t* loop, io::FlushScheduler& flusher, Endpoint endpoint, Options options,
              uint32_t connections, FramerFactory makeFramer)
      : endpoint_(std::move(endpoint)) {
    if (connections == 0) connections = 1;
    for (uint32_t i = 0; i < connections; ++i) {
      conns_.push_back(new UpstreamConn(loop, flusher, endpoint_, options, makeFramer()));
      conns_.back()->setHealth(&consecutiveFailures_, &BackendPool::onConnEvent, this);
    }
  }
  BackendPool(const BackendPool&) = delete;
  BackendPool& operator=(const BackendPool&) = delete;
  // Connections close themselves once they have answered what they owe (a reload removed
  // this backend: in-flight requests finish), or at once after retireNow().
  ~BackendPool() {
    for (UpstreamConn* c : conns_) {
      c->setHealth(nullptr, nullptr, nullptr);  // the counter dies with this pool
      if (closeNow_) c->close();
      else c->closeWhenIdle();
    }
  }
  // Shutdown: do not wait for replies still owed.
  void retireNow() { closeNow_ = true; }

  UpstreamConn& pick() {
    if (conns_.size() == 1) return *conns_[0];
    UpstreamConn* best = conns_[0];
    for (UpstreamConn* c : conns_)
      if (c->inflight() < best->inflight()) best = c;
    return *best;
  }

  // Called on every event of any connection (consecutiveFailures() is the current streak of
  // failures, reset by any reply): the proxy decides about ejection and logs.
  using EventListener = void (*)(void* ctx, BackendPool& pool, const UpstreamConn& conn, LinkEvent event);
  void setEventListener(EventListener fn, void* ctx) {
    listener_ = fn;
    listenerCtx_ = ctx;
  }
  void resetFailures() { consecutiveFailures_ = 0; }
  uint32_t consecutiveFailures() const { return consecutiveFailures_; }

  void retryAll() {
    for (UpstreamConn* c : conns_) c->retryNow();
  }

  void connectAll() {
    for (UpstreamConn* c : conns_) c->connectNow();
  }

  const Endpoint& endpoint() const { return endpoint_; }
  const std::vector<UpstreamConn*>& connections() const { return conns_; }

 private:
  static void onConnEvent(void* ctx, const UpstreamConn& conn, LinkEvent event) {
    auto* self = static_cast<BackendPool*>(ctx);
    if (self->listener_ != nullptr) self->listener_(self->listenerCtx_, *self, conn, event);
  }

  Endpoint endpoint_;
  std::vector<UpstreamConn*> conns_;
  bool closeNow_ = false;
  uint32_t consecutiveFailures_ = 0;
  EventListener listener_ = nullptr;
  void* listenerCtx_ = nullptr;
};

}  // namespace backends::upstream
