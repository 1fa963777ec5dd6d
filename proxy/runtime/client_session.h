// client_session.h: what every client connection has, whatever its protocol: the socket, the
// input buffer, the ordered queue of requests, the batched output, back-pressure and closing.
//
// The life of one request (Redis GET; memcached is the same with its own framer):
//   1. readSocket() reads what the kernel has into in_ and calls onInput().
//   2. The protocol's processInput() frames requests in place (RedisSession::frameRequests:
//      the parser returns spans into in_), looks the command up in its table and dispatches.
//   3. dispatch routes the key: host_.placement(pool).backendOf(key) gives the owner's
//      snapshot backend index; host_.upstream(owner, channel) gives the pipelined link.
//   4. A Request is taken from the frontend's pool, sendFragment() hands the original bytes
//      to the link (no copy into a new message), which appends them to its output queue and
//      records (request, fragment) in its FIFO of owed replies; enqueue() appends the
//      request to this client's queue. The link writes once per loop turn (FlushScheduler).
//   5. The backend's reply is framed by the link and delivered to the FIFO head's sink:
//      Request::onReply -> the session's onFragmentReply.
//   6. A single-key reply for the head of the queue is sent at once from the backend's buffer
//      (replyHead); otherwise it is kept in the request (complete) until the requests before
//      it are answered. Multi-key requests merge their fragments first (one function per
//      kind of merge), then complete.
//   7. drainCompleted() moves every finished reply at the head of the queue to out_, which
//      leaves in one write per loop turn (flushNow).
//
// Back-pressure: a client that pipelines without reading stops being read once it has
// maxPendingRequests unanswered or maxOutputBytes unsent; it is read again when it drains.
// Closing: on EOF, QUIT or an unframeable stream the session stops reading, lets what is in
// flight finish and flush, then closes. A hard close cancels all in-flight requests.
// Lifetime: the session is deleted in exactly one place, its handle's close callback.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/io/buffer.h"
#include "backends/io/flush_scheduler.h"
#include "proxy/runtime/request.h"
#include "proxy/runtime/session_host.h"
#include "proxy/runtime/tls_server.h"
#include "proxy/runtime/stats.h"

