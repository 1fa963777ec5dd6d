// ring_queue.h: a FIFO in one power-of-two array that wraps around. An upstream connection
// keeps one entry per reply it owes; std::deque allocates and frees a 512-byte chunk every
// few dozen requests and its push/pop pair is several times dearer than an index here. The array
// grows by doubling and is kept when the queue empties (backend connections are few).
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace backends::io {

template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T& front() { return slots_[head_]; }
  const T& front() const { return slots_[head_]; }
  // The i-th entry from the front.
  T& operator[](size_t i) { return slots_[(head_ + i) & mask_]; }
  const T& operator[](size_t i) const { return slots_[(head_ + i) & mask_]; }

  void push_back(const T& v) {
    if (size_ == capacity()) grow();
    slots_[(head_ + size_) & mask_] = v;
    ++size_;
  }
  void pop_front() {
    head_ = (head_ + 1) & mask_;
    --size_;
  }

 private:
  size_t capacity() const { return slots_ ? mask_ + 1 : 0; }
  void grow() {
    const size_t cap = capacity() == 0 ? 16 : capacity() * 2;
    auto fresh = std::make_unique<T[]>(cap);
    for (size_t i = 0; i < size_; ++i) fresh[i] = std::move((*this)[i]);
    slots_ = std::move(fresh);
    mask_ = cap - 1;
    head_ = 0;
  }

  std::unique_ptr<T[]> slots_;
  size_t mask_ = 0;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace backends::io
