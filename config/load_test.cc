// load_test.cc: the loader accepts twemproxy's nutcracker.yml with twemproxy's meaning, adds
// ringproxy's keys, and names file, line and key for every mistake.
#include "config/load.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

namespace {

using config::LoadError;
using config::Pool;
using config::Protocol;
using config::Topology;
using ring::Distribution;
using ring::HashKind;

std::string dataPath(const char* name) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "tests" / "data" / name)
      .string();
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// 1-based line of the first line of `text` that starts with `prefix` (after indentation).
int lineStarting(const std::string& text, std::string_view prefix) {
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const size_t start = line.find_first_not_of(' ');
    if (start != std::string::npos && std::string_view(line).substr(start).starts_with(prefix))
      return n;
  }
  return -1;
}

Topology mustLoad(const std::string& text) {
  Topology topology;
  LoadError error;
  const bool ok = config::loadTopologyText(text, "test.yml", topology, error);
  INFO(text);
  INFO(error.str());
  REQUIRE(ok);
  return topology;
}

LoadError mustFail(const std::string& text) {
  Topology topology;
  LoadError error;
  const bool ok = config::loadTopologyText(text, "test.yml", topology, error);
  INFO(text);
  REQUIRE_FALSE(ok);
  CHECK(error.file == "test.yml");
  CHECK_FALSE(error.message.empty());
  return error;
}

// Loading `text` fails on `line` at `key`, and the message mentions `fragment`.
void expectError(const std::string& text, int line, const std::string& key,
                 std::string_view fragment) {
  const LoadError error = mustFail(text);
  INFO(text);
  INFO(error.str());
  CHECK(error.line == line);
  CHECK(error.key == key);
  CHECK(error.message.find(fragment) != std::string::npos);
}

// One valid pool named p; `extra` lines are inserted after listen (line 2), so they start at
// line 3 and servers follow them.
std::string pool(const std::string& extra = "",
                 const std::string& servers = "   - 127.0.0.1:6379:1\n") {
  return "p:\n  listen: 127.0.0.1:22121\n" + extra + "  servers:\n" + servers;
}

std::string poolWithServers(const std::string& servers) { return pool("", servers); }

}  // namespace

TEST_CASE("twemproxy's README example loads with twemproxy's values") {
  const std::string path = dataPath("config_twemproxy_example.yml");
  const std::string text = readFile(path);
  REQUIRE_FALSE(text.empty());
  Topology topo;
  LoadError error;
  INFO(error.str());
  REQUIRE(config::loadTopologyFile(path, topo, error));
  CHECK(topo.file == path);

  REQUIRE(topo.pools.size() == 5);
  const char* names[] = {"alpha", "beta", "gamma", "delta", "omega"};
  for (size_t i = 0; i < 5; ++i) {
    CHECK(topo.pools[i].name == names[i]);  // file order
    CHECK(topo.pools[i].line == lineStarting(text, std::string(names[i]) + ":"));
    CHECK(topo.findPool(names[i]) == &topo.pools[i]);
    CHECK(topo.pools[i].distribution == Distribution::Ketama);
  }
  CHECK(topo.findPool("epsilon") == nullptr);

  const Pool& alpha = topo.pools[0];
  CHECK(alpha.listen.host == "127.0.0.1");
  CHECK(alpha.listen.port == 22121);
  CHECK_FALSE(alpha.listen.isUnix());
  CHECK(alpha.listen.str() == "127.0.0.1:22121");
  CHECK(alpha.hash == HashKind::Fnv1a_64);
  CHECK(alpha.autoEjectHosts);
  CHECK(alpha.redis);
  CHECK(alpha.protocol == Protocol::Redis);
  CHECK(alpha.serverRetryTimeoutMs == 2000);
  CHECK(alpha.serverFailureLimit == 1);
  CHECK(alpha.timeoutMs == -1);
  CHECK(alpha.backlog == 512);
  REQUIRE(alpha.servers.size() == 1);
  CHECK(alpha.servers[0].endpoint.str() == "127.0.0.1:6379");
  CHECK(alpha.servers[0].identity == "127.0.0.1:6379");
  CHECK(alpha.servers[0].label == "127.0.0.1:6379");
  CHECK(alpha.servers[0].name.empty());
  CHECK(alpha.servers[0].weight == 1);
  CHECK(alpha.servers[0].line == lineStarting(text, "- 127.0.0.1:6379:1"));

  const Pool& beta = topo.pools[1];
  CHECK(beta.listen.port == 22122);
  CHECK(beta.hashTag == "{}");
  CHECK_FALSE(beta.autoEjectHosts);
  CHECK(beta.timeoutMs == 400);
  CHECK(beta.protocol == Protocol::Redis);
  REQUIRE(beta.servers.size() == 4);
  for (int i = 0; i < 4; ++i) {
    const std::string name = "server" + std::to_string(i + 1);
    CHECK(beta.servers[i].name == name);
    CHECK(beta.servers[i].identity == name);
    CHECK(beta.servers[i].label == name);
    CHECK(beta.servers[i].endpoint.host == "127.0.0.1");
    CHECK(beta.servers[i].endpoint.port == 6380 + i);
  }
  const ring::RingSpec betaRing = beta.ringSpec();
  CHECK(betaRing.distribution == Distribution::Ketama);
  CHECK(betaRing.hash == HashKind::Fnv1a_64);
  CHECK(betaRing.hashTag == "{}");
  CHECK(betaRing.vnodes == 0);
  REQUIRE(betaRing.nodes.size() == 4);
  CHECK(betaRing.nodes[2].identity == "server3");
  CHECK(betaRing.nodes[2].weight == 1);
  CHECK(betaRing.nodes[2].address == "127.0.0.1:6382");
  CHECK(betaRing.nodes[2].label == "server3");

  const Pool& gamma = topo.pools[2];
  CHECK(gamma.timeoutMs == 400);
  CHECK(gamma.backlog == 1024);
  CHECK(gamma.preconnect);
  CHECK(gamma.autoEjectHosts);
  CHECK(gamma.serverRetryTimeoutMs == 2000);
  CHECK(gamma.serverFailureLimit == 3);
  CHECK_FALSE(gamma.redis);
  CHECK(gamma.protocol == Protocol::Memcache);
  REQUIRE(gamma.servers.size() == 2);
  CHECK(gamma.servers[0].identity == "127.0.0.1:11212");
  CHECK(gamma.servers[1].identity == "127.0.0.1:11213");

  const Pool& delta = topo.pools[3];
  CHECK(delta.timeoutMs == 100);
  CHECK(delta.serverFailureLimit == 1);
  REQUIRE(delta.servers.size() == 10);
  for (int i = 0; i < 10; ++i) CHECK(delta.servers[i].endpoint.port == 11214 + i);

  const Pool& omega = topo.pools[4];
  CHECK(omega.listen.isUnix());
  CHECK(omega.listen.path == "/tmp/gamma");
  CHECK(omega.listen.perm == 0666);
  CHECK(omega.listen.str() == "/tmp/gamma");
  CHECK(omega.hash == HashKind::Hsieh);
  CHECK_FALSE(omega.autoEjectHosts);
  REQUIRE(omega.servers.size() == 2);
  CHECK(omega.servers[0].weight == 100000);
  CHECK(omega.servers[1].weight == 1);
}

