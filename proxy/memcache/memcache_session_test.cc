// MemcacheSession against fake backends (tests/support/fake_host.h): multi-key gets split per
// owner and merged in the client's key order whatever order shards answer in, a shard failing
// mid-merge, text noreply sent loud and its reply dropped, meta quiet with its mn barrier
// across shards, binary packets relayed with opaque and cas untouched (quiet opcodes sent
// loud and put back), flush_all broadcast, a backend refusing at once. The client is a real
// socket; the routing is the real ring.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "backends/memcache/commands.h"
#include "backends/memcache/memcache_types.h"
#include "backends/memcache/request_parser.h"
#include "proxy/memcache/memcache_frontend.h"
#include "tests/support/fake_host.h"

namespace proxy {
namespace {

namespace mc = backends::memcache;
using testing::FakeHost;
using testing::FakeLink;

const char* kThreeShards = R"(
pool:
  listen: 127.0.0.1:22122
  hash: fnv1a_64
  distribution: ketama
  servers:
   - 127.0.0.1:7001:1 s1
   - 127.0.0.1:7002:1 s2
   - 127.0.0.1:7003:1 s3
)";

std::string binRequest(uint8_t opcode, std::string_view key, uint32_t opaque, uint64_t cas = 0,
                       std::string_view extras = "", std::string_view value = "") {
  std::string out;
  mc::appendBinaryRequest(out, opcode, opaque, cas, extras, key, value);
  return out;
}

std::string binResponse(uint8_t opcode, uint16_t status, uint32_t opaque, uint64_t cas = 0,
                        std::string_view extras = "", std::string_view key = "", std::string_view value = "") {
  std::string out;
  mc::appendBinaryResponse(out, opcode, status, opaque, cas, extras, key, value);
  return out;
}

std::string item(std::string_view key, std::string_view value) {
  return "VALUE " + std::string(key) + " 0 " + std::to_string(value.size()) + "\r\n" + std::string(value) + "\r\n";
}

struct Fixture {
  MemcacheFrontend frontend;
  FakeHost host{kThreeShards};
  testing::TestClient client = host.connect(frontend, 0);
  // One key per shard, so that multi-key requests split three ways.
  std::string k0 = host.keyOn(0, 0), k1 = host.keyOn(0, 1), k2 = host.keyOn(0, 2);
  FakeLink& shard(uint32_t i) { return host.link(i); }
  FakeLink& binary(uint32_t i) { return host.link(i, Channel::Binary); }
};

TEST_CASE("a single-key get goes to its owner unchanged and its reply comes back byte for byte") {
  Fixture f;
  const std::string get = "get " + f.k1 + "\r\n";
  f.client.send(get);
  REQUIRE(f.shard(1).owed.size() == 1);
  CHECK(f.shard(1).next() == get);
  CHECK(f.shard(0).owed.empty());
  CHECK(f.shard(2).owed.empty());
  f.shard(1).answer(item(f.k1, "hello") + "END\r\n");
  CHECK(f.client.receive() == item(f.k1, "hello") + "END\r\n");
}

TEST_CASE("get over three shards merges items in the client's key order with one END; misses are absent") {
  Fixture f;
  const std::string m0 = f.host.keyOn(0, 0, "miss");
  f.client.send("get " + f.k1 + " " + f.k0 + " " + f.k2 + " " + m0 + "\r\n");
  // One sub-request per owner, each with its keys in the client's order.
  CHECK(f.shard(0).next() == "get " + f.k0 + " " + m0 + "\r\n");
  CHECK(f.shard(1).next() == "get " + f.k1 + "\r\n");
  CHECK(f.shard(2).next() == "get " + f.k2 + "\r\n");
  // Answers in reverse order.
  f.shard(2).answer(item(f.k2, "v2") + "END\r\n");
  f.shard(1).answer(item(f.k1, "v1") + "END\r\n");
  CHECK(f.client.receive().empty());
  f.shard(0).answer(item(f.k0, "v0") + "END\r\n");  // m0 missed
  CHECK(f.client.receive() == item(f.k1, "v1") + item(f.k0, "v0") + item(f.k2, "v2") + "END\r\n");
  CHECK(f.shard(0).owed.empty());
  CHECK(f.shard(1).owed.empty());
  CHECK(f.shard(2).owed.empty());
}

TEST_CASE("gets over two shards keeps its verb and the cas of each item") {
  Fixture f;
  f.client.send("gets " + f.k2 + " " + f.k0 + "\r\n");
  CHECK(f.shard(0).next() == "gets " + f.k0 + "\r\n");
  CHECK(f.shard(2).next() == "gets " + f.k2 + "\r\n");
  CHECK(f.shard(1).owed.empty());
  f.shard(0).answer("VALUE " + f.k0 + " 5 1 77\r\na\r\nEND\r\n");
  f.shard(2).answer("VALUE " + f.k2 + " 0 2 99\r\nbc\r\nEND\r\n");
  CHECK(f.client.receive() == "VALUE " + f.k2 + " 0 2 99\r\nbc\r\nVALUE " + f.k0 + " 5 1 77\r\na\r\nEND\r\n");
}

TEST_CASE("get: a shard failing mid-merge leaves its keys out; every shard failing is a SERVER_ERROR") {
  Fixture f;
  const std::string get = "get " + f.k0 + " " + f.k1 + " " + f.k2 + "\r\n";
  f.client.send(get);
  f.shard(0).answer(item(f.k0, "v0") + "END\r\n");
  f.shard(1).failAll("backend s2 (127.0.0.1:7002): connection closed by backend");
  CHECK(f.client.receive().empty());
  f.shard(2).answer(item(f.k2, "v2") + "END\r\n");
  CHECK(f.client.receive() == item(f.k0, "v0") + item(f.k2, "v2") + "END\r\n");
  CHECK(f.host.stats("pool").forwardErrors == 1);

  f.client.send(get);
  f.shard(2).failAll("backend s3 (127.0.0.1:7003): no reply within 100 ms");
  f.shard(0).failAll("backend s1 (127.0.0.1:7001): connection closed by backend");
  CHECK(f.client.receive().empty());
  f.shard(1).failAll("backend s2 (127.0.0.1:7002): connection closed by backend");
  // The first failure's reason.
  CHECK(f.client.receive() == "SERVER_ERROR backend s3 (127.0.0.1:7003): no reply within 100 ms\r\n");
  CHECK(f.host.stats("pool").forwardErrors == 4);
}

TEST_CASE("get: a shard answering with an error line leaves its keys out") {
  Fixture f;
  f.client.send("get " + f.k0 + " " + f.k1 + "\r\n");
  f.shard(1).answer("SERVER_ERROR out of memory\r\n", true);
  f.shard(0).answer(item(f.k0, "v0") + "END\r\n");
  CHECK(f.client.receive() == item(f.k0, "v0") + "END\r\n");

  // When every shard answers with an error line, the whole reply is that error.
  f.client.send("get " + f.k0 + " " + f.k1 + "\r\n");
  f.shard(0).answer("SERVER_ERROR out of memory\r\n", true);
  f.shard(1).answer("SERVER_ERROR out of memory\r\n", true);
  // The backend's own error line, not wrapped in a second "SERVER_ERROR ".
  CHECK(f.client.receive() == "SERVER_ERROR out of memory\r\n");
}

TEST_CASE("text noreply is sent loud and its reply dropped; the next request's reply is what comes back") {
  Fixture f;
  const std::string k = f.k1;
  f.client.send("set " + k + " 0 0 1 noreply\r\nx\r\nget " + k + "\r\n");
  REQUIRE(f.shard(1).owed.size() == 2);
  CHECK(f.shard(1).log[0] == "set " + k + " 0 0 1\r\nx\r\n");
  CHECK(f.shard(1).log[1] == "get " + k + "\r\n");
  f.shard(1).answer("STORED\r\n");
  CHECK(f.client.receive().empty());
  f.shard(1).answer(item(k, "x") + "END\r\n");
  CHECK(f.client.receive() == item(k, "x") + "END\r\n");

  // Not even an error goes back for noreply.
  f.client.send("set " + k + " 0 0 1 noreply\r\ny\r\ndelete " + k + " noreply\r\nget " + k + "\r\n");
  CHECK(f.shard(1).log[2] == "set " + k + " 0 0 1\r\ny\r\n");
  CHECK(f.shard(1).log[3] == "delete " + k + "\r\n");
  f.shard(1).answer("SERVER_ERROR out of memory storing object\r\n", true);
  f.shard(1).answer("DELETED\r\n");
  f.shard(1).answer("END\r\n");
  CHECK(f.client.receive() == "END\r\n");

  // ...nor a failure.
  f.client.send("set " + k + " 0 0 1 noreply\r\nz\r\nget " + k + "\r\n");
  f.shard(1).failAll("backend s2 (127.0.0.1:7002): connection closed by backend");
  CHECK(f.client.receive() == "SERVER_ERROR backend s2 (127.0.0.1:7002): connection closed by backend\r\n");
}

TEST_CASE("meta quiet: each shard gets its request with an mn behind it; the client's MN waits for both") {
  Fixture f;
  f.client.send("mg " + f.k0 + " v q\r\nmg " + f.k1 + " v q\r\nmn\r\n");
  REQUIRE(f.shard(0).owed.size() == 1);
  REQUIRE(f.shard(1).owed.size() == 1);
  CHECK(f.shard(0).next() == "mg " + f.k0 + " v q\r\nmn\r\n");
  CHECK(f.shard(1).next() == "mg " + f.k1 + " v q\r\nmn\r\n");
  CHECK(f.shard(2).owed.empty());
  CHECK(f.client.receive().empty());
  // The second shard answers first: a miss, which memcached itself suppresses in quiet mode.
  f.shard(1).answer("MN\r\n");
  CHECK(f.client.receive().empty());
  f.shard(0).answer("VA 1\r\nx\r\nMN\r\n");
  CHECK(f.client.receive() == "VA 1\r\nx\r\nMN\r\n");

  // The other way round: the hit leaves at once, the MN only after the second shard answered.
  f.client.send("mg " + f.k0 + " v q\r\nmg " + f.k1 + " v q\r\nmn\r\n");
  f.shard(0).answer("VA 1\r\ny\r\nMN\r\n");
  CHECK(f.client.receive() == "VA 1\r\ny\r\n");
  f.shard(1).answer("MN\r\n");
  CHECK(f.client.receive() == "MN\r\n");
  // Only the one MN the client asked for: the proxy's own mn's are stripped.
  CHECK(f.shard(0).owed.empty());
  CHECK(f.shard(1).owed.empty());
}

TEST_CASE("meta quiet: what memcached keeps before the MN is relayed as is (the proxy does not judge)") {
  // By design (memcache_session.h) memcached decides what quiet mode keeps: a real memcached
  // sends no EN for `mg ... q`; if a backend did, the proxy would relay it.
  Fixture f;
  f.client.send("mg " + f.k0 + " v q\r\nmg " + f.k1 + " v q\r\nmn\r\n");
  f.shard(0).answer("EN\r\nMN\r\n");
  f.shard(1).answer("VA 1\r\nx\r\nMN\r\n");
  CHECK(f.client.receive() == "EN\r\nVA 1\r\nx\r\nMN\r\n");
}

TEST_CASE("binary GET is relayed untouched, opaque and cas preserved, on the binary connection") {
  Fixture f;
  const std::string get = binRequest(mc::kOpcodeGet, f.k2, 0xdeadbeef);
  f.client.send(get);
  REQUIRE(f.binary(2).owed.size() == 1);
  CHECK(f.binary(2).next() == get);
  CHECK(f.shard(2).owed.empty());  // not on the text connection
  const std::string extras("\x00\x00\x00\x2a", 4);
  const std::string reply =
      binResponse(mc::kOpcodeGet, mc::kBinaryStatusOk, 0xdeadbeef, 0x0102030405060708ULL, extras, "", "value");
  f.binary(2).answer(reply);
  CHECK(f.client.receive() == reply);
}

TEST_CASE("binary GETQ miss produces nothing and the NOOP behind it answers in order") {
  Fixture f;
  const std::string getq = binRequest(mc::kOpcodeGetQ, f.k1, 7);
  f.client.send(getq + binRequest(mc::kOpcodeNoop, "", 8));
  REQUIRE(f.binary(1).owed.size() == 1);
  // Sent loud: the same packet under GET.
  std::string loud = getq;
  loud[1] = static_cast<char>(mc::kOpcodeGet);
  CHECK(f.binary(1).next() == loud);
  CHECK(f.client.receive().empty());  // the NOOP waits for the GETQ
  f.binary(1).answer(binResponse(mc::kOpcodeGet, mc::kBinaryStatusKeyNotFound, 7, 0, "", "", "Not found"));
  CHECK(f.client.receive() == binResponse(mc::kOpcodeNoop, mc::kBinaryStatusOk, 8));
}

TEST_CASE("binary GETKQ hit is sent as GETK and comes back under the client's quiet opcode") {
  Fixture f;
  const std::string getkq = binRequest(mc::kOpcodeGetKQ, f.k0, 0x11223344);
  f.client.send(getkq + binRequest(mc::kOpcodeNoop, "", 0x55));
  REQUIRE(f.binary(0).owed.size() == 1);
  std::string loud = getkq;
  loud[1] = static_cast<char>(mc::kOpcodeGetK);
  CHECK(f.binary(0).next() == loud);
  const std::string extras("\x00\x00\x00\x01", 4);
  f.binary(0).answer(binResponse(mc::kOpcodeGetK, mc::kBinaryStatusOk, 0x11223344, 0xabcdefULL, extras, f.k0, "v"));
  CHECK(f.client.receive() ==
        binResponse(mc::kOpcodeGetKQ, mc::kBinaryStatusOk, 0x11223344, 0xabcdefULL, extras, f.k0, "v") +
            binResponse(mc::kOpcodeNoop, mc::kBinaryStatusOk, 0x55));
}

TEST_CASE("binary SETQ success is dropped, its failure relayed under SETQ") {
  Fixture f;
  const std::string extras("\x00\x00\x00\x00\x00\x00\x00\x00", 8);
  f.client.send(binRequest(mc::kOpcodeSetQ, f.k1, 1, 0, extras, "a") + binRequest(mc::kOpcodeSetQ, f.k1, 2, 0, extras, "b") +
                binRequest(mc::kOpcodeNoop, "", 3));
  REQUIRE(f.binary(1).owed.size() == 2);
  CHECK(static_cast<uint8_t>(f.binary(1).log[0][1]) == mc::kOpcodeSet);
  f.binary(1).answer(binResponse(mc::kOpcodeSet, mc::kBinaryStatusOk, 1, 5));
  f.binary(1).answer(binResponse(mc::kOpcodeSet, mc::kBinaryStatusTooLarge, 2, 0, "", "", "Too large."));
  CHECK(f.client.receive() == binResponse(mc::kOpcodeSetQ, mc::kBinaryStatusTooLarge, 2, 0, "", "", "Too large.") +
                                  binResponse(mc::kOpcodeNoop, mc::kBinaryStatusOk, 3));
}

TEST_CASE("flush_all goes to every backend: OK when all said OK, SERVER_ERROR when one failed") {
  Fixture f;
  f.client.send("flush_all\r\n");
  for (uint32_t i = 0; i < 3; ++i) CHECK(f.shard(i).next() == "flush_all\r\n");
  f.shard(2).answer("OK\r\n");
  f.shard(0).answer("OK\r\n");
  CHECK(f.client.receive().empty());
  f.shard(1).answer("OK\r\n");
  CHECK(f.client.receive() == "OK\r\n");

  f.client.send("flush_all\r\n");
  f.shard(0).answer("OK\r\n");
  f.shard(1).failAll("backend s2 (127.0.0.1:7002): connection closed by backend");
  f.shard(2).answer("OK\r\n");
  CHECK(f.client.receive() == "SERVER_ERROR backend s2 (127.0.0.1:7002): connection closed by backend\r\n");

  // noreply: sent loud, nothing goes back, even on failure.
  f.client.send("flush_all noreply\r\n");
  for (uint32_t i = 0; i < 3; ++i) CHECK(f.shard(i).next() == "flush_all\r\n");
  f.shard(0).answer("OK\r\n");
  f.shard(1).answer("OK\r\n");
  f.shard(2).failAll("backend s3 (127.0.0.1:7003): connection closed by backend");
  f.client.send("version\r\n");
  CHECK(f.client.receive() == "VERSION ringproxy-" RINGPROXY_VERSION "\r\n");
}

TEST_CASE("flush_all: a backend answering with an error line fails it") {
  Fixture f;
  f.client.send("flush_all\r\n");
  f.shard(0).answer("OK\r\n");
  f.shard(1).answer("SERVER_ERROR busy\r\n", true);
  f.shard(2).answer("OK\r\n");
  CHECK(f.client.receive() == "SERVER_ERROR busy\r\n");
}

TEST_CASE("meta quiet: a shard failing answers its request with SERVER_ERROR, and the MN still follows") {
  Fixture f;
  f.client.send("mg " + f.k0 + " v q\r\nmg " + f.k1 + " v q\r\nmn\r\n");
  f.shard(1).answer("VA 1\r\nx\r\nMN\r\n");
  f.shard(0).failAll("backend s1 (127.0.0.1:7001): connection closed by backend");
  CHECK(f.client.receive() ==
        "SERVER_ERROR backend s1 (127.0.0.1:7001): connection closed by backend\r\nVA 1\r\nx\r\nMN\r\n");
}

TEST_CASE("flush_all: a backend refusing at once fails it") {
  Fixture f;
  f.shard(0).refuse = true;
  f.client.send("flush_all\r\n");
  CHECK(f.shard(0).owed.empty());
  f.shard(1).answer("OK\r\n");
  f.shard(2).answer("OK\r\n");
  CHECK(f.client.receive() == "SERVER_ERROR backend s1 (127.0.0.1:7001): connect failed: connection refused\r\n");
}

TEST_CASE("a backend refusing at once answers a get with SERVER_ERROR naming it") {
  Fixture f;
  f.shard(1).refuse = true;
  f.client.send("get " + f.k1 + "\r\n");
  CHECK(f.client.receive() == "SERVER_ERROR backend s2 (127.0.0.1:7002): connect failed: connection refused\r\n");
  // In a multi-get only its keys go missing.
  f.client.send("get " + f.k0 + " " + f.k1 + "\r\n");
  f.shard(0).answer(item(f.k0, "v0") + "END\r\n");
  CHECK(f.client.receive() == item(f.k0, "v0") + "END\r\n");
  // Every owner refusing: the error, at once.
  f.shard(0).refuse = true;
  f.client.send("get " + f.k0 + " " + f.k1 + "\r\n");
  CHECK(f.client.receive() == "SERVER_ERROR backend s1 (127.0.0.1:7001): connect failed: connection refused\r\n");
  // A binary request refused: an error packet with its opcode and opaque.
  f.binary(1).refuse = true;
  f.client.send(binRequest(mc::kOpcodeGet, f.k1, 99));
  CHECK(f.client.receive() == binResponse(mc::kOpcodeGet, 0x0084, 99, 0, "", "",
                                          "backend s2 (127.0.0.1:7002): connect failed: connection refused"));
}

TEST_CASE("a session closed with requests in flight cancels them, and the late replies are dropped") {
  Fixture f;
  f.client.send("get " + f.k1 + "\r\nget " + f.k0 + " " + f.k2 + "\r\n");
  f.host.closeAll();
  CHECK(f.host.sessions() == 0);
  CHECK(f.shard(1).cancels == 1);
  CHECK(f.shard(0).cancels == 1);
  CHECK(f.shard(2).cancels == 1);
  CHECK(f.shard(1).answer("END\r\n"));  // dropped, not delivered to a freed request
}

const char* kTransition = R"(
pool:
  listen: 127.0.0.1:22122
  hash: fnv1a_64
  distribution: ketama
  servers:
   - 127.0.0.1:7001:1 s1
   - 127.0.0.1:7002:1 s2
   - 127.0.0.1:7003:1 s3
   - 127.0.0.1:7004:1 s4
  previous_servers:
   - 127.0.0.1:7001:1 s1
   - 127.0.0.1:7002:1 s2
   - 127.0.0.1:7003:1 s3
)";

