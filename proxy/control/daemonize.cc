#include "proxy/control/daemonize.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace proxy {
namespace {
int gReadyFd = -1;  // the child's end of the pipe to the waiting parent
constexpr char kRunning = 'R';
}  // namespace

bool daemonizeAndWait(std::string& error) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    error = std::string("cannot daemonize: pipe: ") + std::strerror(errno);
    return false;
  }
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t child = ::fork();
  if (child < 0) {
    error = std::string("cannot daemonize: fork: ") + std::strerror(errno);
    ::close(pipeFds[0]);
    ::close(pipeFds[1]);
    return false;
  }
  if (child == 0) {
    ::close(pipeFds[0]);
    gReadyFd = pipeFds[1];
    ::setsid();  // no controlling terminal: a closed terminal sends no SIGHUP
    return true;
  }
  // Parent: wait for "running", or for the pipe to close because the child ended.
  ::close(pipeFds[1]);
  char byte = 0;
  ssize_t n;
  do {
    n = ::read(pipeFds[0], &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n == 1 && byte == kRunning) ::_exit(0);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1);
  std::fprintf(stderr, "ringproxy: the daemon died during start-up (signal %d)\n",
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  ::_exit(1);
}

void reportRunning(bool keepStderr) {
  if (gReadyFd < 0) return;
  const int devNull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devNull >= 0) {
    ::dup2(devNull, STDIN_FILENO);
    ::dup2(devNull, STDOUT_FILENO);
    if (!keepStderr) ::dup2(devNull, STDERR_FILENO);
    ::close(devNull);
  }
  ssize_t n;
  do {
    n = ::write(gReadyFd, &kRunning, 1);
  } while (n < 0 && errno == EINTR);
  ::close(gReadyFd);
  gReadyFd = -1;
}

}  // namespace proxy
