// byte_order.h: big-endian field reads for the binary protocol's headers, from bytes that
// may sit at any alignment inside a read buffer.
#pragma once

#include <cstdint>

namespace backends::memcache {

inline uint16_t readBigEndian16(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>((u[0] << 8) | u[1]);
}

inline uint32_t readBigEndian32(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

inline uint64_t readBigEndian64(const char* p) noexcept {
  return (uint64_t{readBigEndian32(p)} << 32) | readBigEndian32(p + 4);
}

}  // namespace backends::memcache
