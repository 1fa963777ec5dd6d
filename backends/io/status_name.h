// status_name.h: the name of a framer's verdict, for the failure messages of the framer unit
// tests (tests/support/framing_test_support.h) and the logs of the fuzz targets (tests/fuzz/fuzz_common.h),
// which are built apart and cannot include each other. Every framer's status names NeedMore,
// Complete and Error; the memcached request parser's has two verdicts more.
#pragma once

namespace backends::io {

template <typename Status>
const char* statusName(Status s) {
  if (s == Status::Complete) return "Complete";
  if (s == Status::NeedMore) return "NeedMore";
  if (s == Status::Error) return "Error";
  if constexpr (requires { Status::BadKey; Status::Invalid; }) {
    if (s == Status::BadKey) return "BadKey";
    if (s == Status::Invalid) return "Invalid";
  }
  return "?";
}

}  // namespace backends::io
