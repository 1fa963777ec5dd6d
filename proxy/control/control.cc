#include "proxy/control/control.h"
#include "proxy/control/frontends.h"

#include <malloc.h>
#include <unistd.h>

#include <cstring>
#include <chrono>
#include <functional>
#include <future>
#include <map>

#include "config/load.h"
#include "proxy/control/listen_socket.h"
#include "proxy/control/signal_thread.h"
#include "proxy/runtime/log.h"
#include "ring/ring_diff.h"

namespace proxy {

namespace {

// Beyond the workers' drain, how long a stop may take (joining threads, closing handles)
// before the signal thread ends the process anyway.
constexpr int kStopSlackMs = 5000;

// Opens, for every worker, sockets for the pools of `next` that are new or listen elsewhere
// than in `current` (nullptr: every pool). All or nothing: on failure nothing stays open.
bool openChangedListeners(const config::Topology* current, const config::Topology& next, int workers,
                          std::vector<Worker::ListenFds>& out, std::string& error) {
  out.assign(workers, {});
  std::vector<std::string> createdPaths;  // unix socket files made here, removed on failure
  for (const config::Pool& pool : next.pools) {
    const config::Pool* old = current ? current->findPool(pool.name) : nullptr;
    if (old != nullptr && old->listen.str() == pool.listen.str()) continue;
    // An address another pool of the running config listens on (a renamed pool) is ours to
    // share; any other must be free, or the reload fails rather than share a foreign port.
    bool heldByUs = false;
    if (current != nullptr)
      for (const config::Pool& p : current->pools) heldByUs = heldByUs || p.listen.str() == pool.listen.str();
    std::string err;
    std::vector<int> fds = openListenSockets(pool, workers, heldByUs, err);
    if (fds.empty()) {
      error = "pool " + pool.name + ": " + err;
      for (auto& m : out)
        for (auto& [name, fd] : m) ::close(fd);
      for (const std::string& path : createdPaths) ::unlink(path.c_str());
      out.assign(workers, {});
      return false;
    }
    if (pool.listen.isUnix() && !heldByUs) createdPaths.push_back(pool.listen.path);
    for (int w = 0; w < workers; ++w) out[w][pool.name] = fds[w];
  }
  return true;
}

}  // namespace

Control::Control(ControlOptions options) : options_(std::move(options)), loop_(nullptr) {}

Control::~Control() = default;

std::string Control::textDigest(const std::string& text) {
  return std::to_string(std::hash<std::string>{}(text)) + ":" + std::to_string(text.size());
}

std::string Control::fileDigest(const std::string& path) {
  std::string text;
  config::LoadError unreadable;
  if (!config::readConfigFile(path, text, unreadable)) return "unreadable: " + unreadable.message;
  return textDigest(text);
}

bool Control::prepare(config::Topology topology, std::string& error) {
  std::vector<BackendTls> tls;
  if (!RoutingSnapshot::prepareTls(topology, tls, error)) return false;
  if (!openChangedListeners(nullptr, topology, options_.workers, initialFds_, error)) return false;
  topology_ = std::move(topology);
  snapshot_ = RoutingSnapshot::build(topology_, 1, nullptr, &tls);
  loadedDigest_ = fileDigest(options_.configFile);
  return true;
}

bool Control::start(SignalThread* signals, std::string& error) {
  loop_ = uv_default_loop();  // created here, after any daemonizing fork
  // The stats and admin listeners first: a port that cannot be bound is a start-up failure,
  // reported before any worker runs or anyone is told the proxy is up.
  if (options_.statsPort > 0) {
    statsServer_ = std::make_unique<AdminServer>(*this, AdminServer::Mode::StatsPort);
    std::string err;
    if (!statsServer_->start(options_.statsAddr, options_.statsPort, err)) {
      error = "stats port (-s/-a): " + err;
      closeListenersAfterFailedStart();
      return false;
    }
  }
  if (options_.adminPort > 0) {
    std::shared_ptr<ServerTlsContext> tls;
    if (!options_.adminTlsCert.empty()) {
      std::string why;
      tls = ServerTlsContext::make(ServerTlsSettings{options_.adminTlsCert, options_.adminTlsKey, "", "none", "1.2", ""},
                                   why);
      if (tls == nullptr) {
        error = "admin listener (--admin-tls-cert/--admin-tls-key): " + why;
        closeListenersAfterFailedStart();
        return false;
      }
    }
    adminServer_ = std::make_unique<AdminServer>(*this, AdminServer::Mode::Http, options_.adminToken, tls);
    std::string err;
    if (!adminServer_->start(options_.adminAddr, options_.adminPort, err)) {
      error = "admin listener (--admin): " + err;
      closeListenersAfterFailedStart();
      return false;
    }
  }

  WorkerOptions workerOptions = options_.worker;
  if (workerOptions.makeFrontend == nullptr) workerOptions.makeFrontend = &makeFrontend;
  for (int w = 0; w < options_.workers; ++w)
    workers_.push_back(std::make_unique<Worker>(w, snapshot_, std::move(initialFds_[w]), workerOptions));
  // An ejection on one worker is passed to the others (workers_ does not change once they run,
  // and every worker is joined before any is destroyed).
  for (auto& w : workers_) {
    w->setEjectionListener([this](int from, uint64_t generation, uint32_t backend) {
      for (auto& other : workers_)
        if (other->id() != from) other->post([generation, backend](Worker& x) { x.ejectFromPeer(generation, backend); });
    });
  }
  for (auto& w : workers_) w->start();

  // Signals arrive on the signal thread, which only sets a flag and wakes this loop: the work
  // (stopping, reloading) happens here, between other control-loop events.
  uv_async_init(loop_, &signalAsync_, [](uv_async_t* a) {
    auto* self = static_cast<Control*>(a->data);
    if (self->stopAsked_.exchange(false)) self->requestStop();
    if (self->reloadAsked_.exchange(false)) self->reload("SIGHUP");
  });
  signalAsync_.data = this;
  signals_ = signals;
  if (signals_ != nullptr) {
    signals_->setActions({[this] {
                            stopAsked_.store(true);
                            uv_async_send(&signalAsync_);
                          },
                          [this] {
                            reloadAsked_.store(true);
                            uv_async_send(&signalAsync_);
                          }});
  }
  if (options_.watchConfig) startWatch();
  // Give freed memory back to the system every two seconds: after a burst (thousands of large
  // replies in flight) glibc keeps the freed pages resident, and a proxy's RSS should return to
  // its baseline when the burst is over. malloc_trim walks every arena; a few ms at most.
  uv_timer_init(loop_, &trimTimer_);
  uv_timer_start(&trimTimer_, [](uv_timer_t*) { malloc_trim(0); }, 2000, 2000);
  uv_unref(reinterpret_cast<uv_handle_t*>(&trimTimer_));
  logStartup();
  return true;
}

void Control::closeListenersAfterFailedStart() {
  for (auto& fds : initialFds_)
    for (auto& [name, fd] : fds) ::close(fd);
  initialFds_.clear();
  for (const auto& pool : topology_.pools)
    if (pool.listen.isUnix()) ::unlink(pool.listen.path.c_str());
  if (statsServer_) statsServer_->close();
  if (adminServer_) adminServer_->close();
  uv_run(loop_, UV_RUN_DEFAULT);  // completes the closes, so the servers can be destroyed
}

void Control::logStartup() const {
  LOG_NOTICE("config %s: %zu pool%s", options_.configFile.c_str(), topology_.pools.size(),
             topology_.pools.size() == 1 ? "" : "s");
  for (const auto& pool : topology_.pools) {
    LOG_NOTICE("pool %s: listening on %s, %s, %zu server%s, distribution %s, hash %s%s%s", pool.name.c_str(),
               pool.listen.str().c_str(), pool.protocol == config::Protocol::Redis ? "redis" : "memcache",
               pool.servers.size(), pool.servers.size() == 1 ? "" : "s",
               std::string(ring::distributionName(pool.distribution)).c_str(),
               std::string(ring::hashKindName(pool.hash)).c_str(), pool.hashTag.empty() ? "" : ", hash_tag ",
               pool.hashTag.c_str());
  }
  if (options_.statsPort > 0)
    LOG_NOTICE("stats port on %s:%d (twemproxy's JSON to whoever connects)", options_.statsAddr.c_str(),
               options_.statsPort);
  else
    LOG_NOTICE("stats port off");
  if (options_.adminPort > 0)
    LOG_NOTICE("admin HTTP on %s:%d (/metrics /stats /status /ring POST /reload)", options_.adminAddr.c_str(),
               options_.adminPort);
}

int Control::run() {
  uv_run(loop_, UV_RUN_DEFAULT);
  for (auto& w : workers_) w->join();
  for (const auto& pool : topology_.pools)
    if (pool.listen.isUnix()) ::unlink(pool.listen.path.c_str());
  return 0;
}

void Control::requestStop() {
  if (stopping_) return;
  stopping_ = true;
  LOG_NOTICE("stopping: no longer accepting connections; finishing in-flight requests");
  // The signal thread gives the stop a bound: the workers' drain, and time to join them. From
  // here on it no longer calls into this object (the async handle below closes).
  if (signals_ != nullptr) {
    signals_->stopBegun(options_.worker.drainTimeoutMs + kStopSlackMs);
    signals_->setActions({});
  }
  for (auto& w : workers_) w->requestStop();
  uv_close(reinterpret_cast<uv_handle_t*>(&signalAsync_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&trimTimer_), nullptr);
  if (statsServer_) statsServer_->close();
  if (adminServer_) adminServer_->close();
  if (watching_) {
    watch_.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&debounce_), nullptr);
    watching_ = false;
  }
}

