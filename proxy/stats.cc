#include "proxy/stats.h"

#include <chrono>

namespace proxy {
namespace {
const auto kStart = std::chrono::steady_clock::now();
}  // namespace

int64_t processUptimeSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - kStart).count();
}

}  // namespace proxy
