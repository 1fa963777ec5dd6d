// key_hash.h: turning a key into a ring position. Every twemproxy 0.5.0 hash is reproduced
// bit for bit, quirks included (32-bit fnv*_64, sign-extended bytes, crc32's 15 bits, crc16's
// untruncated register), so that `distribution: ketama` places keys exactly where twemproxy does.
// Pure functions with no state, safe on the hot path. None allocates except md5, whose digest
// goes through libcrypto's EVP interface (a few small mallocs per call).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "ring/ring_spec.h"

namespace ring {

// Parses a twemproxy hash name ("fnv1a_64", "murmur", ...) or "xxh3".
std::optional<HashKind> hashKindFromName(std::string_view name) noexcept;
std::string_view hashKindName(HashKind kind) noexcept;

// The largest value hashKey can return for this kind: 0x7fff for twemproxy's crc32 (15 bits of
// a CRC-32), UINT64_MAX for xxh3, 0xffffffff for the rest. crc16 is included in the rest: its
// register is 32 bits and never truncated, so keys of 3+ bytes use all 32. Shares of the
// keyspace are measured over [0, hashMax] because that is where keys actually land.
uint64_t hashMax(HashKind kind) noexcept;

// The hash of a key, exactly as twemproxy computes it (32-bit kinds are zero-extended).
uint64_t hashKey(HashKind kind, std::string_view key) noexcept;

// The 16-byte MD5 digest of data (libcrypto). Ketama derives its points from these digests.
// Never fails in practice; if libcrypto refuses MD5 (a FIPS-only build) out is all zeros.
void md5Digest(const void* data, size_t len, unsigned char out[16]) noexcept;

// twemproxy's hash tag rule: with tag "{}" and key "user:{42}:name" only "42" is hashed.
// If the opening character is absent, the closing one does not follow it, or the text
// between them is empty, the whole key is hashed. An empty tag hashes the whole key.
std::string_view hashTagSpan(std::string_view key, std::string_view tag) noexcept;

// The key-prefix rule (a ringproxy extension): with separator ":" and parts 2, the key
// "bull:emails:wait" hashes as "bull:emails": everything before the parts-th occurrence of
// the separator. A key with fewer occurrences is hashed whole ("bull:emails" itself lands with
// its keys). parts 0 or an empty separator hash the whole key.
std::string_view keyPrefixSpan(std::string_view key, std::string_view separator, uint32_t parts) noexcept;

}  // namespace ring
