// process_metrics.h: the process_* figures the Prometheus client libraries export on Linux
// (CPU time, memory, descriptors, start time), so dashboards and alerts written for any
// exporter work on ringproxy unchanged. Read from the kernel when /metrics is scraped, on the
// control thread: a few small /proc reads and syscalls, nothing a worker does or waits for.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

namespace proxy {

// One reading. A figure the kernel would not give is left empty, and /metrics leaves its
// series out rather than show a 0 that would read as the truth.
struct ProcessSample {
  std::optional<double> cpuSeconds;        // user + system, all threads
  std::optional<uint64_t> residentBytes;   // VmRSS
  std::optional<uint64_t> virtualBytes;    // VmSize
  std::optional<uint64_t> openFds;         // descriptors open now
  std::optional<uint64_t> maxFds;          // RLIMIT_NOFILE, soft limit
  std::optional<double> startTimeSeconds;  // Unix time the kernel started the process
};

// The running process, now.
ProcessSample readProcessSample();

// The parsers behind it, for tests.
// From /proc/self/stat: the start time in clock ticks after boot (field 22); the process
// name in field 2 may hold spaces and parentheses, so fields are counted after its last ')'.
std::optional<uint64_t> startTicksFromStat(std::string_view stat);
// From /proc/self/statm ("size resident ..." in pages): {virtual, resident} in pages.
std::optional<std::pair<uint64_t, uint64_t>> pagesFromStatm(std::string_view statm);
// From /proc/stat: the boot time ("btime N"), in Unix seconds.
std::optional<uint64_t> bootTimeFromProcStat(std::string_view procStat);

}  // namespace proxy
