// topology.h: the validated, plain-value picture of a config file. config/load turns YAML into
// a Topology (or a LoadError naming file, line and key); everything after the loader works on
// these values only and never sees yaml-cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ring/ring_spec.h"

namespace config {

enum class Protocol : uint8_t { Redis, Memcache };

// How MULTI/EXEC spanning several servers is handled (ringproxy extension).
enum class TransactionMode : uint8_t { PerServer, Strict };

// A listen or backend address: TCP host:port, or a unix socket path (port 0, path set).
struct Endpoint {
  std::string host;     // name or literal address; empty for unix sockets
  uint16_t port = 0;
  std::string path;     // unix socket path, empty for TCP
  uint32_t perm = 0;    // listen only: octal mode for a unix socket ("/tmp/s.sock 0666")
  bool isUnix() const { return !path.empty(); }
  std::string str() const;  // "host:port" or the path
};

struct Server {
  Endpoint endpoint;
  uint32_t weight = 1;
  std::string name;      // configured name, "" when none
  std::string identity;  // what the ring hashes: name, else host:port, else host when port 11211
  std::string label;     // how ringctl and logs show it: name, else host:port (or path)
  int line = 0;          // 1-based line in the file, for messages
};

// A user clients may log in to the proxy as (ringproxy's `users:`), with what it may do.
struct User {
  std::string name;
  std::string passwordSha256;  // lower-case hex of the password's SHA-256, or "" (then `password`)
  std::string password;        // read from password_file, when no hash is given
  bool readOnly = false;       // commands: read-only
  std::string keyPrefix;       // every key it names must start with this ("" : any)
  int line = 0;
};

struct Pool {
  std::string name;
  Endpoint listen;
  // twemproxy keys, with twemproxy 0.5.0's defaults.
  ring::HashKind hash = ring::HashKind::Fnv1a_64;
  std::string hashTag;
  std::string hashKeySeparator;  // ringproxy: the key-prefix rule (ring::keyPrefixSpan)
  uint32_t hashKeyParts = 0;
  ring::Distribution distribution = ring::Distribution::Ketama;
  int timeoutMs = -1;              // -1: wait forever (twemproxy's default)
  int backlog = 512;
  uint32_t clientConnections = 0;  // 0: unlimited
  bool redis = false;
  std::string redisAuth;
  int redisDb = 0;
  bool preconnect = false;
  bool autoEjectHosts = false;
  uint32_t serverConnections = 1;
  int serverRetryTimeoutMs = 30000;
  uint32_t serverFailureLimit = 2;
  bool tcpKeepalive = false;
  // ringproxy extensions.
  Protocol protocol = Protocol::Memcache;  // follows `redis:` unless `protocol:` is given
  uint32_t vnodes = ring::kDefaultVnodes;
  TransactionMode transactions = TransactionMode::PerServer;
  // Limits (ringproxy extensions; see README "Limits").
  uint64_t maxRequestBytes = 64ull * 1024 * 1024;
  uint64_t maxRequestArgs = 1024 * 1024;
  uint64_t maxPendingRequests = 16 * 1024;
  uint64_t maxClientOutputBytes = 64ull * 1024 * 1024;
  int clientIdleTimeoutMs = 0;  // 0: never
  // Backend connections held by one client alone (blocking commands, pub/sub), across the
  // process: each is a real connection to a backend, as it would be without the proxy.
  uint32_t maxBlockingConnections = 1024;
  uint32_t databases = 16;
  // Commands refused to this pool's clients (lower case), e.g. flushall, keys: an operator's
  // way to forbid fleet-wide commands (Redis's rename-command, done in the proxy).
  std::vector<std::string> denyCommands;
  std::vector<User> users;  // ringproxy: ACL-style users of the proxy (AUTH user password)
  // TLS to the backends (ringproxy): CA to verify them with ("": the system's), an optional
  // client certificate and key, the name to send (SNI) and check ("": each server's host).
  // The ACL user the proxy logs in to the backends as (ringproxy), with backend_auth_password
  // or else redis_auth; without a user the backends get AUTH <password>, as twemproxy sends it.
  std::string backendAuthUser;
  std::string backendAuthPassword;
  // AUTH's arguments for the backends: {user, password}, {password}, or none.
  std::vector<std::string> backendAuthArgs() const {
    const std::string& password = backendAuthPassword.empty() ? redisAuth : backendAuthPassword;
    if (password.empty()) return {};
    if (backendAuthUser.empty()) return {password};
    return {backendAuthUser, password};
  }
  bool backendTls = false;
  std::string backendTlsCaFile;
  std::string backendTlsCertFile;
  std::string backendTlsKeyFile;
  std::string backendTlsServerName;
  bool backendTlsVerify = true;
  // TLS for the pool's clients (ringproxy): the listener speaks TLS when tls_cert_file is set.
  std::string tlsCertFile;
  std::string tlsKeyFile;
  std::string tlsCaFile;                // CAs for client certificates
  std::string tlsClientAuth = "";       // none, optional, required ("": required with a CA, else none)
  std::string tlsMinVersion = "1.2";    // 1.2 or 1.3
  std::string tlsCiphers;               // OpenSSL cipher list for TLS 1.2 ("": OpenSSL's)
  bool listensWithTls() const { return !tlsCertFile.empty(); }  // what the backends have (Redis's `databases`): SELECT's bound
  std::vector<Server> servers;
  // A transition (ringproxy): the servers the data is still on. Empty outside a transition.
  std::vector<Server> previousServers;
  int line = 0;

  ring::RingSpec ringSpec() const;
  // The ring over previousServers, with the same hashing (only in a transition).
  ring::RingSpec previousRingSpec() const;
  bool inTransition() const { return !previousServers.empty(); }
};

struct Topology {
  std::string file;
  std::vector<Pool> pools;

  const Pool* findPool(std::string_view name) const;
};

}  // namespace config