TEST_CASE("defaults are twemproxy 0.5.0's, plus ringproxy's") {
  const Topology topo = mustLoad(pool());
  REQUIRE(topo.pools.size() == 1);
  const Pool& p = topo.pools[0];
  CHECK(p.name == "p");
  CHECK(p.line == 1);
  CHECK(p.listen.perm == 0);
  CHECK(p.hash == HashKind::Fnv1a_64);
  CHECK(p.hashTag.empty());
  CHECK(p.distribution == Distribution::Ketama);
  CHECK(p.timeoutMs == -1);
  CHECK(p.backlog == 512);
  CHECK(p.clientConnections == 0);
  CHECK_FALSE(p.redis);
  CHECK(p.redisAuth.empty());
  CHECK(p.redisDb == 0);
  CHECK_FALSE(p.preconnect);
  CHECK_FALSE(p.autoEjectHosts);
  CHECK(p.serverConnections == 1);
  CHECK(p.serverRetryTimeoutMs == 30000);
  CHECK(p.serverFailureLimit == 2);
  CHECK_FALSE(p.tcpKeepalive);
  CHECK(p.protocol == Protocol::Memcache);
  CHECK(p.vnodes == ring::kDefaultVnodes);
  CHECK(p.transactions == config::TransactionMode::PerServer);
  REQUIRE(p.servers.size() == 1);
  CHECK(p.servers[0].line == 4);
}

TEST_CASE("distribution vnode defaults to xxh3 and carries vnodes into the ring spec") {
  const Pool p = mustLoad(pool("  distribution: vnode\n")).pools[0];
  CHECK(p.hash == HashKind::Xxh3);
  CHECK(p.ringSpec().vnodes == ring::kDefaultVnodes);
  CHECK(p.ringSpec().distribution == Distribution::Vnode);

  const Pool q = mustLoad(pool("  distribution: vnode\n  hash: murmur\n  vnodes: 64\n")).pools[0];
  CHECK(q.hash == HashKind::Murmur);
  CHECK(q.vnodes == 64);
  CHECK(q.ringSpec().vnodes == 64);

  // xxh3 is ours, but any distribution may use it.
  CHECK(mustLoad(pool("  hash: xxh3\n")).pools[0].hash == HashKind::Xxh3);
}

TEST_CASE("timeout 0 means wait forever, as in twemproxy") {
  CHECK(mustLoad(pool("  timeout: 0\n")).pools[0].timeoutMs == -1);
  CHECK(mustLoad(pool("  timeout: 1\n")).pools[0].timeoutMs == 1);
}

TEST_CASE("protocol follows redis: unless given; both given must agree") {
  CHECK(mustLoad(pool("  redis: true\n")).pools[0].protocol == Protocol::Redis);
  CHECK(mustLoad(pool("  redis: false\n")).pools[0].protocol == Protocol::Memcache);
  const Pool viaProtocol = mustLoad(pool("  protocol: redis\n")).pools[0];
  CHECK(viaProtocol.protocol == Protocol::Redis);
  CHECK(viaProtocol.redis);
  CHECK(mustLoad(pool("  redis: true\n  protocol: redis\n")).pools[0].redis);
  CHECK(mustLoad(pool("  protocol: memcache\n  redis: false\n")).pools[0].protocol ==
        Protocol::Memcache);

  expectError(pool("  redis: true\n  protocol: memcache\n"), 4, "p.protocol",
              "contradicts redis: true (line 3)");
  expectError(pool("  protocol: redis\n  redis: false\n"), 3, "p.protocol",
              "contradicts redis: false (line 4)");
  expectError(pool("  protocol: http\n"), 3, "p.protocol", "redis, memcache");
}

TEST_CASE("ringproxy's example config loads") {
  Topology topo;
  LoadError error;
  const bool ok = config::loadTopologyFile(dataPath("config_ringproxy.yml"), topo, error);
  INFO(error.str());
  REQUIRE(ok);
  REQUIRE(topo.pools.size() == 2);
  const Pool& sessions = topo.pools[0];
  CHECK(sessions.listen.str() == "0.0.0.0:22121");
  CHECK(sessions.protocol == Protocol::Redis);
  CHECK(sessions.redis);
  CHECK(sessions.distribution == Distribution::Vnode);
  CHECK(sessions.hash == HashKind::Xxh3);
  CHECK(sessions.vnodes == 256);
  CHECK(sessions.transactions == config::TransactionMode::Strict);
  CHECK(sessions.serverConnections == 2);
  CHECK(sessions.tcpKeepalive);
  REQUIRE(sessions.servers.size() == 3);
  CHECK(sessions.servers[2].weight == 2);
  CHECK(sessions.servers[2].identity == "sessions-c");

  const Pool& objects = topo.pools[1];
  CHECK(objects.listen.path == "/run/ringproxy/objects.sock");
  CHECK(objects.listen.perm == 0660);
  CHECK(objects.distribution == Distribution::Modula);
  CHECK(objects.hash == HashKind::Murmur);
  CHECK(objects.protocol == Protocol::Memcache);
  REQUIRE(objects.servers.size() == 3);
  CHECK(objects.servers[0].endpoint.path == "/run/memcached/a.sock");
  CHECK(objects.servers[1].identity == "objects-b");
  CHECK(objects.servers[2].identity == "cache1.example.com");
}

TEST_CASE("unix socket listen, with and without a mode") {
  const Pool withMode =
      mustLoad("p:\n  listen: /var/run/rp.sock 0600\n  servers:\n   - 127.0.0.1:6379:1\n").pools[0];
  CHECK(withMode.listen.isUnix());
  CHECK(withMode.listen.path == "/var/run/rp.sock");
  CHECK(withMode.listen.perm == 0600);
  CHECK(withMode.listen.host.empty());
  CHECK(withMode.listen.port == 0);

  const Pool noMode =
      mustLoad("p:\n  listen: /var/run/rp.sock\n  servers:\n   - 127.0.0.1:6379:1\n").pools[0];
  CHECK(noMode.listen.path == "/var/run/rp.sock");
  CHECK(noMode.listen.perm == 0);

  const auto listen = [](const std::string& value) {
    return "p:\n  listen: " + value + "\n  servers:\n   - 127.0.0.1:6379:1\n";
  };
  expectError(listen("/tmp/x.sock 0800"), 2, "p.listen", "octal");
  expectError(listen("/tmp/x.sock 1777"), 2, "p.listen", "at most 0777");
  expectError(listen("/tmp/x.sock rw"), 2, "p.listen", "octal");
  expectError(listen("tmp/x.sock"), 2, "p.listen", "must be absolute");
  expectError(listen("/" + std::string(200, 's')), 2, "p.listen", "at most 107");
}

