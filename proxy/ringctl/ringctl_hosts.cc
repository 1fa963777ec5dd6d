// ringctl_hosts.cc: host-name look-ups with a bound on the total time.
//
// getaddrinfo blocks, and with an unreachable name server each name costs the resolver's full
// time-out (5 s per try by default). Looked up one after another, a file with a hundred such
// names would take minutes; so the names are shared out to a few worker threads and the caller
// waits until all are answered or the budget is spent. A look-up cannot be cancelled: a worker
// still waiting then is left behind, detached, and its answer dropped. That is fine in ringctl,
// a short-lived offline tool, and the reason this is not done in the proxy.
#include "proxy/ringctl/ringctl_hosts.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>

namespace proxy::ringctl {
namespace {

// Enough to look up every name of a large fleet at once, few enough to start quickly.
constexpr size_t kMaxLookupThreads = 32;

// The look-ups of one call, shared with its workers, which may outlive the call.
struct LookupBoard {
  explicit LookupBoard(std::vector<std::string> n) : names(std::move(n)), answers(names.size()) {}

  std::mutex mutex;
  std::condition_variable answered;
  const std::vector<std::string> names;
  // Per name: "" when it resolved, else why not; nullopt while unanswered.
  std::vector<std::optional<std::string>> answers;
  size_t next = 0;  // the next name a worker takes
  size_t done = 0;
  bool expired = false;  // the caller stopped waiting: take no more names
};

// The resolver's verdict on `name`: "" when it resolves, else its reason.
std::string lookUp(const std::string& name) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &found);
  if (rc == 0) {
    ::freeaddrinfo(found);
    return "";
  }
  // std::error_code's message is thread-safe, unlike strerror.
  if (rc == EAI_SYSTEM) return std::error_code(errno, std::generic_category()).message();
  return ::gai_strerror(rc);
}

void lookUpWorker(const std::shared_ptr<LookupBoard>& board) {
  for (;;) {
    size_t i = 0;
    {
      const std::lock_guard lock(board->mutex);
      if (board->expired || board->next == board->names.size()) return;
      i = board->next++;
    }
    std::string why = lookUp(board->names[i]);
    {
      const std::lock_guard lock(board->mutex);
      board->answers[i] = std::move(why);
      ++board->done;
    }
    board->answered.notify_all();
  }
}

// Starts up to `count` detached workers; returns how many started.
size_t startWorkers(const std::shared_ptr<LookupBoard>& board, size_t count) {
  for (size_t started = 0; started < count; ++started) {
    try {
      std::thread(lookUpWorker, board).detach();
    } catch (const std::system_error&) {
      return started;  // fewer threads only means a slower check
    }
  }
  return count;
}

std::string budgetText(std::chrono::milliseconds budget) {
  const auto ms = budget.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

}  // namespace

bool isAddressLiteral(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = AI_NUMERICHOST;  // never asks a name server: only parses the text
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return false;
  ::freeaddrinfo(found);
  return true;
}

std::map<std::string, std::string> unresolvedNames(const std::vector<std::string>& names,
                                                   std::chrono::milliseconds budget) {
  const std::set<std::string> unique(names.begin(), names.end());
  auto board = std::make_shared<LookupBoard>(std::vector<std::string>(unique.begin(), unique.end()));
  const size_t count = board->names.size();
  const auto deadline = std::chrono::steady_clock::now() + budget;
  // No thread at all (resources exhausted): look up here, unbounded, rather than not at all.
  if (count > 0 && startWorkers(board, std::min(count, kMaxLookupThreads)) == 0) lookUpWorker(board);

  std::map<std::string, std::string> unresolved;
  std::unique_lock lock(board->mutex);
  board->answered.wait_until(lock, deadline, [&] { return board->done == count; });
  board->expired = true;
  for (size_t i = 0; i < count; ++i) {
    const std::optional<std::string>& answer = board->answers[i];
    if (!answer) {
      unresolved.emplace(board->names[i], "no answer within " + budgetText(budget));
    } else if (!answer->empty()) {
      unresolved.emplace(board->names[i], *answer);
    }
  }
  return unresolved;
}

std::vector<config::LoadError> unresolvedHostWarnings(const config::Topology& topology,
                                                      std::chrono::milliseconds budget) {
  struct Named {
    const config::Server* server;
    std::string key;
  };
  std::vector<Named> named;
  std::vector<std::string> hosts;
  auto collect = [&](const config::Pool& pool, const std::vector<config::Server>& list,
                     const char* listKey) {
    for (size_t i = 0; i < list.size(); ++i) {
      const config::Server& s = list[i];
      if (s.endpoint.isUnix() || isAddressLiteral(s.endpoint.host)) continue;
      // A valid topology keeps every item, so i is the item's index in the file's list.
      named.push_back({&s, pool.name + "." + listKey + "[" + std::to_string(i) + "]"});
      hosts.push_back(s.endpoint.host);
    }
  };
  for (const config::Pool& pool : topology.pools) {
    collect(pool, pool.servers, "servers");
    collect(pool, pool.previousServers, "previous_servers");
  }

  const std::map<std::string, std::string> unresolved = unresolvedNames(hosts, budget);
  std::vector<config::LoadError> warnings;
  for (const Named& n : named) {
    const std::string& host = n.server->endpoint.host;
    if (auto it = unresolved.find(host); it != unresolved.end()) {
      warnings.push_back({topology.file, n.server->line, n.key,
                          "host " + host + " does not resolve (" + it->second + ")"});
    }
  }
  // previous_servers may come before servers in a pool; the file's order is the line order.
  std::stable_sort(warnings.begin(), warnings.end(),
                   [](const config::LoadError& a, const config::LoadError& b) { return a.line < b.line; });
  return warnings;
}

}  // namespace proxy::ringctl
