// output_queue.h: batched, ordered writes to one libuv stream. Producers append() bytes during
// a loop turn; flush() (called once per turn, right before the loop polls) hands them to the
// kernel in one write: first uv_try_write, which usually takes everything without a callback,
// then uv_write for the rest, whose bytes are kept alive here until its callback runs. Bytes
// appended while a write is in flight wait for it, so order is preserved.
#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>

#include "backends/io/buffer.h"

namespace backends::io {

class OutputQueue {
 public:
  // Called when an asynchronous write completes; status < 0 is a libuv error.
  using DoneFn = void (*)(void* owner, int status);

  OutputQueue(void* owner, DoneFn done) : owner_(owner), done_(done) {}

  void append(const char* p, size_t n) { pending_.append(p, n); }
  Buffer& pendingBuffer() { return pending_; }

  // Bytes not yet accepted by the kernel.
  size_t queuedBytes() const { return pending_.readableSize() + inflight_.readableSize(); }
  bool writing() const { return writing_; }
  bool idle() const { return !writing_ && pending_.empty(); }

  // Returns 0 or a libuv error (the stream is then broken and should be closed).
  int flush(uv_stream_t* stream) {
    if (writing_ || pending_.empty()) return 0;
    uv_buf_t buf = uv_buf_init(pending_.readable(), static_cast<unsigned>(pending_.readableSize()));
    const int n = uv_try_write(stream, &buf, 1);
    if (n > 0) pending_.consume(static_cast<size_t>(n));
    else if (n != UV_EAGAIN && n < 0) return n;
    if (pending_.empty()) {
      pending_.releaseIfEmpty();  // lent back: an idle connection keeps no output buffer
      return 0;
    }
    // The kernel buffer is full: hand the rest to libuv, which keeps the bytes until written.
    std::swap(pending_, inflight_);
    buf = uv_buf_init(inflight_.readable(), static_cast<unsigned>(inflight_.readableSize()));
    // The write request lives only while a write is in flight: idle connections (most of them)
    // do not carry its 192 bytes.
    if (!req_) req_ = std::make_unique<uv_write_t>();
    req_->data = this;
    writing_ = true;
    const int rc = uv_write(req_.get(), stream, &buf, 1, &OutputQueue::onWritten);
    if (rc < 0) writing_ = false;
    return rc;
  }

 private:
  static void onWritten(uv_write_t* req, int status) {
    auto* self = static_cast<OutputQueue*>(req->data);
    self->writing_ = false;
    self->inflight_.consume(self->inflight_.readableSize());
    self->inflight_.releaseIfEmpty();
    self->done_(self->owner_, status);
  }

  void* owner_;
  DoneFn done_;
  Buffer pending_;
  Buffer inflight_;
  std::unique_ptr<uv_write_t> req_;
  bool writing_ = false;
};

}  // namespace backends::io
