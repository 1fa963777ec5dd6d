#include "proxy/control/listen_socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace proxy {
namespace {

void closeAll(std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

std::vector<int> openUnix(const config::Pool& pool, int workers, std::string& error) {
  std::vector<int> fds;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (pool.listen.path.size() >= sizeof addr.sun_path) {
    error = "listen path too long: " + pool.listen.path;
    return fds;
  }
  std::memcpy(addr.sun_path, pool.listen.path.data(), pool.listen.path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return fds;
  }
  ::unlink(pool.listen.path.c_str());  // a stale socket file from an earlier run
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    error = "cannot bind " + pool.listen.path + ": " + std::strerror(errno);
    ::close(fd);
    return fds;
  }
  if (pool.listen.perm != 0) ::chmod(pool.listen.path.c_str(), pool.listen.perm);
  if (::listen(fd, pool.backlog) < 0) {
    error = "cannot listen on " + pool.listen.path + ": " + std::strerror(errno);
    ::close(fd);
    return fds;
  }
  fds.push_back(fd);
  for (int i = 1; i < workers; ++i) fds.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  return fds;
}

}  // namespace

std::vector<int> openListenSockets(const config::Pool& pool, int workers, std::string& error) {
  if (pool.listen.isUnix()) return openUnix(pool, workers, error);
  std::vector<int> fds;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(pool.listen.port);
  const int gai = ::getaddrinfo(pool.listen.host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0 || res == nullptr) {
    error = "cannot resolve listen address " + pool.listen.str() + ": " + gai_strerror(gai);
    return fds;
  }
  for (int i = 0; i < workers; ++i) {
    const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = std::string("socket: ") + std::strerror(errno);
      break;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // libuv 1.44 has no flag for SO_REUSEPORT, so it is set here, before bind.
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (::bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
      error = "cannot listen on " + pool.listen.str() + ": " + std::strerror(errno);
      ::close(fd);
      break;
    }
    // Listen now: connections that arrive before the workers run wait in the backlog.
    if (::listen(fd, pool.backlog) < 0) {
      error = "cannot listen on " + pool.listen.str() + ": " + std::strerror(errno);
      ::close(fd);
      break;
    }
    fds.push_back(fd);
  }
  ::freeaddrinfo(res);
  if (!error.empty()) closeAll(fds);
  return fds;
}

}  // namespace proxy
