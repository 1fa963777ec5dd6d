// log.h: leveled logging to stderr or a file (-o). twemproxy's levels: 0 emerg .. 11 pverb;
// we use error 3, warn 4, notice 5 (default), info 6, debug 7. Each line is built in one
// buffer and written with one write(2) on an O_APPEND descriptor, so lines from different
// threads never interleave mid-line.
//
// Log lines cannot be forged: text that came from outside (YAML keys and values, server
// names, what clients send) may hold a newline or a terminal escape, so the writer escapes
// every control byte of every message (\n, \r, \t, else \xHH) before it reaches the output.
// Callers need not think about it.
//
// The file can be reopened at its path (SIGHUP after logrotate renamed it): the new file
// replaces the old one under the same descriptor number (dup3), so writers on other threads
// never see a closed descriptor and the crash handler can keep using fd().
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <string>

namespace proxy::log {

enum Level : int { kError = 3, kWarn = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

void setLevel(int level);
int level();
// Raises (delta > 0) or lowers the level by one step within [kError, kDebug] (SIGTTIN and
// SIGTTOU); returns the new level. Errors are always logged, and nothing is above debug.
int adjustLevel(int delta);
// "error", "warn", "notice", "info", "debug".
const char* levelName(int level);

// Logs to `path` (appending, created 0644 if missing) from now on. Returns false, with errno
// set, when the file cannot be opened; stderr stays in use then. Call before threads start.
bool setFile(const char* path);
// Opens the file at the path given to setFile again, for logrotate: the next line goes to
// the new file. False with `error` set when it cannot be opened (the old file stays in use);
// true with nothing done when logging goes to stderr. Any thread.
bool reopen(std::string& error);
// The descriptor lines go to (2 for stderr). For the crash handler, which may only write(2).
int fd();

void write(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Copies in[0, n) to out with control bytes (< 0x20 and 0x7f) escaped, writing at most
// `room` bytes and never splitting an escape; returns the bytes written. Other bytes,
// backslashes and UTF-8 included, are copied as they are.
size_t escapeControls(const char* in, size_t n, char* out, size_t room);

}  // namespace proxy::log

#define RP_LOG(lvl, ...)                                                       \
  do {                                                                         \
    if ((lvl) <= ::proxy::log::level()) ::proxy::log::write((lvl), __VA_ARGS__); \
  } while (0)
#define LOG_ERROR(...) RP_LOG(::proxy::log::kError, __VA_ARGS__)
#define LOG_WARN(...) RP_LOG(::proxy::log::kWarn, __VA_ARGS__)
#define LOG_NOTICE(...) RP_LOG(::proxy::log::kNotice, __VA_ARGS__)
#define LOG_INFO(...) RP_LOG(::proxy::log::kInfo, __VA_ARGS__)
#define LOG_DEBUG(...) RP_LOG(::proxy::log::kDebug, __VA_ARGS__)