struct TransitionFixture {
  MemcacheFrontend frontend;
  FakeHost host{kTransition};
  testing::TestClient client = host.connect(frontend, 0);
  std::string moved, stays;
  uint32_t from = 0, to = 0;
  // Another key that moved from `from` to `to`.
  std::string movedAlso(int nth) const {
    const PoolRoute& route = host.snapshot().pools[0];
    for (int i = 0, seen = 0;; ++i) {
      const std::string k = "other" + std::to_string(i);
      if (route.previousOwner(k) == from && host.owner(0, k) == to && seen++ == nth) return k;
    }
  }
  TransitionFixture() {
    const PoolRoute& route = host.snapshot().pools[0];
    for (int i = 0; moved.empty() || stays.empty(); ++i) {
      const std::string k = "key" + std::to_string(i);
      if (route.previousOwner(k) != host.owner(0, k)) {
        if (moved.empty()) moved = k, from = route.previousOwner(k), to = host.owner(0, k);
      } else if (stays.empty()) {
        stays = k;
      }
    }
  }
};

TEST_CASE("a transition: a moved key's miss is answered by its previous owner and copied over in add mode") {
  TransitionFixture f;
  const std::string get = "get " + f.moved + "\r\n";
  f.client.send(get);
  f.host.settle();
  REQUIRE(f.host.link(f.to).owed.size() == 1);
  f.host.link(f.to).answer("END\r\n");  // a miss on the new owner...
  f.host.settle();
  REQUIRE(f.host.link(f.from).owed.size() == 1);
  CHECK(f.host.link(f.from).next() == get);  // ...asks the previous owner the same
  f.host.link(f.from).answer(item(f.moved, "warm") + "END\r\n");
  CHECK(f.client.receive() == item(f.moved, "warm") + "END\r\n");
  // In the background: the item with its flags and remaining TTL, then stored in add mode.
  REQUIRE(f.host.link(f.from).owed.size() == 1);
  CHECK(f.host.link(f.from).next() == "mg " + f.moved + " v f t\r\n");
  f.host.link(f.from).answer("VA 4 f7 t30\r\nwarm\r\n");
  f.host.settle();
  REQUIRE(f.host.link(f.to).owed.size() == 1);
  CHECK(f.host.link(f.to).next() == "ms " + f.moved + " 4 F7 T30 ME\r\nwarm\r\n");
  f.host.link(f.to).answer("HD\r\n");
  CHECK(f.host.stats("pool").transitionMoves == 1);
  // A hit on the new owner is the answer; a key that did not move asks nobody else.
  f.client.send(get + "get " + f.stays + "\r\n");
  f.host.settle();
  f.host.link(f.to).answer(item(f.moved, "new") + "END\r\n");
  f.host.link(f.host.owner(0, f.stays)).answer("END\r\n");
  CHECK(f.client.receive() == item(f.moved, "new") + "END\r\nEND\r\n");
  CHECK(f.host.link(f.from).owed.empty());
}

