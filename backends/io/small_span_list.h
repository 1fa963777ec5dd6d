// small_span_list.h: the spans (offset, length) of one request's arguments or tokens, the
// first N kept inline and the rest on the heap. Framers fill one per request; the common
// request allocates nothing, and a client that keeps sending large requests allocates once,
// because the heap block is kept across requests unless it grew past KeptHeap entries (one
// huge request must not pin memory for the rest of a long-lived connection).
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>

namespace backends::io {

template <typename Span, size_t N, size_t KeptHeap>
class SmallSpanList {
 public:
  static constexpr size_t kInlineCapacity = N;

  SmallSpanList() noexcept = default;
  SmallSpanList(const SmallSpanList&) = delete;
  SmallSpanList& operator=(const SmallSpanList&) = delete;
  SmallSpanList(SmallSpanList&& other) noexcept { *this = std::move(other); }
  SmallSpanList& operator=(SmallSpanList&& other) noexcept {
    if (this != &other) {
      heap_ = std::move(other.heap_);
      if (!heap_) std::copy_n(other.inline_, other.size_, inline_);
      size_ = other.size_;
      capacity_ = other.capacity_;
      other.size_ = 0;
      other.capacity_ = N;
    }
    return *this;
  }

  [[nodiscard]] size_t size() const noexcept { return size_; }
  [[nodiscard]] const Span* data() const noexcept { return heap_ ? heap_.get() : inline_; }
  [[nodiscard]] const Span& operator[](size_t i) const noexcept { return data()[i]; }

  // False only when the heap refuses to grow (framers turn that into an error).
  [[nodiscard]] bool push(Span span) noexcept {
    if (size_ == capacity_) [[unlikely]] {
      if (!grow()) return false;
    }
    (heap_ ? heap_.get() : inline_)[size_++] = span;
    return true;
  }

  void clear() noexcept {
    size_ = 0;
    if (capacity_ > KeptHeap) {
      heap_.reset();
      capacity_ = N;
    }
  }

 private:
  [[nodiscard]] bool grow() noexcept {
    const size_t capacity = capacity_ * 2;
    std::unique_ptr<Span[]> block(new (std::nothrow) Span[capacity]);
    if (!block) return false;
    std::copy_n(data(), size_, block.get());
    heap_ = std::move(block);
    capacity_ = capacity;
    return true;
  }

  size_t size_ = 0;
  size_t capacity_ = N;
  std::unique_ptr<Span[]> heap_;
  Span inline_[N];
};

}  // namespace backends::io
