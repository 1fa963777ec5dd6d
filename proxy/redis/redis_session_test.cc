// RedisSession against fake backends (tests/support/fake_host.h): merges with replies that
// arrive out of order, a shard failing mid-merge, reply order across a slow shard, the table's
// checks, transactions. The client is a real socket; the routing is the real ring.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "backends/io/memory_budget.h"
#include "proxy/redis/redis_frontend.h"
#include "tests/support/fake_host.h"

namespace proxy {
namespace {

using testing::FakeHost;
using testing::FakeLink;

const char* kThreeShards = R"(
pool:
  listen: 127.0.0.1:22121
  redis: true
  hash: fnv1a_64
  distribution: ketama
  servers:
   - 127.0.0.1:7001:1 s1
   - 127.0.0.1:7002:1 s2
   - 127.0.0.1:7003:1 s3
)";

std::string bulk(std::string_view s) { return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n"; }

std::string command(std::initializer_list<std::string_view> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (std::string_view a : args) out += bulk(a);
  return out;
}

struct Fixture {
  RedisFrontend frontend;
  FakeHost host{kThreeShards};
  testing::TestClient client = host.connect(frontend, 0);
  // One key per shard, so that multi-key requests split three ways.
  std::string k0 = host.keyOn(0, 0), k1 = host.keyOn(0, 1), k2 = host.keyOn(0, 2);
  FakeLink& shard(uint32_t i) { return host.link(i); }
};

TEST_CASE("a keyed command goes to its key's owner unchanged and its reply comes back byte for byte") {
  Fixture f;
  const std::string get = command({"GET", f.k1});
  f.client.send(get);
  REQUIRE(f.shard(1).owed.size() == 1);
  CHECK(f.shard(1).next() == get);
  CHECK(f.shard(0).owed.empty());
  CHECK(f.shard(2).owed.empty());
  f.shard(1).answer("$5\r\nhello\r\n");
  CHECK(f.client.receive() == "$5\r\nhello\r\n");
}

TEST_CASE("replies leave in request order even when a later request's shard answers first") {
  Fixture f;
  f.client.send(command({"GET", f.k0}) + command({"GET", f.k1}) + command({"GET", f.k2}));
  f.shard(2).answer("$1\r\nc\r\n");
  f.shard(1).answer("$1\r\nb\r\n");
  CHECK(f.client.receive().empty());  // the first request (shard 0, slow) is still owed
  f.shard(0).answer("$1\r\na\r\n");
  CHECK(f.client.receive() == "$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
}

TEST_CASE("MGET over three shards merges in the client's key order whatever order shards answer in") {
  Fixture f;
  const std::string k0b = f.host.keyOn(0, 0, "other");
  f.client.send(command({"MGET", f.k1, f.k0, f.k2, k0b}));
  // One sub-request per owner, each with its keys in the client's order.
  CHECK(f.shard(0).next() == command({"MGET", f.k0, k0b}));
  CHECK(f.shard(1).next() == command({"MGET", f.k1}));
  CHECK(f.shard(2).next() == command({"MGET", f.k2}));
  f.shard(2).answer("*1\r\n$2\r\nv2\r\n");
  f.shard(0).answer("*2\r\n$2\r\nv0\r\n$-1\r\n");
  CHECK(f.client.receive().empty());
  f.shard(1).answer("*1\r\n$2\r\nv1\r\n");
  CHECK(f.client.receive() == "*4\r\n$2\r\nv1\r\n$2\r\nv0\r\n$2\r\nv2\r\n$-1\r\n");
}

TEST_CASE("a large split MGET: parts handed over, not copied, and the merge streamed to the client in key order") {
  Fixture f;
  const std::string k0b = f.host.keyOn(0, 0, "other");
  f.client.send(command({"MGET", f.k1, f.k0, f.k2, k0b}));
  const std::string v0(3 << 20, 'a'), v0b(1 << 20, 'b'), v1(2 << 20, 'c');
  f.shard(0).answer("*2\r\n" + bulk(v0) + bulk(v0b));
  f.shard(2).answer("*1\r\n$-1\r\n");
  f.shard(1).answer("*1\r\n" + bulk(v1));
  CHECK(f.shard(0).handedOver == 1);
  CHECK(f.shard(1).handedOver == 1);
  CHECK(f.shard(2).handedOver == 0);  // small: copied as before
  // A reply far larger than the socket takes at once: read until it has all come.
  const std::string expected = "*4\r\n" + bulk(v1) + bulk(v0) + "$-1\r\n" + bulk(v0b);
  std::string got;
  for (int i = 0; i < 1000 && got.size() < expected.size(); ++i) got += f.client.receive();
  CHECK(got.size() == expected.size());
  CHECK(got == expected);
  // The next request's reply follows it, whole.
  f.client.send(command({"GET", f.k2}));
  f.shard(2).answer("$2\r\nok\r\n");
  CHECK(f.client.receive() == "$2\r\nok\r\n");
}

TEST_CASE("a very large relayed reply is streamed from the link's buffer; replies queued behind it wait their turn") {
  Fixture f;
  f.client.send(command({"GET", f.k0}) + command({"GET", f.k1}));
  const std::string big(5 << 20, 'z');
  f.shard(1).answer("$2\r\nv1\r\n");  // the second request's reply arrives first
  f.shard(0).answer(bulk(big));
  CHECK(f.shard(0).handedOver == 1);
  const std::string expected = bulk(big) + "$2\r\nv1\r\n";
  std::string got;
  for (int i = 0; i < 1000 && got.size() < expected.size(); ++i) got += f.client.receive();
  CHECK(got == expected);
}

TEST_CASE("MGET: a shard failing mid-merge gives its keys error elements and the others their values") {
  Fixture f;
  f.client.send(command({"MGET", f.k0, f.k1, f.k2}));
  f.shard(0).answer("*1\r\n$2\r\nv0\r\n");
  f.shard(1).failAll("backend 127.0.0.1:7002: connection closed by backend");
  f.shard(2).answer("*1\r\n$2\r\nv2\r\n");
  CHECK(f.client.receive() ==
        "*3\r\n$2\r\nv0\r\n-ERR backend 127.0.0.1:7002: connection closed by backend\r\n$2\r\nv2\r\n");
  CHECK(f.host.stats("pool").forwardErrors == 1);
}

TEST_CASE("MGET: a shard answering with an error fails only its keys") {
  Fixture f;
  f.client.send(command({"MGET", f.k0, f.k1}));
  f.shard(1).answer("-LOADING Redis is loading the dataset in memory\r\n", true);
  f.shard(0).answer("*1\r\n$2\r\nv0\r\n");
  CHECK(f.client.receive() == "*2\r\n$2\r\nv0\r\n-LOADING Redis is loading the dataset in memory\r\n");
}

TEST_CASE("MGET whose keys share one owner is sent whole and its reply relayed untouched") {
  Fixture f;
  const std::string a = f.host.keyOn(0, 1, "a"), b = f.host.keyOn(0, 1, "b");
  const std::string mget = command({"MGET", a, b});
  f.client.send(mget);
  CHECK(f.shard(1).next() == mget);
  f.shard(1).answer("*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
  CHECK(f.client.receive() == "*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
  // ...and when that one owner fails, every key gets the error.
  f.client.send(mget);
  f.shard(1).failAll("backend 127.0.0.1:7002: no reply within 100 ms");
  CHECK(f.client.receive() == "*2\r\n-ERR backend 127.0.0.1:7002: no reply within 100 ms\r\n"
                              "-ERR backend 127.0.0.1:7002: no reply within 100 ms\r\n");
}

TEST_CASE("DEL over three shards sums the counts; one failing shard makes the whole reply an error") {
  Fixture f;
  f.client.send(command({"DEL", f.k0, f.k1, f.k2}));
  f.shard(1).answer(":1\r\n");
  f.shard(2).answer(":0\r\n");
  f.shard(0).answer(":1\r\n");
  CHECK(f.client.receive() == ":2\r\n");
  f.client.send(command({"EXISTS", f.k0, f.k1, f.k2}));
  f.shard(0).answer(":1\r\n");
  f.shard(2).failAll("backend 127.0.0.1:7003: connection closed by backend");
  f.shard(1).answer(":1\r\n");
  CHECK(f.client.receive() == "-ERR backend 127.0.0.1:7003: connection closed by backend\r\n");
}

TEST_CASE("MSET is OK only when every shard said OK, and a shard refusing at once fails it") {
  Fixture f;
  f.client.send(command({"MSET", f.k0, "a", f.k1, "b"}));
  CHECK(f.shard(0).next() == command({"MSET", f.k0, "a"}));
  CHECK(f.shard(1).next() == command({"MSET", f.k1, "b"}));
  f.shard(1).answer("+OK\r\n");
  f.shard(0).answer("+OK\r\n");
  CHECK(f.client.receive() == "+OK\r\n");
  f.shard(2).refuse = true;
  f.client.send(command({"MSET", f.k0, "a", f.k2, "c"}));
  f.shard(0).answer("+OK\r\n");
  CHECK(f.client.receive() == "-ERR backend s3 (127.0.0.1:7003): connect failed: connection refused\r\n");
}

TEST_CASE("a client that half-closes gets what it asked for first, then the session closes") {
  Fixture f;
  f.client.send(command({"MGET", f.k0, f.k1}));
  f.shard(0).answer("*1\r\n$1\r\na\r\n");
  f.host.settle();
  CHECK(f.host.sessions() == 1);  // still owed a reply
  f.shard(1).answer("*1\r\n$1\r\nb\r\n");
  CHECK(f.client.receive() == "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
}

TEST_CASE("a session closed with requests in flight cancels them, and the late replies are dropped") {
  Fixture f;
  f.client.send(command({"GET", f.k1}) + command({"MGET", f.k0, f.k2}));
  f.host.closeAll();  // as a worker's shutdown timer or a dead socket does
  CHECK(f.host.sessions() == 0);
  CHECK(f.shard(1).cancels == 1);
  CHECK(f.shard(0).cancels == 1);
  CHECK(f.shard(2).cancels == 1);
  CHECK(f.shard(1).answer("$1\r\nb\r\n"));  // dropped, not delivered to a freed request
}

TEST_CASE("the command table's checks: unknown command, arity, NOAUTH exemptions") {
  const std::string authed = std::string(kThreeShards) + "  redis_auth: secret\n";
  RedisFrontend fe;
  FakeHost host(authed);
  auto c = host.connect(fe, 0);
  c.send(command({"NOSUCH", "x"}));
  CHECK(c.receive() == "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n");
  c.send(command({"GET", "a"}));
  CHECK(c.receive() == "-NOAUTH Authentication required.\r\n");
  c.send(command({"AUTH", "secret"}));
  CHECK(c.receive() == "+OK\r\n");
  c.send(command({"GET"}));
  CHECK(c.receive() == "-ERR wrong number of arguments for 'get' command\r\n");
  c.send(command({"PING"}));
  CHECK(c.receive() == "+PONG\r\n");
  c.send(command({"CLUSTER", "INFO"}));
  CHECK(c.receive() == "-ERR ringproxy does not support 'cluster': it is a Redis Cluster command, and ringproxy "
                       "presents one standalone server\r\n");
  c.send(command({"MONITOR"}));
  CHECK(c.receive() == "-ERR ringproxy does not support 'monitor': it administers one server: send it to the "
                       "backends directly\r\n");
}

TEST_CASE("EXEC over two shards: each runs its part as MULTI...EXEC, replies merged in queue order") {
  Fixture f;
  f.client.send(command({"MULTI"}) + command({"SET", f.k1, "b"}) + command({"PING"}) + command({"SET", f.k0, "a"}) +
                command({"EXEC"}));
  CHECK(f.client.receive() == "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
  REQUIRE(f.shard(1).owed.size() == 3);
  REQUIRE(f.shard(0).owed.size() == 3);
  CHECK(f.shard(1).log[0] == command({"MULTI"}));
  CHECK(f.shard(1).log[1] == command({"SET", f.k1, "b"}));
  CHECK(f.shard(1).log[2] == command({"EXEC"}));
  for (FakeLink* l : {&f.shard(0), &f.shard(1)}) {
    l->answer("+OK\r\n");
    l->answer("+QUEUED\r\n");
  }
  f.shard(0).answer("*1\r\n+OK\r\n");
  f.shard(1).answer("*1\r\n+OK\r\n");
  CHECK(f.client.receive() == "*3\r\n+OK\r\n+PONG\r\n+OK\r\n");
}

TEST_CASE("WATCH pins the client to a dedicated link for its server until EXEC") {
  Fixture f;
  f.client.send(command({"WATCH", f.k2}));
  REQUIRE(f.host.dedicated().size() == 1);
  FakeLink& pinned = *f.host.dedicated()[0];
  CHECK(pinned.next() == command({"WATCH", f.k2}));
  pinned.answer("+OK\r\n");
  CHECK(f.client.receive() == "+OK\r\n");
  f.client.send(command({"GET", f.k2}));  // same server: travels on the pinned link
  CHECK(pinned.owed.size() == 1);
  CHECK(f.shard(2).owed.empty());
  pinned.answer("$-1\r\n");
  CHECK(f.client.receive() == "$-1\r\n");
}

TEST_CASE("SCRIPT LOAD, EXISTS and FLUSH reach every server, so EVALSHA works on whichever owns the keys") {
  Fixture f;
  const std::string load = command({"SCRIPT", "LOAD", "return 1"});
  f.client.send(load);
  for (uint32_t i = 0; i < 3; ++i) CHECK(f.shard(i).next() == load);
  const std::string sha = "$40\r\ne0e1f9fabfc9d4800c877a703b823ac0578ff8db\r\n";
  f.shard(2).answer(sha);
  f.shard(0).answer(sha);
  CHECK(f.client.receive().empty());  // not before every server has it
  f.shard(1).answer(sha);
  CHECK(f.client.receive() == sha);
  // EXISTS: 1 only where every server has the script.
  f.client.send(command({"SCRIPT", "EXISTS", "a", "b", "c"}));
  f.shard(0).answer("*3\r\n:1\r\n:1\r\n:0\r\n");
  f.shard(1).answer("*3\r\n:1\r\n:0\r\n:0\r\n");
  f.shard(2).answer("*3\r\n:1\r\n:1\r\n:0\r\n");
  CHECK(f.client.receive() == "*3\r\n:1\r\n:0\r\n:0\r\n");
  // A server that fails makes the whole setup fail: the client must not believe it loaded.
  f.client.send(command({"SCRIPT", "FLUSH"}));
  f.shard(0).answer("+OK\r\n");
  f.shard(1).failAll("backend s2 (127.0.0.1:7002): connection closed by backend");
  f.shard(2).answer("+OK\r\n");
  CHECK(f.client.receive() == "-ERR backend s2 (127.0.0.1:7002): connection closed by backend\r\n");
  f.client.send(command({"SCRIPT", "KILL"}));
  CHECK(f.client.receive().rfind("-ERR ringproxy does not support 'SCRIPT KILL'", 0) == 0);
  f.client.send(command({"SCRIPT", "LOAD"}));
  CHECK(f.client.receive() == "-ERR wrong number of arguments for 'script|load' command\r\n");
}

TEST_CASE("a blocking command travels on the client's own connection to its key's owner, kept for the next one") {
  RedisFrontend fe;
  FakeHost host(std::string(kThreeShards) + "  timeout: 400\n");
  auto c = host.connect(fe, 0);
  const std::string q = host.keyOn(0, 2, "queue");
  c.send(command({"BRPOP", q, "1.5"}));
  host.settle();
  REQUIRE(host.dedicated().size() == 1);
  FakeLink& own = *host.dedicated()[0];
  CHECK(own.label() == host.link(2).label());  // the owner's address
  CHECK(own.next() == command({"BRPOP", q, "1.5"}));
  CHECK(host.link(2).owed.empty());      // never on the shared, pipelined connection
  CHECK(own.replyTimeoutMs == 1500 + 400);  // its own timeout plus the pool's
  own.answer("*2\r\n" + bulk(q) + bulk("job"));
  CHECK(c.receive() == "*2\r\n" + bulk(q) + bulk("job"));
  // The next one reuses the connection; BLPOP 0 waits for ever.
  c.send(command({"BLPOP", q, "0"}));
  host.settle();
  CHECK(host.dedicated().size() == 1);
  CHECK(own.replyTimeoutMs == -1);
  own.answer("*-1\r\n");
  CHECK(c.receive() == "*-1\r\n");
  CHECK(host.gauges(0)->blocking.load() == 1);
  CHECK(host.stats("pool").blockingRequests == 2);
  // A key of another server: a new connection there, the old one closed once idle.
  c.send(command({"BLPOP", host.keyOn(0, 0, "queue"), "0"}));
  host.settle();
  REQUIRE(host.dedicated().size() == 2);
  CHECK(own.closed);
  CHECK(host.gauges(0)->blocking.load() == 1);
  host.closeAll();
  CHECK(host.dedicated()[1]->hardClosed);
  CHECK(host.gauges(0)->blocking.load() == 0);
}

TEST_CASE("a blocking command neither overtakes the client's earlier requests nor lets later ones overtake it") {
  Fixture f;
  const std::string q = f.host.keyOn(0, 1, "queue");
  f.client.send(command({"LPUSH", q, "x"}) + command({"BLPOP", q, "0"}) + command({"GET", f.k0}));
  f.host.settle();
  CHECK(f.shard(1).owed.size() == 1);  // LPUSH
  CHECK(f.host.dedicated().empty());   // BLPOP waits for the LPUSH's reply
  f.shard(1).answer(":1\r\n");
  f.host.settle();
  REQUIRE(f.host.dedicated().size() == 1);
  CHECK(f.host.dedicated()[0]->next() == command({"BLPOP", q, "0"}));
  CHECK(f.shard(0).owed.empty());  // GET waits: a blocked client runs nothing else
  f.host.dedicated()[0]->answer("*2\r\n" + bulk(q) + bulk("x"));
  f.host.settle();
  REQUIRE(f.shard(0).owed.size() == 1);
  f.shard(0).answer("$1\r\nv\r\n");
  CHECK(f.client.receive() == ":1\r\n*2\r\n" + bulk(q) + bulk("x") + "$1\r\nv\r\n");
}

TEST_CASE("a client that hangs up while blocked releases its connection at once") {
  Fixture f;
  f.client.send(command({"BLPOP", f.k2, "0"}));
  f.host.settle();
  REQUIRE(f.host.dedicated().size() == 1);
  CHECK(f.host.gauges(0)->blocking.load() == 1);
  f.client.close();
  f.host.settle();
  CHECK(f.host.sessions() == 0);
  CHECK(f.host.dedicated()[0]->hardClosed);  // closed, not left waiting for a reply
  CHECK(f.host.dedicated()[0]->cancels == 1);
  CHECK(f.host.gauges(0)->blocking.load() == 0);
}

TEST_CASE("blocking commands: keys of several servers, XREAD without BLOCK, the connection limit") {
  RedisFrontend fe;
  FakeHost host(std::string(kThreeShards) + "  max_blocking_connections: 1\n");
  auto a = host.connect(fe, 0);
  auto b = host.connect(fe, 0);
  const std::string k0 = host.keyOn(0, 0), k1 = host.keyOn(0, 1);
  a.send(command({"BLPOP", k0, k1, "0"}));
  CHECK(a.receive().rfind("-CROSSSLOT Keys in request don't hash to the same server", 0) == 0);
  a.send(command({"XREAD", "COUNT", "1", "STREAMS", k0, "0"}));  // does not block: shared connection
  host.settle();
  CHECK(host.dedicated().empty());
  CHECK(host.link(0).next() == command({"XREAD", "COUNT", "1", "STREAMS", k0, "0"}));
  host.link(0).answer("*-1\r\n");
  CHECK(a.receive() == "*-1\r\n");
  a.send(command({"XREAD", "BLOCK", "100", "STREAMS", k1, "$"}));
  host.settle();
  REQUIRE(host.dedicated().size() == 1);
  b.send(command({"BLPOP", k0, "0"}));
  CHECK(b.receive() ==
        "-ERR ringproxy: the pool's clients already hold max_blocking_connections (1) backend connections for "
        "blocking commands; retry later\r\n");
  CHECK(host.stats("pool").blockingRefused == 1);
  host.dedicated()[0]->answer("*-1\r\n");
  CHECK(a.receive() == "*-1\r\n");
}

std::string frame3(std::string_view word, std::string_view name, std::string_view third, bool intThird) {
  return "*3\r\n" + bulk(word) + bulk(name) + (intThird ? ":" + std::string(third) + "\r\n" : bulk(third));
}

TEST_CASE("SUBSCRIBE goes to each channel's owner and is confirmed, with the client's own count, once the owner has") {
  Fixture f;
  const std::string a = f.host.keyOn(0, 0, "chan"), b = f.host.keyOn(0, 2, "chan");
  f.client.send(command({"SUBSCRIBE", a, b}));
  f.host.settle();
  REQUIRE(f.host.subscriberOf.count(0) == 1);
  REQUIRE(f.host.subscriberOf.count(2) == 1);
  CHECK(f.host.subscriberOf.count(1) == 0);
  FakeLink& s0 = *f.host.subscriberOf[0];
  FakeLink& s2 = *f.host.subscriberOf[2];
  CHECK(s0.log == std::vector<std::string>{command({"subscribe", a})});
  CHECK(s2.log == std::vector<std::string>{command({"subscribe", b})});
  CHECK(f.client.receive().empty());  // nothing until the owner confirms
  s2.push(frame3("subscribe", b, "1", true));  // b confirmed first: still waits behind a
  CHECK(f.client.receive().empty());
  s0.push(frame3("subscribe", a, "1", true));
  CHECK(f.client.receive() == frame3("subscribe", a, "1", true) + frame3("subscribe", b, "2", true));
  // Messages are relayed as the server sent them.
  s2.push(frame3("message", b, "hello", false));
  CHECK(f.client.receive() == frame3("message", b, "hello", false));
  // RESP2 subscribed mode: other commands are refused, PING answers ["pong", ""].
  f.client.send(command({"GET", "k"}));
  CHECK(f.client.receive() ==
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
        "this context\r\n");
  f.client.send(command({"PING"}));
  CHECK(f.client.receive() == "*2\r\n" + bulk("pong") + bulk(""));
  // UNSUBSCRIBE is confirmed at once; a late message for the channel is dropped.
  f.client.send(command({"UNSUBSCRIBE", b}));
  CHECK(f.client.receive() == frame3("unsubscribe", b, "1", true));
  CHECK(s2.log.back() == command({"unsubscribe", b}));
  s2.push(frame3("message", b, "late", false));
  CHECK(f.client.receive().empty());
  CHECK(f.host.gauges(0)->blocking.load() == 2);
  // Leaving everything: out of subscribed mode; the connections stay for the next
  // subscription (a confirmation may still be on its way on them) and close with the client.
  f.client.send(command({"UNSUBSCRIBE"}));
  CHECK(f.client.receive() == frame3("unsubscribe", a, "0", true));
  CHECK(!s0.closed);
  f.client.send(command({"GET", f.k0}));
  f.host.settle();
  CHECK(f.shard(0).next() == command({"GET", f.k0}));
  f.host.closeAll();
  CHECK(s0.hardClosed);
  CHECK(s2.hardClosed);
  CHECK(f.host.gauges(0)->blocking.load() == 0);
}

TEST_CASE("subscribe, unsubscribe and subscribe again in a row: every confirmation comes, messages flow") {
  Fixture f;
  const std::string a = f.host.keyOn(0, 1, "chan");
  f.client.send(command({"SUBSCRIBE", a}) + command({"UNSUBSCRIBE", a}) + command({"SUBSCRIBE", a}));
  f.host.settle();
  FakeLink& s1 = *f.host.subscriberOf[1];
  CHECK(s1.log == std::vector<std::string>{command({"subscribe", a}), command({"unsubscribe", a}),
                                           command({"subscribe", a})});
  s1.push(frame3("subscribe", a, "1", true));
  s1.push(frame3("unsubscribe", a, "0", true));
  s1.push(frame3("subscribe", a, "1", true));
  s1.push(frame3("message", a, "m", false));
  CHECK(f.client.receive() == frame3("subscribe", a, "1", true) + frame3("unsubscribe", a, "0", true) +
                                  frame3("subscribe", a, "1", true) + frame3("message", a, "m", false));
}

TEST_CASE("PSUBSCRIBE reaches every server and is confirmed once all have; UNSUBSCRIBE with nothing names nothing") {
  Fixture f;
  f.client.send(command({"PSUBSCRIBE", "news.*"}));
  f.host.settle();
  REQUIRE(f.host.subscriberOf.size() == 3);
  for (uint32_t b = 0; b < 2; ++b) f.host.subscriberOf[b]->push(frame3("psubscribe", "news.*", "1", true));
  CHECK(f.client.receive().empty());
  f.host.subscriberOf[2]->push(frame3("psubscribe", "news.*", "1", true));
  CHECK(f.client.receive() == frame3("psubscribe", "news.*", "1", true));
  const std::string pmessage = "*4\r\n" + bulk("pmessage") + bulk("news.*") + bulk("news.a") + bulk("x");
  f.host.subscriberOf[1]->push(pmessage);
  CHECK(f.client.receive() == pmessage);
  f.client.send(command({"UNSUBSCRIBE"}));  // no channels: one confirmation naming none
  CHECK(f.client.receive() == "*3\r\n" + bulk("unsubscribe") + "$-1\r\n:1\r\n");
  // A broken subscriber connection closes the client: its library subscribes again.
  f.host.subscriberOf[0]->pushSink->onFailure(0, "backend s1: connection reset by peer");
  f.host.settle();
  CHECK(f.client.closedByPeer());
}

TEST_CASE("a subscription waits for the client's earlier replies; RESP3 clients get pushes between replies") {
  Fixture f;
  const std::string a = f.host.keyOn(0, 1, "chan");
  f.client.send(command({"HELLO", "3"}));
  f.host.settle();
  // The pool's first HELLO asks the backends for their version, as INFO reports it.
  const std::string info = "# Server\r\nredis_version:7.2.4\r\n";
  for (uint32_t i = 0; i < 3; ++i) {
    REQUIRE(f.host.link(i, Channel::Resp3).owed.size() == 1);
    CHECK(f.host.link(i, Channel::Resp3).next() == command({"INFO", "server"}));
    f.host.link(i, Channel::Resp3).answer("$" + std::to_string(info.size()) + "\r\n" + info + "\r\n");
  }
  CHECK(f.client.receive().find(bulk("version") + bulk("7.2.4")) != std::string::npos);
  f.client.send(command({"GET", f.k0}) + command({"SUBSCRIBE", a}) + command({"GET", f.k2}));
  f.host.settle();
  CHECK(f.host.subscriberOf.empty());  // SUBSCRIBE waits for the GET
  f.host.link(0, Channel::Resp3).answer("$1\r\nv\r\n");
  f.host.settle();
  REQUIRE(f.host.subscriberOf.count(1) == 1);
  f.host.subscriberOf[1]->push(">3\r\n" + bulk("subscribe") + bulk(a) + ":1\r\n");
  CHECK(f.client.receive() == "$1\r\nv\r\n>3\r\n" + bulk("subscribe") + bulk(a) + ":1\r\n");
  // RESP3: commands keep working while subscribed; a push never splits a reply.
  REQUIRE(f.host.link(2, Channel::Resp3).owed.size() == 1);
  f.host.subscriberOf[1]->push(">3\r\n" + bulk("message") + bulk(a) + bulk("m"));
  f.host.link(2, Channel::Resp3).answer("$1\r\nw\r\n");
  CHECK(f.client.receive() == ">3\r\n" + bulk("message") + bulk(a) + bulk("m") + "$1\r\nw\r\n");
}

TEST_CASE("PUBLISH goes to the channel's owner; PUBSUB merges what every server holds") {
  Fixture f;
  const std::string a = f.host.keyOn(0, 2, "chan");
  f.client.send(command({"PUBLISH", a, "hi"}));
  f.host.settle();
  CHECK(f.shard(2).next() == command({"PUBLISH", a, "hi"}));
  f.shard(2).answer(":1\r\n");
  CHECK(f.client.receive() == ":1\r\n");
  f.client.send(command({"PUBSUB", "NUMSUB", "x", "y"}));
  f.host.settle();
  f.shard(0).answer("*4\r\n" + bulk("x") + ":1\r\n" + bulk("y") + ":0\r\n");
  f.shard(1).answer("*4\r\n" + bulk("x") + ":0\r\n" + bulk("y") + ":2\r\n");
  f.shard(2).answer("*4\r\n" + bulk("x") + ":0\r\n" + bulk("y") + ":0\r\n");
  CHECK(f.client.receive() == "*4\r\n" + bulk("x") + ":1\r\n" + bulk("y") + ":2\r\n");
  f.client.send(command({"PUBSUB", "CHANNELS"}));
  f.host.settle();
  f.shard(0).answer("*1\r\n" + bulk("a"));
  f.shard(1).answer("*2\r\n" + bulk("b") + bulk("a"));
  f.shard(2).answer("*0\r\n");
  CHECK(f.client.receive() == "*2\r\n" + bulk("a") + bulk("b"));
  f.client.send(command({"PUBSUB", "NUMPAT"}));
  f.host.settle();
  for (uint32_t b = 0; b < 3; ++b) f.shard(b).answer(":2\r\n");
  CHECK(f.client.receive() == ":2\r\n");
}

TEST_CASE("SELECT n: the client's requests reach database n on every backend; the pool's redis_db stays the default") {
  RedisFrontend fe;
  FakeHost host(std::string(kThreeShards) + "  redis_db: 2\n");
  auto c = host.connect(fe, 0);
  const std::string k0 = host.keyOn(0, 0), k2 = host.keyOn(0, 2);
  c.send(command({"SELECT", "5"}));
  CHECK(c.receive() == "+OK\r\n");
  c.send(command({"GET", k0}) + command({"MGET", k0, k2}));
  host.settle();
  CHECK(host.linkInDb(0, 5).owed.size() == 2);  // GET, and MGET's part for shard 0
  CHECK(host.linkInDb(2, 5).owed.size() == 1);
  CHECK(host.link(0).owed.empty());
  host.linkInDb(0, 5).answer("$1\r\na\r\n");
  host.linkInDb(0, 5).answer("*1\r\n$1\r\na\r\n");
  host.linkInDb(2, 5).answer("*1\r\n$1\r\nc\r\n");
  CHECK(c.receive() == "$1\r\na\r\n*2\r\n$1\r\na\r\n$1\r\nc\r\n");
  c.send(command({"BLPOP", k2, "0"}));  // its own connection, in the same database
  host.settle();
  REQUIRE(host.dedicatedDb.size() == 1);
  CHECK(host.dedicatedDb[0] == 5);
  host.dedicated()[0]->answer("*-1\r\n");
  CHECK(c.receive() == "*-1\r\n");
  c.send(command({"SELECT", "16"}));
  CHECK(c.receive() == "-ERR DB index is out of range\r\n");
  c.send(command({"SELECT", "2"}));  // the pool's own: its shared connections again
  CHECK(c.receive() == "+OK\r\n");
  c.send(command({"GET", k0}));
  host.settle();
  CHECK(host.link(0).owed.size() == 1);
}

TEST_CASE("SCAN walks the servers one at a time, each to its end, with the server's cursor inside the proxy's") {
  Fixture f;
  std::string cursor = "0";
  std::vector<uint32_t> visited;
  for (int step = 0; step < 10; ++step) {
    f.client.send(command({"SCAN", cursor, "MATCH", "k*", "COUNT", "5"}));
    f.host.settle();
    int owing = -1;
    for (uint32_t b = 0; b < 3; ++b)
      if (!f.shard(b).owed.empty()) owing = static_cast<int>(b);
    REQUIRE(owing >= 0);
    FakeLink& shard = f.shard(static_cast<uint32_t>(owing));
    const bool fresh = visited.empty() || visited.back() != static_cast<uint32_t>(owing);
    CHECK(shard.next() == command({"SCAN", fresh ? "0" : "17", "MATCH", "k*", "COUNT", "5"}));
    if (fresh) {
      visited.push_back(static_cast<uint32_t>(owing));
      shard.answer("*2\r\n" + bulk("17") + "*1\r\n" + bulk("a"));  // more to come on this server
    } else {
      shard.answer("*2\r\n" + bulk("0") + "*0\r\n");  // this server is done
    }
    const std::string reply = f.client.receive();
    REQUIRE(reply.rfind("*2\r\n$", 0) == 0);
    const size_t header = reply.find("\r\n", 4);
    const size_t len = std::stoul(reply.substr(5, header - 5));
    cursor = reply.substr(header + 2, len);
    if (fresh) CHECK((std::stoull(cursor) >> 20) == 17u);
    if (cursor == "0") break;
  }
  CHECK(cursor == "0");
  std::sort(visited.begin(), visited.end());
  CHECK(visited == std::vector<uint32_t>{0, 1, 2});  // every server, once
  f.client.send(command({"SCAN", "x"}));
  CHECK(f.client.receive() == "-ERR invalid cursor\r\n");
}

TEST_CASE("deny_commands refuses what the operator forbade; KEYS and FLUSHALL reach every server otherwise") {
  RedisFrontend fe;
  FakeHost host(std::string(kThreeShards) + "  deny_commands: [flushall]\n");
  auto c = host.connect(fe, 0);
  c.send(command({"FLUSHALL"}));
  CHECK(c.receive() == "-ERR ringproxy: 'flushall' is disabled for this pool (deny_commands)\r\n");
  c.send(command({"FLUSHDB"}));
  host.settle();
  for (uint32_t b = 0; b < 3; ++b) host.link(b).answer("+OK\r\n");
  CHECK(c.receive() == "+OK\r\n");
  c.send(command({"KEYS", "*"}));
  host.settle();
  host.link(0).answer("*1\r\n" + bulk("a"));
  host.link(1).answer("*0\r\n");
  host.link(2).answer("*2\r\n" + bulk("b") + bulk("c"));
  CHECK(c.receive() == "*3\r\n" + bulk("a") + bulk("b") + bulk("c"));
}

TEST_CASE("WAIT: a marker and the WAIT on a connection of its own to every server; the smallest count wins") {
  Fixture f;
  f.client.send(command({"SET", f.k1, "v"}) + command({"WAIT", "1", "0"}));
  f.host.settle();
  CHECK(f.host.dedicated().empty());  // after the SET's reply
  f.shard(1).answer("+OK\r\n");
  f.host.settle();
  REQUIRE(f.host.dedicated().size() == 3);
  for (auto& l : f.host.dedicated()) {
    REQUIRE(l->log.size() == 2);
    CHECK(l->log[0] == command({"PUBLISH", "__ringproxy:wait", ""}));
    CHECK(l->log[1] == command({"WAIT", "1", "0"}));
    CHECK(l->closed);  // closes itself once answered
  }
  CHECK(f.host.gauges(0)->blocking.load() == 3);
  const char* counts[] = {":2\r\n", ":1\r\n", ":3\r\n"};
  for (size_t i = 0; i < 3; ++i) {
    f.host.dedicated()[i]->answer(":0\r\n");  // the marker's reply, dropped
    f.host.dedicated()[i]->answer(counts[i]);
  }
  CHECK(f.client.receive() == "+OK\r\n:1\r\n");
  CHECK(f.host.gauges(0)->blocking.load() == 0);
  // A client that leaves while waiting lets every connection go at once.
  f.client.send(command({"WAIT", "1", "0"}));
  f.host.settle();
  REQUIRE(f.host.dedicated().size() == 6);
  f.client.close();
  f.host.settle();
  for (size_t i = 3; i < 6; ++i) CHECK(f.host.dedicated()[i]->hardClosed);
  CHECK(f.host.gauges(0)->blocking.load() == 0);
}

const char* kTransition = R"(
pool:
  listen: 127.0.0.1:22121
  redis: true
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
  RedisFrontend frontend;
  FakeHost host{kTransition};
  testing::TestClient client = host.connect(frontend, 0);
  const PoolRoute& route = host.snapshot().pools[0];
  // A key that moved from `from` to `to`, and one that did not move.
  std::string moved, stays;
  uint32_t from = 0, to = 0;
  TransitionFixture() {
    for (int i = 0; moved.empty() || stays.empty(); ++i) {
      const std::string k = "key" + std::to_string(i);
      if (route.previousOwner(k) != host.owner(0, k)) {
        if (moved.empty()) moved = k, from = route.previousOwner(k), to = host.owner(0, k);
      } else if (stays.empty()) {
        stays = k;
      }
    }
  }
  // Another key that moved from `from` to `to`, different from the earlier ones.
  std::string movedAlso(int nth) const {
    for (int i = 0, seen = 0;; ++i) {
      const std::string k = "other" + std::to_string(i);
      if (route.previousOwner(k) == from && host.owner(0, k) == to && seen++ == nth) return k;
    }
  }
  std::string migrate(const std::string& key) const {
    return command({"MIGRATE", "127.0.0.1", std::to_string(host.snapshot().backends[to].endpoint.port), key, "0",
                    "5000"});
  }
};

TEST_CASE("a transition: a moved key is MIGRATEd from its previous owner before the request runs on the new one") {
  TransitionFixture f;
  REQUIRE(f.to == f.host.owner(0, f.moved));
  f.client.send(command({"GET", f.moved}) + command({"GET", f.stays}));
  f.host.settle();
  // The key's expiry first (a slow MIGRATE may stretch it), then the MIGRATE.
  REQUIRE(f.host.link(f.from).owed.size() == 2);
  CHECK(f.host.link(f.from).next() == command({"PEXPIRETIME", f.moved}));
  CHECK(f.host.link(f.from).owed.back().bytes == f.migrate(f.moved));
  CHECK(f.host.link(f.to).owed.empty());  // the GET waits for the move
  f.host.link(f.from).answer(":-1\r\n");
  f.host.link(f.from).answer("+OK\r\n");
  f.host.settle();
  REQUIRE(f.host.link(f.to).owed.size() == 1);
  CHECK(f.host.link(f.to).next() == command({"GET", f.moved}));
  f.host.link(f.to).answer("$5\r\nmoved\r\n");
  f.host.settle();
  // The key that did not move goes straight to its owner, after the first (order kept).
  const uint32_t staysOwner = f.host.owner(0, f.stays);
  REQUIRE(!f.host.link(staysOwner).owed.empty());
  CHECK(f.host.link(staysOwner).owed.back().bytes == command({"GET", f.stays}));
  f.host.link(staysOwner).answer("$4\r\nhere\r\n");
  CHECK(f.client.receive() == "$5\r\nmoved\r\n$4\r\nhere\r\n");
  CHECK(f.host.stats("pool").transitionMoves == 1);
}

TEST_CASE("a transition: BUSYKEY deletes the stale old copy; any other failure fails the request") {
  TransitionFixture f;
  f.client.send(command({"SET", f.moved, "v"}));
  f.host.settle();
  f.host.link(f.from).answer(":-1\r\n");
  f.host.link(f.from).answer("-BUSYKEY Target key name already exists.\r\n", true);
  f.host.settle();
  // The old copy's bytes and expiry are read, so a copy that landed late on the new owner
  // gets the right expiry (only if it is the same bytes); then the old copy is deleted.
  REQUIRE(f.host.link(f.from).owed.size() == 2);
  CHECK(f.host.link(f.from).log.back() == command({"PEXPIRETIME", f.moved}));
  f.host.link(f.from).answer("$4\r\nDUMP\r\n");
  f.host.link(f.from).answer(":1796306818000\r\n");
  f.host.settle();
  REQUIRE(f.host.link(f.to).owed.size() == 1);
  CHECK(f.host.link(f.to).next().find("PEXPIREAT") != std::string::npos);
  CHECK(f.host.link(f.to).next().find("1796306818000") != std::string::npos);
  f.host.link(f.to).answer(":1\r\n");
  f.host.settle();
  REQUIRE(f.host.link(f.from).owed.size() == 1);
  CHECK(f.host.link(f.from).next() == command({"DEL", f.moved}));  // the newer copy wins
  CHECK(f.host.link(f.to).owed.empty());
  f.host.link(f.from).answer(":1\r\n");
  f.host.settle();
  REQUIRE(f.host.link(f.to).owed.size() == 1);
  CHECK(f.host.link(f.to).next() == command({"SET", f.moved, "v"}));
  f.host.link(f.to).answer("+OK\r\n");
  CHECK(f.client.receive() == "+OK\r\n");
  CHECK(f.host.stats("pool").transitionStale == 1);

  // Settled: the next touch of that key asks the old owner nothing.
  f.client.send(command({"GET", f.moved}));
  f.host.settle();
  CHECK(f.host.link(f.from).owed.empty());
  REQUIRE(f.host.link(f.to).owed.size() == 1);
  f.host.link(f.to).answer("$1\r\nv\r\n");
  CHECK(f.client.receive() == "$1\r\nv\r\n");

  const std::string failing = f.movedAlso(0);
  f.client.send(command({"INCR", failing}));
  f.host.settle();
  f.host.link(f.from).answer(":-1\r\n");
  f.host.link(f.from).answer("-IOERR error or timeout connecting to the client\r\n", true);
  CHECK(f.client.receive() == "-ERR ringproxy could not move '" + failing +
                                  "' to its new owner: IOERR error or timeout connecting to the client\r\n");
  CHECK(f.host.link(f.to).owed.empty());  // never run where the key may not be
  CHECK(f.host.stats("pool").transitionFailures == 1);
  // NOKEY: nothing to move; the request runs.
  const std::string gone = f.movedAlso(1);
  f.client.send(command({"DEL", gone}));
  f.host.settle();
  f.host.link(f.from).answer(":-2\r\n");
  f.host.link(f.from).answer("+NOKEY\r\n");
  f.host.settle();
  REQUIRE(f.host.link(f.to).owed.size() == 1);
  f.host.link(f.to).answer(":0\r\n");
  CHECK(f.client.receive() == ":0\r\n");
}

TEST_CASE("commands queued in MULTI are bounded: over the pool's limits the transaction is discarded") {
  RedisFrontend fe;
  FakeHost host(std::string(kThreeShards) + "  max_pending_requests: 3\n");
  auto c = host.connect(fe, 0);
  const std::string k = host.keyOn(0, 0);
  c.send(command({"MULTI"}) + command({"SET", k, "1"}) + command({"SET", k, "2"}) + command({"SET", k, "3"}));
  CHECK(c.receive() == "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
  c.send(command({"SET", k, "4"}));
  CHECK(c.receive().rfind("-ERR ringproxy: the transaction is over its limits (max_pending_requests 3", 0) == 0);
  c.send(command({"SET", k, "5"}));  // after the abort: QUEUED as Redis says it, but nothing is kept
  CHECK(c.receive() == "+QUEUED\r\n");
  c.send(command({"EXEC"}));
  CHECK(c.receive() == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  host.settle();
  CHECK(host.link(0).owed.empty());  // nothing of it ran
  CHECK(host.stats("pool").limitErrors == 1);
}

TEST_CASE("commands queued in MULTI count against --max-buffered-bytes; over it the transaction is discarded") {
  RedisFrontend fe;
  FakeHost host(kThreeShards);
  auto c = host.connect(fe, 0);
  const std::string k = host.keyOn(0, 0);
  const int64_t before = backends::io::bufferedBytes().load();
  const std::string value(100000, 'v');
  c.send(command({"MULTI"}) + command({"SET", k, value}));
  CHECK(c.receive() == "+OK\r\n+QUEUED\r\n");
  CHECK(backends::io::bufferedBytes().load() - before >= 100000);  // the queued SET is counted
  const int64_t limit = backends::io::bufferLimit().load();
  backends::io::setBufferLimit(1);  // the process is over its budget now
  c.send(command({"SET", k, value}));
  CHECK(c.receive() ==
        "-ERR ringproxy is over its buffer limit (--max-buffered-bytes); the transaction is discarded\r\n");
  backends::io::setBufferLimit(limit);
  CHECK(backends::io::bufferedBytes().load() - before < 100000);  // the queue was freed
  c.send(command({"EXEC"}));
  CHECK(c.receive() == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  host.settle();
  CHECK(host.link(0).owed.empty());
}

}  // namespace
}  // namespace proxy
