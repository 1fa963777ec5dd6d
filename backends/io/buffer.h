// buffer.h: a contiguous byte buffer for socket input. Bytes arrive at the back (libuv reads
// straight into writable()), framers look at readable() and the owner consume()s what it has
// handled. Consumed space is reclaimed by moving the unread tail to the front only when that
// is cheaper than growing, so a large value costs O(bytes) in total, never O(bytes^2).
// When everything has been consumed the storage is given back (release()), so an idle
// connection holds no buffer.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "backends/io/memory_budget.h"

namespace backends::io {

class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~Buffer() {
    if (data_ != nullptr) {
      accountBuffer(-static_cast<int64_t>(capacity_));
      freeBlock(data_, capacity_);
    }
  }

  char* readable() { return data_ + start_; }
  const char* readable() const { return data_ + start_; }
  size_t readableSize() const { return end_ - start_; }
  bool empty() const { return start_ == end_; }

  // Makes room for at least `min` more bytes at the back and returns where to write them;
  // nullptr only when memory is exhausted.
  [[gnu::always_inline]] char* writable(size_t min, size_t* available) {
    if (capacity_ - end_ < min) {
      if (!reserve(min)) return nullptr;
    }
    *available = capacity_ - end_;
    return data_ + end_;
  }
  void commit(size_t n) { end_ += n; }

  void append(const char* p, size_t n) {
    size_t avail;
    char* w = writable(n, &avail);
    if (w == nullptr) std::abort();  // out of memory: nothing sensible left to do
    std::memcpy(w, p, n);
    end_ += n;
  }

  void consume(size_t n) {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }

  // Frees the storage when nothing is buffered (idle connections hold no memory).
  void releaseIfEmpty() {
    if (start_ == end_ && data_ != nullptr) {
      accountBuffer(-static_cast<int64_t>(capacity_));
      freeBlock(data_, capacity_);
      data_ = nullptr;
      capacity_ = start_ = end_ = 0;
    }
  }

  size_t capacity() const { return capacity_; }
  // Hands over the storage holding the first `n` readable bytes: the result holds exactly
  // them, and this buffer keeps only what followed (copied into fresh storage, usually a few
  // bytes or none). Lets a large reply change owner without being copied.
  Buffer takeFront(size_t n) {
    Buffer rest;
    const size_t tail = readableSize() - n;
    if (tail > 0) rest.append(readable() + n, tail);
    end_ = start_ + n;
    Buffer front(std::move(*this));
    *this = std::move(rest);
    return front;
  }

 private:
  bool reserve(size_t min) {
    const size_t used = end_ - start_;
    // Sliding the unread bytes to the front is cheap when they are few compared to the gap.
    if (start_ > 0 && capacity_ - used >= min && used <= start_) {
      std::memmove(data_, data_ + start_, used);
      start_ = 0;
      end_ = used;
      return true;
    }
    size_t cap = capacity_ == 0 ? kInitial : capacity_;
    while (cap - used < min) cap *= 2;
    if (capacity_ > kInitial && start_ == 0) [[unlikely]] return growInPlace(cap);
    char* fresh = allocBlock(cap);
    if (fresh == nullptr) return false;
    if (used) std::memcpy(fresh, data_ + start_, used);
    if (data_ != nullptr) freeBlock(data_, capacity_);
    data_ = fresh;
    accountBuffer(static_cast<int64_t>(cap) - static_cast<int64_t>(capacity_));
    capacity_ = cap;
    start_ = 0;
    end_ = used;
    return true;
  }

  // A large buffer grows in place where it can (realloc moves pages, not bytes, for the big
  // blocks malloc maps), so a large value does not hold an old and a new copy at once. Out of
  // line: the common growth (an empty buffer taking its first block) stays small and inlined.
  [[gnu::noinline]] bool growInPlace(size_t cap) {
    char* grown = static_cast<char*>(std::realloc(data_, cap));
    if (grown == nullptr) return false;
    data_ = grown;
    accountBuffer(static_cast<int64_t>(cap) - static_cast<int64_t>(capacity_));
    capacity_ = cap;
    return true;
  }
  void swap(Buffer& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(capacity_, o.capacity_);
    std::swap(start_, o.start_);
    std::swap(end_, o.end_);
  }

  // Buffers are lent, not owned, while idle: a connection gives its first-size block back as
  // soon as it is empty, and the thread keeps a few such blocks for the next connection that
  // needs one. An idle connection then holds no buffer at all, and the give-and-take costs a
  // few instructions instead of a malloc/free pair. The list is a plain array, so reaching it
  // is one thread-pointer-relative load (a thread_local with a destructor goes through an
  // init-guard call on every access); a thread that used buffers
  // calls releaseThreadSpares() before it ends.
  struct Spares {
    char* blocks[32];
    size_t count;
  };
  static Spares& spares() {
    static thread_local constinit Spares s{};
    return s;
  }
  static char* allocBlock(size_t cap) {
    if (cap == kInitial) {
      Spares& sp = spares();
      if (sp.count > 0) return sp.blocks[--sp.count];
    }
    return static_cast<char*>(std::malloc(cap));
  }
  static void freeBlock(char* block, size_t cap) {
    if (cap == kInitial) {
      Spares& sp = spares();
      if (sp.count < kMaxSpares) {
        sp.blocks[sp.count++] = block;
        return;
      }
    }
    std::free(block);
  }

 public:
  // Frees the calling thread's spare blocks (call when a thread that used buffers ends).
  static void releaseThreadSpares() {
    Spares& sp = spares();
    while (sp.count > 0) std::free(sp.blocks[--sp.count]);
  }

 private:
  static constexpr size_t kInitial = 16 * 1024;
  static constexpr size_t kMaxSpares = sizeof(Spares::blocks) / sizeof(char*);  // 512 KiB per thread at most stays cached
  char* data_ = nullptr;
  size_t capacity_ = 0;
  size_t start_ = 0;
  size_t end_ = 0;
};

}  // namespace backends::io
