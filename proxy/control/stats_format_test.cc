#include "proxy/control/stats_format.h"

#include <doctest/doctest.h>

#include <algorithm>
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
  CHECK(samplesOf(samples, "ringproxy_reload_moved_share").at(0).value == "0.250000000");
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

}  // namespace
}  // namespace proxy
