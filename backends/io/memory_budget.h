// memory_budget.h: how many bytes the process's socket buffers hold, and an optional ceiling
// (ringproxy --max-buffered-bytes). Every io::Buffer adds its capacity when it grows and
// subtracts it when it shrinks or dies, so the figure is exact for buffers and costs one
// relaxed atomic add per reallocation (buffers double, so that is rare), none per request.
#pragma once

#include <atomic>
#include <cstdint>

namespace backends::io {

inline std::atomic<int64_t>& bufferedBytes() {
  static std::atomic<int64_t> bytes{0};
  return bytes;
}

inline std::atomic<int64_t>& bufferLimit() {
  static std::atomic<int64_t> limit{0};
  return limit;
}

// 0: no ceiling.
inline void setBufferLimit(int64_t bytes) { bufferLimit().store(bytes, std::memory_order_relaxed); }

inline bool overBufferLimit() {
  const int64_t limit = bufferLimit().load(std::memory_order_relaxed);
  return limit > 0 && bufferedBytes().load(std::memory_order_relaxed) > limit;
}

inline void accountBuffer(int64_t delta) { bufferedBytes().fetch_add(delta, std::memory_order_relaxed); }

}  // namespace backends::io