TEST_CASE("TCP listen addresses, IPv6 included") {
  const auto listen = [](const std::string& value) {
    return "p:\n  listen: " + value + "\n  servers:\n   - 127.0.0.1:6379:1\n";
  };
  const Pool bracketed = mustLoad(listen("\"[::1]:22121\"")).pools[0];
  CHECK(bracketed.listen.host == "::1");
  CHECK(bracketed.listen.port == 22121);
  CHECK(bracketed.listen.str() == "[::1]:22121");
  // twemproxy splits at the last colon, so an unbracketed literal works too.
  CHECK(mustLoad(listen("::1:22121")).pools[0].listen.host == "::1");
  CHECK(mustLoad(listen("localhost:22121")).pools[0].listen.host == "localhost");

  expectError(listen("127.0.0.1"), 2, "p.listen", "has no port");
  expectError(listen(":22121"), 2, "p.listen", "has no host");
  expectError(listen("127.0.0.1:0"), 2, "p.listen", "1 to 65535");
  expectError(listen("127.0.0.1:65536"), 2, "p.listen", "out of range");
  expectError(listen("127.0.0.1:http"), 2, "p.listen", "not a number");
  expectError(listen("127.0.0.1:-1"), 2, "p.listen", "not a number");
}

TEST_CASE("previous_servers declares a transition: a ring over them with the pool's hashing") {
  const config::Pool p = mustLoad(pool("  redis: true\n  hash_tag: \"{}\"\n  previous_servers:\n   - 127.0.0.1:6380:1\n"
                                       "   - 127.0.0.1:6381:1 old\n",
                                       "   - 127.0.0.1:6380:1\n   - 127.0.0.1:6381:1 old\n   - 127.0.0.1:6382:1\n"))
                             .pools[0];
  REQUIRE(p.inTransition());
  CHECK(p.previousServers.size() == 2);
  CHECK(p.previousServers[1].name == "old");
  const ring::RingSpec prev = p.previousRingSpec();
  CHECK(prev.nodes.size() == 2);
  CHECK(prev.hashTag == "{}");
  CHECK(prev.hash == p.ringSpec().hash);
  CHECK_FALSE(mustLoad(pool("  redis: true\n")).pools[0].inTransition());
  CHECK(mustLoad(pool("  previous_servers:\n   - 127.0.0.1:6380:1\n")).pools[0].inTransition());  // memcache too
  expectError(pool("  redis: true\n  distribution: random\n  previous_servers:\n   - 127.0.0.1:6380:1\n"), 5,
              "p.previous_servers", "no fixed owner");
  expectError(pool("  redis: true\n  previous_servers:\n   - 127.0.0.1:6380:1\n", "   - /tmp/r.sock:1\n"), 7,
              "p.servers", "MIGRATE");
  expectError(pool("  redis: true\n  previous_servers:\n   - 127.0.0.1:6380:1\n   - 127.0.0.1:6380:1\n"), 6,
              "p.previous_servers[1]", "already used");
}

TEST_CASE("hash_key_separator and hash_key_parts: the key-prefix rule") {
  const config::Pool p = mustLoad(pool("  hash_key_separator: \":\"\n  hash_key_parts: 2\n")).pools[0];
  CHECK(p.hashKeySeparator == ":");
  CHECK(p.hashKeyParts == 2);
  CHECK(p.ringSpec().keySeparator == ":");
  CHECK(p.ringSpec().keyParts == 2);
  CHECK(mustLoad(pool("  hash_key_separator: \"\\x06\\x16\"\n")).pools[0].hashKeyParts == 1);  // default 1
  CHECK(mustLoad(pool("  hash_key_separator: \"\\x06\\x16\"\n")).pools[0].hashKeySeparator == "\x06\x16");
  expectError(pool("  hash_key_parts: 2\n"), 3, "p.hash_key_parts", "needs hash_key_separator");
  expectError(pool("  hash_key_separator: \"\"\n"), 3, "p.hash_key_separator", "1 to 16 bytes");
  expectError(pool("  hash_key_separator: \":\"\n  hash_key_parts: 0\n"), 4, "p.hash_key_parts", "");
}

TEST_CASE("hash_tag takes exactly two characters") {
  CHECK(mustLoad(pool("  hash_tag: \"{}\"\n")).pools[0].hashTag == "{}");
  CHECK(mustLoad(pool("  hash_tag: $$\n")).pools[0].hashTag == "$$");
  expectError(pool("  hash_tag: {}\n"), 3, "p.hash_tag", "quoted");
  expectError(pool("  hash_tag: \"{\"\n"), 3, "p.hash_tag", "exactly two");
  expectError(pool("  hash_tag: abc\n"), 3, "p.hash_tag", "exactly two");
  expectError(pool("  hash_tag:\n"), 3, "p.hash_tag", "has no value");
}

TEST_CASE("servers: weights, names, and the ketama identity rule") {
  const Pool p = mustLoad(poolWithServers("   - 10.0.0.1:6379:3\n"
                                          "   - 10.0.0.2:6379:1 cache-b\n"
                                          "   - 10.0.0.3:11211:2\n"
                                          "   - 10.0.0.4:11211:1 cache-d\n"
                                          "   - /tmp/m.sock:5\n"
                                          "   - /tmp/n.sock:1 cache-f\n"
                                          "   - \"[::1]:6380:1\"\n"
                                          "   - ::1:6381:1\n"))
                     .pools[0];
  REQUIRE(p.servers.size() == 8);
  const auto& s = p.servers;

  CHECK(s[0].weight == 3);
  CHECK(s[0].name.empty());
  CHECK(s[0].identity == "10.0.0.1:6379");
  CHECK(s[0].label == "10.0.0.1:6379");
  CHECK(s[0].line == 4);

  CHECK(s[1].name == "cache-b");
  CHECK(s[1].identity == "cache-b");
  CHECK(s[1].label == "cache-b");
  CHECK(s[1].endpoint.str() == "10.0.0.2:6379");

  // libmemcached compatibility: port 11211 is left out of an unnamed server's identity.
  CHECK(s[2].identity == "10.0.0.3");
  CHECK(s[2].label == "10.0.0.3:11211");
  CHECK(s[2].weight == 2);
  CHECK(s[3].identity == "cache-d");

  // twemproxy hashes an unnamed unix server as "path:".
  CHECK(s[4].endpoint.isUnix());
  CHECK(s[4].endpoint.path == "/tmp/m.sock");
  CHECK(s[4].endpoint.port == 0);
  CHECK(s[4].weight == 5);
  CHECK(s[4].identity == "/tmp/m.sock:");
  CHECK(s[4].label == "/tmp/m.sock");
  CHECK(s[5].identity == "cache-f");
  CHECK(s[5].label == "cache-f");

  CHECK(s[6].endpoint.host == "::1");
  CHECK(s[6].endpoint.port == 6380);
  CHECK(s[6].identity == "[::1]:6380");
  CHECK(s[6].label == "[::1]:6380");
  CHECK(s[7].endpoint.host == "::1");
  CHECK(s[7].identity == "::1:6381");  // as written, as twemproxy hashes it
  CHECK(s[7].label == "[::1]:6381");

  const ring::RingSpec spec = p.ringSpec();
  REQUIRE(spec.nodes.size() == 8);
  for (size_t i = 0; i < 8; ++i) {
    CHECK(spec.nodes[i].identity == s[i].identity);
    CHECK(spec.nodes[i].weight == s[i].weight);
  }
}

