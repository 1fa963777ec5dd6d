// upstream_conn.h: one pipelined connection to one backend server.
//
// Data flow: the proxy send()s complete request bytes with a ReplySink and a cookie; the bytes
// are appended to the socket's output queue and leave in one batched write per loop turn. The
// connection keeps a FIFO of what it owes: replies come back in request order, the framer
// finds where each ends, and the head entry's sink gets the reply bytes (valid only during the
// callback). A cancelled entry (client gone) stays in the FIFO and its reply is dropped, so
// the stream stays in step.
//
// Failures: a refused connect, a closed or broken socket, a framing error or a reply timeout
// fails every entry owed (each sink gets onFailure with a message naming the backend and the
// cause), closes the socket and reconnects in the background with exponential backoff. While
// backing off, send() refuses at once so callers can answer an error without waiting.
//
// Lifetime: the owner calls close(); the object deletes itself once its handles have closed.
// Sinks get exactly one callback per accepted send unless they cancel() first.
#pragma once

#include <uv.h>

#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>

#include "backends/io/flush_scheduler.h"
#include "backends/io/output_queue.h"
#include "backends/io/ring_queue.h"
#include "backends/upstream/failure_cause.h"
#include "backends/upstream/tls_client.h"
#include "backends/upstream/upstream_link.h"

namespace backends::upstream {

struct Endpoint {
  std::string host;   // literal address or name (resolved at each connect)
  uint16_t port = 0;
  std::string path;   // unix socket, instead of host:port
  std::string label;  // how messages name the backend
};

struct Options {
  int connectTimeoutMs = -1;  // -1: none
  int replyTimeoutMs = -1;    // -1: none
  std::string handshake;      // bytes sent first on every new socket (AUTH, SELECT, HELLO)
  uint32_t handshakeReplies = 0;
  bool tcpKeepalive = false;
  std::shared_ptr<ClientTlsContext> tls;  // null: plain TCP
  int minBackoffMs = 50;      // after a failure, refuse sends for this long, doubling
  int maxBackoffMs = 2000;
};

enum class FrameStatus : uint8_t { Complete, NeedMore, Error };
struct Frame {
  FrameStatus status = FrameStatus::NeedMore;
  size_t length = 0;      // Complete: bytes of the reply
  bool isError = false;   // Complete: an error reply (-ERR, SERVER_ERROR, ...)
};

// Finds where one reply ends. Resumable: called again with the same start and more bytes
// after NeedMore; reset() after each Complete. `hint` is what send() was given for the
// request this reply answers (memcached replies are framed according to their request).
class ReplyFramer {
 public:
  virtual ~ReplyFramer() = default;
  virtual Frame frame(const char* data, size_t len, uint32_t hint) = 0;
  virtual void reset() = 0;
};

// Reply latency buckets (upper bounds, microseconds); the last bucket is everything slower.
inline constexpr uint64_t kLatencyBucketsUs[] = {100, 250, 500, 1000, 2500, 5000, 10000, 25000,
                                                 50000, 100000, 250000, 500000, 1000000};
inline constexpr size_t kLatencyBuckets = std::size(kLatencyBucketsUs) + 1;

struct ConnStats {
  uint64_t requests = 0;
  uint64_t replies = 0;
  uint64_t errorReplies = 0;
  uint64_t failures = 0;  // requests failed by the connection (refused, closed, timeout)
  uint64_t timeouts = 0;
  uint64_t connects = 0;
  uint64_t eofs = 0;      // sockets the backend closed
  uint64_t errors = 0;    // sockets dropped for any other failure (refused, reset, timeout, ...)
  uint64_t bytesOut = 0;
  uint64_t bytesIn = 0;
  uint64_t latency[kLatencyBuckets] = {};  // replies by how long they took (send to reply)
  uint64_t latencySumUs = 0;

  void recordLatency(uint64_t us) {
    size_t b = 0;
    while (b < kLatencyBuckets - 1 && us > kLatencyBucketsUs[b]) ++b;
    latency[b]++;
    latencySumUs += us;
  }
};

// What a connection tells its owner (BackendPool, and through it the proxy's logs and
// ejection): failures count towards the backend's failure streak, Connected ends one.
enum class LinkEvent : uint8_t {
  Failed,     // the socket failed or could not be set up (lastCause() says how)
  Refused,    // a send was refused at once: the connection is backing off after a failure
  Connected,  // a connect (and its handshake being sent) succeeded
};

class UpstreamConn final : public UpstreamLink, private io::Flushable {
 public:
  UpstreamConn(uv_loop_t* loop, io::FlushScheduler& flusher, Endpoint endpoint, Options options,
               std::unique_ptr<ReplyFramer> framer);
  UpstreamConn(const UpstreamConn&) = delete;
  UpstreamConn& operator=(const UpstreamConn&) = delete;

