// key_hash_test.cc: pins each twemproxy hash to the values twemproxy 0.5.0's own hashkit C code
// prints (compiled unchanged in a throwaway oracle, not kept in the tree), and checks xxh3
// against libxxhash, the MD5 digests against RFC 1321, the hash-tag rule, the names, and
// that hashMax is both an upper bound and reached.
#include "ring/key_hash.h"

#include <doctest/doctest.h>
#include <xxhash.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

using namespace ring;
using namespace std::literals;

namespace {

// Every kind in HashKind order; the first twelve are twemproxy's, in the column order of the
// expectation table below.
constexpr std::array<HashKind, 13> kAllKinds = {
    HashKind::OneAtATime, HashKind::Md5,     HashKind::Crc16,    HashKind::Crc32,
    HashKind::Crc32a,     HashKind::Fnv1_64, HashKind::Fnv1a_64, HashKind::Fnv1_32,
    HashKind::Fnv1a_32,   HashKind::Hsieh,   HashKind::Murmur,   HashKind::Jenkins,
    HashKind::Xxh3,
};
constexpr size_t kTwemproxyKindCount = 12;

// The first n bytes of a fixed 300-byte sequence that mixes NULs, ASCII and bytes >= 0x80.
std::string patternKey(size_t n) {
  std::string key(n, '\0');
  for (size_t i = 0; i < n; ++i) key[i] = static_cast<char>((i * 31 + 7) & 0xff);
  return key;
}

struct Vector {
  std::string key;
  std::array<uint32_t, kTwemproxyKindCount> expected;  // in kAllKinds order
};

// Values printed by twemproxy 0.5.0's src/hashkit functions on x86-64. The "apple" row also
// equals twemproxy's src/test_all.c (and libmemcached's tests/hash_results.h). Prefixes 1..13,
// 24 and 25 of the pattern cover every tail length of the word-at-a-time hashes, with bytes
// >= 0x80 in the positions where twemproxy sign-extends.
std::vector<Vector> twemproxyVectors() {
  const std::string key64 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
  return {
      {""s,
       {0x00000000u, 0xd98c1dd4u, 0x00000000u, 0x00000000u, 0x00000000u, 0x84222325u,
        0x84222325u, 0x811c9dc5u, 0x811c9dc5u, 0x00000000u, 0x00000000u, 0xdeadbefcu}},
      {"a"s,
       {0xca2e9442u, 0xb975c10cu, 0x00007c87u, 0x000068b7u, 0xe8b7be43u, 0x8601b7beu,
        0x8601ec8cu, 0x050c5d7eu, 0xe40c292cu, 0x93642e87u, 0x4b41757cu, 0xe0a38690u}},
      {"foo"s,
       {0x238678ddu, 0xdb18bdacu, 0x0c3caf96u, 0x00000c73u, 0x8c736521u, 0x6ba13533u,
        0xfed9d577u, 0x408f5e13u, 0xa9f37ed7u, 0x76d4d427u, 0xc4e0338fu, 0x99f84f99u}},
      {"apple"s,
       {0x88f08ef3u, 0xbe70381fu, 0xda525bb4u, 0x0000292eu, 0xa92ed050u, 0x1c347217u,
        0x58befdbfu, 0x04010657u, 0x10bc2abfu, 0xdeda533eu, 0xf6e68f62u, 0x55f9f550u}},
      {"hello world"s,
       {0x3e4a5a57u, 0xbb3bb65eu, 0xf2063be4u, 0x00000d4au, 0x0d4a1185u, 0xb1910e6fu,
        0x023cd2e7u, 0x548da96fu, 0xd58b3fa7u, 0x4f799873u, 0x5e19153bu, 0x153343fbu}},
      {"0123456789abcdef"s,
       {0xf02202c7u, 0x8daf3240u, 0xd663e8a5u, 0x000068c4u, 0x68c4f033u, 0x3b82ecc1u,
        0xe5ad677du, 0x9e1b6f41u, 0x87bc333du, 0xb89ff08bu, 0x02923d2du, 0xe022e949u}},
      {key64,
       {0xd75b05a3u, 0x45a489a4u, 0x35376c39u, 0x00003bd5u, 0x3bd563a4u, 0xe5844b96u,
        0xa9dfbf90u, 0x9eeae3d6u, 0xd0100b70u, 0xec76c717u, 0x2ed5b7b5u, 0xa8711228u}},
      {"\xff\xfe\x80" "abc\xc3\xa9"s,
       {0x9c97e2cau, 0x610df41bu, 0xe4fbffb7u, 0x000059a9u, 0x59a9071eu, 0x2757f902u,
        0x29d33de0u, 0x3b999f62u, 0x71c62820u, 0x15f37cc7u, 0xc2934778u, 0x54eaabd0u}},
      {patternKey(300),
       {0x98fd4194u, 0x6e4e9e91u, 0xc06bfa12u, 0x0000226cu, 0x226c6629u, 0xf3cf5ce1u,
        0x448c49e1u, 0x2be573c1u, 0x5a117041u, 0x2648ce8eu, 0x720a5aeau, 0x649b0b27u}},
      {patternKey(1),
       {0x8008800fu, 0x644ee789u, 0x000070e7u, 0x00004c66u, 0x4c667a2eu, 0x8601b7d8u,
        0x8601b2c6u, 0x050c5d18u, 0x020c5866u, 0xf3da4c8bu, 0x209888a5u, 0x4fef0c13u}},
      {patternKey(2),
       {0x5c173011u, 0x39bccbe2u, 0x0070dd33u, 0x00005c95u, 0xdc9501c5u, 0xb4eb642eu,
        0xb4e2f2a0u, 0x0a768ceeu, 0x796eecc0u, 0x449ff499u, 0x148a83f8u, 0x2092bcccu}},
      {patternKey(3),
       {0x44dd7d6fu, 0xb24f703bu, 0x70dd31b1u, 0x00003f66u, 0x3f66f9acu, 0x6bfb3a6fu,
        0x5da2bb1fu, 0x669fdaefu, 0xae9e555fu, 0x13f68bcfu, 0x2e4d133fu, 0xca5b15aau}},
      {patternKey(4),
       {0xb1bef23bu, 0x9e1e7860u, 0xdd31bb50u, 0x00004782u, 0x4782c3f6u, 0x7be44af9u,
        0x1b849201u, 0x7ca5a659u, 0x1e402be1u, 0xa3370c9eu, 0x4121fbffu, 0xe2f27cdau}},
      {patternKey(5),
       {0x6fe712acu, 0x7da0d9f2u, 0x31bbe75bu, 0x0000722au, 0xf22ae8fdu, 0x7b149a98u,
        0x3dbb13e6u, 0x6e3b2198u, 0xc2fb5646u, 0xb15fdc54u, 0x6ca5366fu, 0x3fedf59fu}},
      {patternKey(6),
       {0x140d5427u, 0xf1a3cb33u, 0xbbe74361u, 0x00002924u, 0x29248900u, 0xdbfd4feau,
        0x1b1d778cu, 0xe0ea1deau, 0xf25771ecu, 0x788362dbu, 0x5c731f4fu, 0x1903718du}},
      {patternKey(7),
       {0xe50efa63u, 0x546db01cu, 0xe743d0cau, 0x00003e48u, 0x3e483922u, 0x3091355fu,
        0xeced9ad7u, 0x0572e89fu, 0xad57d0d7u, 0x5703cf18u, 0x2aa0fca6u, 0x39e26dbdu}},
      {patternKey(8),
       {0xa8713eeau, 0x043ca84eu, 0x43d0fc53u, 0x00002756u, 0xa7560428u, 0x79424f8du,
        0x6841fc75u, 0xcd1bcdadu, 0x55c25395u, 0x80700fc0u, 0x5898ca0fu, 0x09be3a20u}},
      {patternKey(9),
       {0xcd89f6bau, 0x44ed8f54u, 0xd0fc6363u, 0x00004a12u, 0xca12fefeu, 0xf452d368u,
        0xd7e0037eu, 0x703b38a8u, 0x69166adeu, 0x16a9bc3bu, 0x0751ae34u, 0x47dcf265u}},
      {patternKey(10),
       {0xf0928369u, 0x50907cf0u, 0xfc63cc3au, 0x000072c2u, 0x72c21f0bu, 0x28bd39a6u,
        0xd1a5bc20u, 0x553a3066u, 0x2e4a0c40u, 0x3f022d00u, 0x14ed8021u, 0x2142afd7u}},
      {patternKey(11),
       {0x6bcc6727u, 0x2b6984b7u, 0x63ccc53eu, 0x00001dcau, 0x1dcab80bu, 0x3988f52fu,
        0x3c9ea547u, 0x909a30afu, 0x5b91a8c7u, 0x72e513b5u, 0x106ca2b4u, 0x14d939b1u}},
      {patternKey(12),
       {0xd87f7576u, 0xa5240961u, 0xccc52c90u, 0x00002710u, 0x2710e162u, 0xc3b89e81u,
        0x01928ce1u, 0x51baa321u, 0xc14c6c01u, 0x256e0313u, 0x677e22f5u, 0xf3e92e66u}},
      {patternKey(13),
       {0x9b16b893u, 0x6bbb0da8u, 0xc52cba12u, 0x0000364eu, 0xb64e57acu, 0x92b55548u,
        0xac04e9aeu, 0xc9cecc88u, 0xc54ec40eu, 0x4dc434bdu, 0xa6085567u, 0x03f3e783u}},
      {patternKey(24),
       {0x0f6a697fu, 0x37f130cau, 0x5974d36eu, 0x00003ff1u, 0xbff18c96u, 0xd80be41du,
        0x81fa1af5u, 0x63dea9bdu, 0x19ab3095u, 0x571c01a1u, 0x99881e55u, 0x3517cf0bu}},
      {patternKey(25),
       {0xf80a68c3u, 0x13dae4e2u, 0x74d399dfu, 0x00007b64u, 0xfb64d799u, 0xe3cb62a8u,
        0x24044b2eu, 0x0b7acb68u, 0x11829d0eu, 0xf4126e9cu, 0xa3f3425du, 0x58a0eb12u}},
  };
}

std::string hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 0xf];
  }
  return out;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

