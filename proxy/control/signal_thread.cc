#include "proxy/control/signal_thread.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "proxy/runtime/log.h"

namespace proxy {

namespace {
constexpr int kHandled[] = {SIGTERM, SIGINT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
}  // namespace

std::string SignalThread::signalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

int64_t SignalThread::nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

SignalThread::~SignalThread() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (::write(wakeFd_, &one, sizeof one) != sizeof one) {
      // Cannot happen for an eventfd below its maximum; without the wake the join would hang.
      thread_.detach();
    } else {
      thread_.join();
    }
  }
  if (signalFd_ >= 0) ::close(signalFd_);
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

bool SignalThread::start(std::string& error) {
  sigemptyset(&handled_);
  for (int sig : kHandled) sigaddset(&handled_, sig);
  const int rc = pthread_sigmask(SIG_BLOCK, &handled_, nullptr);
  if (rc != 0) {
    error = std::string("cannot block signals: ") + std::strerror(rc);
    return false;
  }
  signalFd_ = ::signalfd(-1, &handled_, SFD_CLOEXEC);
  wakeFd_ = ::eventfd(0, EFD_CLOEXEC);
  if (signalFd_ < 0 || wakeFd_ < 0) {
    error = std::string("cannot watch signals: ") + std::strerror(errno);
    return false;
  }
  thread_ = std::thread([this] { run(); });
  return true;
}

void SignalThread::setActions(Actions actions) {
  std::lock_guard<std::mutex> lock(mutex_);
  actions_ = std::move(actions);
  if (actions_.reload && reloadPending_) {
    reloadPending_ = false;
    actions_.reload();
  }
}

void SignalThread::stopBegun(int limitMs) {
  stopDeadlineMs_.store(nowMs() + limitMs);
  stopBegun_.store(true);
}

void SignalThread::run() {
  for (;;) {
    // Sleep until a signal, the end, or the stop deadline (when one is set).
    int timeoutMs = -1;
    const int64_t deadline = stopDeadlineMs_.load();
    if (deadline != 0) {
      const int64_t now = nowMs();
      if (now >= deadline)
        dieBy(stopSignal_, stopBegun_.load() ? "the graceful stop did not finish in time"
                                             : "the control loop did not begin stopping in time");
      timeoutMs = static_cast<int>(deadline - now);
    }
    pollfd fds[2] = {{signalFd_, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, timeoutMs);
    if (ready < 0 && errno != EINTR) {
      LOG_ERROR("signal thread: poll: %s; signals are no longer handled", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    signalfd_siginfo info{};
    const ssize_t n = ::read(signalFd_, &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) handle(info);
  }
}

void SignalThread::handle(const signalfd_siginfo& info) {
  const int sig = static_cast<int>(info.ssi_signo);
  const std::string name = signalName(sig);
  switch (sig) {
    case SIGTERM:
    case SIGINT:
      onStopSignal(sig);
      return;
    case SIGHUP: {
      LOG_NOTICE("signal %d (%s) received from pid %u: reopening the log file and reloading the config", sig,
                 name.c_str(), info.ssi_pid);
      std::string error;
      if (!log::reopen(error)) LOG_ERROR("log file: %s", error.c_str());
      std::lock_guard<std::mutex> lock(mutex_);
      if (actions_.reload) {
        actions_.reload();
      } else {
        // During start-up: the file may have changed since it was read, so reload it as
        // soon as the control loop takes requests (setActions).
        reloadPending_ = true;
      }
      return;
    }
    case SIGTTIN:
    case SIGTTOU: {
      const int level = log::adjustLevel(sig == SIGTTIN ? +1 : -1);
      // Written whatever the new level: the operator asked, and should see the answer.
      log::write(log::kNotice, "signal %d (%s) received: log level %s to %d (%s)", sig, name.c_str(),
                 sig == SIGTTIN ? "raised" : "lowered", level, log::levelName(level));
      return;
    }
    default:  // SIGUSR1, SIGUSR2
      LOG_NOTICE("signal %d (%s) received from pid %u: ignored", sig, name.c_str(), info.ssi_pid);
      return;
  }
}

void SignalThread::onStopSignal(int sig) {
  const std::string name = signalName(sig);
  if (stopSignal_ != 0) {
    log::write(log::kError, "signal %d (%s) received again while stopping: exiting at once", sig, name.c_str());
    dieBy(sig, nullptr);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (!actions_.stop) {
    log::write(log::kNotice, "signal %d (%s) received before start-up completed (or after the end): exiting",
               sig, name.c_str());
    dieBy(sig, nullptr);
  }
  LOG_NOTICE("signal %d (%s) received: stopping gracefully (send it again to exit at once)", sig, name.c_str());
  stopSignal_ = sig;
  stopDeadlineMs_.store(nowMs() + kStopReactMs);  // before the wake, so the control loop's later one wins
  actions_.stop();
}

void SignalThread::dieBy(int sig, const char* why) {
  if (why != nullptr) log::write(log::kError, "%s: exiting at once by %s", why, signalName(sig).c_str());
  // The default action of the signal, so whoever waits for the process sees what ended it.
  // The signal is blocked in every thread, so restore the default and unblock it here.
  ::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);  // not reached: SIGTERM and SIGINT terminate by default
}

}  // namespace proxy
