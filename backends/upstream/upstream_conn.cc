#include "backends/upstream/upstream_conn.h"

#include <algorithm>
#include <cstring>

namespace backends::upstream {

// One socket's worth of state. A new Socket is made for every connection attempt, so a broken
// socket can finish closing (its handle, pending writes and buffers) while the next one connects.
struct UpstreamConn::Socket {
  explicit Socket(UpstreamConn* o) : out(this, &UpstreamConn::onWriteDone), owner(o) {}

  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h{};
  uv_connect_t connectReq{};
  io::OutputQueue out;  // what goes to the socket: requests, or TLS records
  io::Buffer in;        // replies, decrypted when TLS
  UpstreamConn* owner;  // nullptr once detached: callbacks still in flight are ignored
  // TLS (the pool's backend_tls): requests wait in plainOut until the handshake is done and
  // are encrypted into `out` at each flush; records read land in cipherIn first.
  std::unique_ptr<TlsClient> tls;
  io::Buffer plainOut;
  io::Buffer cipherIn;
  bool handleInitialised = false;
};

namespace {

// The system's own wording for errno codes ("Connection refused", "Connection reset by
// peer"), which clients, alerts and twemproxy's own test suite already match; libuv's text for
// its own codes (resolver errors, end of file).
std::string errorText(int status) {
  constexpr int kFirstLibuvOnlyCode = -3000;  // UV_EAI_* and UV_EOF lie below; errno codes above
  return status < 0 && status > kFirstLibuvOnlyCode ? std::strerror(-status) : uv_strerror(status);
}

// The detail of a Protocol failure: the two ways a backend can break the reply stream.
constexpr std::string_view kUnsolicited = "backend sent bytes nobody asked for";
constexpr std::string_view kUnparseable = "unparseable reply from backend";

// The one place the wording lives. Clients and integration tests match on these texts, so
// keep them byte for byte; stats and logs should key on the cause instead.
std::string failureMessage(FailureCause cause, std::string_view detail) {
  std::string m;
  switch (cause) {
    case FailureCause::None: break;
    case FailureCause::Resolve: m = "cannot resolve "; break;  // detail: "<host>: <error>"
    case FailureCause::Connect: m = "connect failed: "; break;
    case FailureCause::ConnectTimeout:  // detail: the timeout in ms
      m = "connect timed out after ";
      m += detail;
      m += " ms";
      return m;
    case FailureCause::Closed: return "connection closed by backend";
    case FailureCause::Read: m = "read failed: "; break;
    case FailureCause::Write: m = "write failed: "; break;
    case FailureCause::ReplyTimeout:  // detail: the timeout in ms
      m = "timed out: no reply within ";
      m += detail;
      m += " ms";
      return m;
    case FailureCause::Protocol: break;  // detail: kUnsolicited or kUnparseable, the whole text
    case FailureCause::HandshakeRefused: m = "handshake refused: "; break;
    case FailureCause::Removed:
      // With a label: a send refused while closing, which has always named the backend.
      if (detail.empty()) return "backend removed from the configuration";
      m = "backend ";
      m += detail;
      m += " removed";
      return m;
    case FailureCause::Socket: m = "cannot "; break;  // detail: "create socket: <error>" or "read: <error>"
    case FailureCause::Tls: break;  // detail: "TLS handshake failed: <reason>"
  }
  m += detail;
  return m;
}

}  // namespace

size_t UpstreamConn::queuedBytes() const {
  return socket_ != nullptr ? socket_->out.queuedBytes() + socket_->plainOut.readableSize() : 0;
}

UpstreamConn::UpstreamConn(uv_loop_t* loop, io::FlushScheduler& flusher, Endpoint endpoint, Options options,
                           std::unique_ptr<ReplyFramer> framer)
    : loop_(loop), flusher_(flusher), endpoint_(std::move(endpoint)), options_(std::move(options)),
      framer_(std::move(framer)) {
  timer_.data = this;
  // uv_timer_init cannot fail for a valid loop; checked anyway to honour the rule.
  if (uv_timer_init(loop_, &timer_) < 0) std::abort();
}

UpstreamConn::~UpstreamConn() = default;

uint64_t UpstreamConn::send(const char* data, size_t len, ReplySink* sink, uint64_t cookie, uint32_t hint) {
  if (state_ == State::Closed || closeWhenIdle_) {
    setLastError(FailureCause::Removed, endpoint_.label);
    return 0;
  }
  if (state_ == State::Idle) {
    if (uv_now(loop_) < backoffUntilMs_) {
      // Fail fast: lastError_ says why. A refused request is a failure of the backend too
      // (as twemproxy counts each failed forward), so server_failure_limit ejects it promptly,
      // and it counts in failures (a request failed by the connection) like one failed later.
      stats_.failures++;
      if (failures_ != nullptr) ++*failures_;
      if (onEvent_ != nullptr) onEvent_(onEventCtx_, *this, LinkEvent::Refused);
      return 0;
    }
    startConnect();
    if (state_ == State::Idle) {  // could not even start
      stats_.failures++;
      return 0;
    }
  }
  if (socket_->tls == nullptr) socket_->out.append(data, len);
  else socket_->plainOut.append(data, len);
  stats_.requests++;
  stats_.bytesOut += len;
  if (push_ != nullptr) {  // nothing is owed: what comes back goes to the push sink
    if (state_ == State::Ready) flusher_.schedule(this);
    return headSeq_ + fifo_.size();
  }
  const bool wasEmpty = fifo_.empty();
  fifo_.push_back({sink, cookie, hint, false, uv_now(loop_), uv_hrtime() / 1000});
  if (state_ == State::Ready) {
    flusher_.schedule(this);
    if (wasEmpty) armTimer();
  }
  return headSeq_ + fifo_.size() - 1;
}

void UpstreamConn::cancel(uint64_t seq) {
  if (seq < headSeq_ || seq >= headSeq_ + fifo_.size()) return;
  fifo_[seq - headSeq_].sink = nullptr;
  // A connection on its way out (closeWhenIdle) that no longer owes anyone anything closes
  // now rather than waiting for replies nobody wants: a dedicated connection whose client
  // left while blocked in WAIT 0 would otherwise wait for ever.
  if (!closeWhenIdle_ || state_ == State::Closed) return;
  for (size_t i = 0; i < fifo_.size(); ++i)
    if (fifo_[i].sink != nullptr) return;
  close();
}

void UpstreamConn::retryNow() {
  backoffMs_ = 0;
  backoffUntilMs_ = 0;
  if (state_ == State::Idle) startConnect();
}

void UpstreamConn::connectNow() {
  if (state_ == State::Idle && uv_now(loop_) >= backoffUntilMs_) startConnect();
}

void UpstreamConn::startConnect() {
  socket_ = new Socket(this);
  if (options_.tls != nullptr) socket_->tls = std::make_unique<TlsClient>(options_.tls, endpoint_.host);
  connectStartedMs_ = uv_now(loop_);
  state_ = State::Resolving;
  stats_.connects++;
  // Handshake first: the FIFO is empty whenever a socket is born, so it leads the stream.
  if (!options_.handshake.empty()) {
    (socket_->tls == nullptr ? socket_->out.pendingBuffer() : socket_->plainOut)
        .append(options_.handshake.data(), options_.handshake.size());
    for (uint32_t i = 0; i < options_.handshakeReplies; ++i) fifo_.push_back({nullptr, 0, 0, true, uv_now(loop_), 0});
  }
  armTimer();
  if (!endpoint_.path.empty()) {
    int rc = uv_pipe_init(loop_, &socket_->h.pipe, 0);
    if (rc < 0) {
      delete socket_;
      socket_ = nullptr;
      state_ = State::Idle;
      fail(FailureCause::Socket, "create socket: " + errorText(rc));
      return;
    }
    socket_->handleInitialised = true;
    socket_->h.handle.data = socket_;
    state_ = State::Connecting;
    socket_->connectReq.data = socket_;
    uv_pipe_connect(&socket_->connectReq, &socket_->h.pipe, endpoint_.path.c_str(), &UpstreamConn::onConnectCb);
    return;
  }
  sockaddr_storage addr{};
  if (uv_ip4_addr(endpoint_.host.c_str(), endpoint_.port, reinterpret_cast<sockaddr_in*>(&addr)) == 0 ||
      uv_ip6_addr(endpoint_.host.c_str(), endpoint_.port, reinterpret_cast<sockaddr_in6*>(&addr)) == 0) {
    connectResolved(reinterpret_cast<sockaddr*>(&addr));
    return;
  }
  // A host name: resolve it now, so that DNS changes are followed at each reconnect.
  resolving_ = new uv_getaddrinfo_t;
  resolving_->data = this;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const std::string port = std::to_string(endpoint_.port);
  const int rc = uv_getaddrinfo(loop_, resolving_, &UpstreamConn::onResolvedCb, endpoint_.host.c_str(), port.c_str(), &hints);
  if (rc < 0) {
    delete resolving_;
    resolving_ = nullptr;
    fail(FailureCause::Resolve, endpoint_.host + ": " + errorText(rc));
  }
}

void UpstreamConn::onResolvedCb(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* self = static_cast<UpstreamConn*>(req->data);
  if (self != nullptr) {
    self->resolving_ = nullptr;
    if (status < 0 || res == nullptr) self->fail(FailureCause::Resolve, self->endpoint_.host + ": " + errorText(status));
    else self->connectResolved(res->ai_addr);
  }
  uv_freeaddrinfo(res);
  delete req;
}

void UpstreamConn::connectResolved(const sockaddr* addr) {
  int rc = uv_tcp_init(loop_, &socket_->h.tcp);
  if (rc == 0) {
    socket_->handleInitialised = true;
    socket_->h.handle.data = socket_;
    uv_tcp_nodelay(&socket_->h.tcp, 1);  // requests are whole messages: never wait for Nagle
    if (options_.tcpKeepalive) uv_tcp_keepalive(&socket_->h.tcp, 1, 60);
    socket_->connectReq.data = socket_;
    state_ = State::Connecting;
    rc = uv_tcp_connect(&socket_->connectReq, &socket_->h.tcp, addr, &UpstreamConn::onConnectCb);
  } else {
    delete socket_;  // the handle was never initialised: nothing to close
    socket_ = nullptr;
  }
  if (rc < 0) fail(FailureCause::Connect, errorText(rc));
}

void UpstreamConn::onConnectCb(uv_connect_t* req, int status) {
  auto* sock = static_cast<Socket*>(req->data);
  if (sock->owner == nullptr) return;  // detached while connecting
  sock->owner->onConnected(status);
}

void UpstreamConn::onConnected(int status) {
  if (status < 0) {
    fail(FailureCause::Connect, errorText(status));
    return;
  }
  const int rc = uv_read_start(&socket_->h.stream, &UpstreamConn::onAllocCb, &UpstreamConn::onReadCb);
  if (rc < 0) {
    fail(FailureCause::Socket, "read: " + errorText(rc));
    return;
  }
  if (socket_->tls != nullptr) {
    advanceTls();  // the ClientHello; Ready once the server's answer completes the handshake
    return;
  }
  becomeReady();
}

void UpstreamConn::becomeReady() {
  state_ = State::Ready;
  backoffMs_ = 0;
  lastError_.clear();
  lastCause_ = FailureCause::None;
  flusher_.schedule(this);
  armTimer();
  if (onEvent_ != nullptr) onEvent_(onEventCtx_, *this, LinkEvent::Connected);
}

void UpstreamConn::onAllocCb(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* sock = static_cast<Socket*>(h->data);
  // At least 16 KiB of room (the thread's lent block size), at most 256 KiB per read: replies
  // are handed on after every read, so a burst of large replies does not pile up here first.
  size_t avail = 0;
  char* p = (sock->tls == nullptr ? sock->in : sock->cipherIn).writable(16 * 1024, &avail);
  *buf = uv_buf_init(p, p ? static_cast<unsigned>(std::min<size_t>(avail, 256 * 1024)) : 0);
}

void UpstreamConn::onReadCb(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
  auto* sock = static_cast<Socket*>(s->data);
  if (sock->owner == nullptr) return;
  if (nread > 0 && sock->tls != nullptr) {
    sock->cipherIn.commit(static_cast<size_t>(nread));
    sock->owner->onTlsRead();
    return;
  }
  if (nread > 0) sock->in.commit(static_cast<size_t>(nread));
  sock->owner->onRead(nread);
}

void UpstreamConn::onRead(ssize_t nread) {
  if (nread < 0) {
    if (nread == UV_EOF) fail(FailureCause::Closed);
    else fail(FailureCause::Read, errorText(static_cast<int>(nread)));
    return;
  }
  stats_.bytesIn += static_cast<uint64_t>(nread);
  Socket* const sock = socket_;
  io::Buffer& in = sock->in;
  const uint64_t nowUs = uv_hrtime() / 1000;  // one clock read for the whole batch of replies
  while (!in.empty()) {
    if (fifo_.empty() && push_ != nullptr) {
      const Frame f = framer_->frame(in.readable(), in.readableSize(), 0);
      if (f.status == FrameStatus::NeedMore) break;
      if (f.status == FrameStatus::Error) {
        fail(FailureCause::Protocol, kUnparseable);
        return;
      }
      framer_->reset();
      stats_.replies++;
      push_->onReply(0, in.readable(), f.length, f.isError);
      if (socket_ != sock) return;  // the sink closed us
      in.consume(f.length);
      continue;
    }
    if (fifo_.empty()) {
      fail(FailureCause::Protocol, kUnsolicited);
      return;
    }
    const Entry head = fifo_.front();
    const Frame f = framer_->frame(in.readable(), in.readableSize(), head.hint);
    if (f.status == FrameStatus::NeedMore) break;
    if (f.status == FrameStatus::Error) {
      fail(FailureCause::Protocol, kUnparseable);
      return;
    }
    framer_->reset();
    fifo_.pop_front();
    headSeq_++;
    stats_.replies++;
    if (!head.handshake) stats_.recordLatency(nowUs > head.sentAtUs ? nowUs - head.sentAtUs : 0);
    if (failures_ != nullptr) *failures_ = 0;  // the backend answers: its failure streak ends
    if (f.isError) stats_.errorReplies++;
    if (head.handshake) {
      if (f.isError) {
        const std::string text(in.readable(), f.length > 2 ? f.length - 2 : f.length);
        fail(FailureCause::HandshakeRefused, text);
        return;
      }
    } else if (head.sink != nullptr) {
      if (f.length >= ReplySink::kHandOverBytes && head.sink->keepsReply(head.cookie, f.length, f.isError)) {
        head.sink->takeReply(head.cookie, in.takeFront(f.length), f.isError);  // no copy
        if (socket_ != sock) return;
        continue;  // `in` now holds only what followed the reply
      }
      head.sink->onReply(head.cookie, in.readable(), f.length, f.isError);
      if (socket_ != sock) return;  // the sink closed or failed us; the socket is gone
    }
    in.consume(f.length);
  }
  if (closeWhenIdle_ && fifo_.empty()) {
    close();
    return;
  }
  in.releaseIfEmpty();  // a large reply must not pin its buffer (nor the --max-buffered-bytes budget)
  armTimer();
}

void UpstreamConn::onTlsRead() {
  Socket* const sock = socket_;
  TlsClient& tls = *sock->tls;
  const size_t received = sock->cipherIn.readableSize();
  tls.feed(sock->cipherIn.readable(), received);
  sock->cipherIn.consume(received);
  sock->cipherIn.releaseIfEmpty();
  if (!tls.established()) {
    advanceTls();
    if (socket_ != sock || !tls.established()) return;
  }
  const size_t before = sock->in.readableSize();
  if (!tls.decrypt(sock->in)) {
    fail(FailureCause::Read, tls.error());
    return;
  }
  onRead(static_cast<ssize_t>(sock->in.readableSize() - before));
}

void UpstreamConn::advanceTls() {
  TlsClient& tls = *socket_->tls;
  const TlsClient::Step step = tls.handshake();
  if (step == TlsClient::Step::Failed) {
    fail(FailureCause::Tls, tls.error());
    return;
  }
  tls.takeCipher(socket_->out.pendingBuffer());
  const int rc = socket_->out.flush(&socket_->h.stream);
  if (rc < 0) {
    fail(FailureCause::Write, errorText(rc));
    return;
  }
  if (step == TlsClient::Step::Done) becomeReady();
}

void UpstreamConn::flushNow() {
  if (state_ != State::Ready || socket_ == nullptr) return;
  if (socket_->tls != nullptr && !socket_->plainOut.empty()) {
    // Encrypted at the last moment, so a turn's requests become as few records as possible.
    io::Buffer& plain = socket_->plainOut;
    if (!socket_->tls->encrypt(plain.readable(), plain.readableSize())) {
      fail(FailureCause::Write, socket_->tls->error());
      return;
    }
    plain.consume(plain.readableSize());
    plain.releaseIfEmpty();
    socket_->tls->takeCipher(socket_->out.pendingBuffer());
  }
  const int rc = socket_->out.flush(&socket_->h.stream);
  if (rc < 0) fail(FailureCause::Write, errorText(rc));
}

void UpstreamConn::onWriteDone(void* owner, int status) {
  auto* sock = static_cast<Socket*>(owner);
  UpstreamConn* self = sock->owner;
  if (self == nullptr) return;
  if (status < 0) {
    self->fail(FailureCause::Write, errorText(status));
    return;
  }
  if (!sock->out.pendingBuffer().empty()) self->flusher_.schedule(self);
}

void UpstreamConn::setLastError(FailureCause cause, std::string_view detail) {
  lastCause_ = cause;
  lastError_ = failureMessage(cause, detail);
}

void UpstreamConn::fail(FailureCause cause, std::string_view detail) {
  setLastError(cause, detail);
  if (state_ != State::Closed) {  // close() is the proxy's doing: not the backend's failure
    if (cause == FailureCause::Closed) stats_.eofs++;
    else stats_.errors++;
    if (failures_ != nullptr) ++*failures_;
    if (onEvent_ != nullptr) onEvent_(onEventCtx_, *this, LinkEvent::Failed);  // inflight() still counts what fails
  }
  dropSocket();
  if (state_ != State::Closed) state_ = State::Idle;
  // Back off before the next attempt; sends in the meantime are refused at once.
  backoffMs_ = backoffMs_ == 0 ? options_.minBackoffMs : std::min(backoffMs_ * 2, options_.maxBackoffMs);
  backoffUntilMs_ = uv_now(loop_) + static_cast<uint64_t>(backoffMs_);
  // Fail what is owed. Entries are popped before their sink runs: a sink may cancel or send.
  const std::string message = "backend " + endpoint_.label + ": " + lastError_;
  while (!fifo_.empty()) {
    const Entry e = fifo_.front();
    fifo_.pop_front();
    headSeq_++;
    if (e.handshake) continue;
    stats_.failures++;
    if (isTimeout(cause)) stats_.timeouts++;
    if (e.sink != nullptr) e.sink->onFailure(e.cookie, message);
  }
  if (state_ == State::Closed) return;
  if (push_ != nullptr) {
    // The subscriptions died with the socket: the owner decides (it closes its client, which
    // resubscribes), and nothing reconnects behind its back.
    ReplySink* sink = push_;
    push_ = nullptr;
    closeWhenIdle_ = true;  // refuse sends until the owner's close()
    sink->onFailure(0, message);
    return;
  }
  if (closeWhenIdle_) {
    close();  // nothing more is owed, and nothing new may be sent
    return;
  }
  armTimer();
}

void UpstreamConn::dropSocket() {
  flusher_.cancel(this);
  if (resolving_ != nullptr) {
    resolving_->data = nullptr;  // its callback frees it
    resolving_ = nullptr;
  }
  if (socket_ == nullptr) return;
  Socket* sock = socket_;
  socket_ = nullptr;
  sock->owner = nullptr;
  framer_->reset();
  if (!sock->handleInitialised) {
    delete sock;
    return;
  }
  uv_close(&sock->h.handle, [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
}

void UpstreamConn::armTimer() {
  if (state_ == State::Closed) return;
  uint64_t deadline = 0;
  if (state_ == State::Resolving || state_ == State::Connecting) {
    if (options_.connectTimeoutMs >= 0) deadline = connectStartedMs_ + static_cast<uint64_t>(options_.connectTimeoutMs);
  } else if (state_ == State::Ready) {
    if (options_.replyTimeoutMs >= 0 && !fifo_.empty())
      deadline = fifo_.front().sentAtMs + static_cast<uint64_t>(options_.replyTimeoutMs);
  } else if (state_ == State::Idle && backoffUntilMs_ > 0) {
    deadline = backoffUntilMs_;  // reconnect in the background
  }
  if (deadline == 0) {
    uv_timer_stop(&timer_);
    return;
  }
  const uint64_t now = uv_now(loop_);
  uv_timer_start(&timer_, &UpstreamConn::onTimerCb, deadline > now ? deadline - now : 0, 0);
}

void UpstreamConn::onTimerCb(uv_timer_t* t) { static_cast<UpstreamConn*>(t->data)->onTimer(); }

void UpstreamConn::onTimer() {
  const uint64_t now = uv_now(loop_);
  switch (state_) {
    case State::Resolving:
    case State::Connecting:
      if (options_.connectTimeoutMs >= 0 && now >= connectStartedMs_ + static_cast<uint64_t>(options_.connectTimeoutMs)) {
        fail(FailureCause::ConnectTimeout, std::to_string(options_.connectTimeoutMs));
        return;
      }
      break;
    case State::Ready:
      if (options_.replyTimeoutMs >= 0 && !fifo_.empty() &&
          now >= fifo_.front().sentAtMs + static_cast<uint64_t>(options_.replyTimeoutMs)) {
        // The stream is out of step once a reply is abandoned: drop the socket, as twemproxy does.
        fail(FailureCause::ReplyTimeout, std::to_string(options_.replyTimeoutMs));
        return;
      }
      break;
    case State::Idle:
      if (now >= backoffUntilMs_) {
        startConnect();
        return;
      }
      break;
    case State::Closed:
      return;
  }
  armTimer();
}

void UpstreamConn::closeWhenIdle() {
  closeWhenIdle_ = true;
  // Handshake replies do not count: nothing a client waits for.
  for (size_t i = 0; i < fifo_.size(); ++i)
    if (!fifo_[i].handshake) return;
  close();
}

void UpstreamConn::close() {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  fail(FailureCause::Removed);
  uv_timer_stop(&timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &UpstreamConn::onTimerClosed);
}

void UpstreamConn::onTimerClosed(uv_handle_t* h) { delete static_cast<UpstreamConn*>(h->data); }

}  // namespace backends::upstream
