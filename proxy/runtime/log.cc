#include "proxy/runtime/log.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace proxy::log {
namespace {

std::atomic<int> gLevel{kNotice};
// The descriptor every line goes to. Set once by setFile (before threads start); reopen()
// swaps the file under the same number, so readers never need a lock.
std::atomic<int> gFd{STDERR_FILENO};
std::string gPath;  // the -o file; written by setFile only, before threads start

int openLogFile(const char* path) {
  return ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

// One write(2) per line; a short write (a full pipe, a signal) continues where it stopped.
void writeAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report a failing log
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

const char* levelName(int level) {
  switch (level) {
    case kError: return "error";
    case kWarn: return "warn";
    case kNotice: return "notice";
    case kInfo: return "info";
    default: return level < kError ? "fatal" : "debug";
  }
}

void setLevel(int l) { gLevel.store(l, std::memory_order_relaxed); }
int level() { return gLevel.load(std::memory_order_relaxed); }

int adjustLevel(int delta) {
  const int step = delta > 0 ? 1 : -1;
  const int next = std::clamp(level() + step, static_cast<int>(kError), static_cast<int>(kDebug));
  setLevel(next);
  return next;
}

bool setFile(const char* path) {
  const int fd = openLogFile(path);
  if (fd < 0) return false;
  gPath = path;
  gFd.store(fd, std::memory_order_release);
  return true;
}

bool reopen(std::string& error) {
  if (gPath.empty()) return true;  // stderr: nothing to reopen
  const int fresh = openLogFile(gPath.c_str());
  if (fresh < 0) {
    error = "cannot open " + gPath + ": " + std::strerror(errno);
    return false;
  }
  // dup3 closes the old file and puts the new one under the same number in one step: a
  // line being written on another thread lands whole in one of the two files.
  const int rc = ::dup3(fresh, gFd.load(std::memory_order_acquire), O_CLOEXEC);
  const int err = errno;
  ::close(fresh);
  if (rc < 0) {
    error = "cannot reopen " + gPath + ": " + std::strerror(err);
    return false;
  }
  return true;
}

int fd() { return gFd.load(std::memory_order_acquire); }

size_t escapeControls(const char* in, size_t n, char* out, size_t room) {
  static const char kHex[] = "0123456789abcdef";
  size_t w = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(in[i]);
    char escaped[4];
    size_t len = 0;
    if (c >= 0x20 && c != 0x7f) {
      escaped[len++] = static_cast<char>(c);
    } else if (c == '\n' || c == '\r' || c == '\t') {
      escaped[len++] = '\\';
      escaped[len++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
    } else {
      escaped[len++] = '\\';
      escaped[len++] = 'x';
      escaped[len++] = kHex[c >> 4];
      escaped[len++] = kHex[c & 0xf];
    }
    if (w + len > room) break;  // truncate between escapes, never inside one
    std::memcpy(out + w, escaped, len);
    w += len;
  }
  return w;
}

void write(int lvl, const char* fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  const int formatted = std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (formatted < 0) return;
  const size_t msgLen = std::min(static_cast<size_t>(formatted), sizeof msg - 1);

  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  localtime_r(&tv.tv_sec, &t);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &t);

  // Every message byte may become four ("\x1b"); the prefix takes under 64.
  char line[64 + 4 * sizeof msg + 1];
  int prefix = std::snprintf(line, 64, "[%s.%03d] %-6s ", when, static_cast<int>(tv.tv_usec / 1000), levelName(lvl));
  if (prefix < 0) return;
  prefix = std::min(prefix, 63);
  size_t n = static_cast<size_t>(prefix);
  n += escapeControls(msg, msgLen, line + n, sizeof line - n - 1);
  line[n++] = '\n';
  writeAll(fd(), line, n);
}

}  // namespace proxy::log