TEST_CASE("twemproxy hashes give twemproxy 0.5.0's values") {
  const auto vectors = twemproxyVectors();
  REQUIRE(vectors.size() == 24);
  for (size_t col = 0; col < kTwemproxyKindCount; ++col) {
    const HashKind kind = kAllKinds[col];
    for (size_t row = 0; row < vectors.size(); ++row) {
      CAPTURE(hashKindName(kind));
      CAPTURE(row);
      CHECK(hashKey(kind, vectors[row].key) == vectors[row].expected[col]);
    }
  }
}

TEST_CASE("twemproxy quirks are reproduced") {
  const std::string high = "\xe9";
  SUBCASE("bytes >= 0x80 are sign-extended where twemproxy reads them as char") {
    // fnv1a_32 of one byte: (basis ^ byte) * prime, with the byte widened as 0xffffffe9.
    CHECK(hashKey(HashKind::Fnv1a_32, high) == ((0x811c9dc5u ^ 0xffffffe9u) * 0x01000193u));
    CHECK(hashKey(HashKind::Fnv1a_32, high) != ((0x811c9dc5u ^ 0xe9u) * 0x01000193u));
  }
  SUBCASE("fnv1*_64 are 32-bit FNV with the 64-bit constants' low halves") {
    uint64_t h64 = 0xcbf29ce484222325ull;
    for (char c : "h\xe9llo"sv) {
      h64 ^= static_cast<uint64_t>(static_cast<int64_t>(static_cast<signed char>(c)));
      h64 *= 0x100000001b3ull;
    }
    CHECK(hashKey(HashKind::Fnv1a_64, "h\xe9llo") == (h64 & 0xffffffffu));
  }
  SUBCASE("crc32 is bits 16..30 of crc32a") {
    for (const auto& v : twemproxyVectors()) {
      CHECK(hashKey(HashKind::Crc32, v.key) == ((hashKey(HashKind::Crc32a, v.key) >> 16) & 0x7fff));
    }
  }
  SUBCASE("crc16 keeps an untruncated 32-bit register") {
    CHECK(hashKey(HashKind::Crc16, "a") <= 0xffff);          // one byte: the CRC-16 alone
    CHECK(hashKey(HashKind::Crc16, "ab") <= 0xffffff);       // two: one CRC byte shifted up
    CHECK(hashKey(HashKind::Crc16, "apple") == 3662830516u);  // twemproxy's src/test_all.c
    // The low 16 bits are the standard CRC-16/XMODEM ("123456789" -> 0x31c3).
    CHECK((hashKey(HashKind::Crc16, "123456789") & 0xffff) == 0x31c3);
  }
  SUBCASE("crc32a is the standard CRC-32") {
    CHECK(hashKey(HashKind::Crc32a, "123456789") == 0xcbf43926u);
  }
}

