// client_directory.h: every client connection of the process, for Redis's CLIENT LIST and
// CLIENT KILL, which job workers and admin tools use (some stop when CLIENT LIST is refused).
//
// Each session owns one entry, registered at start and removed when the session is deleted.
// What another thread may read is either fixed at registration (id, addresses, worker) or
// atomic (activity, last command, database, protocol, counts), or a string written under the
// directory's mutex (the client's name). Listing takes the mutex once; connecting and closing
// take it once each: no lock on the request path.
//
// A kill of a client on another worker is a flag that worker's once-a-second sweep acts on
// (ClientSession::closeIfIdle); a client on the caller's own worker is closed at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace proxy {

class ClientSession;

struct ClientEntry {
  // Fixed at registration.
  uint64_t id = 0;
  std::string addr;   // the client's address, "ip:port" (or the unix socket's path)
  std::string laddr;  // the proxy's address it connected to
  int fd = -1;
  int worker = 0;
  std::string pool;
  uint64_t createdMs = 0;
  ClientSession* session = nullptr;  // touched only on `worker`'s thread
  // Updated by the owning worker, read by any.
  std::atomic<uint64_t> activeMs{0};
  std::atomic<const char*> lastCommand{nullptr};  // a command table name (static storage)
  std::atomic<int> db{0};
  std::atomic<int> resp{2};
  std::atomic<uint32_t> subscriptions{0}, patterns{0}, shardSubscriptions{0};
  std::atomic<bool> inMulti{false};
  std::atomic<bool> kill{false};  // CLIENT KILL from another worker: the owner's sweep closes it
  std::string name;  // under ClientDirectory's mutex
};

class ClientDirectory {
 public:
  static ClientDirectory& instance();

  void add(ClientEntry* e);
  void remove(ClientEntry* e);
  void setName(ClientEntry* e, std::string name);
  // A copy of one entry's fields, safe to read after the lock is released.
  struct Snapshot {
    uint64_t id;
    std::string addr, laddr, name, pool;
    int fd, worker, db, resp;
    uint64_t createdMs, activeMs;
    uint32_t sub, psub, ssub;
    bool inMulti;
    std::string lastCommand;
  };
  std::vector<Snapshot> list() const;
  // Asks for the close of the clients `pick` selects (called with each entry under the
  // lock); those on worker `here` are returned, to be closed by the caller on its thread.
  // Returns how many were selected.
  template <typename Pick>
  size_t kill(int here, Pick pick, std::vector<ClientSession*>& local) {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    for (ClientEntry* e : entries_) {
      if (e->kill.load(std::memory_order_relaxed) || !pick(*e)) continue;
      ++n;
      if (e->worker == here) {
        local.push_back(e->session);
      } else {
        e->kill.store(true, std::memory_order_relaxed);
        pendingKills_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    return n;
  }
  // Whether some worker has a kill to act on (the sweep then walks its sessions).
  bool killsPending() const { return pendingKills_.load(std::memory_order_relaxed) > 0; }
  void killDone() { pendingKills_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  mutable std::mutex mutex_;
  std::vector<ClientEntry*> entries_;
  std::atomic<int> pendingKills_{0};
};

}  // namespace proxy
