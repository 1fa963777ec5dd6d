// key_hash.cc: twemproxy 0.5.0's twelve key hashes plus xxh3. Each is written from the
// algorithm's definition and then bent to twemproxy's behaviour where that differs; the quirks
// are called out where they happen. Results are pinned by ring/key_hash_test.cc against values
// printed by twemproxy's own hashkit code.
//
// twemproxy runs on x86-64, where `char` is signed: a hash that widens `key[i]` without going
// through `unsigned char` sees 0xffffff80..0xffffffff for bytes >= 0x80. We reproduce that
// on every platform (twemproxy itself would hash differently where char is unsigned), and read
// multi-byte words little-endian as twemproxy does on x86-64.
#include "ring/key_hash.h"

#include <array>
#include <bit>
#include <cstring>

#include <openssl/evp.h>
#include <xxhash.h>

namespace ring {
namespace {

using Bytes = const unsigned char*;

Bytes bytesOf(std::string_view key) noexcept { return reinterpret_cast<Bytes>(key.data()); }

// A byte as twemproxy's `(uint32_t)key[i]` sees it on x86-64.
uint32_t signExtended(unsigned char b) noexcept {
  return static_cast<uint32_t>(static_cast<int32_t>(static_cast<signed char>(b)));
}

uint32_t load16(Bytes p) noexcept { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }

uint32_t load32(Bytes p) noexcept {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// ---- CRC tables, generated from the polynomials ----

// CRC-16/XMODEM: polynomial 0x1021, most significant bit first.
constexpr std::array<uint16_t, 256> makeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t r = i << 8;
    for (int bit = 0; bit < 8; ++bit) r = (r & 0x8000) ? (r << 1) ^ 0x1021 : r << 1;
    table[i] = static_cast<uint16_t>(r);
  }
  return table;
}

// CRC-32 (IEEE 802.3): polynomial 0x04c11db7 bit-reversed, least significant bit first.
constexpr std::array<uint32_t, 256> makeCrc32Table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t r = i;
    for (int bit = 0; bit < 8; ++bit) r = (r & 1) ? (r >> 1) ^ 0xedb88320u : r >> 1;
    table[i] = r;
  }
  return table;
}

constexpr auto kCrc16Table = makeCrc16Table();
constexpr auto kCrc32Table = makeCrc32Table();
static_assert(kCrc16Table[1] == 0x1021 && kCrc16Table[255] == 0x1ef0);
static_assert(kCrc32Table[1] == 0x77073096u && kCrc32Table[255] == 0x2d02ef8du);

// ---- the hashes ----

// Bob Jenkins' one-at-a-time; twemproxy feeds it sign-extended bytes.
uint32_t oneAtATime(std::string_view key) noexcept {
  uint32_t h = 0;
  for (unsigned char b : key) {
    h += signExtended(b);
    h += h << 10;
    h ^= h >> 6;
  }
  h += h << 3;
  h ^= h >> 11;
  h += h << 15;
  return h;
}

// The first four digest bytes, little-endian.
uint32_t md5Hash(std::string_view key) noexcept {
  unsigned char digest[16];
  md5Digest(key.data(), key.size(), digest);
  return load32(digest);
}

// The XMODEM update step, but twemproxy keeps the CRC in a 32-bit register that is never
// masked to 16 bits: the low half is the true CRC-16/XMODEM and the high half holds the top
// bytes of the two previous CRCs, shifted up. Keys of 3 bytes or more use all 32 bits.
uint32_t crc16(std::string_view key) noexcept {
  uint32_t reg = 0;
  for (unsigned char b : key) reg = (reg << 8) ^ kCrc16Table[((reg >> 8) ^ b) & 0xff];
  return reg;
}

// Standard CRC-32 (zlib's crc32()); twemproxy calls it crc32a.
uint32_t crc32a(std::string_view key) noexcept {
  uint32_t reg = ~0u;
  for (unsigned char b : key) reg = (reg >> 8) ^ kCrc32Table[(reg ^ b) & 0xff];
  return ~reg;
}

// twemproxy's crc32 (libmemcached's): bits 16..30 of the standard CRC-32, so only 0..0x7fff.
uint32_t crc32Legacy(std::string_view key) noexcept { return (crc32a(key) >> 16) & 0x7fff; }

