#include "proxy/control/process_metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <string>

namespace proxy {
namespace {

// A /proc file whole. Their size reads as 0, so read until EOF rather than by size.
std::optional<std::string> readProcFile(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      if (n < 0) return std::nullopt;
      return text;
    }
    text.append(buf, static_cast<size_t>(n));
  }
}

std::optional<uint64_t> parseUnsigned(std::string_view s) {
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// The `index`-th (from 0) space-separated field of `text`.
std::string_view field(std::string_view text, size_t index) {
  constexpr std::string_view kSpace = " \n";
  size_t pos = 0;
  for (size_t i = 0;; ++i) {
    pos = text.find_first_not_of(kSpace, pos);
    if (pos == std::string_view::npos) return {};
    const size_t end = std::min(text.find_first_of(kSpace, pos), text.size());
    if (i == index) return text.substr(pos, end - pos);
    pos = end;
  }
}

std::optional<double> cpuSeconds() {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return std::nullopt;  // RUSAGE_SELF: every thread
  auto seconds = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

std::optional<uint64_t> countOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  // The descriptor reading the directory is listed in it, but exists only for this count.
  const auto own = static_cast<uint64_t>(::dirfd(dir));
  uint64_t count = 0;
  while (const dirent* e = ::readdir(dir)) {
    const std::optional<uint64_t> fd = parseUnsigned(e->d_name);
    if (fd.has_value() && *fd != own) count++;  // skips "." and ".."
  }
  ::closedir(dir);
  return count;
}

std::optional<uint64_t> maxFds() {
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) != 0 || l.rlim_cur == RLIM_INFINITY) return std::nullopt;
  return static_cast<uint64_t>(l.rlim_cur);
}

// The start time never changes, and /proc/stat can be long on a machine with many CPUs: read
// both files once, at the first scrape.
std::optional<double> readStartTime() {
  const std::optional<std::string> stat = readProcFile("/proc/self/stat");
  const std::optional<std::string> procStat = readProcFile("/proc/stat");
  const long ticksPerSecond = ::sysconf(_SC_CLK_TCK);
  if (!stat || !procStat || ticksPerSecond <= 0) return std::nullopt;
  const std::optional<uint64_t> ticks = startTicksFromStat(*stat);
  const std::optional<uint64_t> boot = bootTimeFromProcStat(*procStat);
  if (!ticks || !boot) return std::nullopt;
  return double(*boot) + double(*ticks) / double(ticksPerSecond);
}

}  // namespace

std::optional<uint64_t> startTicksFromStat(std::string_view stat) {
  const size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  // After the name come field 3 (state) onwards: field 22 is the 20th of them.
  return parseUnsigned(field(stat.substr(close + 1), 22 - 3));
}

std::optional<std::pair<uint64_t, uint64_t>> pagesFromStatm(std::string_view statm) {
  const std::optional<uint64_t> size = parseUnsigned(field(statm, 0));
  const std::optional<uint64_t> resident = parseUnsigned(field(statm, 1));
  if (!size || !resident) return std::nullopt;
  return std::make_pair(*size, *resident);
}

std::optional<uint64_t> bootTimeFromProcStat(std::string_view procStat) {
  constexpr std::string_view kKey = "btime ";
  for (size_t pos = 0; pos < procStat.size();) {
    size_t end = procStat.find('\n', pos);
    if (end == std::string_view::npos) end = procStat.size();
    const std::string_view line = procStat.substr(pos, end - pos);
    if (line.substr(0, kKey.size()) == kKey) return parseUnsigned(line.substr(kKey.size()));
    pos = end + 1;
  }
  return std::nullopt;
}

ProcessSample readProcessSample() {
  static const std::optional<double> startTime = readStartTime();
  ProcessSample s;
  s.cpuSeconds = cpuSeconds();
  const long pageSize = ::sysconf(_SC_PAGESIZE);
  if (const std::optional<std::string> statm = readProcFile("/proc/self/statm"); statm && pageSize > 0) {
    if (const auto pages = pagesFromStatm(*statm)) {
      s.virtualBytes = pages->first * static_cast<uint64_t>(pageSize);
      s.residentBytes = pages->second * static_cast<uint64_t>(pageSize);
    }
  }
  s.openFds = countOpenFds();
  s.maxFds = maxFds();
  s.startTimeSeconds = startTime;
  return s;
}

}  // namespace proxy