WorkerReport Control::collectStats() {
  std::vector<std::future<WorkerReport>> pending;
  for (auto& w : workers_) {
    auto promise = std::make_shared<std::promise<WorkerReport>>();
    pending.push_back(promise->get_future());
    w->post([promise](Worker& worker) { promise->set_value(worker.report()); });
  }
  const auto began = std::chrono::steady_clock::now();
  WorkerReport total;
  for (size_t w = 0; w < pending.size(); ++w) {
    if (pending[w].wait_for(std::chrono::seconds(2)) == std::future_status::ready)
      total.merge(pending[w].get());
    else
      LOG_WARN("stats: worker %zu did not answer within 2 s; its counters are left out", w);
  }
  LOG_DEBUG("stats: collected from %zu workers in %.1f ms", pending.size(),
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count());
  return total;
}

void Control::startWatch() {
  // ConfigWatch reports a file whose writer has closed it, or one renamed or linked into
  // place; never a write in progress. The content is then checked (debounced), and only a
  // changed file reloads.
  uv_timer_init(loop_, &debounce_);
  debounce_.data = this;
  std::string error;
  const bool ok = watch_.start(
      loop_, options_.configFile,
      [this] {
        if (stopping_) return;
        uv_timer_start(&debounce_, [](uv_timer_t* t) { static_cast<Control*>(t->data)->onWatchEvent(); },
                       static_cast<uint64_t>(options_.watchDebounceMs), 0);
      },
      error);
  if (!ok) {
    LOG_WARN("cannot watch %s for config changes (%s); reload with SIGHUP or POST /reload",
             options_.configFile.c_str(), error.c_str());
    uv_close(reinterpret_cast<uv_handle_t*>(&debounce_), nullptr);
    return;
  }
  watching_ = true;
}