TEST_CASE("server line errors name the line and the list index") {
  // servers[1] is on line 5 (p:, listen, servers:, item 0, item 1).
  const auto second = [](const std::string& item) {
    return poolWithServers("   - 127.0.0.1:6379:1\n   - " + item + "\n");
  };
  expectError(second("127.0.0.1:0:1"), 5, "p.servers[1]", "1 to 65535");
  expectError(second("127.0.0.1:65536:1"), 5, "p.servers[1]", "out of range");
  expectError(second("127.0.0.1:redis:1"), 5, "p.servers[1]", "port 'redis' is not a number");
  expectError(second("127.0.0.1:6380:0"), 5, "p.servers[1]", "weight is 0");
  expectError(second("127.0.0.1:6380:x"), 5, "p.servers[1]", "weight 'x' is not a number");
  expectError(second("127.0.0.1:6380:-1"), 5, "p.servers[1]", "not a number");
  expectError(second("127.0.0.1:6380"), 5, "p.servers[1]", "has no weight");
  expectError(second("127.0.0.1:6380 name"), 5, "p.servers[1]", "has no weight");
  expectError(second("127.0.0.1"), 5, "p.servers[1]",
              "missing its port and weight; expected \"host:port:weight [name]\"");
  expectError(second("/tmp/x.sock"), 5, "p.servers[1]", "has no weight");
  expectError(second(":6380:1"), 5, "p.servers[1]", "has no host");
  expectError(second("\"127.0.0.1:6380:1 \""), 5, "p.servers[1]", "no name");
  expectError(second("{host: a}"), 5, "p.servers[1]", "is a mapping");
  expectError(second("127.0.0.1:6380:99999999999"), 5, "p.servers[1]", "too large");

  expectError(second("127.0.0.1:6379:2"), 5, "p.servers[1]",
              "already used by p.servers[0] (line 4)");
  expectError(second("127.0.0.1:6379:1 other"), 5, "p.servers[1]",
              "address 127.0.0.1:6379 is already used");
  expectError(second("LOCALHOST:6379:1") + "   - localhost:6379:1\n", 6, "p.servers[2]",
              "already used by p.servers[1]");
  expectError(poolWithServers("   - /tmp/a.sock:1\n   - /tmp/a.sock:1 other\n"), 5, "p.servers[1]",
              "already used");

  expectError(
      poolWithServers("   - 10.0.0.1:6379:1 a\n   - 10.0.0.2:6379:1 b\n   - 10.0.0.3:6379:1 a\n"),
      6, "p.servers[2]", "name 'a' is already used by p.servers[0] (line 4)");
  // A name equal to another server's host:port would give both the same ring identity.
  expectError(poolWithServers("   - 10.0.0.1:6379:1\n   - 10.0.0.2:6379:1 10.0.0.1:6379\n"), 5,
              "p.servers[1]", "ring identity '10.0.0.1:6379'");
  // Two hosts on 11211 differ, but not if they are the same host.
  CHECK(mustLoad(poolWithServers("   - 10.0.0.1:11211:1\n   - 10.0.0.2:11211:1\n"))
            .pools[0]
            .servers.size() == 2);
}

TEST_CASE("wrong YAML types") {
  expectError(pool("  timeout: [1, 2]\n"), 3, "p.timeout", "is a list");
  expectError(pool("  backlog: {a: 1}\n"), 3, "p.backlog", "is a mapping");
  expectError(pool("  hash:\n"), 3, "p.hash", "has no value");
  expectError("p:\n  listen:\n    - 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:6379:1\n", 3,
              "p.listen", "is a list");
  expectError("p:\n  listen: 127.0.0.1:22121\n  servers: 127.0.0.1:6379:1\n", 3, "p.servers",
              "expected a list of servers");
  expectError("p:\n  listen: 127.0.0.1:22121\n  servers:\n", 3, "p.servers", "has no servers");
  expectError("p:\n  listen: 127.0.0.1:22121\n  servers: []\n", 3, "p.servers",
              "at least one server");
  expectError("p: 5\n", 1, "p", "is a single value");
  expectError("p:\n", 1, "p", "is empty");
  expectError("- a\n- b\n", 1, "", "the top level is a list");
  expectError("just text\n", 1, "", "the top level is a single value");
  expectError(pool("  [a, b]: 1\n"), 3, "p", "keys are plain words");
}

TEST_CASE("numbers and booleans take twemproxy's spellings only") {
  expectError(pool("  timeout: -1\n"), 3, "p.timeout", "not a whole number");
  expectError(pool("  timeout: 1.5\n"), 3, "p.timeout", "not a whole number");
  expectError(pool("  timeout: 0x10\n"), 3, "p.timeout", "not a whole number");
  expectError(pool("  backlog: 99999999999999999999999\n"), 3, "p.backlog", "out of range");
  expectError(pool("  server_connections: 0\n"), 3, "p.server_connections", "from 1 to");
  expectError(pool("  preconnect: yes\n"), 3, "p.preconnect", "true or false");
  expectError(pool("  redis: True\n"), 3, "p.redis", "true or false");
  // Quoted values are the same text to twemproxy.
  CHECK(mustLoad(pool("  timeout: \"250\"\n")).pools[0].timeoutMs == 250);
  const Pool p =
      mustLoad(pool("  client_connections: 100\n  redis_db: 3\n  server_failure_limit: 0\n"
                    "  server_retry_timeout: 0\n  tcpkeepalive: true\n  backlog: 0\n"))
          .pools[0];
  CHECK(p.clientConnections == 100);
  CHECK(p.redisDb == 3);
  CHECK(p.serverFailureLimit == 0);
  CHECK(p.serverRetryTimeoutMs == 0);
  CHECK(p.tcpKeepalive);
  CHECK(p.backlog == 0);
}

TEST_CASE("hash and distribution names") {
  for (const char* name :
       {"one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64", "fnv1a_64", "fnv1_32",
        "fnv1a_32", "hsieh", "murmur", "jenkins", "xxh3"}) {
    CAPTURE(name);
    mustLoad(pool("  hash: " + std::string(name) + "\n"));
  }
  for (const char* name : {"ketama", "modula", "random", "vnode"}) {
    CAPTURE(name);
    mustLoad(pool("  distribution: " + std::string(name) + "\n"));
  }
  expectError(pool("  hash: fnv\n"), 3, "p.hash", "fnv1a_64, fnv1_32");
  expectError(pool("  hash: FNV1A_64\n"), 3, "p.hash", "not a known hash");
  expectError(pool("  distribution: consistent\n"), 3, "p.distribution",
              "ketama, modula, random, vnode");
  expectError(pool("  transactions: sometimes\n"), 3, "p.transactions", "per_server, strict");
}

