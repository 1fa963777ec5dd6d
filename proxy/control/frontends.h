// frontends.h: the program's wiring of client protocols to their sessions. Workers ask this
// factory for a protocol's frontend, so the runtime never depends on a protocol.
#pragma once

#include <memory>

#include "proxy/runtime/frontend.h"

namespace proxy {

std::unique_ptr<Frontend> makeFrontend(config::Protocol protocol);

}  // namespace proxy