  // Queues a request. Returns its sequence number (for cancel), or 0 when the backend is
  // backing off after a failure: then nothing was queued and lastError() says why.
  [[nodiscard]] uint64_t send(const char* data, size_t len, ReplySink* sink, uint64_t cookie, uint32_t hint) override;
  // The sink of request `seq` is forgotten; its reply will be read and dropped.
  void cancel(uint64_t seq) override;
  // Starts connecting now (preconnect) instead of at the first send.
  void connectNow();
  // Forgets the backoff and connects now (a backend rejoining its ring after ejection).
  void retryNow();
  // Fails what is owed, closes, and deletes this object once its handles have closed.
  void close() override;
  // Refuses new sends, lets every request already sent get its reply, then close()s. Used
  // for backends removed by a reload and for a client's dedicated WATCH connection.
  void closeWhenIdle() override;
  // Push mode, for a pub/sub subscriber connection: requests owe no reply, and every frame the
  // backend sends (after the handshake) goes to `sink` as onReply(0, ...); a failure calls
  // sink->onFailure(0, why) once and the connection stays down until close(). Set before
  // the first send.
  void setPushSink(ReplySink* sink) { push_ = sink; }
  void setReplyTimeout(int ms) override {
    options_.replyTimeoutMs = ms;
    armTimer();
  }

  const Endpoint& endpoint() const { return endpoint_; }
  const std::string& label() const override { return endpoint_.label; }
  const std::string& lastError() const override { return lastError_; }
  // Why lastError() was set; None once a connect succeeds (lastError() is cleared then too).
  FailureCause lastCause() const { return lastCause_; }
  size_t inflight() const { return fifo_.size(); }
  // Request bytes written by clients but not yet accepted by the kernel.
  size_t queuedBytes() const;
  bool connected() const { return state_ == State::Ready; }
  const ConnStats& stats() const { return stats_; }

  // Health accounting shared by the connections of one backend: every failure increments
  // `*counter` (any reply resets it: twemproxy's server_failure_limit counts consecutive
  // failures), and every event calls `onEvent`, which may read lastCause() and lastError().
  using EventFn = void (*)(void* ctx, const UpstreamConn& conn, LinkEvent event);
  void setHealth(uint32_t* counter, EventFn onEvent, void* ctx) {
    failures_ = counter;
    onEvent_ = onEvent;
    onEventCtx_ = ctx;
  }

 private:
  struct Socket;
  struct Entry {
    ReplySink* sink;  // nullptr: cancelled, or a handshake reply
    uint64_t cookie;
    uint32_t hint;
    bool handshake;
    uint64_t sentAtMs;
    uint64_t sentAtUs;  // monotonic, for the latency histogram
  };
  enum class State : uint8_t { Idle, Resolving, Connecting, Ready, Closed };

  ~UpstreamConn();
  void flushNow() override;
  void startConnect();
  void connectResolved(const sockaddr* addr);
  void onConnected(int status);
  void becomeReady();  // connected (and, with TLS, the handshake done): requests may flow
  void onRead(ssize_t nread);
  // TLS: records arrived in the socket's cipherIn; advanceTls drives the handshake.
  void onTlsRead();
  void advanceTls();
  // `detail` is what the message adds to the cause: an error text, a duration in ms, ...
  // (see failureMessage in the .cc, the one place the wording lives).
  void fail(FailureCause cause, std::string_view detail = {});
  void setLastError(FailureCause cause, std::string_view detail);
  void dropSocket();
  void armTimer();
  void onTimer();

  static void onResolvedCb(uv_getaddrinfo_t* req, int status, addrinfo* res);
  static void onConnectCb(uv_connect_t* req, int status);
  static void onAllocCb(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void onReadCb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void onWriteDone(void* owner, int status);
  static void onTimerCb(uv_timer_t* t);
  static void onTimerClosed(uv_handle_t* h);

  uv_loop_t* loop_;
  io::FlushScheduler& flusher_;
  Endpoint endpoint_;
  Options options_;
  std::unique_ptr<ReplyFramer> framer_;
  State state_ = State::Idle;
  Socket* socket_ = nullptr;        // the current socket, owned until its close callback
  uv_getaddrinfo_t* resolving_ = nullptr;
  uv_timer_t timer_{};              // connect timeout, reply timeout and reconnect, one at a time
  bool closeWhenIdle_ = false;
  io::RingQueue<Entry> fifo_;
  uint64_t headSeq_ = 1;            // sequence number of fifo_.front()
  uint64_t backoffUntilMs_ = 0;
  int backoffMs_ = 0;
  uint64_t connectStartedMs_ = 0;
  std::string lastError_;
  FailureCause lastCause_ = FailureCause::None;
  ConnStats stats_;
  ReplySink* push_ = nullptr;  // push mode (setPushSink)
  uint32_t* failures_ = nullptr;
  EventFn onEvent_ = nullptr;
  void* onEventCtx_ = nullptr;
};

}  // namespace backends::upstream
