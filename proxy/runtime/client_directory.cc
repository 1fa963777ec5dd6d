#include "proxy/runtime/client_directory.h"

#include <algorithm>

namespace proxy {

ClientDirectory& ClientDirectory::instance() {
  static ClientDirectory directory;
  return directory;
}

void ClientDirectory::add(ClientEntry* e) {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.push_back(e);
}

void ClientDirectory::remove(ClientEntry* e) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::find(entries_.begin(), entries_.end(), e);
  if (it == entries_.end()) return;
  *it = entries_.back();
  entries_.pop_back();
  if (e->kill.load(std::memory_order_relaxed)) killDone();  // it left before its sweep came
}

void ClientDirectory::setName(ClientEntry* e, std::string name) {
  std::lock_guard<std::mutex> lock(mutex_);
  e->name = std::move(name);
}

std::vector<ClientDirectory::Snapshot> ClientDirectory::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Snapshot> out;
  out.reserve(entries_.size());
  for (const ClientEntry* e : entries_) {
    const char* cmd = e->lastCommand.load(std::memory_order_relaxed);
    out.push_back(Snapshot{e->id, e->addr, e->laddr, e->name, e->pool, e->fd, e->worker,
                           e->db.load(std::memory_order_relaxed), e->resp.load(std::memory_order_relaxed),
                           e->createdMs, e->activeMs.load(std::memory_order_relaxed),
                           e->subscriptions.load(std::memory_order_relaxed), e->patterns.load(std::memory_order_relaxed),
                           e->shardSubscriptions.load(std::memory_order_relaxed),
                           e->inMulti.load(std::memory_order_relaxed), cmd != nullptr ? cmd : "NULL"});
  }
  std::sort(out.begin(), out.end(), [](const Snapshot& a, const Snapshot& b) { return a.id < b.id; });
  return out;
}

}  // namespace proxy
