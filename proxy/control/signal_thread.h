// signal_thread.h: the process's asynchronous signals, taken by one small thread of their
// own (a signalfd) rather than by handlers on the control loop. A control loop that is busy
// or stuck (a slow reload, a call that blocks) would otherwise never see SIGTERM, and an
// operator's kill would do nothing. What each signal does (twemproxy 0.5.0's meanings, which
// init scripts and logrotate rely on):
//
//   SIGTERM, SIGINT   the first asks the control loop to stop gracefully (stop accepting,
//                     finish in-flight requests, exit 0). The process dies by the signal at
//                     once on a second one, if the control loop has not begun stopping within
//                     kStopReactMs, or if the stop has not finished within the bound the
//                     control loop gave (stopBegun).
//   SIGHUP            reopen the log file (-o), so nothing is lost to rotation, then reload.
//   SIGTTIN, SIGTTOU  log level up / down one step (their default would suspend the process).
//   SIGUSR1, SIGUSR2  logged, otherwise ignored (their default would kill it).
//
// Every signal is logged by number and name. SIGPIPE is ignored and crash signals are
// crash_trace.h's: those must run on the thread that faulted.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace proxy {

class SignalThread {
 public:
  // How long the control loop may take to begin stopping after the first SIGTERM/SIGINT.
  static constexpr int kStopReactMs = 3000;

  // What stop and reload signals ask of the control loop. Called on the signal thread: each
  // must only wake the control loop (uv_async_send), never do the work itself.
  struct Actions {
    std::function<void()> stop;
    std::function<void()> reload;
  };

  SignalThread() = default;
  ~SignalThread();  // stops and joins the thread
  SignalThread(const SignalThread&) = delete;
  SignalThread& operator=(const SignalThread&) = delete;

  // Blocks the handled signals in the calling thread and starts the thread. Call before any
  // other thread exists: threads inherit the mask, so only the signalfd sees these signals.
  // Until setActions, a stop signal kills the process at once (there is nothing to finish)
  // and SIGHUP reopens the log and leaves its reload pending.
  bool start(std::string& error);
  // Control thread. A reload asked for before is asked now. Empty actions (once the control
  // loop stops taking requests) make a stop signal fatal again.
  void setActions(Actions actions);
  // Control thread: the graceful stop has begun and must be over within `limitMs`.
  void stopBegun(int limitMs);

  // "SIGTERM" for 15; for log lines.
  static std::string signalName(int sig);

 private:
  void run();
  void handle(const signalfd_siginfo& info);
  void onStopSignal(int sig);
  [[noreturn]] void dieBy(int sig, const char* why);
  static int64_t nowMs();

  sigset_t handled_{};
  int signalFd_ = -1;
  int wakeFd_ = -1;  // an eventfd: written by the destructor to end the thread
  std::thread thread_;
  std::mutex mutex_;  // guards actions_ and reloadPending_
  Actions actions_;
  bool reloadPending_ = false;  // a SIGHUP came before there was a reload action
  // Stop bookkeeping. stopSignal_ is the first stop signal (0: none yet); the deadline is
  // when the process dies by it unless it has exited (0: none).
  int stopSignal_ = 0;
  std::atomic<bool> stopBegun_{false};
  std::atomic<int64_t> stopDeadlineMs_{0};
};

}  // namespace proxy
