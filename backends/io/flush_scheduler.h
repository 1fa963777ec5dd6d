// flush_scheduler.h: "write pending bytes right before the loop sleeps". Connections that
// gained output during a loop turn register here once; a uv_prepare handle, which libuv runs
// just before it polls for I/O, flushes them all. Many replies produced in one turn leave in
// one write per connection instead of one write each.
#pragma once

#include <uv.h>

#include <algorithm>
#include <vector>

namespace backends::io {

class Flushable {
 public:
  virtual void flushNow() = 0;

 protected:
  ~Flushable() = default;

 private:
  friend class FlushScheduler;
  bool scheduled_ = false;
};

class FlushScheduler {
 public:
  // Returns 0 or a libuv error.
  int start(uv_loop_t* loop) {
    prepare_.data = this;
    int rc = uv_prepare_init(loop, &prepare_);
    if (rc < 0) return rc;
    rc = uv_prepare_start(&prepare_, &FlushScheduler::onPrepare);
    if (rc < 0) return rc;
    uv_unref(reinterpret_cast<uv_handle_t*>(&prepare_));  // must not keep the loop alive
    return 0;
  }
  void close() { uv_close(reinterpret_cast<uv_handle_t*>(&prepare_), nullptr); }

  void schedule(Flushable* f) {
    if (f->scheduled_) return;
    f->scheduled_ = true;
    dirty_.push_back(f);
  }
  // Must be called by a Flushable before it is destroyed.
  void cancel(Flushable* f) {
    if (!f->scheduled_) return;
    f->scheduled_ = false;
    dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), f), dirty_.end());
    std::replace(batch_.begin(), batch_.end(), f, static_cast<Flushable*>(nullptr));  // mid-flush
  }

  void flushAll() {
    // flushNow() may schedule more (a reply completing another); loop until quiet.
    while (!dirty_.empty()) {
      batch_.swap(dirty_);
      for (Flushable* f : batch_) {
        if (f == nullptr) continue;
        f->scheduled_ = false;
        f->flushNow();
      }
      batch_.clear();
    }
  }

 private:
  static void onPrepare(uv_prepare_t* h) { static_cast<FlushScheduler*>(h->data)->flushAll(); }

  uv_prepare_t prepare_{};
  std::vector<Flushable*> dirty_;
  std::vector<Flushable*> batch_;
};

}  // namespace backends::io
