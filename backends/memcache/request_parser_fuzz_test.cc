// Regressions found by tests/fuzz/fuzz_memcache_request (its inputs are kept in
// tests/fuzz/regressions/fuzz_memcache_request/). The token cap that once applied to every
// command (a small max_request_args dropped a set's noreply or a meta flag) is fixed; these
// cases keep it fixed.
#include <doctest/doctest.h>

#include <string>

#include "backends/memcache/request_parser.h"

namespace backends::memcache {
namespace {

// What a pool's `max_request_args: N` gives the parser (proxy/memcache_session.cc limitsFor).
RequestLimits maxRequestArgs(size_t n) {
  RequestLimits limits;
  limits.maxKeys = n;
  return limits;
}

RequestStatus parseAll(RequestParser& p, const std::string& request) {
  return p.parse(request.data(), request.size());
}

// The bug: tokenize() stops splitting a line at maxKeys + 3 tokens whatever the command,
// although maxKeys only bounds the keys of the get family. Under a small max_request_args the
// tokens past the cap are silently dropped: a set loses its `noreply` (the proxy then forwards
// it as it is and waits for a reply memcached never sends, shifting every later reply on that
// backend connection by one), a cas is refused as having too few tokens, and a meta command
// loses its flags (q, O, b...).

TEST_CASE("fuzz: max_request_args 2 keeps a set's noreply") {
  RequestParser p(maxRequestArgs(2));
  REQUIRE(parseAll(p, "set k 0 0 1 noreply\r\nx\r\n") == RequestStatus::Complete);
  CHECK(p.noreply());
  CHECK(p.tokens().size() == 6);
}

TEST_CASE("fuzz: max_request_args 2 accepts a cas") {
  RequestParser p(maxRequestArgs(2));
  const std::string request = "cas k 0 0 1 7\r\nx\r\n";
  REQUIRE(parseAll(p, request) == RequestStatus::Complete);
  REQUIRE(p.keys().size() == 1);
  CHECK(p.key(request.data(), 0) == "k");
}

TEST_CASE("fuzz: max_request_args 3 keeps every meta flag") {
  RequestParser p(maxRequestArgs(3));
  const std::string request = "mg k v t f k s q O1\r\n";
  REQUIRE(parseAll(p, request) == RequestStatus::Complete);
  CHECK(p.hasMetaFlag('s'));
  CHECK(p.noreply());
  CHECK(std::string(request.data() + p.opaqueSpan().offset, p.opaqueSpan().length) == "O1");
}

TEST_CASE("fuzz: max_request_args still bounds the keys of a get") {
  RequestParser p(maxRequestArgs(2));
  REQUIRE(parseAll(p, "get a b c\r\n") == RequestStatus::Invalid);
  CHECK(p.error() == RequestError::TooManyKeys);
  RequestParser q(maxRequestArgs(2));
  CHECK(parseAll(q, "get a b\r\n") == RequestStatus::Complete);
}

}  // namespace
}  // namespace backends::memcache
