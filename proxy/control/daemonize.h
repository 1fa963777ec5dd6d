// daemonize.h: -d, without hiding start-up failures. daemon(3) lets the parent exit 0 at once,
// before the listeners are bound, so an init script would report success for a proxy that
// dies a moment later on "address in use". Here the parent waits: it exits 0 once the child
// says it is running, or with the child's exit status if the child exits first (its message
// is already on the terminal: the child keeps stderr until it is running).
#pragma once

#include <string>

namespace proxy {

// Forks. Returns only in the child (true), which is the leader of a new session; the parent
// waits as described above and exits. False, in the caller, if the fork fails.
bool daemonizeAndWait(std::string& error);

// Child: start-up is over. Points stdin and stdout (and stderr unless `keepStderr`: logging
// goes there) at /dev/null and lets the parent exit 0. Does nothing without a daemonize.
void reportRunning(bool keepStderr);

}  // namespace proxy
