#include "proxy/control/stats_format.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "tests/support/admin_output_check.h"
#include "tests/support/stats_fixture.h"

namespace proxy {
namespace {

// A name longer than any line buffer, with every byte the Prometheus format escapes and a
// few it passes through (carriage return, tab, a control character, UTF-8).
std::string longName(char fill) {
  std::string name = "srv\"quoted\"\\back\\slash\nnew\rline\ttab\x01" "caf\xc3\xa9-";
  name += std::string(2500, fill);
  return name + "\"end\\";
}

struct Setup {
  std::shared_ptr<const RoutingSnapshot> snapshot;
  WorkerReport report;
  ReloadStats reloads;
};

Setup setupOf(const std::vector<fixture::PoolNames>& pools, const std::string& lastError = "") {
  Setup s;
  s.snapshot = RoutingSnapshot::build(fixture::topologyOf(pools), 3);
  s.report = fixture::reportOf(*s.snapshot, 42, lastError);
  for (const auto& p : pools) s.reloads.lastMoved.push_back({p.name, {0.25, 0.2}});
  s.reloads.lastError = lastError;
  return s;
}

// The sample lines of `name`, with their labels.
std::vector<checks::PromSample> samplesOf(const std::vector<checks::PromSample>& all, const std::string& name) {
  std::vector<checks::PromSample> out;
  for (const auto& s : all)
    if (s.name == name) out.push_back(s);
  return out;
}

std::string labelOf(const checks::PromSample& s, const std::string& name) {
  for (const auto& [k, v] : s.labels)
    if (k == name) return v;
  return "<none>";
}

// One label of every sample, sorted (the ring may list its nodes in another order).
std::vector<std::string> labelsOf(const std::vector<checks::PromSample>& samples, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& s : samples) out.push_back(labelOf(s, name));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST_CASE("/metrics keeps labels of any length whole and escaped, one sample per line") {
  const std::string a = longName('a'), b = longName('b');
  const std::string pool = "pool \"p\"\\" + std::string(3000, 'p');
  const Setup s = setupOf({{pool, {a, b, ""}, {}}});
  const std::string text = prometheusText(s.report, *s.snapshot, s.reloads);

  std::vector<checks::PromSample> samples;
  REQUIRE(checks::checkPrometheus(text, &samples) == "");
  // Before, a line was cut at 1023 bytes and the next sample glued to it: the line count is
  // what the families say, and every label reads back as the config had it.
  const auto requests = samplesOf(samples, "ringproxy_backend_requests_total");
  REQUIRE(requests.size() == 3);
  CHECK((labelsOf(requests, "backend") == sorted({a, b, "127.0.0.1:10002"})));
  CHECK((labelsOf(requests, "address") == sorted({"127.0.0.1:10000", "127.0.0.1:10001", "127.0.0.1:10002"})));
  for (const auto& r : requests) {
    CHECK(labelOf(r, "pool") == pool);
    CHECK(r.value == "126");
  }
  const auto pools = samplesOf(samples, "ringproxy_pool_requests_total");
  REQUIRE(pools.size() == 1);
  CHECK(labelOf(pools[0], "pool") == pool);
  CHECK(pools[0].value == "42");
  const auto buckets = samplesOf(samples, "ringproxy_backend_latency_seconds_bucket");
  CHECK(buckets.size() == 3 * backends::upstream::kLatencyBuckets);
  CHECK(labelOf(buckets.back(), "le") == "+Inf");
  CHECK(samplesOf(samples, "ringproxy_reload_moved_ratio").at(0).value == "0.250000000");
  // The label is escaped exactly as the format says, nothing more.
  CHECK(text.find("backend=\"srv\\\"quoted\\\"\\\\back\\\\slash\\nnew\rline\ttab\x01" "caf\xc3\xa9-aaaa") !=
        std::string::npos);
}

TEST_CASE("/metrics replaces bytes that are not UTF-8 with U+FFFD, one per byte") {
  const Setup s = setupOf({{"pool\xff", {"bad\xc0\xaf", "sur\xed\xa0\x80", "cut\xe2\x82"}, {}}});
  const std::string text = prometheusText(s.report, *s.snapshot, s.reloads);
  std::vector<checks::PromSample> samples;
  REQUIRE(checks::checkPrometheus(text, &samples) == "");
  const std::string r = "\xef\xbf\xbd";
  const auto requests = samplesOf(samples, "ringproxy_backend_requests_total");
  REQUIRE(requests.size() == 3);
  CHECK((labelsOf(requests, "backend") == sorted({"bad" + r + r, "sur" + r + r + r, "cut" + r + r})));
  CHECK(labelOf(requests[0], "pool") == "pool" + r);
}

TEST_CASE("the Prometheus checker refuses what a scrape must never hold") {
  CHECK(checks::checkPrometheus("a{b=\"c\"} 1\n") == "");
  CHECK(checks::checkPrometheus("a{b=\"c\",} 1\n# HELP a text\n") == "");
  // What the 1023-byte cut made: a line without its value, glued to the next sample.
  CHECK(checks::checkPrometheus("a{b=\"ccccring_x{b=\"d\"} 1\n") != "");
  CHECK(checks::checkPrometheus("a{b=\"c\"}\n") != "");
  CHECK(checks::checkPrometheus("a{b=\"c\"} 1") != "");
  CHECK(checks::checkPrometheus("a{b=\"\\x41\"} 1\n") != "");
  CHECK(checks::checkPrometheus("a{b=\"\xff\"} 1\n") != "");
  CHECK(checks::checkPrometheus("a{b=\"c\"d=\"e\"} 1\n") != "");
  CHECK(checks::checkPrometheus("a{b=\"c\"} one\n") != "");
}

TEST_CASE("the JSON outputs stay valid JSON whatever bytes the names hold") {
  const std::vector<fixture::PoolNames> pools = {
      {"p\xff\x01\"", {longName('x'), "sur\xed\xa0\x80", "over\xc0\xaf", "caf\xc3\xa9", ""}, {"prev\xfe"}},
      {"second", {"\xf4\x90\x80\x80", "tab\there"}, {}},
  };
  const Setup s = setupOf(pools, "error quoting 'bad\xff\n' from the file");
  const std::string stats = twemproxyStatsJson(s.report, *s.snapshot);
  CHECK(checks::checkJson(stats) == "");
  CHECK(stats.find("\"p\\ufffd\\u0001\\\"\":{") != std::string::npos);
  CHECK(stats.find("\"caf\xc3\xa9\":{") != std::string::npos);  // valid UTF-8 kept as it is
  CHECK(stats.find("\"over\\ufffd\\ufffd\":{") != std::string::npos);
  const std::string status = statusJson(s.report, *s.snapshot, s.reloads, 2);
  CHECK(checks::checkJson(status) == "");
  CHECK(status.find("\"last_error\":\"error quoting 'bad\\ufffd\\n' from the file\"") != std::string::npos);
  CHECK(status.find("\"prev\\ufffd\"") != std::string::npos);
  for (const auto& p : pools) {
    const std::string ring = ringJson(*s.snapshot, p.name);
    REQUIRE_FALSE(ring.empty());
    CHECK(checks::checkJson(ring) == "");
  }
}

TEST_CASE("/status?format=tsv keeps its columns when names hold tabs and line breaks") {
  const Setup s = setupOf({{"p\tq", {"a\tb", "c\nd", "e\rf"}, {"g\th"}}}, "two\tlines\n");
  const std::string tsv = statusTsv(s.report, *s.snapshot, s.reloads);
  size_t backends = 0;
  size_t start = 0;
  while (start < tsv.size()) {
    const size_t end = tsv.find('\n', start);
    REQUIRE(end != std::string::npos);
    const std::string line = tsv.substr(start, end - start);
    start = end + 1;
    size_t tabs = 0;
    for (char c : line) tabs += c == '\t' ? 1 : 0;
    const std::string kind = line.substr(0, line.find('\t'));
    CAPTURE(line);
    if (kind == "backend") {
      backends++;
      CHECK(tabs == 11);
    } else if (kind == "pool") {
      CHECK(tabs == 5);
    } else if (kind == "transition") {
      CHECK(tabs == 6);
    } else {
      CHECK((kind == "generation" || kind == "reloads"));
    }
    CHECK(line.find('\r') == std::string::npos);
  }
  CHECK(backends == 3);
}

// The label names of a sample, in the order written.
std::vector<std::string> labelNames(const checks::PromSample& s) {
  std::vector<std::string> out;
  for (const auto& [k, v] : s.labels) out.push_back(k);
  return out;
}

struct Family {
  int helps = 0;
  int types = 0;
  std::string type;
};

// `# HELP name ...` and `# TYPE name type` lines, per family name.
std::map<std::string, Family> familiesOf(const std::string& text) {
  std::map<std::string, Family> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    for (const char* kind : {"# HELP ", "# TYPE "}) {
      if (line.rfind(kind, 0) != 0) continue;
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      Family& f = out[name];
      if (kind[2] == 'H') {
        f.helps++;
      } else {
        f.types++;
        f.type = rest.substr(name.size() + 1);
      }
    }
  }
  return out;
}

// The family a sample belongs to: a histogram's _bucket, _sum and _count are its own.
std::string familyOf(const std::map<std::string, Family>& families, const std::string& sample) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (sample.size() > s.size() && sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
      const auto it = families.find(sample.substr(0, sample.size() - s.size()));
      if (it != families.end() && it->second.type == "histogram") return it->first;
    }
  }
  return sample;
}