void Control::onWatchEvent() {
  // Reload only a file that has stopped changing: the same content at two checks one debounce
  // apart, so a writer that truncates, pauses and then writes is not caught half-way.
  const std::string digest = fileDigest(options_.configFile);
  if (digest == loadedDigest_) {
    pendingDigest_.clear();
    return;
  }
  if (digest != pendingDigest_) {
    pendingDigest_ = digest;
    uv_timer_start(&debounce_, [](uv_timer_t* t) { static_cast<Control*>(t->data)->onWatchEvent(); },
                   static_cast<uint64_t>(options_.watchDebounceMs), 0);
    return;
  }
  pendingDigest_.clear();
  reload("config file changed");
}

bool Control::reload(const char* trigger, std::string* errorOut) {
  if (stopping_) return false;
  config::Topology next;
  config::LoadError err;
  std::string error;
  // Read once: the digest remembered is that of the text loaded, even if the file changes
  // again meanwhile.
  std::string text;
  std::string digest;
  bool loaded = false;
  std::vector<config::LoadError> errors;
  if (config::readConfigFile(options_.configFile, text, err)) {
    digest = textDigest(text);
    loaded = config::loadTopologyText(text, options_.configFile, next, errors);
  } else {
    digest = "unreadable: " + err.message;
    errors.push_back(err);
  }
  if (!loaded) {
    // Every problem in the file, so one edit can fix them all.
    for (const config::LoadError& e : errors) error += (error.empty() ? "" : "; ") + e.str();
  } else {
    std::vector<Worker::ListenFds> fds;
    std::vector<BackendTls> tls;
    if (RoutingSnapshot::prepareTls(next, tls, error) &&
        openChangedListeners(&topology_, next, options_.workers, fds, error)) {
      const uint64_t generation = reloadStats_.generation + 1;
      auto snap = RoutingSnapshot::build(next, generation, snapshot_.get(), &tls);
      logDiff(*snapshot_, *snap);
      for (size_t w = 0; w < workers_.size(); ++w) workers_[w]->publish(snap, std::move(fds[w]));
      snapshot_ = std::move(snap);
      topology_ = std::move(next);
      reloadStats_.generation = generation;
      reloadStats_.reloads++;
      reloadStats_.lastError.clear();  // /status reports the last reload's error, not an old one
      loadedDigest_ = digest;
      LOG_NOTICE("reload (%s): generation %lu is live", trigger, static_cast<unsigned long>(generation));
      return true;
    }
  }
  // A bad file changes nothing: the running topology keeps serving.
  loadedDigest_ = digest;  // do not retry the same bad content on every directory event
  reloadStats_.failures++;
  reloadStats_.lastError = error;
  LOG_ERROR("reload (%s) failed, still serving generation %lu: %s", trigger,
            static_cast<unsigned long>(reloadStats_.generation), error.c_str());
  if (errorOut != nullptr) *errorOut = error;
  return false;
}