TEST_CASE("vnode rules") {
  expectError(pool("  distribution: vnode\n  hash: crc16\n"), 4, "p.hash", "only 16 bits");
  expectError(pool("  hash: crc32\n  distribution: vnode\n"), 3, "p.hash", "xxh3");
  CHECK(mustLoad(pool("  distribution: vnode\n  hash: crc32a\n")).pools[0].hash ==
        HashKind::Crc32a);
  CHECK(mustLoad(pool("  hash: crc16\n")).pools[0].hash == HashKind::Crc16);  // fine for ketama

  expectError(pool("  distribution: vnode\n  vnodes: 0\n"), 4, "p.vnodes", "from 1 to 65536");
  expectError(pool("  distribution: vnode\n  vnodes: 65537\n"), 4, "p.vnodes", "from 1 to 65536");
  CHECK(mustLoad(pool("  distribution: vnode\n  vnodes: 65536\n")).pools[0].vnodes == 65536);
  expectError(pool("  vnodes: 100\n"), 3, "p.vnodes", "only applies to distribution: vnode");
  expectError(pool("  distribution: modula\n  vnodes: 100\n"), 4, "p.vnodes",
              "this pool uses modula");

  // omega's weights are fine for ketama but would be 100 million points on the native ring.
  expectError(pool("  distribution: vnode\n", "   - 127.0.0.1:11214:100000\n"), 4, "p.servers",
              "ring points");
  expectError(pool("  distribution: vnode\n  vnodes: 1000\n", "   - 127.0.0.1:11214:100000\n"), 4,
              "p.vnodes", "lower vnodes");
  CHECK(mustLoad(pool("  distribution: vnode\n  vnodes: 16\n", "   - 127.0.0.1:11214:100000\n"))
            .pools.size() == 1);
  expectError(pool("  distribution: modula\n", "   - 127.0.0.1:11214:2000000000\n"), 4, "p.servers",
              "one slot");
  expectError(pool("",
                   "   - 127.0.0.1:11214:2000000000\n   - 127.0.0.1:11215:2000000000\n   - "
                   "127.0.0.1:11216:2000000000\n"),
              3, "p.servers", "add up to");
}

TEST_CASE("redis_auth is for redis pools") {
  CHECK(mustLoad(pool("  redis: true\n  redis_auth: s3cret\n")).pools[0].redisAuth == "s3cret");
  CHECK(mustLoad(pool("  protocol: redis\n  redis_auth: 1234\n")).pools[0].redisAuth == "1234");
  expectError(pool("  redis_auth: s3cret\n"), 3, "p.redis_auth", "only valid for a redis pool");
  expectError(pool("  redis: true\n  redis_auth: \"\"\n"), 4, "p.redis_auth", "is empty");
}

TEST_CASE("unknown and repeated keys") {
  expectError(pool("  hsah: md5\n"), 3, "p.hsah", "did you mean 'hash'?");
  expectError(pool("  server_retry_timout: 5\n"), 3, "p.server_retry_timout",
              "did you mean 'server_retry_timeout'?");
  expectError(pool("  colour: blue\n"), 3, "p.colour", "accepted keys: listen hash hash_tag");
  // A key of later twemproxy versions that 0.5.0 does not have.
  expectError(pool("  command:\n   - redis_module_get\n"), 3, "p.command", "unknown key 'command'");
  expectError(pool("  hash: md5\n  timeout: 5\n  hash: crc32a\n"), 5, "p.hash",
              "given twice (first on line 3)");
  expectError("base: &base\n  hash: md5\np:\n  <<: *base\n  listen: 127.0.0.1:22121\n", 1,
              "base.listen", "is missing");
  expectError(pool("  <<: {hash: md5}\n"), 3, "p.<<", "merge keys are not supported");
}

TEST_CASE("pool-level errors") {
  expectError("p:\n  hash: md5\n  servers:\n   - 127.0.0.1:6379:1\n", 1, "p.listen", "is missing");
  expectError("p:\n  listen: 127.0.0.1:22121\n", 1, "p.servers", "is missing");
  expectError("\n\nq:\n  listen: 127.0.0.1:22121\n  redis: true\n", 3, "q.servers", "is missing");

  const std::string two =
      pool() + "q:\n  listen: 127.0.0.1:22122\n  servers:\n   - 127.0.0.1:6380:1\n";
  const Topology topo = mustLoad(two);
  REQUIRE(topo.pools.size() == 2);
  CHECK(topo.pools[1].line == 5);

  expectError(pool() + pool(), 5, "p", "defined twice (first on line 1)");
  expectError(
      pool() + "q:\n  timeout: 5\n  listen: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:6380:1\n",
      7, "q.listen", "already used by pool 'p' (listen on line 2)");
  expectError(pool() + "q:\n  listen: LocalHost:22121\n  servers:\n   - 127.0.0.1:6380:1\n" +
                  "r:\n  listen: localhost:22121\n  servers:\n   - 127.0.0.1:6380:1\n",
              10, "r.listen", "already used by pool 'q'");
  expectError(
      "a:\n  listen: /tmp/a.sock 0600\n  servers:\n   - 127.0.0.1:6379:1\n"
      "b:\n  listen: /tmp/a.sock\n  servers:\n   - 127.0.0.1:6379:1\n",
      6, "b.listen", "/tmp/a.sock is already used");
  // Same port on another host is another address.
  CHECK(mustLoad(pool() + "q:\n  listen: 127.0.0.2:22121\n  servers:\n   - 127.0.0.1:6380:1\n")
            .pools.size() == 2);
}

TEST_CASE("YAML syntax errors and document shape") {
  const LoadError syntax = mustFail("p:\n  listen: [127.0.0.1:22121\n  servers:\n   - a:1:1\n");
  CHECK(syntax.line > 1);
  CHECK(syntax.key.empty());
  CHECK(syntax.message.find("YAML syntax error") != std::string::npos);

  expectError("p:\n  listen: 127.0.0.1:22121\n servers: x\n", 3, "", "YAML syntax error");
  expectError("p:\n  listen: 127.0.0.1:22121\n  - x\n", 3, "", "end of map not found");
  expectError("p:\n  listen: a: b\n", 2, "", "YAML syntax error");
  expectError("", 1, "", "has no pools");
  expectError("# nothing but a comment\n", 1, "", "has no pools");
  expectError(pool() + "---\n" + pool(), 6, "", "2 YAML documents");
  CHECK(mustLoad("---\n" + pool() + "...\n").pools.size() == 1);
  CHECK(mustLoad(pool() + "---\n").pools.size() == 1);  // an empty document adds nothing
}

TEST_CASE("a stray comma is a syntax error, not a hang") {
  // yaml-cpp 0.7's LoadAll loops forever on these (jbeder/yaml-cpp#1040); Load alone would
  // silently read them as an empty file.
  expectError(",\n", 1, "", "unexpected ','");
  expectError("# comment\n, key twemproxy\n" + pool(), 2, "", "unexpected ','");
}