TEST_CASE("hashes do not depend on where the key sits in memory") {
  // twemproxy's jenkins reads by 4, 2 or 1 bytes depending on the key's alignment (the
  // oracle checked that its three paths agree); ours must give the same at every offset.
  const std::string pattern = patternKey(64);
  alignas(16) char buffer[80];
  for (HashKind kind : kAllKinds) {
    for (size_t len = 0; len <= 64; ++len) {
      const uint64_t expected = hashKey(kind, std::string_view(pattern.data(), len));
      for (size_t offset = 1; offset < 8; ++offset) {
        std::memcpy(buffer + offset, pattern.data(), len);
        CAPTURE(hashKindName(kind));
        CAPTURE(len);
        CAPTURE(offset);
        CHECK(hashKey(kind, std::string_view(buffer + offset, len)) == expected);
      }
    }
  }
}

TEST_CASE("xxh3 is XXH3_64bits with seed 0") {
  CHECK(hashKey(HashKind::Xxh3, "") == 0x2D06800538D394C2ull);
  for (const auto& v : twemproxyVectors()) {
    CHECK(hashKey(HashKind::Xxh3, v.key) == XXH3_64bits(v.key.data(), v.key.size()));
  }
}

TEST_CASE("md5Digest gives RFC 1321 digests and md5 hashes their first four bytes") {
  struct Case {
    std::string_view input;
    std::string_view digest;
  };
  const Case cases[] = {
      {"", "d41d8cd98f00b204e9800998ecf8427e"},
      {"a", "0cc175b9c0f1b6a831c399e269772661"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72"},
      {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
      {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57edf4a22be3c955ac49da2e2107b67a"},
  };
  for (const Case& c : cases) {
    unsigned char digest[16];
    md5Digest(c.input.data(), c.input.size(), digest);
    CHECK(hex(digest, 16) == c.digest);
    const uint32_t little = uint32_t(digest[0]) | uint32_t(digest[1]) << 8 |
                            uint32_t(digest[2]) << 16 | uint32_t(digest[3]) << 24;
    CHECK(hashKey(HashKind::Md5, c.input) == little);
  }
  unsigned char digest[16];
  md5Digest(nullptr, 0, digest);
  CHECK(hex(digest, 16) == "d41d8cd98f00b204e9800998ecf8427e");
}

TEST_CASE("keyPrefixSpan hashes up to the N-th separator, or the whole key when it has fewer") {
  CHECK(keyPrefixSpan("bull:emails:wait", ":", 2) == "bull:emails");
  CHECK(keyPrefixSpan("bull:emails:123:lock", ":", 2) == "bull:emails");
  CHECK(keyPrefixSpan("bull:emails", ":", 2) == "bull:emails");  // fewer: whole, the same text
  CHECK(keyPrefixSpan("celery\x06\x16" "3", "\x06\x16", 1) == "celery");
  CHECK(keyPrefixSpan("celery", "\x06\x16", 1) == "celery");
  CHECK(keyPrefixSpan(":lead", ":", 1) == "");  // an empty first part is hashed as such
  CHECK(keyPrefixSpan("a::b", "::", 1) == "a");
  CHECK(keyPrefixSpan("a:b", ":", 0) == "a:b");
  CHECK(keyPrefixSpan("a:b", "", 1) == "a:b");
}

TEST_CASE("hashTagSpan follows twemproxy's rule") {
  struct Case {
    std::string_view key;
    std::string_view tag;
    std::string_view expected;
  };
  const Case cases[] = {
      {"user:{42}:name", "{}", "42"},
      {"user:{42}:name", "", "user:{42}:name"},     // no tag configured
      {"user:42:name", "{}", "user:42:name"},       // no opening character
      {"user:{42:name", "{}", "user:{42:name"},     // no closing character after it
      {"user:}42{:name", "{}", "user:}42{:name"},   // closing only before the opening
      {"a}b{c}d", "{}", "c"},                        // search for '}' starts after '{'
      {"{}", "{}", "{}"},                            // empty inner text: whole key
      {"x{}y}", "{}", "x{}y}"},                      // the first '}' decides, even if empty
      {"{a}{b}", "{}", "a"},                         // first pair wins
      {"{{a}}", "{}", "{a"},                         // no nesting
      {"{a}", "{}", "a"},
      {"", "{}", ""},
      {"a:b:c", "::", "b"},                          // same character both sides
      {"a::b", "::", "a::b"},
      {"k$x$", "$$", "x"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key);
    CAPTURE(c.tag);
    const std::string_view span = hashTagSpan(c.key, c.tag);
    CHECK(span == c.expected);
    // A view into the key itself, never a copy.
    CHECK(span.data() >= c.key.data());
    CHECK(span.data() + span.size() <= c.key.data() + c.key.size());
  }
}

TEST_CASE("hash names are twemproxy's, plus xxh3") {
  constexpr std::array<std::string_view, 13> kNames = {
      "one_at_a_time", "md5",      "crc16", "crc32",  "crc32a",  "fnv1_64", "fnv1a_64",
      "fnv1_32",       "fnv1a_32", "hsieh", "murmur", "jenkins", "xxh3",
  };
  for (size_t i = 0; i < kAllKinds.size(); ++i) {
    CHECK(hashKindName(kAllKinds[i]) == kNames[i]);
    const auto parsed = hashKindFromName(kNames[i]);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == kAllKinds[i]);
  }
  for (std::string_view bad : {"", "MD5", "Murmur", "fnv1a-64", "fnv1a_64 ", "crc32b", "xxh64",
                               "xxhash", "murmur3", "ketama"}) {
    CAPTURE(bad);
    CHECK_FALSE(hashKindFromName(bad).has_value());
  }
  CHECK(hashKindName(static_cast<HashKind>(200)).empty());
}

TEST_CASE("hashMax bounds every hash and every bit below it is used") {
  CHECK(hashMax(HashKind::Crc32) == 0x7fff);
  CHECK(hashMax(HashKind::Crc16) == 0xffffffffu);
  CHECK(hashMax(HashKind::Xxh3) == UINT64_MAX);

  constexpr int kKeys = 100000;
  std::array<uint64_t, kAllKinds.size()> seenBits{};
  std::array<int, kAllKinds.size()> overMax{};
  uint64_t state = 42;
  std::string key;
  for (int n = 0; n < kKeys; ++n) {
    key.resize(splitmix64(state) % 81);
    for (char& c : key) c = static_cast<char>(splitmix64(state));
    for (size_t k = 0; k < kAllKinds.size(); ++k) {
      const uint64_t h = hashKey(kAllKinds[k], key);
      seenBits[k] |= h;
      overMax[k] += h > hashMax(kAllKinds[k]);
    }
  }
  for (size_t k = 0; k < kAllKinds.size(); ++k) {
    CAPTURE(hashKindName(kAllKinds[k]));
    CHECK(overMax[k] == 0);
    CHECK(seenBits[k] == hashMax(kAllKinds[k]));
  }
}

TEST_CASE("hashMax is reached") {
  // Keys found by exhaustive search with twemproxy's code (md5 and xxh3 excepted: finding
  // one would take ~2^32 digests; their maxima are those of the output width).
  struct Case {
    HashKind kind;
    std::string_view key;
  };
  const Case cases[] = {
      {HashKind::OneAtATime, "\x6b\x6b\x3b\xcc\xb9\x48"sv},
      {HashKind::Crc16, "\x46\xc8\x7b\xe1"sv},
      {HashKind::Crc32, "\xb5\x46\x00\x00"sv},
      {HashKind::Crc32a, "\xff\xff\xff\xff"sv},
      {HashKind::Fnv1_64, "\x21\x5a\x79\x3c\x00\x00"sv},
      {HashKind::Fnv1a_64, "\x19\x4c\x06\x0a\x07\x00"sv},
      {HashKind::Fnv1_32, "\x4a\x61\x24\x17\x02\x00"sv},
      {HashKind::Fnv1a_32, "\x3e\x35\x35\x76\x00\x00"sv},
      {HashKind::Hsieh, "\x64\xbd\x48\x59"sv},
      {HashKind::Murmur, "\xe9\x30\x62\xcb"sv},
      {HashKind::Jenkins, "\xc6\x8f\x8c\x5d"sv},
  };
  for (const Case& c : cases) {
    CAPTURE(hashKindName(c.kind));
    CHECK(hashKey(c.kind, c.key) == hashMax(c.kind));
  }
}