TEST_CASE("a transition: deletes reach both owners; binary and meta reads fall back too") {
  TransitionFixture f;
  f.client.send("delete " + f.moved + " noreply\r\n");
  f.host.settle();
  CHECK(f.host.link(f.from).log.back() == "delete " + f.moved + "\r\n");  // the old copy goes too
  REQUIRE(f.host.link(f.to).owed.size() == 1);
  f.host.link(f.to).answer("DELETED\r\n");
  f.host.link(f.from).answer("DELETED\r\n");
  CHECK(f.client.receive().empty());  // noreply
  f.client.send("mg " + f.moved + " v\r\n");
  f.host.settle();
  f.host.link(f.to).answer("EN\r\n");
  f.host.settle();
  REQUIRE(f.host.link(f.from).owed.size() == 1);
  f.host.link(f.from).answer("VA 1\r\nx\r\n");
  CHECK(f.client.receive() == "VA 1\r\nx\r\n");
  const std::string get = binRequest(mc::kOpcodeGet, f.moved, 0x01020304);
  f.client.send(get);
  f.host.settle();
  REQUIRE(f.host.link(f.to, Channel::Binary).owed.size() == 1);
  f.host.link(f.to, Channel::Binary).answer(binResponse(mc::kOpcodeGet, mc::kBinaryStatusKeyNotFound, 0x01020304));
  f.host.settle();
  REQUIRE(f.host.link(f.from, Channel::Binary).owed.size() == 1);
  CHECK(f.host.link(f.from, Channel::Binary).next() == get);
  // The previous owner fails: the new owner's miss stands.
  f.host.link(f.from, Channel::Binary).failAll("connection reset by peer");
  CHECK(f.client.receive() == binResponse(mc::kOpcodeGet, mc::kBinaryStatusKeyNotFound, 0x01020304));
}

