// shared_rendering.h: one rendering of a large answer (the stats JSON, /metrics, /status) for
// every connection that is sending it at the same time.
//
// With 10,000 servers the stats JSON is 2.3 MB. Rendered per connection, 200 clients that
// connect and never read held 200 copies (455 MB) until they went away. Here a rendering is an
// immutable string behind a shared_ptr: each connection keeps a reference until its write
// completes, and a connection that arrives while an earlier rendering is still being sent,
// and that rendering is younger than `maxAgeMs`, is handed the same one. A client that reads
// what it is sent still gets counters as of its request: once every write of a rendering has
// completed nobody holds it, and the next request renders afresh. The cache itself holds
// only a weak reference, so an idle listener keeps no copy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace proxy {

class SharedRendering {
 public:
  using Text = std::shared_ptr<const std::string>;

  explicit SharedRendering(uint64_t maxAgeMs) : maxAgeMs_(maxAgeMs) {}

  // The text to send now: the rendering still being sent when it is young enough, else a
  // fresh one from render(). nowMs() reads a monotonic clock in milliseconds; a rendering's
  // age counts from when it was finished, so one that takes longer than maxAgeMs to render
  // (tens of thousands of servers) is still shared by the connections that waited for it.
  template <typename Clock, typename Render>
  Text get(Clock&& nowMs, Render&& render) {
    if (Text current = current_.lock(); current != nullptr && nowMs() - renderedAtMs_ < maxAgeMs_) return current;
    Text fresh = std::make_shared<const std::string>(render());
    current_ = fresh;
    renderedAtMs_ = nowMs();
    return fresh;
  }

 private:
  uint64_t maxAgeMs_;
  std::weak_ptr<const std::string> current_;
  uint64_t renderedAtMs_ = 0;
};

}  // namespace proxy
