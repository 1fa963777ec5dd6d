#include "proxy/control/shared_rendering.h"

#include <doctest/doctest.h>

#include <string>

namespace proxy {
namespace {

// A clock that reads `now`.
struct Clock {
  uint64_t now = 0;
  auto at(uint64_t ms) {
    now = ms;
    return [this] { return now; };
  }
};

TEST_CASE("connections that overlap share one rendering; a later one gets a fresh one") {
  SharedRendering cache(1000);
  Clock clock;
  int renders = 0;
  auto render = [&] { return "rendering " + std::to_string(++renders); };

  SharedRendering::Text first = cache.get(clock.at(0), render);
  SharedRendering::Text second = cache.get(clock.at(500), render);  // the first is still being sent
  CHECK(renders == 1);
  CHECK(first.get() == second.get());  // the same buffer, not a copy

  first.reset();
  second.reset();  // every write completed: nobody holds it, and the cache keeps no copy
  SharedRendering::Text third = cache.get(clock.at(600), render);
  CHECK(renders == 2);
  CHECK(*third == "rendering 2");
}

TEST_CASE("a rendering is shared for at most maxAgeMs, however long it is held") {
  SharedRendering cache(1000);
  Clock clock;
  int renders = 0;
  auto render = [&] { return std::to_string(++renders); };
  SharedRendering::Text held = cache.get(clock.at(10), render);  // a client that never reads
  CHECK(cache.get(clock.at(1009), render).get() == held.get());
  SharedRendering::Text later = cache.get(clock.at(1010), render);
  CHECK(later.get() != held.get());
  CHECK(*later == "2");
  CHECK(*held == "1");  // the stalled connection's buffer is untouched
  CHECK(cache.get(clock.at(1500), render).get() == later.get());
}

TEST_CASE("a rendering's age counts from when it was finished") {
  SharedRendering cache(1000);
  Clock clock;
  auto slow = [&] {
    clock.now += 3000;  // 3 s to render
    return std::string("slow");
  };
  SharedRendering::Text first = cache.get(clock.at(0), slow);
  // Connections that waited behind the rendering are handed it.
  CHECK(cache.get(clock.at(3500), slow).get() == first.get());
  CHECK(cache.get(clock.at(4000), slow).get() != first.get());
}

}  // namespace
}  // namespace proxy