TEST_CASE("LoadError::str is FILE:LINE: KEY: MESSAGE") {
  const LoadError e = mustFail(pool("  hash: nope\n"));
  CHECK(e.str() == "test.yml:3: p.hash: " + e.message);
  CHECK(LoadError{"f.yml", 0, "", "cannot open: x"}.str() == "f.yml: cannot open: x");
  CHECK(LoadError{"f.yml", 7, "", "YAML syntax error: y"}.str() == "f.yml:7: YAML syntax error: y");
}

TEST_CASE("unreadable files") {
  Topology topo;
  LoadError error;
  CHECK_FALSE(config::loadTopologyFile("/nonexistent/ringproxy.yml", topo, error));
  CHECK(error.file == "/nonexistent/ringproxy.yml");
  CHECK(error.line == 0);
  CHECK(error.key.empty());
  CHECK(error.message.find("No such file") != std::string::npos);
  CHECK(error.str().starts_with("/nonexistent/ringproxy.yml: cannot open: "));

  const std::string dir = std::filesystem::temp_directory_path().string();
  CHECK_FALSE(config::loadTopologyFile(dir, topo, error));
  CHECK(error.message.find("directory") != std::string::npos);

  if (::geteuid() != 0) {  // root reads anything
    const std::string path =
        (std::filesystem::temp_directory_path() / "ringproxy_load_test_unreadable.yml").string();
    std::ofstream(path) << pool();
    std::filesystem::permissions(path, std::filesystem::perms::none);
    CHECK_FALSE(config::loadTopologyFile(path, topo, error));
    CHECK(error.message.find("Permission denied") != std::string::npos);
    std::filesystem::remove(path);
  }

  // Errors found inside a file carry its path.
  const std::string bad =
      (std::filesystem::temp_directory_path() / "ringproxy_load_test_bad.yml").string();
  std::ofstream(bad) << pool("  hash: nope\n");
  CHECK_FALSE(config::loadTopologyFile(bad, topo, error));
  CHECK(error.str().starts_with(bad + ":3: p.hash: "));
  std::filesystem::remove(bad);
}

