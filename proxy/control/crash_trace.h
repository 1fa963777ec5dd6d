// crash_trace.h: on SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT, write the signal and a stack
// trace of the thread that received it to the log, then die by the signal's default action
// (a core dump where enabled), so a crash in production leaves more than "exit 139".
//
// The handler runs on the thread that faulted, in a state where almost nothing is safe: it
// only formats into a stack buffer and calls write(2) and backtrace_symbols_fd on the log's
// descriptor (log::fd(), stable across log reopens).
#pragma once

namespace proxy {

// Installs the handlers (process-wide). Call once, early.
void installCrashTrace();

}  // namespace proxy
