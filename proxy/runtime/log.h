// log.h: leveled logging to stderr or a file (-o). twemproxy's levels: 0 emerg .. 11 pverb;
// we use error 3, warn 4, notice 5 (default), info 6, debug 7. One fprintf per line, so lines
// from different worker threads never interleave mid-line.
#pragma once

#include <cstdarg>
#include <cstdio>

namespace proxy::log {

enum Level : int { kError = 3, kWarn = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

void setLevel(int level);
int level();
// Returns false (and leaves stderr in use) when the file cannot be opened.
bool setFile(const char* path);
void write(int level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

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