// A scratch directory for files the reader must refuse, removed with everything in it.
struct ScratchDir {
  std::filesystem::path dir;
  ScratchDir() {
    dir = std::filesystem::temp_directory_path() / ("ringproxy_load_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~ScratchDir() { std::filesystem::remove_all(dir); }
  std::string path(const char* name) const { return (dir / name).string(); }
};

TEST_CASE("a FIFO is refused at once, without waiting for a writer") {
  ScratchDir scratch;
  const std::string fifo = scratch.path("config.yml");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto reading = std::async(std::launch::async, [&] {
    std::string text;
    LoadError error;
    const bool ok = config::readConfigFile(fifo, text, error);
    return std::make_pair(ok, error);
  });
  if (reading.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    FAIL_CHECK("readConfigFile blocked on a FIFO");
    // Release the blocked reader: a writer that opens and closes gives it end-of-file.
    const int w = ::open(fifo.c_str(), O_WRONLY);
    if (w >= 0) ::close(w);
  }
  const auto [ok, error] = reading.get();
  CHECK_FALSE(ok);
  CHECK(error.file == fifo);
  CHECK(error.message.find("FIFO") != std::string::npos);
  CHECK(error.str().starts_with(fifo + ": is a FIFO"));

  Topology topo;
  LoadError again;
  CHECK_FALSE(config::loadTopologyFile(fifo, topo, again));
  CHECK(again.message.find("not a regular file") != std::string::npos);
}

TEST_CASE("devices are refused, also through a symlink") {
  ScratchDir scratch;
  const std::string link = scratch.path("nutcracker.yml");
  std::filesystem::create_symlink("/dev/zero", link);
  std::string text;
  LoadError error;
  // Without the check this reads /dev/zero until memory runs out.
  CHECK_FALSE(config::readConfigFile(link, text, error));
  CHECK(error.file == link);
  CHECK(error.message.find("character device") != std::string::npos);
  CHECK(text.empty());

  // /dev/null would read as an empty file: an empty config is not what anyone meant.
  CHECK_FALSE(config::readConfigFile("/dev/null", text, error));
  CHECK(error.message.find("character device") != std::string::npos);

  // A symlink to a regular file is fine (config managers deploy that way).
  const std::string real = scratch.path("real.yml");
  std::ofstream(real) << pool();
  const std::string good = scratch.path("good.yml");
  std::filesystem::create_symlink(real, good);
  Topology topo;
  CHECK(config::loadTopologyFile(good, topo, error));
}

TEST_CASE("a unix socket path is refused") {
  ScratchDir scratch;
  const std::string path = scratch.path("sock.yml");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  std::string text;
  LoadError error;
  CHECK_FALSE(config::readConfigFile(path, text, error));
  CHECK(error.message.find("socket") != std::string::npos);
  ::close(fd);
}

TEST_CASE("files above the size limit are refused before they are read") {
  ScratchDir scratch;
  const std::string big = scratch.path("big.yml");
  std::ofstream(big).close();
  std::filesystem::resize_file(big, config::kMaxConfigBytes + 1);  // sparse: costs no disk
  std::string text;
  LoadError error;
  CHECK_FALSE(config::readConfigFile(big, text, error));
  CHECK(error.file == big);
  CHECK(error.message.find(std::to_string(config::kMaxConfigBytes + 1) + " bytes") != std::string::npos);
  CHECK(error.message.find("8 MiB") != std::string::npos);
  CHECK(text.empty());

  // Exactly at the limit is read whole.
  std::filesystem::resize_file(big, config::kMaxConfigBytes);
  CHECK(config::readConfigFile(big, text, error));
  CHECK(text.size() == static_cast<size_t>(config::kMaxConfigBytes));
}

TEST_CASE("a failed load leaves the output untouched") {
  Topology topo = mustLoad(pool());
  LoadError error;
  CHECK_FALSE(config::loadTopologyText(pool("  hash: nope\n"), "x.yml", topo, error));
  REQUIRE(topo.pools.size() == 1);
  CHECK(topo.pools[0].name == "p");
  CHECK(topo.file == "test.yml");
}

TEST_CASE("an empty list item is reported near its line") {
  expectError(poolWithServers("   - 127.0.0.1:6379:1\n   -\n   - 127.0.0.1:6380:1\n"), 5,
              "p.servers[1]", "is empty");
}

TEST_CASE("the key table: every key loads, help is written, names are unique") {
  // A sample value for each key; a key added to the table without one here fails this test.
  const std::map<std::string, std::string> samples = {
      {"listen", "127.0.0.1:22121"},
      {"hash", "murmur"},
      {"hash_tag", "\"{}\""},
      {"distribution", "vnode"},
      {"timeout", "400"},
      {"backlog", "1024"},
      {"client_connections", "10"},
      {"redis", "true"},
      {"redis_auth", "pw"},
      {"redis_db", "2"},
      {"preconnect", "true"},
      {"auto_eject_hosts", "true"},
      {"server_connections", "3"},
      {"server_retry_timeout", "100"},
      {"server_failure_limit", "4"},
      {"tcpkeepalive", "true"},
      {"servers", "\n   - 127.0.0.1:6379:1"},
      {"protocol", "redis"},
      {"vnodes", "32"},
      {"transactions", "strict"},
      {"max_request_bytes", "1048576"},
      {"max_request_args", "1000"},
      {"max_pending_requests", "100"},
      {"max_client_output_bytes", "1048576"},
      {"client_idle_timeout", "30000"},
      {"max_blocking_connections", "10"},
      {"databases", "32"},
      {"deny_commands", "[FlushAll, keys]"},
      {"previous_servers", "\n   - 127.0.0.1:6380:1"},
      {"hash_key_separator", "\":\""},
      {"hash_key_parts", "2"},
      {"users", "\n   - {name: app, password_sha256: " + std::string(64, 'a') + ", commands: read-only, key_prefix: \"app:\"}"},
      {"backend_auth_user", "ringproxy"},
      {"backend_auth_password", "s3cret"},
      {"backend_tls", "true"},
      {"backend_tls_ca_file", "/dev/null"},  // files must be readable when loaded
      {"backend_tls_cert_file", "/dev/null"},
      {"backend_tls_key_file", "/dev/null"},
      {"backend_tls_server_name", "cache.example"},
      {"backend_tls_verify", "false"},
      {"tls_cert_file", "/dev/null"},
      {"tls_key_file", "/dev/null"},
      {"tls_ca_file", "/dev/null"},
      {"tls_client_auth", "optional"},
      {"tls_min_version", "1.3"},
      {"tls_ciphers", "HIGH"},
  };
  std::set<std::string_view> seen;
  std::string text = "all:\n";
  for (const config::PoolKeyInfo& key : config::poolKeys()) {
    CAPTURE(key.name);
    CHECK(seen.insert(key.name).second);
    CHECK(key.help.size() > 10);
    const auto sample = samples.find(std::string(key.name));
    REQUIRE(sample != samples.end());
    text += "  " + std::string(key.name) + ": " + sample->second + "\n";
  }
  CHECK(seen.size() == samples.size());
  const Pool p = mustLoad(text).pools[0];
  CHECK(p.hash == HashKind::Murmur);
  CHECK(p.hashTag == "{}");
  CHECK(p.maxRequestBytes == 1048576);
  CHECK(p.maxRequestArgs == 1000);
  CHECK(p.maxPendingRequests == 100);
  CHECK(p.maxClientOutputBytes == 1048576);
  CHECK(p.clientIdleTimeoutMs == 30000);
  CHECK(p.maxBlockingConnections == 10);
  CHECK(p.backendTls);
  REQUIRE(p.users.size() == 1);
  CHECK(p.users[0].readOnly);
  CHECK(p.users[0].keyPrefix == "app:");
  CHECK(p.backendAuthArgs() == std::vector<std::string>{"ringproxy", "s3cret"});
  CHECK(p.backendTlsCertFile == "/dev/null");
  CHECK(p.backendTlsServerName == "cache.example");
  CHECK(!p.backendTlsVerify);
  CHECK(p.listensWithTls());
  CHECK(p.tlsClientAuth == "optional");
  CHECK(p.tlsMinVersion == "1.3");
  CHECK(p.databases == 32);
  CHECK(p.denyCommands == std::vector<std::string>{"flushall", "keys"});
  CHECK(p.hashKeySeparator == ":");
  CHECK(p.hashKeyParts == 2);
  CHECK(p.distribution == Distribution::Vnode);
  CHECK(p.timeoutMs == 400);
  CHECK(p.backlog == 1024);
  CHECK(p.clientConnections == 10);
  CHECK(p.redis);
  CHECK(p.redisAuth == "pw");
  CHECK(p.redisDb == 2);
  CHECK(p.preconnect);
  CHECK(p.autoEjectHosts);
  CHECK(p.serverConnections == 3);
  CHECK(p.serverRetryTimeoutMs == 100);
  CHECK(p.serverFailureLimit == 4);
  CHECK(p.tcpKeepalive);
  CHECK(p.protocol == Protocol::Redis);
  CHECK(p.vnodes == 32);
  CHECK(p.transactions == config::TransactionMode::Strict);
}

// ---------------------------------------------------------------------------------------------
// Every error in one pass (ringctl check lists them all).

namespace {

// (line, key) of each error of a load that must fail, in the order reported.
std::vector<std::pair<int, std::string>> errorPlaces(const std::vector<LoadError>& errors) {
  std::vector<std::pair<int, std::string>> places;
  for (const LoadError& e : errors) places.emplace_back(e.line, e.key);
  return places;
}

std::vector<LoadError> mustFailAll(const std::string& text) {
  Topology topology;
  std::vector<LoadError> errors;
  const bool ok = config::loadTopologyText(text, "test.yml", topology, errors);
  INFO(text);
  REQUIRE_FALSE(ok);
  REQUIRE_FALSE(errors.empty());
  for (const LoadError& e : errors) {
    INFO(e.str());
    CHECK(e.file == "test.yml");
    CHECK_FALSE(e.message.empty());
  }
  CHECK(topology.pools.empty());
  return errors;
}

using Places = std::vector<std::pair<int, std::string>>;

}  // namespace

TEST_CASE("every error of a file is reported, in line order, and the single form gives the first") {
  const std::string text =
      "p:\n"                          // 1
      "  listen: 127.0.0.1:22121\n"   // 2
      "  hash: nope\n"                // 3  bad value
      "  servers:\n"                  // 4
      "   - 127.0.0.1:6379:1\n"       // 5
      "q:\n"                          // 6
      "  listen: 127.0.0.1:22122\n"   // 7
      "  timeout: soon\n"             // 8  bad value, another pool
      "  servers:\n"                  // 9
      "   - 127.0.0.1:6380:1\n"       // 10
      "   - 127.0.0.1:99999:1\n";     // 11 bad server after a bad key
  const std::vector<LoadError> errors = mustFailAll(text);
  CHECK(errorPlaces(errors) == Places{{3, "p.hash"}, {8, "q.timeout"}, {11, "q.servers[1]"}});
  CHECK(errors[0].message.find("not a known hash") != std::string::npos);
  CHECK(errors[1].message.find("not a whole number") != std::string::npos);
  CHECK(errors[2].message.find("out of range") != std::string::npos);

  const LoadError first = mustFail(text);
  CHECK(first.line == 3);
  CHECK(first.key == "p.hash");
  CHECK(first.str() == errors[0].str());
}

TEST_CASE("errors found late but written early come first") {
  // The missing listen is found once the pool's keys are read, but belongs to line 1.
  const std::string text = "p:\n  hash: nope\n  servers:\n   - 127.0.0.1:6379:1\n";
  CHECK(errorPlaces(mustFailAll(text)) == Places{{1, "p.listen"}, {2, "p.hash"}});
  expectError(text, 1, "p.listen", "is missing");
}

TEST_CASE("a YAML syntax error is the only error") {
  const std::vector<LoadError> errors = mustFailAll(
      "p:\n  listen: [127.0.0.1:22121\n  hash: nope\n  servers:\n   - a:1:1\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].key.empty());
  CHECK(errors[0].message.find("YAML syntax error") != std::string::npos);
  CHECK(mustFailAll(pool() + "---\n" + pool("  hash: nope\n")).size() == 1);  // two documents
}

TEST_CASE("each server and command list item is checked, bad ones once") {
  // Both bad items are reported; the second is not also called a repeat of the first.
  CHECK(errorPlaces(mustFailAll(poolWithServers(
            "   - 127.0.0.1:0:1\n   - 127.0.0.1:6380:1\n   - 127.0.0.1:0:1\n   - 127.0.0.1:6380:2\n"))) ==
        Places{{4, "p.servers[0]"}, {6, "p.servers[2]"}, {7, "p.servers[3]"}});
  const std::vector<LoadError> repeat =
      mustFailAll(poolWithServers("   - 127.0.0.1:6379:1\n   - x\n   - 127.0.0.1:6379:1\n"));
  REQUIRE(repeat.size() == 2);
  CHECK(repeat[1].message.find("already used by p.servers[0] (line 4)") != std::string::npos);
  CHECK(errorPlaces(mustFailAll(pool("  deny_commands:\n   - \"\"\n   - keys\n   - \"a b\"\n"))) ==
        Places{{4, "p.deny_commands[0]"}, {6, "p.deny_commands[2]"}});
}

TEST_CASE("a check across keys says nothing more about a key already wrong") {
  // A wrong distribution: whether vnodes applies is unknown.
  CHECK(errorPlaces(mustFailAll(pool("  distribution: consistent\n  vnodes: 100\n"))) ==
        Places{{3, "p.distribution"}});
  // A contradiction is reported once, not again as redis_auth on a memcache pool.
  CHECK(errorPlaces(mustFailAll(pool("  protocol: memcache\n  redis: true\n  redis_auth: pw\n"))) ==
        Places{{3, "p.protocol"}});
  // A bad vnodes is not also too many ring points; a repeated key is one error.
  CHECK(errorPlaces(mustFailAll(pool("  distribution: vnode\n  vnodes: 0\n  vnodes: 5\n",
                                     "   - 127.0.0.1:11214:100000\n"))) ==
        Places{{4, "p.vnodes"}, {5, "p.vnodes"}});
  // Independent mistakes in one pool are all there.
  CHECK(errorPlaces(mustFailAll("p:\n  colour: blue\n  hash_key_parts: 2\n  redis_auth: pw\n")) ==
        Places{{1, "p.listen"}, {1, "p.servers"}, {2, "p.colour"}, {3, "p.hash_key_parts"},
               {4, "p.redis_auth"}});
}

TEST_CASE("pools with errors still take part in the checks across pools") {
  // q's bad hash does not hide that it listens where p does.
  CHECK(errorPlaces(mustFailAll(pool() +
                                "q:\n  hash: nope\n  listen: 127.0.0.1:22121\n  servers:\n"
                                "   - 127.0.0.1:6380:1\n")) ==
        Places{{6, "q.hash"}, {7, "q.listen"}});
  // A pool defined twice: reported, and its own mistakes too, but no listen clash with itself.
  CHECK(errorPlaces(mustFailAll(pool() + pool("  hash: nope\n"))) == Places{{5, "p"}, {7, "p.hash"}});
  // A bad pool name does not stop the next pool being read.
  CHECK(errorPlaces(mustFailAll("? [a]\n: 1\n" + pool("  hash: nope\n"))) == Places{{1, ""}, {5, "p.hash"}});
}

TEST_CASE("the list form of loadTopologyFile: unreadable files and success") {
  Topology topo;
  std::vector<LoadError> errors{LoadError{"stale", 1, "", "stale"}};
  CHECK_FALSE(config::loadTopologyFile("/nonexistent/ringproxy.yml", topo, errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].line == 0);
  CHECK(errors[0].message.find("No such file") != std::string::npos);

  const std::string path = dataPath("config_twemproxy_example.yml");
  CHECK(config::loadTopologyFile(path, topo, errors));
  CHECK(errors.empty());
  CHECK(topo.pools.size() == 5);
}

TEST_CASE("settings at the top level are one mistake, reported once") {
  // The line naming the pool is missing: each setting would otherwise be a "pool" of its own.
  const std::vector<LoadError> errors =
      mustFailAll("  listen: 127.0.0.1:22121\n  hash: md5\n  servers:\n   - 127.0.0.1:6379:1\n");
  CHECK(errorPlaces(errors) == Places{{1, "listen"}});
  CHECK(errors[0].message.find("is a single value") != std::string::npos);
  CHECK(errors[0].message.find("'listen' is a pool setting") != std::string::npos);
  CHECK(errors[0].message.find("the 2 more settings at the top level after it, up to line 3") !=
        std::string::npos);
  // One mis-indented line beside a pool: the pool's missing key and the stray line.
  CHECK(errorPlaces(mustFailAll("p:\n  servers:\n   - 127.0.0.1:6379:1\nlisten: 127.0.0.1:22121\n")) ==
        Places{{1, "p.listen"}, {4, "listen"}});
  // A pool may be named like a setting, as long as it has settings.
  CHECK(mustLoad("listen:\n  listen: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:6379:1\n")
            .pools[0]
            .name == "listen");
}

TEST_CASE("a misspelled key is one error, not also a missing key or a broken rule") {
  // "xisten" is reported as unknown, suggesting listen; listen is then not also missing.
  const std::vector<LoadError> typo =
      mustFailAll("p:\n  xisten: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:6379:1\n");
  CHECK(errorPlaces(typo) == Places{{2, "p.xisten"}});
  CHECK(typo[0].message.find("did you mean 'listen'?") != std::string::npos);
  // A misspelled redis: does not make redis_auth a memcache pool's, nor a misspelled
  // distribution make vnodes out of place.
  CHECK(errorPlaces(mustFailAll(pool("  rediss: true\n  redis_auth: pw\n"))) == Places{{3, "p.rediss"}});
  CHECK(errorPlaces(mustFailAll(pool("  distributon: vnode\n  vnodes: 64\n"))) ==
        Places{{3, "p.distributon"}});
  // Given correctly as well, the key is checked as usual.
  CHECK(errorPlaces(mustFailAll(pool("  redis_auth: pw\n  rediss: true\n  redis: false\n"))) ==
        Places{{3, "p.redis_auth"}, {4, "p.rediss"}});
  // Unknown keys that suggest nothing leave the required keys required.
  CHECK(errorPlaces(mustFailAll("p:\n  colour: blue\n")) ==
        Places{{1, "p.listen"}, {1, "p.servers"}, {2, "p.colour"}});
}
