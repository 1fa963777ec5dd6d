#include "proxy/runtime/backend_event_log.h"

#include "proxy/runtime/log.h"

namespace proxy {

using backends::upstream::FailureCause;

const char* BackendEventLog::describe(FailureCause cause) {
  switch (cause) {
    case FailureCause::Resolve:
    case FailureCause::Connect:
    case FailureCause::ConnectTimeout:
    case FailureCause::Socket:
    case FailureCause::Tls: return "cannot connect";
    case FailureCause::Closed:
    case FailureCause::Read:
    case FailureCause::Write: return "connection lost";
    case FailureCause::ReplyTimeout: return "connection dropped";
    case FailureCause::Protocol: return "bad reply, connection dropped";
    case FailureCause::HandshakeRefused: return "refused the connection's handshake";
    case FailureCause::Removed:
    case FailureCause::None: break;
  }
  return "connection failed";
}

void BackendEventLog::failed(uint32_t index, const std::string& where, FailureCause cause, const std::string& error,
                             size_t inflight, uint64_t nowMs) {
  if (index >= state_.size()) return;
  State& s = state_[index];
  const char* what = describe(cause);
  if (s.downSinceMs == 0) {
    // The backend's own idle timeout closes connections that owe nothing: worth a line, not
    // an alarm, and not the start of a failing spell (the next request reconnects; if that
    // fails, that failure is the warning).
    if (cause == FailureCause::Closed && inflight == 0) {
      LOG_NOTICE("%s: %s (%s); 0 requests failed", where.c_str(), what, error.c_str());
      return;
    }
    s = State{};
    s.downSinceMs = nowMs;
    s.failures = s.reported = 1;
    s.lastWarnMs = s.lastInfoMs = nowMs;
    LOG_WARN("%s: %s (%s); %zu request%s failed", where.c_str(), what, error.c_str(), inflight,
             inflight == 1 ? "" : "s");
    return;
  }
  s.failures++;
  if (nowMs - s.lastWarnMs >= kRepeatMs) {
    LOG_WARN("%s: still failing: %llu failures in the last %llu s (failing for %llu s), last: %s (%s)", where.c_str(),
             static_cast<unsigned long long>(s.failures - s.reported),
             static_cast<unsigned long long>((nowMs - s.lastWarnMs) / 1000),
             static_cast<unsigned long long>((nowMs - s.downSinceMs) / 1000), what, error.c_str());
    s.reported = s.failures;
    s.lastWarnMs = s.lastInfoMs = nowMs;
  } else if (log::level() >= log::kDebug || (log::level() >= log::kInfo && nowMs - s.lastInfoMs >= 1000)) {
    s.lastInfoMs = nowMs;
    RP_LOG(log::level() >= log::kDebug ? log::kDebug : log::kInfo, "%s: %s (%s); failure %llu, %zu request%s failed",
           where.c_str(), what, error.c_str(), static_cast<unsigned long long>(s.failures), inflight,
           inflight == 1 ? "" : "s");
  }
}

void BackendEventLog::connected(uint32_t index, const std::string& where, uint64_t nowMs) {
  if (index >= state_.size()) return;
  State& s = state_[index];
  if (s.downSinceMs == 0) {
    LOG_INFO("%s: connected", where.c_str());
    return;
  }
  LOG_NOTICE("%s: recovered: connected again after %llu failure%s over %.1f s", where.c_str(),
             static_cast<unsigned long long>(s.failures), s.failures == 1 ? "" : "s",
             static_cast<double>(nowMs - s.downSinceMs) / 1000.0);
  s = State{};
}

}  // namespace proxy