// FNV-1 and FNV-1a over sign-extended bytes. The *_64 kinds return only the low 32 bits of
// the 64-bit state, and the low half of a 64-bit product depends only on the low halves of its
// factors, so they are exactly 32-bit FNV with the 64-bit constants' low halves.
constexpr uint32_t kFnv32Basis = 0x811c9dc5u;
constexpr uint32_t kFnv32Prime = 0x01000193u;
constexpr uint32_t kFnv64BasisLow = 0x84222325u;  // of 0xcbf29ce484222325
constexpr uint32_t kFnv64PrimeLow = 0x000001b3u;  // of 0x00000100000001b3

template <bool kXorFirst>
uint32_t fnv(std::string_view key, uint32_t h, uint32_t prime) noexcept {
  for (unsigned char b : key) {
    if constexpr (kXorFirst) {
      h ^= signExtended(b);
      h *= prime;
    } else {
      h *= prime;
      h ^= signExtended(b);
    }
  }
  return h;
}

// Paul Hsieh's SuperFastHash. Quirk: for a length of 4n+3 the last byte is sign-extended
// (twemproxy reads it as `char`), while every other byte is read unsigned.
uint32_t hsieh(std::string_view key) noexcept {
  if (key.empty()) return 0;
  Bytes p = bytesOf(key);
  uint32_t h = 0;
  for (size_t blocks = key.size() / 4; blocks > 0; --blocks, p += 4) {
    h += load16(p);
    h = (h << 16) ^ (load16(p + 2) << 11) ^ h;
    h += h >> 11;
  }
  switch (key.size() & 3) {
    case 3:
      h += load16(p);
      h ^= h << 16;
      h ^= signExtended(p[2]) << 18;
      h += h >> 11;
      break;
    case 2:
      h += load16(p);
      h ^= h << 11;
      h += h >> 17;
      break;
    case 1:
      h += p[0];
      h ^= h << 10;
      h += h >> 1;
      break;
    default:
      break;
  }
  h ^= h << 3;
  h += h >> 5;
  h ^= h << 4;
  h += h >> 17;
  h ^= h << 25;
  h += h >> 6;
  return h;
}