namespace proxy {

class ClientSession : public RequestOwner, private backends::io::Flushable {
 public:
  ClientSession(SessionHost& host, RequestPool& requests, size_t pool);
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Takes an accepted socket and starts reading. On failure the session closes itself (and
  // is deleted by its close callback; the socket is closed with it).
  void start(int fd, bool unixSocket);
  // Shutdown: stop reading, finish what is in flight, then close.
  void beginDrain();
  // Cancel everything and close now.
  void closeNow();
  // client_idle_timeout: closes the session if it has had nothing in flight and no input for
  // `timeoutMs`. Returns true when it closed.
  bool closeIfIdle(uint64_t nowMs, uint64_t timeoutMs);
  // Ends a lingering close that has lasted `lingerMs` (the host's sweep calls it); true if
  // the session was closed.
  bool closeIfLingered(uint64_t nowMs, uint64_t lingerMs);
  // Closes a client whose TLS handshake has taken `limitMs` (the host's sweep calls it).
  bool closeIfHandshakeStalled(uint64_t nowMs, uint64_t limitMs);
  // While the process is over --max-buffered-bytes: a client that has taken nothing of a
  // streamed reply for `stallMs` holds memory it will not read, and is let go (counted).
  bool shedIfStalled(uint64_t nowMs, uint64_t stallMs);

  // A reload renumbered the pools: `remap[old]` is this session's new pool index, or
  // kNoPool when its pool is gone (the session then finishes what is in flight and closes).
  static constexpr size_t kNoPool = SIZE_MAX;
  size_t pool() const { return poolIndex_; }
  void remapPool(const std::vector<size_t>& remap);
  // Where keys go changed (a reload, an ejection, a rejoin): called after the host's snapshot
  // and placements are current. Snapshot backend indexes may have been renumbered.
  virtual void onRoutingChanged() {}
  // CLIENT KILL from another worker asked for this client's close (and the request is now
  // taken): the host's sweep then closes it.
  virtual bool takeKill() { return false; }

  ClientSession* listPrev = nullptr;  // the host's list of sessions
  ClientSession* listNext = nullptr;

 protected:
  virtual ~ClientSession();

  // Frames and dispatches requests from input(). Called after each read and when reading resumes.
  virtual void processInput() = 0;
  // The session is open on `fd` (start() succeeded and the client was not refused).
  virtual void onStart(int /*fd*/) {}
  // What a client refused for the pool's client_connections limit is told before the close.
  virtual std::string_view tooManyClientsReply() const = 0;
  // What starts the error text of a request its backend refused ("ERR " for Redis).
  virtual std::string_view backendErrorPrefix() const = 0;

  // This session's pool in the host's current snapshot; nullptr once a reload removed it.
  const PoolRoute* poolRoute() const {
    return poolIndex_ == kNoPool ? nullptr : &host_.snapshot().pools[poolIndex_];
  }
  backends::io::Buffer& input() { return in_; }
  PoolStats& stats() { return *stats_; }

  Request* newRequest() { return requests_.get(this); }
  void freeRequest(Request* r) { requests_.put(r); }
  // Appends `r` to the queue: its reply leaves after those of every request queued before it.
  void enqueue(Request* r);
  bool isHead(const Request& r) const { return &r == head_; }
  bool hasQueued() const { return head_ != nullptr; }
  // Sends `bytes` on `link` as fragment `fragment` of `r`, bound for snapshot backend
  // `backend`; `hint` is passed to the reply framer. False when the backend refuses at once
  // (it is backing off after a failure): the fragment is then marked failed, r.error names the
  // backend and the cause (if no earlier failure did), and the failure is counted.
  bool sendFragment(Request& r, uint32_t fragment, uint32_t backend, backends::upstream::UpstreamLink& link,
                    const char* bytes, size_t len, uint32_t hint = 0);
  // `r`'s whole reply is the backend's, as is: written at once when `r` is the head (the
  // common case, no copy), else kept until the requests before it complete.
  void relayReply(Request& r, const char* data, size_t len) {
    if (&r == head_) {
      replyHead(data, len);
      return;
    }
    r.reply.assign(data, len);
    r.waiting = 0;
    complete(r);
  }
  // Marks `r` complete (its reply in r.reply) and writes out whatever is now ready.
  void complete(Request& r);
  // The reply for a request answered without going upstream.
  void replyLocal(std::string_view bytes);
  // The head request's whole reply, from a backend's buffer: written (sent at once when it is
  // the last reply owed), then the head is freed and complete successors are written.
  void replyHead(const char* p, size_t n);
  // A frame outside the request/reply order (a pub/sub message): written now, between whole
  // replies. A client that leaves more than max_client_output_bytes of them unread is
  // disconnected at the next flush, as Redis's client-output-buffer-limit for pub/sub does.
  void writeOutOfBand(const char* p, size_t n);
  // Stop reading; close once every queued reply has been written.
  void closeAfterFlush();
  bool finishing() const { return phase_ != Phase::Open; }
  bool wantsMoreInput() const;
  // Hold input until every queued request has completed (a request that must not overtake
  // the ones in flight, e.g. because it travels on another backend connection).
  void holdInputUntilDrained() { hold_ = InputHold::Drain; }
  // The same for a client blocked on a command that may wait for ever (BLPOP 0): besides,
  // if the client hangs up meanwhile, it is closed at once and its requests cancelled, as
  // Redis frees a blocked client that disconnects, so its backend connection is let go too.
  void holdInputWhileBlocked() { hold_ = InputHold::Blocked; }
  bool blocked() const { return hold_ == InputHold::Blocked; }

  SessionHost& host_;

 private:
  // Where the connection is in its life.
  enum class Phase : uint8_t {
    New,        // constructed, start() not called yet
    Open,       // reading and answering
    Finishing,  // no more input is processed; closes once every queued reply is written
    Lingering,  // every reply written and the write side shut: input is read and dropped
                // until the client closes (or kLingerMs), so a client still sending when it
                // was refused gets its error reply rather than a reset that discards it
    Closed,     // the handle is closing; the session is deleted by its close callback
  };
  // Why input is not read while Open (read when None).
  enum class InputHold : uint8_t {
    None,
    BackPressure,  // too many requests unanswered, or too many reply bytes unsent
    Drain,         // held by the protocol until the queue is empty (holdInputUntilDrained)
    Blocked,       // the same, watching for a hang-up (holdInputWhileBlocked)
  };
  // What happened to the output stream; anything but None closes the client at the next flush.
  enum class OutputFault : uint8_t {
    None,
    Shed,  // let go: not reading its replies while the process is over --max-buffered-bytes
    Dead,  // a write failed: the peer is gone
  };

  void flushNow() override;
  void writeSome();
  // Sends what the kernel takes of p[0, n) and returns how much that was; a full socket
  // buffer sets writeBlocked_ (wait for writable), a dead peer OutputFault::Dead.
  size_t sendBytes(const char* p, size_t n);
  // Writes bytes straight to the output: only for the head of the queue (or an empty queue).
  void appendOutput(const char* p, size_t n);
  void popHead();
  void updatePoll();
  void readSocket();
  void onInput();
  void maybeResume();
  void maybeFinishClose();
  void beginLinger();
  void readDiscarding();
  // The socket's bytes through TLS (the pool listens with it): as read(2) and send(2), with
  // EAGAIN in errno when nothing can move now. The plain path calls read/send itself.
  ssize_t readTls(char* p, size_t n);
  ssize_t sendTls(const char* p, size_t n);
  // Advances the TLS handshake; false while it is not done (or the session was closed).
  bool tlsHandshake();
  void endHandshake();
  void drainCompleted();
  // Writes the head's streamed reply a piece at a time; false while the client has not taken
  // the last piece yet (flushNow resumes it), true once all of it is written (or undeliverable).
  bool streamHead();
  static void onPollCb(uv_poll_t* h, int status, int events);
  static void onCloseCb(uv_handle_t* h);

  RequestPool& requests_;  // the frontend's, shared by the worker's sessions of this protocol
  size_t poolIndex_;
  PoolStats* stats_;                // this pool's counters on this host (outlive every session)
  PoolGauges* gauges_;  // the pool's shared gauges (kept alive by the host)
  backends::io::Buffer in_;
  backends::io::Buffer out_;  // replies not yet accepted by the kernel
  Request* head_ = nullptr;   // the ordered queue of requests, oldest first
  Request* tail_ = nullptr;
  size_t pending_ = 0;
  uv_poll_t poll_{};
  int fd_ = -1;
  uint64_t lastActiveMs_ = 0;
  Phase phase_ = Phase::New;
  InputHold hold_ = InputHold::None;
  OutputFault fault_ = OutputFault::None;
  bool writeBlocked_ = false;  // the kernel's buffer was full: waiting for writable
  bool inputEnded_ = false;    // the client half-closed: nothing to linger for
  uint8_t polled_ = 0;         // the events poll_ watches now
  bool streaming_ = false;     // the head's streamed reply is partly written
  // Out-of-band frames (RESP3 pushes) that arrived while a streamed reply was partly written:
  // they go out after it, never inside it.
  std::unique_ptr<std::string> heldPushes_;
  std::unique_ptr<TlsServerSession> tls_;  // null: plain
  bool handshakeWantsWrite_ = false;       // the TLS handshake waits for the socket to be writable
  uint64_t handshakeStartMs_ = 0;          // non-zero while the handshake is counted in the host
};

}  // namespace proxy