ProcessSample fixedProcess() {
  ProcessSample p;
  p.cpuSeconds = 12.5;
  p.residentBytes = 3u << 20;
  p.virtualBytes = 1u << 30;
  p.openFds = 17;
  p.maxFds = 1024;
  p.startTimeSeconds = 1700000000.25;
  return p;
}

// /metrics as the admin server renders it, with the process's figures given.
std::string metricsOf(const Setup& s, const ProcessSample& process) {
  return prometheusText(s.report, *s.snapshot, s.reloads, keySharesOf(*s.snapshot), process);
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TEST_CASE("/metrics: one HELP and TYPE per family, counters end in _total, uniform labels per series kind") {
  const Setup s = setupOf({{"alpha", {"a", "", "c"}, {}}, {"beta", {"d", "e"}, {}}});
  const std::string text = metricsOf(s, fixedProcess());
  std::vector<checks::PromSample> samples;
  REQUIRE(checks::checkPrometheus(text, &samples) == "");
  const auto families = familiesOf(text);
  const std::vector<std::string> backendLabels = {"pool", "backend", "address"};
  const std::vector<std::string> bucketLabels = {"pool", "backend", "address", "le"};
  size_t backendSamples = 0;
  for (const auto& sample : samples) {
    CAPTURE(sample.name);
    const std::string family = familyOf(families, sample.name);
    REQUIRE(families.count(family) == 1);
    CHECK(families.at(family).helps == 1);
    CHECK(families.at(family).types == 1);
    // A counter's samples end in _total, and nothing else does.
    CHECK((families.at(family).type == "counter") == endsWith(sample.name, "_total"));
    // A fraction is named for it.
    if (sample.name.find("share") != std::string::npos) CHECK(endsWith(sample.name, "_ratio"));
    if (sample.name.rfind("ringproxy_backend_", 0) == 0) {
      backendSamples++;
      CHECK(labelNames(sample) == (endsWith(sample.name, "_bucket") ? bucketLabels : backendLabels));
    } else if (sample.name.rfind("ringproxy_pool_", 0) == 0 || sample.name.rfind("ringproxy_reload_moved", 0) == 0 ||
               sample.name.rfind("ringproxy_reload_ideal", 0) == 0) {
      CHECK(labelNames(sample) == std::vector<std::string>{"pool"});
    }
  }
  // 5 backends: 11 plain families, a histogram (buckets, sum, count) and the key share.
  CHECK(backendSamples == 5 * (11 + backends::upstream::kLatencyBuckets + 2 + 1));
  // The histogram's series of one backend carry its address like the rest.
  for (const auto& b : samplesOf(samples, "ringproxy_backend_latency_seconds_sum"))
    CHECK(labelOf(b, "address").rfind("127.0.0.1:1000", 0) == 0);
}

TEST_CASE("/metrics: shares are _ratio fractions; each backend's key share comes from the ring") {
  const Setup s = setupOf({{"alpha", {"a", "b", "c"}, {}}, {"beta", {"d", "e"}, {}}});
  const std::string text = metricsOf(s, fixedProcess());
  std::vector<checks::PromSample> samples;
  REQUIRE(checks::checkPrometheus(text, &samples) == "");
  CHECK(text.find("_share ") == std::string::npos);
  CHECK(text.find("_share{") == std::string::npos);
  CHECK(samplesOf(samples, "ringproxy_reload_ideal_moved_ratio").at(0).value == "0.200000000");
  const auto shares = samplesOf(samples, "ringproxy_backend_key_share_ratio");
  REQUIRE(shares.size() == 5);
  std::map<std::string, double> perPool;
  for (const auto& share : shares) {
    const double v = std::strtod(share.value.c_str(), nullptr);
    CHECK(v > 0);
    CHECK(v < 1);
    perPool[labelOf(share, "pool")] += v;
  }
  // Modula over 2^32 hash values: the slots differ by one position at most.
  CHECK(perPool["alpha"] == doctest::Approx(1.0).epsilon(1e-8));
  CHECK(perPool["beta"] == doctest::Approx(1.0).epsilon(1e-8));
  CHECK(std::strtod(shares.front().value.c_str(), nullptr) == doctest::Approx(1.0 / 3).epsilon(1e-8));
  // The shares shown are those given (the admin server keeps them per snapshot), by pool order.
  KeyShares given = keySharesOf(*s.snapshot);
  given[1].nodes[0].share = 0.125;
  const std::string cached = prometheusText(s.report, *s.snapshot, s.reloads, given, fixedProcess());
  CHECK(cached.find("ringproxy_backend_key_share_ratio{pool=\"beta\",backend=\"d\",address=\"127.0.0.1:10000\"} "
                    "0.125000000\n") != std::string::npos);
}

TEST_CASE("/metrics: process_* as the Prometheus clients name them, and the build") {
  const Setup s = setupOf({{"alpha", {"a"}, {}}});
  const std::string text = metricsOf(s, fixedProcess());
  std::vector<checks::PromSample> samples;
  REQUIRE(checks::checkPrometheus(text, &samples) == "");
  CHECK(samplesOf(samples, "process_cpu_seconds_total").at(0).value == "12.500000");
  CHECK(samplesOf(samples, "process_resident_memory_bytes").at(0).value == "3145728");
  CHECK(samplesOf(samples, "process_virtual_memory_bytes").at(0).value == "1073741824");
  CHECK(samplesOf(samples, "process_open_fds").at(0).value == "17");
  CHECK(samplesOf(samples, "process_max_fds").at(0).value == "1024");
  CHECK(samplesOf(samples, "process_start_time_seconds").at(0).value == "1700000000.25");
  CHECK(text.find("# TYPE process_cpu_seconds_total counter\n") != std::string::npos);
  const auto build = samplesOf(samples, "ringproxy_build_info");
  REQUIRE(build.size() == 1);
  CHECK(build[0].value == "1");
  CHECK(labelNames(build[0]) == std::vector<std::string>{"version", "compiler", "build_type"});
  CHECK(labelOf(build[0], "version") == RINGPROXY_VERSION);
  CHECK(labelOf(build[0], "compiler") != "");
  CHECK(labelOf(build[0], "build_type") != "");
  CHECK(samplesOf(samples, "ringproxy_uptime_seconds").size() == 1);

  // A figure the kernel would not give is left out, HELP and TYPE too, not shown as 0.
  ProcessSample partial = fixedProcess();
  partial.openFds.reset();
  partial.startTimeSeconds.reset();
  const std::string less = metricsOf(s, partial);
  CHECK(less.find("process_open_fds") == std::string::npos);
  CHECK(less.find("process_start_time_seconds") == std::string::npos);
  CHECK(less.find("process_max_fds 1024\n") != std::string::npos);
}

TEST_CASE("the /proc parsers read the fields the kernel documents") {
  // The name (field 2) may hold spaces and parentheses: fields count from its last ')'.
  const std::string stat =
      "4242 (ring) (x y) S 1 4242 4242 0 -1 4194560 300 0 0 0 7 3 0 0 20 0 5 0 123456 2147483648 900 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
  CHECK(startTicksFromStat(stat) == std::optional<uint64_t>(123456));
  CHECK_FALSE(startTicksFromStat("4242 (ring S 1").has_value());
  CHECK_FALSE(startTicksFromStat("4242 (ring) S 1 2 3\n").has_value());
  CHECK(pagesFromStatm("2539 812 642 11 0 289 0\n") == std::make_optional(std::make_pair<uint64_t, uint64_t>(2539, 812)));
  CHECK_FALSE(pagesFromStatm("2539\n").has_value());
  CHECK(bootTimeFromProcStat("cpu  1 2 3\nintr 5 0 0\nctxt 99\nbtime 1699990000\nprocesses 7\n") ==
        std::optional<uint64_t>(1699990000));
  CHECK_FALSE(bootTimeFromProcStat("cpu  1 2 3\nctxt 99\n").has_value());
}

TEST_CASE("readProcessSample describes this process") {
  const ProcessSample p = readProcessSample();
  REQUIRE(p.cpuSeconds.has_value());
  CHECK(*p.cpuSeconds >= 0);
  REQUIRE(p.residentBytes.has_value());
  CHECK(*p.residentBytes > 0);
  REQUIRE(p.virtualBytes.has_value());
  CHECK(*p.virtualBytes >= *p.residentBytes);
  REQUIRE(p.openFds.has_value());
  REQUIRE(p.maxFds.has_value());
  CHECK(*p.openFds >= 3);  // stdin, stdout, stderr at least
  CHECK(*p.openFds <= *p.maxFds);
  // One more descriptor shows as one more (the count leaves out its own directory handle).
  const int extra = ::dup(2);
  REQUIRE(extra >= 0);
  CHECK(*readProcessSample().openFds == *p.openFds + 1);
  ::close(extra);
  REQUIRE(p.startTimeSeconds.has_value());
  const double now = double(std::time(nullptr));
  CHECK(*p.startTimeSeconds <= now + 1);
  CHECK(*p.startTimeSeconds > now - 3600);  // this test started moments ago
}

}  // namespace
}  // namespace proxy