// MurmurHash2 with twemproxy's seed, 0xdeadbeef * length (length taken mod 2^32).
uint32_t murmur(std::string_view key) noexcept {
  constexpr uint32_t m = 0x5bd1e995u;
  const uint32_t len = static_cast<uint32_t>(key.size());
  uint32_t h = (0xdeadbeefu * len) ^ len;
  Bytes p = bytesOf(key);
  size_t rest = key.size();
  for (; rest >= 4; rest -= 4, p += 4) {
    uint32_t k = load32(p) * m;
    k ^= k >> 24;
    h = (h * m) ^ (k * m);
  }
  switch (rest) {
    case 3:
      h ^= uint32_t(p[2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= uint32_t(p[1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= p[0];
      h *= m;
      break;
    default:
      break;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

// Bob Jenkins' lookup3 hashlittle() with initval 13, reading little-endian words. (twemproxy
// has three alignment-dependent read paths; on little-endian machines they agree with this.)
void jenkinsMix(uint32_t& a, uint32_t& b, uint32_t& c) noexcept {
  a -= c; a ^= std::rotl(c, 4);  c += b;
  b -= a; b ^= std::rotl(a, 6);  a += c;
  c -= b; c ^= std::rotl(b, 8);  b += a;
  a -= c; a ^= std::rotl(c, 16); c += b;
  b -= a; b ^= std::rotl(a, 19); a += c;
  c -= b; c ^= std::rotl(b, 4);  b += a;
}

void jenkinsFinal(uint32_t& a, uint32_t& b, uint32_t& c) noexcept {
  c ^= b; c -= std::rotl(b, 14);
  a ^= c; a -= std::rotl(c, 11);
  b ^= a; b -= std::rotl(a, 25);
  c ^= b; c -= std::rotl(b, 16);
  a ^= c; a -= std::rotl(c, 4);
  b ^= a; b -= std::rotl(a, 14);
  c ^= b; c -= std::rotl(b, 24);
}

uint32_t jenkins(std::string_view key) noexcept {
  uint32_t a = 0xdeadbeefu + static_cast<uint32_t>(key.size()) + 13;
  uint32_t b = a;
  uint32_t c = a;
  if (key.empty()) return c;
  Bytes p = bytesOf(key);
  size_t rest = key.size();
  for (; rest > 12; rest -= 12, p += 12) {
    a += load32(p);
    b += load32(p + 4);
    c += load32(p + 8);
    jenkinsMix(a, b, c);
  }
  // The last 1..12 bytes, zero-padded to three words (zero bytes add nothing).
  unsigned char tail[12] = {};
  std::memcpy(tail, p, rest);
  a += load32(tail);
  b += load32(tail + 4);
  c += load32(tail + 8);
  jenkinsFinal(a, b, c);
  return c;
}

// Names in HashKind order; twemproxy's spelling, matched exactly (it is case-sensitive too).
constexpr std::array<std::string_view, 13> kHashNames = {
    "one_at_a_time", "md5",     "crc16",   "crc32", "crc32a", "fnv1_64", "fnv1a_64",
    "fnv1_32",       "fnv1a_32", "hsieh", "murmur", "jenkins", "xxh3",
};
static_assert(kHashNames.size() == static_cast<size_t>(HashKind::Xxh3) + 1);

}  // namespace

std::optional<HashKind> hashKindFromName(std::string_view name) noexcept {
  for (size_t i = 0; i < kHashNames.size(); ++i) {
    if (kHashNames[i] == name) return static_cast<HashKind>(i);
  }
  return std::nullopt;
}

std::string_view hashKindName(HashKind kind) noexcept {
  const auto i = static_cast<size_t>(kind);
  return i < kHashNames.size() ? kHashNames[i] : std::string_view{};
}

uint64_t hashMax(HashKind kind) noexcept {
  switch (kind) {
    case HashKind::Crc32:
      return 0x7fff;
    case HashKind::Xxh3:
      return UINT64_MAX;
    default:
      return UINT32_MAX;
  }
}

uint64_t hashKey(HashKind kind, std::string_view key) noexcept {
  switch (kind) {
    case HashKind::OneAtATime: return oneAtATime(key);
    case HashKind::Md5: return md5Hash(key);
    case HashKind::Crc16: return crc16(key);
    case HashKind::Crc32: return crc32Legacy(key);
    case HashKind::Crc32a: return crc32a(key);
    case HashKind::Fnv1_64: return fnv<false>(key, kFnv64BasisLow, kFnv64PrimeLow);
    case HashKind::Fnv1a_64: return fnv<true>(key, kFnv64BasisLow, kFnv64PrimeLow);
    case HashKind::Fnv1_32: return fnv<false>(key, kFnv32Basis, kFnv32Prime);
    case HashKind::Fnv1a_32: return fnv<true>(key, kFnv32Basis, kFnv32Prime);
    case HashKind::Hsieh: return hsieh(key);
    case HashKind::Murmur: return murmur(key);
    case HashKind::Jenkins: return jenkins(key);
    case HashKind::Xxh3: return XXH3_64bits(key.data(), key.size());
  }
  return 0;
}

namespace {

// One fetched MD5 method and one digest context per thread, reused: EVP_Digest with
// EVP_md5() looks the method up and allocates a context on every call (~650 ns per key, 3
// mallocs); reusing both makes `hash: md5` about 3x cheaper and allocation-free after the
// first call on a thread.
struct Md5Context {
  EVP_MD* md = EVP_MD_fetch(nullptr, "MD5", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Md5Context() {
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
  }
};

}  // namespace

void md5Digest(const void* data, size_t len, unsigned char out[16]) noexcept {
  thread_local Md5Context c;
  unsigned int outLen = 0;
  // If libcrypto refuses MD5 (a FIPS-only build), the digest is all zeros.
  if (c.md == nullptr || c.ctx == nullptr || EVP_DigestInit_ex(c.ctx, c.md, nullptr) != 1 ||
      EVP_DigestUpdate(c.ctx, data, len) != 1 || EVP_DigestFinal_ex(c.ctx, out, &outLen) != 1 || outLen != 16) {
    std::memset(out, 0, 16);
  }
}

std::string_view hashTagSpan(std::string_view key, std::string_view tag) noexcept {
  if (tag.size() < 2) return key;
  const size_t open = key.find(tag[0]);
  if (open == std::string_view::npos) return key;
  const size_t close = key.find(tag[1], open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return std::string_view(key.data() + open + 1, close - open - 1);
}

std::string_view keyPrefixSpan(std::string_view key, std::string_view separator, uint32_t parts) noexcept {
  if (parts == 0 || separator.empty()) return key;
  size_t from = 0;
  for (uint32_t seen = 0;;) {
    const size_t at = key.find(separator, from);
    if (at == std::string_view::npos) return key;
    if (++seen == parts) return key.substr(0, at);
    from = at + separator.size();
  }
}

}  // namespace ring
