// client_session.h: what every client connection has, whatever its protocol: the socket, the
// input buffer, the ordered queue of requests, the batched output, back-pressure and closing.
//
// Data flow: bytes arrive in in_; the protocol subclass frames requests out of it
// (processInput), answers local ones, and sends the rest upstream as Requests queued here in
// arrival order. When a request completes, finished replies at the head of the queue are
// appended to the output, which leaves in one write per loop turn (FlushScheduler).
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
#include <string_view>
#include <vector>

#include "backends/io/buffer.h"
#include "backends/io/flush_scheduler.h"
#include "proxy/runtime/request.h"
#include "proxy/runtime/stats.h"

namespace proxy {

class Worker;
struct PoolRoute;

class ClientSession : public RequestOwner, private backends::io::Flushable {
 public:
  ClientSession(Worker& worker, size_t pool);
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

  // A reload renumbered the pools: `remap[old]` is this session's new pool index, or
  // kNoPool when its pool is gone (the session then finishes what is in flight and closes).
  static constexpr size_t kNoPool = SIZE_MAX;
  size_t pool() const;
  void remapPool(const std::vector<size_t>& remap);

  ClientSession* listPrev = nullptr;  // the worker's list of sessions
  ClientSession* listNext = nullptr;

 protected:
  virtual ~ClientSession();

  // Frames and dispatches requests from in_. Called after each read and when reading resumes.
  virtual void processInput() = 0;
  // What a client refused for the pool's client_connections limit is told before the close.
  virtual std::string_view tooManyClientsReply() const = 0;
  // What starts the error text of a request its backend refused ("ERR " for Redis).
  virtual std::string_view backendErrorPrefix() const = 0;

  // This session's pool in the worker's current snapshot; nullptr once a reload removed it.
  const PoolRoute* poolRoute() const;

  Request* newRequest();
  void freeRequest(Request* r);
  void enqueue(Request* r);
  // Sends `bytes` on `conn` as fragment `fragment` of `r`, bound for snapshot backend
  // `backend`; `hint` is passed to the reply framer. False when the backend refuses at once
  // (it is backing off after a failure): the fragment is then marked failed, r.error names the
  // backend and the cause (if no earlier failure did), and the failure is counted.
  bool sendFragment(Request& r, uint32_t fragment, uint32_t backend, backends::upstream::UpstreamConn& conn,
                    const char* bytes, size_t len, uint32_t hint = 0);
  // Marks `r` complete (its reply in r->reply) and writes out whatever is now ready.
  void complete(Request* r);
  // The reply for a request answered without going upstream.
  void replyLocal(std::string_view bytes);
  // Writes bytes straight to the output: only for the head of the queue (or an empty queue).
  void appendOutput(const char* p, size_t n);
  // Pops the head (which must be complete and written) and writes any complete successors.
  void popHeadAndDrain();
  // The head request's whole reply, from a backend's buffer: written (sent at once when it is
  // the last reply owed), then the head is popped as by popHeadAndDrain().
  void replyHead(const char* p, size_t n);
  // Stop reading; close once every queued reply has been written.
  void closeAfterFlush();
  bool wantsMoreInput() const;

  Worker& worker_;
  size_t pool_;
  PoolStats* stats_;  // this pool's counters on this worker (outlive every session)
  std::atomic<uint32_t>* clients_;  // the pool's connected-clients count (kept by the worker)
  backends::io::Buffer in_;
  Request* head_ = nullptr;
  Request* tail_ = nullptr;
  size_t pending_ = 0;
  bool closing_ = false;  // no more input is processed
  // Input is held until every queued request has completed (set by a subclass that must not
  // let the next request overtake the ones in flight, e.g. on another backend connection).
  bool waitingForDrain_ = false;

 private:
  void flushNow() override;
  void writeSome();
  // Sends what the kernel takes of p[0, n) and returns how much that was; a full socket
  // buffer sets writeBlocked_ (wait for writable), a dead peer socketDead_.
  size_t sendBytes(const char* p, size_t n);
  void startReading();
  void stopReading();
  void updatePoll();
  void readSocket();
  void onInput();
  void maybeResume();
  void maybeFinishClose();
  void drainCompleted();
  static void onPollCb(uv_poll_t* h, int status, int events);
  static void onCloseCb(uv_handle_t* h);

  uv_poll_t poll_{};
  int fd_ = -1;
  backends::io::Buffer out_;  // replies not yet accepted by the kernel
  uint8_t polled_ = 0;        // the events poll_ watches now
  bool reading_ = false;
  bool writeBlocked_ = false;  // the kernel's buffer was full: waiting for writable
  bool shedding_ = false;      // to be closed at the next flush (see appendOutput)
  bool socketDead_ = false;    // a write failed: to be closed at the next flush
  bool paused_ = false;     // reading stopped for back-pressure
  bool handleClosed_ = false;
  bool closeStarted_ = false;
  bool counted_ = false;  // included in clients_
  uint64_t lastActiveMs_ = 0;
};

}  // namespace proxy
