#include "proxy/runtime/log.h"

#include <atomic>
#include <ctime>
#include <sys/time.h>

namespace proxy::log {
namespace {
std::atomic<int> gLevel{kNotice};
std::FILE* gOut = nullptr;
const char* name(int level) {
  switch (level) {
    case kError: return "error";
    case kWarn: return "warn";
    case kNotice: return "notice";
    case kInfo: return "info";
    default: return level < kError ? "fatal" : "debug";
  }
}
}  // namespace

void setLevel(int l) { gLevel.store(l, std::memory_order_relaxed); }
int level() { return gLevel.load(std::memory_order_relaxed); }

bool setFile(const char* path) {
  std::FILE* f = std::fopen(path, "a");
  if (f == nullptr) return false;
  setvbuf(f, nullptr, _IOLBF, 0);
  gOut = f;
  return true;
}

void write(int lvl, const char* fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  localtime_r(&tv.tv_sec, &t);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &t);
  std::fprintf(gOut ? gOut : stderr, "[%s.%03d] %-6s %s\n", when, static_cast<int>(tv.tv_usec / 1000), name(lvl), msg);
}

}  // namespace proxy::log
