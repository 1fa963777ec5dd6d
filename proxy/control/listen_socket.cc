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

std::string errnoText(int err) {
  std::string text = std::strerror(err);
  if (err == EADDRINUSE) text += " (another process listens there)";
  return text;
}

// What is at a unix socket path before we bind it: nothing, a stale socket file left by a
// process that died (safe to replace), or something that must not be touched.
enum class UnixPathState { Free, Stale, InUse, NotASocket, Error };

UnixPathState inspectUnixPath(const sockaddr_un& addr, std::string& why) {
  struct stat st {};
  if (::lstat(addr.sun_path, &st) != 0) {
    if (errno == ENOENT) return UnixPathState::Free;
    why = std::strerror(errno);
    return UnixPathState::Error;
  }
  if (!S_ISSOCK(st.st_mode)) return UnixPathState::NotASocket;
  // A socket file: someone accepts on it if a connect succeeds. Non-blocking, so a listener
  // with a full backlog answers EAGAIN (in use) instead of making us wait.
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) {
    why = std::string("socket: ") + std::strerror(errno);
    return UnixPathState::Error;
  }
  const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::close(probe);
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) return UnixPathState::InUse;
  if (err == ECONNREFUSED) return UnixPathState::Stale;
  if (err == ENOENT) return UnixPathState::Free;  // removed meanwhile
  why = std::strerror(err);
  return UnixPathState::Error;
}

std::vector<int> openUnix(const config::Pool& pool, int workers, bool heldByUs, std::string& error) {
  std::vector<int> fds;
  const std::string& path = pool.listen.path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    error = "listen path too long: " + path;
    return fds;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  std::string why;
  switch (inspectUnixPath(addr, why)) {
    case UnixPathState::Free:
      break;
    case UnixPathState::Stale:
      ::unlink(path.c_str());  // a socket file from an earlier run that nobody serves
      break;
    case UnixPathState::InUse:
      if (!heldByUs) {
        error = "cannot listen on " + path + ": " + errnoText(EADDRINUSE);
        return fds;
      }
      ::unlink(path.c_str());  // ours (a renamed pool): the new socket takes the path over
      break;
    case UnixPathState::NotASocket:
      error = "cannot listen on " + path + ": the path exists and is not a socket; not replacing it";
      return fds;
    case UnixPathState::Error:
      error = "cannot listen on " + path + ": " + why;
      return fds;
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return fds;
  }
  fds.push_back(fd);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    // Another process may have bound the path between the check and here.
    error = "cannot bind " + path + ": " + errnoText(errno);
    closeAll(fds);
    return fds;
  }
  if (pool.listen.perm != 0 && ::chmod(path.c_str(), pool.listen.perm) != 0) {
    error = "cannot set mode of " + path + ": " + std::strerror(errno);
    ::unlink(path.c_str());
    closeAll(fds);
    return fds;
  }
  if (::listen(fd, pool.backlog) < 0) {
    error = "cannot listen on " + path + ": " + std::strerror(errno);
    ::unlink(path.c_str());
    closeAll(fds);
    return fds;
  }
  for (int i = 1; i < workers; ++i) {
    const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) {
      error = std::string("cannot share the socket of ") + path + ": " + std::strerror(errno);
      ::unlink(path.c_str());
      closeAll(fds);
      return fds;
    }
    fds.push_back(dup);
  }
  return fds;
}

}  // namespace

std::vector<int> openListenSockets(const config::Pool& pool, int workers, bool heldByUs, std::string& error) {
  if (pool.listen.isUnix()) return openUnix(pool, workers, heldByUs, error);
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
    // SO_REUSEADDR: a restart may bind while connections of the previous run sit in
    // TIME_WAIT. It never lets two sockets listen on one address.
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // libuv 1.44 has no flag for SO_REUSEPORT, so it is set here. The first socket of an
    // address we do not hold yet binds without it, so the bind fails if anyone else listens
    // there, and gets it right after, so the other workers' sockets can join (Linux checks
    // the flag of the sockets already bound when the next one binds).
    const bool exclusive = i == 0 && !heldByUs;
    if (!exclusive) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (::bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
      error = "cannot listen on " + pool.listen.str() + ": " + errnoText(errno);
      ::close(fd);
      break;
    }
    if (exclusive && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      error = "cannot share " + pool.listen.str() + " between workers: " + std::strerror(errno);
      ::close(fd);
      break;
    }
    // Listen now: connections that arrive before the workers run wait in the backlog.
    if (::listen(fd, pool.backlog) < 0) {
      error = "cannot listen on " + pool.listen.str() + ": " + errnoText(errno);
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
