#include "proxy/client_session.h"

#include "proxy/log.h"
#include "proxy/routing_snapshot.h"
#include "proxy/worker.h"

namespace proxy {

namespace {
// Reads get whatever room the input buffer has, at least this much. An empty buffer is a
// first-size block lent by the thread (16 KiB, see io::Buffer), so asking for more would
// force a fresh, larger allocation on every read of an idle connection.
constexpr size_t kMinRead = 4 * 1024;
// ...and at most this much per callback, so one client cannot monopolise a turn of the loop.
constexpr size_t kMaxRead = 256 * 1024;
}  // namespace

ClientSession::ClientSession(Worker& worker, size_t pool)
    : worker_(worker),
      pool_(pool),
      stats_(&worker.poolStats(worker.snapshot().pools[pool].config.name)),
      clients_(worker.clientCounter(pool)),
      out_(this, &ClientSession::onWriteDone) {
  h_.handle.data = this;
  worker_.addSession(this);
  stats_->clientConnections++;
}

ClientSession::~ClientSession() {
  stats_->clientsClosed++;
  if (counted_) clients_->fetch_sub(1, std::memory_order_relaxed);
  worker_.removeSession(this);
}

void ClientSession::acceptFrom(uv_stream_t* server, bool unixSocket) {
  int rc = unixSocket ? uv_pipe_init(worker_.loop(), &h_.pipe, 0) : uv_tcp_init(worker_.loop(), &h_.tcp);
  if (rc < 0) {
    LOG_WARN("cannot create client handle: %s", uv_strerror(rc));
    delete this;  // the handle was never initialised: no close callback will come
    return;
  }
  h_.handle.data = this;
  rc = uv_accept(server, &h_.stream);
  if (rc < 0) {
    LOG_DEBUG("accept failed: %s", uv_strerror(rc));
    closeNow();
    return;
  }
  if (!unixSocket) uv_tcp_nodelay(&h_.tcp, 1);
  lastActiveMs_ = uv_now(worker_.loop());
  // client_connections (twemproxy 0.5.0 parses it but never enforces it; ringproxy does).
  const uint32_t limit = worker_.snapshot().pools[pool_].config.clientConnections;
  const uint32_t before = clients_->fetch_add(1, std::memory_order_relaxed);
  counted_ = true;
  if (limit != 0 && before >= limit) {
    stats_->clientsRejected++;
    const std::string_view reply = tooManyClientsReply();
    appendOutput(reply.data(), reply.size());
    closeAfterFlush();
    return;
  }
  startReading();
}

void ClientSession::startReading() {
  if (reading_ || handleClosed_) return;
  const int rc = uv_read_start(&h_.stream, &ClientSession::onAllocCb, &ClientSession::onReadCb);
  if (rc < 0) {
    closeNow();
    return;
  }
  reading_ = true;
}

void ClientSession::stopReading() {
  if (!reading_) return;
  uv_read_stop(&h_.stream);
  reading_ = false;
}

void ClientSession::onAllocCb(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<ClientSession*>(h->data);
  size_t avail = 0;
  char* p = self->in_.writable(kMinRead, &avail);
  *buf = uv_buf_init(p, p ? static_cast<unsigned>(std::min(avail, kMaxRead)) : 0);
}

void ClientSession::onReadCb(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  static_cast<ClientSession*>(s->data)->onRead(nread);
}

void ClientSession::onRead(ssize_t nread) {
  if (nread == 0) return;  // EAGAIN: nothing to do
  if (nread < 0) {
    // EOF: the client may have half-closed after sending its last requests; answer them, then
    // close. Any other error: the socket is gone.
    stopReading();
    if (nread == UV_EOF) {
      stats_->clientEof++;
      closeAfterFlush();
    } else {
      stats_->clientErr++;
      closeNow();
    }
    in_.releaseIfEmpty();
    return;
  }
  in_.commit(static_cast<size_t>(nread));
  lastActiveMs_ = uv_now(worker_.loop());
  if (!closing_) processInput();
  if (!wantsMoreInput() && !closing_) {
    stopReading();
    paused_ = true;
  }
  in_.releaseIfEmpty();  // idle connections hold no input buffer
}

bool ClientSession::wantsMoreInput() const {
  const PoolRoute* route = poolRoute();
  if (waitingForDrain_) return false;
  if (route == nullptr) return true;  // draining after a reload removed the pool
  return pending_ < route->config.maxPendingRequests && out_.queuedBytes() < route->config.maxClientOutputBytes;
}

void ClientSession::maybeResume() {
  if (!paused_ || closing_ || !wantsMoreInput()) return;
  paused_ = false;
  processInput();  // requests already buffered come first
  if (wantsMoreInput()) startReading();
  else paused_ = true;
  in_.releaseIfEmpty();
}

size_t ClientSession::pool() const { return pool_; }

const PoolRoute* ClientSession::poolRoute() const {
  if (pool_ == kNoPool) return nullptr;
  return &worker_.snapshot().pools[pool_];
}

Request* ClientSession::newRequest() { return worker_.requests().get(this); }

void ClientSession::freeRequest(Request* r) { worker_.requests().put(r); }

void ClientSession::enqueue(Request* r) {
  if (tail_ != nullptr) tail_->next = r;
  else head_ = r;
  tail_ = r;
  pending_++;
}

void ClientSession::replyLocal(std::string_view bytes) {
  if (head_ == nullptr) {  // nothing before it: no need to queue
    appendOutput(bytes.data(), bytes.size());
    return;
  }
  Request* r = newRequest();
  r->reply.assign(bytes);
  r->complete = true;
  enqueue(r);
}

void ClientSession::appendOutput(const char* p, size_t n) {
  if (n == 0) return;
  out_.append(p, n);
  worker_.flusher().schedule(this);
}

void ClientSession::complete(Request* r) {
  r->complete = true;
  if (r == head_) drainCompleted();
}

void ClientSession::popHeadAndDrain() {
  Request* r = head_;
  head_ = r->next;
  if (head_ == nullptr) tail_ = nullptr;
  pending_--;
  freeRequest(r);
  drainCompleted();
}

void ClientSession::drainCompleted() {
  while (head_ != nullptr && head_->complete) {
    Request* r = head_;
    appendOutput(r->reply.data(), r->reply.size());
    head_ = r->next;
    if (head_ == nullptr) tail_ = nullptr;
    pending_--;
    freeRequest(r);
  }
  if (closing_) {
    maybeFinishClose();
  } else if (head_ == nullptr && waitingForDrain_) {
    waitingForDrain_ = false;
    paused_ = true;  // reading was stopped, or will be by onRead: resume both
    maybeResume();
  }
}

void ClientSession::flushNow() {
  if (handleClosed_) return;
  const int rc = out_.flush(&h_.stream);
  if (rc < 0) {
    LOG_DEBUG("client write failed: %s", uv_strerror(rc));
    closeNow();
    return;
  }
  if (out_.idle()) {
    if (closing_) maybeFinishClose();
    else maybeResume();
  }
}

void ClientSession::onWriteDone(void* owner, int status) {
  auto* self = static_cast<ClientSession*>(owner);
  if (self->handleClosed_) return;
  if (status < 0) {
    self->closeNow();
    return;
  }
  if (!self->out_.idle()) self->worker_.flusher().schedule(self);
  else if (self->closing_) self->maybeFinishClose();
  else self->maybeResume();
}

void ClientSession::closeAfterFlush() {
  closing_ = true;
  stopReading();
  maybeFinishClose();
}

void ClientSession::maybeFinishClose() {
  if (head_ == nullptr && out_.idle()) closeNow();
}

bool ClientSession::closeIfIdle(uint64_t nowMs, uint64_t timeoutMs) {
  if (closing_ || head_ != nullptr || !out_.idle() || nowMs - lastActiveMs_ < timeoutMs) return false;
  stats_->clientsIdleClosed++;
  closeNow();
  return true;
}

void ClientSession::remapPool(const std::vector<size_t>& remap) {
  if (pool_ == kNoPool) return;
  pool_ = pool_ < remap.size() ? remap[pool_] : kNoPool;
  if (pool_ == kNoPool) beginDrain();
}

void ClientSession::beginDrain() {
  if (closing_) return;
  closeAfterFlush();
}

void ClientSession::closeNow() {
  if (closeStarted_) return;
  closeStarted_ = true;
  closing_ = true;
  stopReading();
  worker_.flusher().cancel(this);
  while (head_ != nullptr) {  // cancel-before-destroy: upstreams drop the replies
    Request* r = head_;
    head_ = r->next;
    r->cancelAll();
    freeRequest(r);
  }
  tail_ = nullptr;
  pending_ = 0;
  handleClosed_ = true;
  uv_close(&h_.handle, &ClientSession::onCloseCb);
}

void ClientSession::onCloseCb(uv_handle_t* h) { delete static_cast<ClientSession*>(h->data); }

}  // namespace proxy
