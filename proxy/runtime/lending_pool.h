// lending_pool.h: a free list of T (request parsers), one per worker and protocol. A session
// borrows a parser while it has bytes to frame and gives it back when its input is drained,
// so an idle connection holds none (see README "Performance" for bytes per idle connection).
#pragma once

#include <memory>
#include <vector>

namespace proxy {

template <typename T>
class LendingPool {
 public:
  T* get() {
    if (free_.empty()) return new T();
    T* t = free_.back().release();
    free_.pop_back();
    return t;
  }
  void put(T* t) {
    if (free_.size() < kMaxFree) free_.emplace_back(t);
    else delete t;
  }
  // Takes back a session's borrowed parser, if it has one, forgetting whatever it held (a
  // half-framed or failed request), and clears the session's pointer.
  void giveBack(T*& t) {
    if (t == nullptr) return;
    t->reset();
    put(t);
    t = nullptr;
  }

 private:
  static constexpr size_t kMaxFree = 256;
  std::vector<std::unique_ptr<T>> free_;
};

}  // namespace proxy