TEST_CASE("a transition: a multi-key get asks the previous owners for the moved keys that missed, in key order") {
  TransitionFixture f;
  const std::string stays = f.stays;
  const uint32_t staysOwner = f.host.owner(0, stays);
  f.client.send("get " + f.moved + " " + stays + "\r\n");
  f.host.settle();
  // The owners first (the new owner misses the moved key; the other has its key)...
  if (staysOwner == f.to) {
    REQUIRE(f.host.link(f.to).owed.size() == 1);
    f.host.link(f.to).answer(item(stays, "s") + "END\r\n");
  } else {
    f.host.link(f.to).answer("END\r\n");
    f.host.link(staysOwner).answer(item(stays, "s") + "END\r\n");
  }
  f.host.settle();
  // ...then one get per previous owner, with its moved keys that missed.
  REQUIRE(!f.host.link(f.from).owed.empty());
  CHECK(f.host.link(f.from).owed.back().bytes == "get " + f.moved + "\r\n");
  f.host.link(f.from).answer(item(f.moved, "old") + "END\r\n");
  CHECK(f.client.receive() == item(f.moved, "old") + item(stays, "s") + "END\r\n");
  // And the item is copied over in the background.
  f.host.settle();
  CHECK(f.host.link(f.from).next() == "mg " + f.moved + " v f t\r\n");
}

