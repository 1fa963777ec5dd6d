// listen_socket_test.cc: one process's workers share a listen address; anyone else already
// listening there (even with SO_REUSEPORT) makes the open fail with "address in use"; unix
// socket paths are refused while served, replaced when stale, never deleted when not a socket.
#include "proxy/control/listen_socket.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

// A loopback TCP listener on a port the kernel picks, as another process would hold it.
struct Holder {
  int fd = -1;
  uint16_t port = 0;
  explicit Holder(bool reusePort) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reusePort) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 8) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~Holder() { ::close(fd); }
};

config::Pool tcpPool(uint16_t port) {
  config::Pool pool;
  pool.name = "p";
  pool.listen.host = "127.0.0.1";
  pool.listen.port = port;
  return pool;
}

config::Pool unixPool(const std::string& path) {
  config::Pool pool;
  pool.name = "p";
  pool.listen.path = path;
  return pool;
}

void closeAll(const std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
}

}  // namespace

TEST_CASE("an address someone else listens on is refused, even with SO_REUSEPORT") {
  for (bool reusePort : {false, true}) {
    Holder other(reusePort);
    std::string error;
    const std::vector<int> fds = proxy::openListenSockets(tcpPool(other.port), 2, false, error);
    CHECK(fds.empty());
    CHECK(error == "cannot listen on 127.0.0.1:" + std::to_string(other.port) +
                       ": Address already in use (another process listens there)");
  }
}

TEST_CASE("the workers of one process share the address; a second opener is refused") {
  uint16_t port = 0;
  {
    Holder probe(false);  // a free port: taken, then given back
    port = probe.port;
  }
  std::string error;
  const std::vector<int> first = proxy::openListenSockets(tcpPool(port), 3, false, error);
  REQUIRE(first.size() == 3);
  CHECK(error.empty());
  // Another process (or a reload adding this address as new) is refused...
  CHECK(proxy::openListenSockets(tcpPool(port), 2, false, error).empty());
  CHECK(error.find("Address already in use") != std::string::npos);
  // ...but a reload that moves a pool onto an address this process holds may share it.
  error.clear();
  const std::vector<int> shared = proxy::openListenSockets(tcpPool(port), 2, true, error);
  CHECK(shared.size() == 2);
  CHECK(error.empty());
  closeAll(first);
  closeAll(shared);
}

TEST_CASE("unix socket paths: stale files replaced, live ones and other files refused") {
  const auto dir = std::filesystem::temp_directory_path() / ("ringproxy_listen_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "p.sock").string();

  // Stale: a socket file nobody accepts on.
  {
    const int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    REQUIRE(::bind(stale, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::close(stale);
  }
  std::string error;
  const std::vector<int> live = proxy::openListenSockets(unixPool(path), 2, false, error);
  REQUIRE(live.size() == 2);

  // Live: a second opener is refused and the path still reaches the first.
  CHECK(proxy::openListenSockets(unixPool(path), 1, false, error).empty());
  CHECK(error == "cannot listen on " + path + ": Address already in use (another process listens there)");
  CHECK(std::filesystem::is_socket(path));

  // Not a socket: left alone.
  const std::string file = (dir / "notes.txt").string();
  std::ofstream(file) << "keep me";
  CHECK(proxy::openListenSockets(unixPool(file), 1, false, error).empty());
  CHECK(error.find("not a socket") != std::string::npos);
  CHECK(std::filesystem::is_regular_file(file));

  closeAll(live);
  std::filesystem::remove_all(dir);
}
