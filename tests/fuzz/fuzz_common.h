// fuzz_common.h: what the framer fuzz targets share. A framer is resumable: it is called with
// the bytes from the start of the current request or reply, and again with the same start and
// more bytes after NeedMore. So each target frames one input twice, whole and cut into chunks
// the fuzzer chooses, and insists on the same outcome; every call sees exactly the bytes it
// was given (the rest of the block is ASan-poisoned, or the call gets a fresh block holding
// only those bytes), so a read past `len` is a crash, not a silent success.
//
// Input layout of every protocol target (see Input): byte 0 is the chunk plan (see ChunkPlan),
// byte 1 an option byte each target reads its own way (limits, reply kind) but for bit 7, small
// limits instead of the defaults; the rest is the byte stream: one request or reply after
// another, as a client or a backend would pipeline them.
#pragma once

#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "backends/io/status_name.h"

namespace fuzz {

[[noreturn]] inline void broken(const char* file, int line, const char* condition,
                                const std::string& detail) {
  std::fprintf(stderr, "\n%s:%d: invariant broken: %s\n%s\n", file, line, condition,
               detail.c_str());
  std::fflush(stderr);
  std::abort();
}

// The detail expression is only evaluated when the condition fails.
#define FUZZ_CHECK(condition, detail)                                   \
  do {                                                                  \
    if (!(condition)) ::fuzz::broken(__FILE__, __LINE__, #condition, (detail)); \
  } while (0)

// A protocol target's input, split as the layout above says.
struct Input {
  uint8_t plan = 0;
  uint8_t option = 0;
  const char* stream = nullptr;
  size_t size = 0;  // of the stream

  [[nodiscard]] std::string_view bytes() const noexcept { return {stream, size}; }
};

// False when the input is too short to hold the plan and option bytes.
inline bool splitInput(const uint8_t* data, size_t size, Input* input) {
  if (size < 2) return false;
  *input = {data[0], data[1], reinterpret_cast<const char*>(data + 2), size - 2};
  return true;
}

// Bit 7 of the option byte: small limits (each target picks which from the other bits).
inline bool smallLimits(uint8_t option) { return (option & 0x80) != 0; }

// Requests or replies framed per input: enough to pipeline many without making one input
// cost much.
inline constexpr size_t kMaxItems = 64;

using backends::io::statusName;  // names a framer's verdict in messages

// Bytes shown readably in failure messages: printable ASCII as is, the rest as \xHH.
inline std::string printable(std::string_view bytes, size_t max = 400) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (bytes.size() > max) out += "...(" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

// One line of a run's log, the record of one verdict: its name first (compareWithLooseLimits
// reads it), then what framed() says of a Complete request or reply, or an Error's message.
template <typename Parser, typename Status, typename Framed>
std::string logLine(const Parser& p, Status status, Framed&& framed) {
  std::string out = statusName(status);
  if (status == Status::Complete) {
    out += framed();
  } else if (status == Status::Error) {
    out += " '" + std::string(p.errorMessage()) + "'";
  }
  return out + "\n";
}

// How the bytes of one request or reply arrive, from the plan byte:
//   bits 0-1  mode: 0 one byte per call; 1 random chunks; 2 random chunks, each call on a
//             fresh copy (the caller's buffer moved between calls); 3 one cut, then the rest
//   bits 2-4  chunks are 1 .. 2^(1 + these bits) bytes (modes 1 and 2)
//   bits 5-7  seed of the chunk sizes and of the cut
// A null plan (see Feeder) means the whole stream at once.
class ChunkPlan {
 public:
  explicit ChunkPlan(uint8_t control) noexcept
      : mode_(control & 3),
        maxChunk_(size_t{2} << ((control >> 2) & 7)),
        state_(0x9e3779b97f4a7c15ull * (1 + (control >> 5))) {}

  // Calls on a fresh copy of the bytes rather than on one buffer.
  [[nodiscard]] bool moves() const noexcept { return mode_ == 2; }

  // Bytes available to the next call, given those of the previous call (0 before the first)
  // and all there are; strictly more than `previous`, at most `total`.
  [[nodiscard]] size_t next(size_t previous, size_t total) noexcept {
    size_t step = 1;
    switch (mode_) {
      case 0:
        break;
      case 1:
      case 2:
        step = 1 + static_cast<size_t>(random() % maxChunk_);
        // Fresh copies cost O(bytes) per call: keep to about 64 calls per request.
        if (mode_ == 2) step = std::max(step, total / 64);
        break;
      default:
        step = previous == 0 ? 1 + static_cast<size_t>(random() % (total == 0 ? 1 : total))
                             : total - previous;
        break;
    }
    const size_t room = total - previous;
    return previous + (step < room ? step : room);
  }

 private:
  uint64_t random() noexcept {  // splitmix64
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  int mode_;
  size_t maxChunk_;
  uint64_t state_;
};

// A stream's bytes in a heap block of exactly their size, so that ASan sees any read past the
// end; reveal(end) poisons everything from `end` on, for one call that was given less.
class Block {
 public:
  Block(const char* bytes, size_t size) : data_(new char[size == 0 ? 1 : size]), size_(size) {
    if (size > 0) std::memcpy(data_.get(), bytes, size);
  }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  ~Block() { reveal(size_); }

  [[nodiscard]] char* data() noexcept { return data_.get(); }
  [[nodiscard]] size_t size() const noexcept { return size_; }

  void reveal(size_t end) noexcept {
    ASAN_UNPOISON_MEMORY_REGION(data_.get(), size_);
    if (end < size_) ASAN_POISON_MEMORY_REGION(data_.get() + end, size_ - end);
  }

 private:
  std::unique_ptr<char[]> data_;
  size_t size_;
};

// Drives one framer call sequence over the request or reply at `start` of a stream:
// call(base, len) is invoked with growing len until it returns something other than
// `needMore` or the stream is exhausted. Returns the last status; *base and *len are what the
// last call saw (a fresh block kept alive in `moved`, or the shared block).
template <typename Status, typename Call>
Status feed(Block& block, const char* original, size_t start, ChunkPlan* plan, Status needMore,
            std::unique_ptr<char[]>& moved, char** base, size_t* len, Call&& call) {
  const size_t total = block.size() - start;
  size_t avail = 0;
  Status status = needMore;
  do {
    avail = plan != nullptr ? plan->next(avail, total) : total;
    if (plan != nullptr && plan->moves()) {
      moved.reset(new char[avail == 0 ? 1 : avail]);
      std::memcpy(moved.get(), original + start, avail);
      *base = moved.get();
      status = call(*base, avail);
    } else {
      *base = block.data() + start;
      block.reveal(start + avail);
      status = call(*base, avail);
      block.reveal(block.size());
    }
  } while (status == needMore && avail < total);
  *len = avail;
  return status;
}

// Frames a stream one request or reply after another, as a connection does, up to kMaxItems,
// each from a reset() parser. Each arrives through parse(base, len) as `plan` says (nullptr:
// all its bytes at once; see feed); then settle(base, len, start, status) checks and records
// that verdict, `start` being where the request or reply began in the stream, and returns the
// bytes it took, or 0 to stop.
template <typename Parser, typename Parse, typename Settle>
void frameStream(Parser& parser, const char* stream, size_t n, ChunkPlan* plan, Parse&& parse,
                 Settle&& settle) {
  using Status = std::invoke_result_t<Parse&, char*, size_t>;
  Block block(stream, n);
  std::unique_ptr<char[]> moved;
  size_t start = 0;
  for (size_t count = 0; count < kMaxItems && start < n; ++count) {
    parser.reset();
    char* base = nullptr;
    size_t len = 0;
    const Status status =
        feed(block, stream, start, plan, Status::NeedMore, moved, &base, &len, parse);
    const size_t used = settle(base, len, start, status);
    if (used == 0) break;
    start += used;
  }
}

// Every step of a framer turns into a line of text; two runs agree when their texts are equal.
inline void compareRuns(const std::string& whole, const std::string& chunked, uint8_t plan,
                        std::string_view stream) {
  FUZZ_CHECK(whole == chunked, "plan byte " + std::to_string(plan) + ", stream '" +
                                   printable(stream) + "'\n--- whole:\n" + whole +
                                   "--- chunked:\n" + chunked);
}

// The first check of every protocol target: the stream framed with each request's or reply's
// bytes all at once, run(nullptr), and chunked as the plan byte says, run(&plan), give the same
// log, text(result). Returns the result of the first.
template <typename Run, typename Text>
auto wholeVsChunked(const Input& input, Run&& run, Text&& text) {
  const auto whole = run(nullptr);
  ChunkPlan plan(input.plan);
  compareRuns(text(whole), text(run(&plan)), input.plan, input.bytes());
  return whole;
}

// The same for runs whose result is their log.
template <typename Run>
auto wholeVsChunked(const Input& input, Run&& run) {
  return wholeVsChunked(input, run, [](const std::string& log) -> const std::string& {
    return log;
  });
}

// Limits only refuse: every line of `strict` (a run under small limits, option byte `option`)
// up to its first Error, which a small limit may have caused, is the same line of `loose` (the
// same stream under the defaults).
inline void compareWithLooseLimits(const std::string& strict, const std::string& loose,
                                   uint8_t option, std::string_view stream) {
  size_t a = 0;
  size_t b = 0;
  while (a < strict.size()) {
    const size_t ea = strict.find('\n', a);
    const size_t eb = loose.find('\n', b);
    const std::string_view small(strict.data() + a, ea - a);
    const std::string_view defaults =
        eb == std::string::npos ? std::string_view() : std::string_view(loose.data() + b, eb - b);
    if (small.starts_with("Error")) break;
    FUZZ_CHECK(small == defaults, "small limits (byte " + std::to_string(option) + ") framed '" +
                                      std::string(small) + "', the defaults '" +
                                      std::string(defaults) + "'; stream '" + printable(stream) +
                                      "'");
    a = ea + 1;
    b = eb + 1;
  }
}

}  // namespace fuzz
