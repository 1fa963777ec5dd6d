#include "proxy/runtime/client_session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "backends/io/memory_budget.h"
#include "proxy/runtime/log.h"
#include "proxy/runtime/routing_snapshot.h"

namespace proxy {

namespace {
// Reads get whatever room the input buffer has, at least this much. An empty buffer is a
// first-size block lent by the thread (16 KiB, see io::Buffer), so asking for more would
// force a fresh, larger allocation on every read of an idle connection.
constexpr size_t kMinRead = 4 * 1024;
// ...and at most this much per callback, so one client cannot monopolise a turn of the loop.
constexpr size_t kMaxRead = 256 * 1024;
// Over --max-buffered-bytes, a non-reading client holding more unread replies than this is let go.
constexpr size_t kShedOutputBytes = 1024 * 1024;
// A streamed reply is made a piece of this size at a time, each written before the next.
constexpr size_t kStreamPiece = 256 * 1024;
}  // namespace

ClientSession::ClientSession(SessionHost& host, RequestPool& requests, size_t pool)
    : host_(host),
      requests_(requests),
      poolIndex_(pool),
      stats_(&host.poolStats(host.snapshot().pools[pool].config.name)),
      gauges_(host.gauges(pool)) {
  poll_.data = this;
  host_.addSession(this);
  stats_->clientConnections++;
}

ClientSession::~ClientSession() {
  stats_->clientsClosed++;
  if (phase_ != Phase::New) gauges_->clients.fetch_sub(1, std::memory_order_relaxed);
  host_.removeSession(this);
}

void ClientSession::start(int fd, bool unixSocket) {
  DEBUG_ASSERT(host_.onOwnThread());
  DEBUG_ASSERT(phase_ == Phase::New);
  fd_ = fd;
  const int rc = uv_poll_init_socket(host_.loop(), &poll_, fd);
  if (rc < 0) {
    LOG_WARN("cannot watch client socket: %s", uv_strerror(rc));
    ::close(fd);
    delete this;  // the handle was never initialised: no close callback will come
    return;
  }
  poll_.data = this;
  if (!unixSocket) {
    const int one = 1;  // replies are whole messages: never wait for Nagle
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  lastActiveMs_ = uv_now(host_.loop());
  phase_ = Phase::Open;
  if (const std::shared_ptr<ServerTlsContext>& ctx = host_.snapshot().pools[poolIndex_].clientTls) {
    tls_ = std::make_unique<TlsServerSession>(ctx, fd);
    handshakeStartMs_ = lastActiveMs_ == 0 ? 1 : lastActiveMs_;
    host_.handshakesChanged(1);
  }
  // client_connections (twemproxy 0.5.0 parses it but never enforces it; ringproxy does).
  const uint32_t limit = host_.snapshot().pools[poolIndex_].config.clientConnections;
  const uint32_t before = gauges_->clients.fetch_add(1, std::memory_order_relaxed);
  if (limit != 0 && before >= limit) {
    stats_->clientsRejected++;
    const std::string_view reply = tooManyClientsReply();
    appendOutput(reply.data(), reply.size());
    closeAfterFlush();
    return;
  }
  onStart(fd);
  updatePoll();
}

// The socket is watched with a uv_poll handle and read and written directly: a uv_tcp_t
// stream would cost 88 more bytes per idle connection and a libuv layer per read and write.
// What it watches follows from the state: readable while Open with no hold, writable while
// the kernel's buffer is full.
void ClientSession::updatePoll() {
  if (phase_ == Phase::Closed || phase_ == Phase::New) return;
  const bool handshaking = handshakeStartMs_ != 0;  // TLS: the handshake reads whatever the phase
  const bool reading =
      (phase_ == Phase::Open && hold_ == InputHold::None) || phase_ == Phase::Lingering || handshaking;
  const bool watchHangUp = phase_ == Phase::Open && hold_ == InputHold::Blocked;
  const bool writing = writeBlocked_ || handshakeWantsWrite_;
  const int want = (reading ? UV_READABLE : 0) | (writing ? UV_WRITABLE : 0) | (watchHangUp ? UV_DISCONNECT : 0);
  if (want == polled_) return;
  polled_ = static_cast<uint8_t>(want);
  if (want == 0) {
    uv_poll_stop(&poll_);
    return;
  }
  const int rc = uv_poll_start(&poll_, want, &ClientSession::onPollCb);
  if (rc < 0) closeNow();
}

void ClientSession::onPollCb(uv_poll_t* h, int status, int events) {
  auto* self = static_cast<ClientSession*>(h->data);
  if (status < 0) {
    self->stats_->clientErr++;
    self->closeNow();
    return;
  }
  if ((events & UV_DISCONNECT) != 0 && self->hold_ == InputHold::Blocked && self->phase_ == Phase::Open) {
    self->stats_->clientEof++;
    self->closeNow();  // cancels the blocked request; its connection is closed with the session
    return;
  }
  if (self->handshakeStartMs_ != 0) {  // TLS: nothing moves until the handshake is done
    if (!self->tlsHandshake()) return;
    self->flushNow();  // what was written meanwhile (a refusal), then the reads below
    if (self->phase_ == Phase::Closed) return;
  }
  if ((events & UV_WRITABLE) != 0) self->flushNow();
  if ((events & UV_READABLE) == 0) return;
  if (self->phase_ == Phase::Open && self->hold_ == InputHold::None) self->readSocket();
  else if (self->phase_ == Phase::Lingering) self->readDiscarding();
}

void ClientSession::readSocket() {
  // Read until the kernel has nothing more or kMaxRead bytes came in, so one client cannot
  // monopolise a turn of the loop.
  size_t total = 0;
  for (;;) {
    size_t avail = 0;
    char* p = in_.writable(kMinRead, &avail);
    if (p == nullptr) {
      closeNow();
      return;
    }
    size_t want = std::min(avail, kMaxRead - total);
    if (want == 0) want = std::min<size_t>(avail, 16 * 1024);  // TLS past kMaxRead: a record at a time
    const ssize_t n = tls_ == nullptr ? ::read(fd_, p, want) : readTls(p, want);
    if (n > 0) {
      in_.commit(static_cast<size_t>(n));
      total += static_cast<size_t>(n);
      // TLS hands over a record at a time and may hold decrypted bytes the socket no longer
      // signals: read on until it says it has nothing.
      if (tls_ == nullptr ? static_cast<size_t>(n) < want || total >= kMaxRead
                          : total >= kMaxRead && !tls_->pending())
        break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // EOF: the client may have half-closed after sending its last requests; answer them,
    // then close. Any other error: the socket is gone.
    if (total > 0) onInput();
    if (phase_ == Phase::Closed) return;
    if (n == 0) {
      inputEnded_ = true;
      stats_->clientEof++;
      if (hold_ == InputHold::Blocked) closeNow();  // nothing to wait for: Redis frees it too
      else closeAfterFlush();
    } else {
      stats_->clientErr++;
      closeNow();
    }
    in_.releaseIfEmpty();
    return;
  }
  if (total > 0) onInput();
}

void ClientSession::onInput() {
  lastActiveMs_ = uv_now(host_.loop());
  if (phase_ == Phase::Open) processInput();
  if (phase_ == Phase::Open && hold_ == InputHold::None && !wantsMoreInput()) hold_ = InputHold::BackPressure;
  updatePoll();  // stops reading if input is now held (back-pressure, or the protocol's drain)
  in_.releaseIfEmpty();  // idle connections hold no input buffer
}

bool ClientSession::wantsMoreInput() const {
  if (hold_ == InputHold::Drain || hold_ == InputHold::Blocked) return false;
  const PoolRoute* route = poolRoute();
  if (route == nullptr) return true;  // draining after a reload removed the pool
  return pending_ < route->config.maxPendingRequests && out_.readableSize() < route->config.maxClientOutputBytes;
}

void ClientSession::maybeResume() {
  if (hold_ != InputHold::BackPressure || phase_ != Phase::Open || !wantsMoreInput()) return;
  hold_ = InputHold::None;
  processInput();  // requests already buffered come first
  if (hold_ == InputHold::None && phase_ == Phase::Open && !wantsMoreInput()) hold_ = InputHold::BackPressure;
  updatePoll();
  in_.releaseIfEmpty();
}

void ClientSession::enqueue(Request* r) {
  DEBUG_ASSERT(r->next == nullptr && r != tail_);
  if (tail_ != nullptr) tail_->next = r;
  else head_ = r;
  tail_ = r;
  pending_++;
}

bool ClientSession::sendFragment(Request& r, uint32_t fragment, uint32_t backend,
                                 backends::upstream::UpstreamLink& link, const char* bytes, size_t len,
                                 uint32_t hint) {
  const uint64_t seq = link.send(bytes, len, &r, fragment, hint);
  Fragment& f = r.fragment(fragment);
  f.backend = backend;
  if (seq == 0) {
    f.failed = true;
    if (r.error.empty()) {
      r.error = backendErrorPrefix();
      r.error += "backend " + link.label() + ": " + link.lastError();
    }
    stats_->forwardErrors++;
    return false;
  }
  f.link = &link;
  f.seq = seq;
  r.waiting++;
  return true;
}

void ClientSession::replyLocal(std::string_view bytes) {
  if (head_ == nullptr) {  // nothing before it: no need to queue
    appendOutput(bytes.data(), bytes.size());
    return;
  }
  Request* r = newRequest();
  r->reply.assign(bytes);
  r->accountHeldBytes();
  r->complete = true;
  enqueue(r);
}

void ClientSession::appendOutput(const char* p, size_t n) {
  // A client to be closed at the flush (let go over --max-buffered-bytes, or its socket is
  // dead) gets nothing more: its replies cannot be delivered, and buffering the rest of the
  // turn's replies for it would push the process further over the limit it is shed for.
  if (n == 0 || fault_ != OutputFault::None) return;
  out_.append(p, n);
  lastActiveMs_ = uv_now(host_.loop());  // a reply is activity too (client_idle_timeout)
  // A client that closed its end may be gone for good: write now, so a dead socket is found
  // at the first reply (EPIPE) rather than after every reply still owed has been buffered.
  if (phase_ != Phase::Open && !writeBlocked_) {
    writeSome();
    if (fault_ != OutputFault::None) return;
  }
  // Over --max-buffered-bytes, a client that has stopped reading while replies pile up for it
  // is let go (as Redis's client-output-buffer-limit does): its replies cannot be delivered
  // and must not hold the memory every other client needs. Closed from the flush, not here,
  // because callers may be walking this session's request queue.
  if (out_.readableSize() > kShedOutputBytes && backends::io::overBufferLimit()) {
    // Large replies: see now whether the client takes them, rather than at the end of the turn.
    if (!writeBlocked_) writeSome();
    if (writeBlocked_ && fault_ == OutputFault::None && out_.readableSize() > kShedOutputBytes) {
      fault_ = OutputFault::Shed;
      stats_->limitErrors++;
      LOG_NOTICE("closing a client that is not reading its replies (%zu bytes waiting) while over --max-buffered-bytes",
                 out_.readableSize());
    }
  }
  host_.flusher().schedule(this);
}

void ClientSession::writeOutOfBand(const char* p, size_t n) {
  if (phase_ == Phase::Closed) return;
  size_t waiting = 0;
  if (streaming_) {  // never inside a reply: after the streamed one is written
    if (!heldPushes_) heldPushes_ = std::make_unique<std::string>();
    heldPushes_->append(p, n);
    waiting = heldPushes_->size() + out_.readableSize();
  } else {
    appendOutput(p, n);
    waiting = out_.readableSize();
  }
  const PoolRoute* route = poolRoute();
  const uint64_t limit = route != nullptr ? route->config.maxClientOutputBytes : 64ull << 20;
  if (fault_ == OutputFault::None && waiting > limit) {
    fault_ = OutputFault::Shed;
    stats_->limitErrors++;
    LOG_NOTICE("closing a subscriber that left %zu bytes of messages unread (max_client_output_bytes %llu)", waiting,
               static_cast<unsigned long long>(limit));
    host_.flusher().schedule(this);
  }
}

void ClientSession::complete(Request& r) {
  r.complete = true;
  if (&r == head_) drainCompleted();
  else r.accountHeldBytes();  // kept until the requests before it are answered
}

void ClientSession::popHead() {
  DEBUG_ASSERT(head_ != nullptr && pending_ > 0);
  Request* r = head_;
  head_ = r->next;
  if (head_ == nullptr) tail_ = nullptr;
  pending_--;
  freeRequest(r);
}

void ClientSession::replyHead(const char* p, size_t n) {
  DEBUG_ASSERT(head_ != nullptr);
  // Nothing queued behind the head and nothing unsent: no other reply can join this one in
  // the turn's write, so it is sent now, straight from the backend's buffer, with no copy
  // into out_ and no block lent for it. What the kernel does not take is buffered and
  // written as usual.
  bool sentAll = false;
  if (head_->next == nullptr && out_.empty() && phase_ == Phase::Open && !writeBlocked_ &&
      fault_ == OutputFault::None) {
    const size_t sent = sendBytes(p, n);
    if (sent > 0) lastActiveMs_ = uv_now(host_.loop());
    p += sent;
    n -= sent;
    sentAll = n == 0;
  }
  appendOutput(p, n);  // the rest, if any (nothing once the socket is dead)
  popHead();
  drainCompleted();
  // No flush was scheduled for this reply; a client paused for back-pressure resumes there.
  if (sentAll && hold_ == InputHold::BackPressure) host_.flusher().schedule(this);
}

void ClientSession::drainCompleted() {
  while (head_ != nullptr && head_->complete) {
    if (!head_->streamed) {
      appendOutput(head_->reply.data(), head_->reply.size());
    } else if (!streamHead()) {
      return;  // the rest once the client has taken this piece (flushNow)
    }
    popHead();
  }
  if (phase_ != Phase::Open) {
    maybeFinishClose();
  } else if (head_ == nullptr && (hold_ == InputHold::Drain || hold_ == InputHold::Blocked)) {
    hold_ = InputHold::BackPressure;  // resume as after back-pressure: buffered input first
    maybeResume();
  }
}

bool ClientSession::streamHead() {
  // Each piece goes to the socket before the next is made, so while the client reads, a
  // merged reply of any size costs at most about one piece beyond the shards' parts. A client
  // that stops reading holds only those parts (counted against --max-buffered-bytes), and the
  // sweep lets it go if it stalls while the process is over its limit (shedIfStalled).
  Request& r = *head_;
  const uint64_t now = uv_now(host_.loop());
  if (!streaming_) {
    streaming_ = true;
    r.streamProgressMs = now;
    r.streamOffset = 0;
    r.accountHeldBytes();
  }
  bool done = false;
  while (!done && fault_ == OutputFault::None) {
    if (out_.readableSize() >= kStreamPiece) {
      const size_t before = out_.readableSize();
      writeSome();
      if (out_.readableSize() < before) {
        r.streamProgressMs = now;
        lastActiveMs_ = now;
      }
      if (out_.readableSize() >= kStreamPiece) return false;  // writable wakes flushNow
    }
    done = r.streamReply(out_, kStreamPiece);
    host_.flusher().schedule(this);  // the turn's write takes what is left of the piece
  }
  // Written whole, or undeliverable (the socket is dead or the client was let go): either
  // way this reply is over.
  streaming_ = false;
  if (heldPushes_ && !heldPushes_->empty()) {
    appendOutput(heldPushes_->data(), heldPushes_->size());
    heldPushes_.reset();
  }
  return true;
}

bool ClientSession::shedIfStalled(uint64_t nowMs, uint64_t stallMs) {
  if (!streaming_ || phase_ == Phase::Closed || fault_ != OutputFault::None || head_ == nullptr ||
      nowMs - head_->streamProgressMs < stallMs)
    return false;
  stats_->limitErrors++;
  LOG_NOTICE("closing a client that took nothing of a large reply for %llu ms while over --max-buffered-bytes",
             static_cast<unsigned long long>(nowMs - head_->streamProgressMs));
  closeNow();
  return true;
}

void ClientSession::writeSome() {
  if (!out_.empty()) out_.consume(sendBytes(out_.readable(), out_.readableSize()));
}

size_t ClientSession::sendBytes(const char* p, size_t n) {
  // Only writes: no state changes beyond writeBlocked_ and fault_, so it is safe in the
  // middle of queue processing. A dead socket is closed by flushNow.
  size_t sent = 0;
  while (sent < n) {
    const ssize_t k = tls_ == nullptr ? ::send(fd_, p + sent, n - sent, MSG_NOSIGNAL) : sendTls(p + sent, n - sent);
    if (k > 0) {
      sent += static_cast<size_t>(k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      writeBlocked_ = true;  // the kernel buffer is full: wait until the socket is writable
      updatePoll();
    } else if (k < 0) {
      // The peer is gone: close at the next flush, which no longer copies replies for it.
      LOG_DEBUG("client write failed: %s", std::strerror(errno));
      fault_ = OutputFault::Dead;
      host_.flusher().schedule(this);
    }
    break;
  }
  return sent;
}

void ClientSession::flushNow() {
  // One write of everything pending (written once per loop turn, by the FlushScheduler, or
  // when the socket becomes writable again).
  if (phase_ == Phase::Closed) return;
  if (fault_ == OutputFault::None) writeSome();
  if (streaming_ && out_.empty() && fault_ == OutputFault::None) {
    head_->streamProgressMs = uv_now(host_.loop());  // the client took the last piece
    drainCompleted();  // the next pieces of a streamed reply, and the replies behind it
    if (phase_ == Phase::Closed) return;
    if (fault_ == OutputFault::None) writeSome();
  }
  if (fault_ != OutputFault::None) {
    stats_->clientErr++;
    closeNow();
    return;
  }
  if (!out_.empty()) return;  // blocked: resumed when the socket is writable
  out_.releaseIfEmpty();      // lent back: an idle connection keeps no output buffer
  if (writeBlocked_) {
    writeBlocked_ = false;
    updatePoll();
  }
  if (phase_ != Phase::Open) maybeFinishClose();
  else maybeResume();
}

void ClientSession::closeAfterFlush() {
  if (phase_ == Phase::Open) phase_ = Phase::Finishing;
  updatePoll();
  maybeFinishClose();
}

void ClientSession::maybeFinishClose() {
  if (phase_ != Phase::Finishing || head_ != nullptr || !out_.empty()) return;
  if (inputEnded_ || fault_ != OutputFault::None) closeNow();
  else beginLinger();
}

void ClientSession::beginLinger() {
  // Closing a socket with unread input makes the kernel send a reset, and a reset makes the
  // client's kernel drop what it has received but not yet read: a client refused in the
  // middle of sending (a request over max_request_bytes, a protocol error) would lose the
  // error reply that says why. So, as web servers do, the write side is shut (the client
  // reads every reply, then end-of-file) and its input is read and dropped until it closes.
  if (tls_ != nullptr) tls_->shutdown();  // close_notify: the client's TLS sees a clean end
  if (::shutdown(fd_, SHUT_WR) != 0) {
    closeNow();
    return;
  }
  phase_ = Phase::Lingering;
  host_.lingerChanged(1);
  lastActiveMs_ = uv_now(host_.loop());  // the linger's start (closeIfLingered)
  in_.consume(in_.readableSize());  // what was not processed will never be
  in_.releaseIfEmpty();
  updatePoll();
}

ssize_t ClientSession::readTls(char* p, size_t n) {
  const ssize_t k = tls_->read(p, n);
  if (k < 0) errno = tls_->want() != TlsServerSession::Want::None ? EAGAIN : ECONNRESET;
  return k;
}

ssize_t ClientSession::sendTls(const char* p, size_t n) {
  if (handshakeStartMs_ != 0) {  // nothing is sent before the handshake is done
    errno = EAGAIN;
    return -1;
  }
  const ssize_t k = tls_->write(p, n);
  if (k < 0) errno = tls_->want() != TlsServerSession::Want::None ? EAGAIN : EPIPE;
  return k;
}

bool ClientSession::tlsHandshake() {
  if (tls_->ok() && tls_->handshake()) {
    endHandshake();
    return true;
  }
  if (!tls_->ok() || tls_->want() == TlsServerSession::Want::None) {
    stats_->clientErr++;
    LOG_INFO("client TLS handshake failed: %s", tls_->error().c_str());
    closeNow();
    return false;
  }
  handshakeWantsWrite_ = tls_->want() == TlsServerSession::Want::Write;
  updatePoll();
  return false;
}

void ClientSession::endHandshake() {
  if (handshakeStartMs_ == 0) return;
  handshakeStartMs_ = 0;
  handshakeWantsWrite_ = false;
  host_.handshakesChanged(-1);
  updatePoll();
}

bool ClientSession::closeIfHandshakeStalled(uint64_t nowMs, uint64_t limitMs) {
  if (handshakeStartMs_ == 0 || phase_ == Phase::Closed || nowMs - handshakeStartMs_ < limitMs) return false;
  stats_->clientErr++;
  LOG_INFO("closing a client whose TLS handshake took more than %llu ms", static_cast<unsigned long long>(limitMs));
  closeNow();
  return true;
}

void ClientSession::readDiscarding() {
  char sink[16 * 1024];
  for (size_t total = 0; total < kMaxRead;) {
    const ssize_t n = ::read(fd_, sink, sizeof sink);
    if (n > 0) {
      total += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    closeNow();  // the client closed (or the socket failed): the linger is over
    return;
  }
}

bool ClientSession::closeIfLingered(uint64_t nowMs, uint64_t lingerMs) {
  if (phase_ != Phase::Lingering || nowMs - lastActiveMs_ < lingerMs) return false;
  closeNow();
  return true;
}

bool ClientSession::closeIfIdle(uint64_t nowMs, uint64_t timeoutMs) {
  if (phase_ != Phase::Open || head_ != nullptr || !out_.empty() || nowMs - lastActiveMs_ < timeoutMs) return false;
  stats_->clientsIdleClosed++;
  closeNow();
  return true;
}

void ClientSession::remapPool(const std::vector<size_t>& remap) {
  if (poolIndex_ == kNoPool) return;
  poolIndex_ = poolIndex_ < remap.size() ? remap[poolIndex_] : kNoPool;
  if (poolIndex_ == kNoPool) beginDrain();
}

void ClientSession::beginDrain() {
  if (phase_ != Phase::Open) return;
  closeAfterFlush();
}

void ClientSession::closeNow() {
  if (phase_ == Phase::Closed) return;
  DEBUG_ASSERT(host_.onOwnThread());
  const bool started = phase_ != Phase::New;
  if (phase_ == Phase::Lingering) host_.lingerChanged(-1);
  if (handshakeStartMs_ != 0) {
    handshakeStartMs_ = 0;
    host_.handshakesChanged(-1);
  }
  phase_ = Phase::Closed;
  host_.flusher().cancel(this);
  while (head_ != nullptr) {  // cancel-before-destroy: upstreams drop the replies
    Request* r = head_;
    head_ = r->next;
    r->cancelAll();
    freeRequest(r);
  }
  tail_ = nullptr;
  pending_ = 0;
  if (!started) {  // never watched: nothing to close but the session
    delete this;
    return;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), &ClientSession::onCloseCb);
}

void ClientSession::onCloseCb(uv_handle_t* h) {
  auto* self = static_cast<ClientSession*>(h->data);
  if (self->fd_ >= 0) ::close(self->fd_);  // a poll handle does not own its socket
  delete self;
}

}  // namespace proxy