TEST_CASE("a transition: quiet reads fall back too, sent loud, a final miss answering nothing") {
  TransitionFixture f;
  // Binary GETKQ: a hit on the previous owner comes back under the client's quiet opcode.
  f.client.send(binRequest(mc::kOpcodeGetKQ, f.moved, 7));
  f.host.settle();
  REQUIRE(f.host.link(f.to, Channel::Binary).owed.size() == 1);
  CHECK(f.host.link(f.to, Channel::Binary).next() == binRequest(mc::kOpcodeGetK, f.moved, 7));  // loud
  f.host.link(f.to, Channel::Binary).answer(binResponse(mc::kOpcodeGetK, mc::kBinaryStatusKeyNotFound, 7));
  f.host.settle();
  REQUIRE(f.host.link(f.from, Channel::Binary).owed.size() == 1);
  f.host.link(f.from, Channel::Binary)
      .answer(binResponse(mc::kOpcodeGetK, mc::kBinaryStatusOk, 7, 0, std::string(4, '\0'), f.moved, "v"));
  CHECK(f.client.receive() == binResponse(mc::kOpcodeGetKQ, mc::kBinaryStatusOk, 7, 0, std::string(4, '\0'), f.moved, "v"));
  f.host.settle();
  CHECK(f.host.link(f.from).next() == "mg " + f.moved + " v f t\r\n");  // its background copy...
  f.host.link(f.from).answer("EN\r\n");                                   // ...finds it gone meanwhile
  // Meta mg with q: a miss on both owners answers nothing; the mn barrier comes after it.
  const std::string other = f.movedAlso(0);
  f.client.send("mg " + other + " v q\r\nmn\r\n");
  f.host.settle();
  REQUIRE(f.host.link(f.to).owed.size() == 1);
  CHECK(f.host.link(f.to).next() == "mg " + other + " v\r\n");
  f.host.link(f.to).answer("EN\r\n");
  f.host.settle();
  f.host.link(f.from).answer("EN\r\n");
  CHECK(f.client.receive() == "MN\r\n");
}

}  // namespace
}  // namespace proxy
