// stats.h: counters a worker keeps about its clients and requests. Each worker owns its own
// (no sharing on the hot path); readers on other threads sum them with relaxed atomic loads.
#pragma once

#include <atomic>
#include <cstdint>

namespace proxy {

// Seconds since the process started (for INFO and the stats JSON).
int64_t processUptimeSeconds();

struct Counter {
  std::atomic<uint64_t> value{0};
  void add(uint64_t n = 1) { value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return value.load(std::memory_order_relaxed); }
};

struct WorkerStats {
  Counter clientConnections;  // accepted, total
  Counter clientsClosed;
  Counter requests;
  Counter errorsReplied;      // error replies the proxy produced itself
  Counter protocolErrors;
  Counter backendFailures;
};

}  // namespace proxy
