// debug_assert.h: DEBUG_ASSERT(condition) checks an invariant the code relies on (a queue head
// present when a reply is written, a count that must stay positive, a call made on the one
// thread that owns an object). On in builds configured with RINGPROXY_ASSERTS (the sanitizer
// build, scripts/test-sanitize, turns it on), where a broken invariant aborts with its place;
// compiled out of release builds, so the hot path pays nothing.
#pragma once

#ifdef RINGPROXY_ASSERTS
#include <cstdio>
#include <cstdlib>

#define DEBUG_ASSERT(cond)                                                                      \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      std::fprintf(stderr, "%s:%d: %s: invariant broken: %s\n", __FILE__, __LINE__, __func__, #cond); \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)
#else
#define DEBUG_ASSERT(cond) \
  do {                     \
    (void)sizeof(cond);    \
  } while (0)
#endif
