// backend_event_log.h: what a worker says in the log about its backends' connections, rate
// limited so that a dead backend cannot flood it.
//
// Per backend: the first failure after a healthy spell is a warning naming the cause
// ("cannot connect (connect failed: Connection refused)", "connection lost (read failed:
// Connection reset by peer)", "connection dropped (timed out: no reply within 400 ms)"); while it keeps failing, one summary line every
// kRepeatMs says how many more failures there were. Each failure is logged at debug (-v 7)
// and at most one a second at info (-v 6). When a connection succeeds again after failures,
// a notice says so and how long the backend was failing. A connection the backend closed
// while nothing was owed (an idle timeout on the server) is a notice, not a warning.
// Ejection and rejoining are logged by the worker, which decides them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/upstream/failure_cause.h"

namespace proxy {

class BackendEventLog {
 public:
  static constexpr uint64_t kRepeatMs = 30000;

  // A new topology: `count` backends, all presumed healthy.
  void reset(size_t count) { state_.assign(count, State{}); }
  // A connection to backend `index` failed. `inflight`: requests it owed at that moment.
  void failed(uint32_t index, const std::string& where, backends::upstream::FailureCause cause,
              const std::string& error, size_t inflight, uint64_t nowMs);
  void connected(uint32_t index, const std::string& where, uint64_t nowMs);

  // What a failure is, in words: "cannot connect", "connection lost", ...
  static const char* describe(backends::upstream::FailureCause cause);

 private:
  struct State {
    uint64_t downSinceMs = 0;  // 0: healthy (no failure since the last successful connect)
    uint64_t failures = 0;     // since downSinceMs
    uint64_t reported = 0;     // failures already counted in a warning line
    uint64_t lastWarnMs = 0;
    uint64_t lastInfoMs = 0;
  };
  std::vector<State> state_;
};

}  // namespace proxy
