#include "proxy/control/crash_trace.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "proxy/runtime/log.h"

namespace proxy {
namespace {

constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

// Appends to a fixed buffer without allocating (the handler may not call printf).
struct LineBuffer {
  char data[256];
  size_t used = 0;
  void add(const char* text) {
    const size_t n = std::min(std::strlen(text), sizeof data - used);
    std::memcpy(data + used, text, n);
    used += n;
  }
  void add(long value) {
    char digits[24];
    size_t n = 0;
    const bool negative = value < 0;
    unsigned long v = negative ? 0UL - static_cast<unsigned long>(value) : static_cast<unsigned long>(value);
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0 && n < sizeof digits);
    if (negative) add("-");
    while (n > 0 && used < sizeof data) data[used++] = digits[--n];
  }
};

void onCrash(int sig) {
  const int fd = log::fd();
  // The log's usual clock needs localtime, which is not safe here: seconds since the epoch.
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  LineBuffer line;
  line.add("[epoch ");
  line.add(static_cast<long>(now.tv_sec));
  line.add("] fatal  signal ");
  line.add(static_cast<long>(sig));
  line.add(" (SIG");
  const char* abbrev = sigabbrev_np(sig);
  line.add(abbrev != nullptr ? abbrev : "?");
  line.add(") received in thread ");
  line.add(static_cast<long>(gettid()));
  line.add(", stack trace follows:\n");
  if (::write(fd, line.data, line.used) < 0) {
    // Nowhere to report it; the trace below may still get through.
  }
  void* frames[64];
  const int depth = backtrace(frames, 64);
  backtrace_symbols_fd(frames, depth, fd);
  // SA_RESETHAND has restored the default action and SA_NODEFER leaves the signal unblocked:
  // raising it again ends the process as it would have ended without this handler.
  raise(sig);
}

}  // namespace

void installCrashTrace() {
  // backtrace() loads libgcc on first use, which allocates: do it now, not in the handler.
  void* warmUp[1];
  backtrace(warmUp, 1);
  struct sigaction action {};
  action.sa_handler = onCrash;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_NODEFER;
  for (int sig : kCrashSignals) sigaction(sig, &action, nullptr);
}

}  // namespace proxy
