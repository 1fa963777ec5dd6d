// framing_test_support.h: what the unit tests of the wire framers (the RESP and memcached
// request and reply parsers, in their *_test.cc files) share; nothing else includes it, and it
// needs doctest. A framer is resumable: it is called with the bytes from the start of the
// current request or reply, and again with the same start and more bytes after NeedMore. Its
// central property is that however those bytes are cut into reads, the outcome is the same.
// So these helpers deliver one input as chosen reads, each on a fresh copy (feedReads), compare
// the whole input with a byte per read and with a split at every position (checkAllCuts), feed
// one large buffer with a growing length to show the work is linear (feedGrowing), and run a
// connection's read loop over a pipelined stream (readPipeline).
//
// A framer's status enum is expected to name NeedMore, Complete and Error.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "backends/io/status_name.h"

namespace backends::framing_test {

// What a framer is given, call by call: the length of the bytes from the start of the input.
// {3, 7} is the first 3 bytes, then the same 3 and 4 more.
using Reads = std::vector<size_t>;

inline Reads wholeRead(const std::string& input) { return {input.size()}; }

inline Reads byteReads(const std::string& input) {
  Reads reads;
  for (size_t i = 1; i <= input.size(); ++i) reads.push_back(i);
  return reads;
}

using backends::io::statusName;  // names a framer's verdict in messages

// The record of a parse that ended in Error with `message`, for tests whose Result (what a
// parse produced, detached from the buffer) keeps the verdict in `status` and the message in
// `error`.
template <typename Result>
Result errorResult(std::string message) {
  Result r;
  r.status = decltype(r.status)::Error;
  r.error = std::move(message);
  return r;
}

// A fresh heap block of exactly `len` bytes of `input` per call: a framer that kept a pointer
// into an earlier read's block, or read one byte too far, trips AddressSanitizer.
inline std::unique_ptr<char[]> freshCopy(const std::string& input, size_t len) {
  std::unique_ptr<char[]> block(new char[len == 0 ? 1 : len]);
  std::memcpy(block.get(), input.data(), len);
  return block;
}

// Gives a framer `input` as `reads` would, each call on a fresh copy, until it stops asking for
// more or the reads run out. parse(data, len) is one call; capture(status, data) turns the last
// call's outcome into a result that can be compared, `data` being that call's copy (still
// alive, for parsers whose results point into it; null if there was no read).
template <typename Parse, typename Capture>
auto feedReads(const std::string& input, const Reads& reads, Parse&& parse, Capture&& capture) {
  using Status = std::invoke_result_t<Parse&, char*, size_t>;
  Status status = Status::NeedMore;
  std::unique_ptr<char[]> data;
  for (size_t len : reads) {
    data = freshCopy(input, len);
    status = parse(data.get(), len);
    if (status != Status::NeedMore) break;
  }
  return capture(status, data.get());
}

// The central property: however the input is cut, the outcome is the same. run(reads) frames
// `input`, delivered by those reads, with a fresh framer; its results compare with == and print
// with show(), which argument-dependent lookup finds beside them. Returns the whole input's.
template <typename Run>
auto checkAllCuts(const std::string& input, Run&& run) {
  CAPTURE(input);
  const auto whole = run(wholeRead(input));
  const auto bytes = run(byteReads(input));
  CHECK_MESSAGE(bytes == whole, show(bytes), " vs ", show(whole));
  for (size_t k = 0; k <= input.size(); ++k) {
    const auto split = run(Reads{k, input.size()});
    CHECK_MESSAGE(split == whole, "split at ", k, ": ", show(split), " vs ", show(whole));
  }
  return whole;
}

// Calls parse(len) over one buffer of `size` bytes with a growing len, `step` more bytes a
// call and no copies, until a verdict or the last byte: a framer that rescanned what it had
// already seen would take quadratic time, so large inputs finishing at all is the proof.
// Returns the last status; *fed, if given, is the len of the last call.
template <typename Parse>
auto feedGrowing(size_t size, size_t step, Parse&& parse, size_t* fed = nullptr) {
  using Status = std::invoke_result_t<Parse&, size_t>;
  Status status = Status::NeedMore;
  size_t len = 0;
  while (status == Status::NeedMore && len < size) {
    len = std::min(size, len + step);
    status = parse(len);
  }
  if (fed != nullptr) *fed = len;
  return status;
}

// feedGrowing, insisting (a REQUIRE per call) that no call before the last byte has a verdict.
template <typename Parse>
auto feedGrowingToEnd(size_t size, size_t step, Parse&& parse) {
  using Status = std::invoke_result_t<Parse&, size_t>;
  return feedGrowing(size, step, [&](size_t len) {
    const Status status = parse(len);
    if (len < size) REQUIRE(status == Status::NeedMore);
    return status;
  });
}

// How a pipelined stream reaches readPipeline: all at once, a byte per read, or reads of random
// sizes.
enum class Arrival { Whole, ByteByByte, RandomReads };
inline constexpr Arrival kArrivals[] = {Arrival::Whole, Arrival::ByteByByte, Arrival::RandomReads};

// A connection's read loop. `stream` arrives as `arrival` says (random reads are 1 to maxRead
// bytes) at the back of a buffer that is compacted now and then, which moves the unread bytes
// to its front. After every read, frame(data, len) is called on the unread bytes for as long as
// it frames something: it returns how many bytes the request or reply it framed took, 0 while
// the next one is incomplete. Reads go on until done(); needing one past the end of the stream
// fails the test. Returns how many bytes were read.
template <typename Done, typename Frame>
size_t readPipeline(const std::string& stream, Arrival arrival, size_t maxRead, std::mt19937& rng,
                    Done&& done, Frame&& frame) {
  std::string buffer;
  size_t start = 0;
  size_t fed = 0;
  while (!done()) {
    const size_t chunk = arrival == Arrival::Whole        ? stream.size()
                         : arrival == Arrival::ByteByByte ? 1
                                                          : 1 + rng() % maxRead;
    const size_t n = std::min(chunk, stream.size() - fed);
    REQUIRE(n > 0);
    buffer.append(stream, fed, n);
    fed += n;
    while (const size_t used = frame(buffer.data() + start, buffer.size() - start)) start += used;
    if (rng() % 3 == 0) {
      buffer.erase(0, start);
      start = 0;
    }
  }
  return fed;
}

}  // namespace backends::framing_test