void Control::logDiff(const RoutingSnapshot& before, const RoutingSnapshot& after) {
  reloadStats_.lastMoved.clear();
  for (const PoolRoute& now : after.pools) {
    const PoolRoute* was = nullptr;
    for (const PoolRoute& p : before.pools)
      if (p.config.name == now.config.name) was = &p;
    if (was == nullptr) {
      LOG_NOTICE("reload generation %lu: pool %s added, listening on %s with %zu servers",
                 static_cast<unsigned long>(after.generation), now.config.name.c_str(), now.config.listen.str().c_str(),
                 now.config.servers.size());
      continue;
    }
    // Nodes by address: added, removed, reweighted (or renamed: a new identity moves keys).
    std::map<std::string, const ring::NodeSpec*> oldNodes, newNodes;
    for (const auto& n : was->ring.spec().nodes) oldNodes[n.addressOrIdentity()] = &n;
    for (const auto& n : now.ring.spec().nodes) newNodes[n.addressOrIdentity()] = &n;
    size_t added = 0, removed = 0, reweighted = 0, renamed = 0;
    for (const auto& [addr, n] : newNodes) {
      auto it = oldNodes.find(addr);
      if (it == oldNodes.end()) added++;
      else {
        if (it->second->weight != n->weight) reweighted++;
        if (it->second->identity != n->identity) renamed++;
      }
    }
    for (const auto& [addr, n] : oldNodes)
      if (newNodes.find(addr) == newNodes.end()) removed++;
    const ring::RingDiff d = ring::diffRings(was->ring, now.ring);
    reloadStats_.lastMoved.push_back({now.config.name, {d.moved, d.idealMin}});
    if (!d.applicable) {
      LOG_NOTICE("reload generation %lu: pool %s: +%zu -%zu ~%zu nodes (%zu renamed); random distribution: keys have "
                 "no fixed owner",
                 static_cast<unsigned long>(after.generation), now.config.name.c_str(), added, removed, reweighted,
                 renamed);
    } else {
      LOG_NOTICE("reload generation %lu: pool %s: +%zu -%zu ~%zu nodes (%zu renamed); moved %.4f%% of the keyspace, "
                 "ideal minimum %.4f%%%s",
                 static_cast<unsigned long>(after.generation), now.config.name.c_str(), added, removed, reweighted,
                 renamed, d.moved * 100, d.idealMin * 100, d.exact ? "" : " (estimated: the hash changed)");
    }
  }
  for (const PoolRoute& p : before.pools) {
    bool kept = false;
    for (const PoolRoute& q : after.pools) kept = kept || q.config.name == p.config.name;
    if (!kept)
      LOG_NOTICE("reload generation %lu: pool %s removed: it stops accepting, its clients finish and close",
                 static_cast<unsigned long>(after.generation), p.config.name.c_str());
  }
}

}  // namespace proxy
