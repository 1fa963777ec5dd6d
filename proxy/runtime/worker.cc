#include "proxy/runtime/worker.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <algorithm>

#include "backends/io/memory_budget.h"
#include "backends/memcache/memcache_reply_framer.h"
#include "backends/resp/resp_reply_framer.h"
#include "proxy/runtime/client_directory.h"
#include "proxy/runtime/client_session.h"
#include "proxy/runtime/log.h"

namespace proxy {

namespace up = backends::upstream;

struct Worker::Listener {
  Worker* worker;
  size_t pool;
  std::string name;    // pool name
  std::string listen;  // the address it listens on
  bool unixSocket;
  int fd = -1;
  uv_poll_t poll{};  // the listening socket, accepted from directly (accept4), see onAccept

  // Closes the poll handle, then the socket, then deletes the listener.
  static void close(Listener* l) {
    uv_close(reinterpret_cast<uv_handle_t*>(&l->poll), [](uv_handle_t* h) {
      auto* self = static_cast<Listener*>(h->data);
      ::close(self->fd);
      delete self;
    });
  }
};

namespace {

// A client that has taken nothing of a streamed reply for this long, while the process is over
// --max-buffered-bytes, is let go: long enough for a slow reader's next read, short enough
// that one stalled client does not hold the whole process over its limit for long.
constexpr uint64_t kStreamStallMs = 2000;
// How long a closing client is given to hang up once it has every reply (see
// ClientSession::beginLinger); the sweep's one-second tick makes it 2 to 3 s in practice.
constexpr uint64_t kLingerMs = 2000;
// A client's TLS handshake must be done within this long (a stalled one holds an SSL object
// and a descriptor); the sweep's tick makes it 10 to 11 s.
constexpr uint64_t kTlsHandshakeMs = 10000;

std::unique_ptr<up::ReplyFramer> makeRespFramer() { return std::make_unique<backends::resp::RespReplyFramer>(); }
std::unique_ptr<up::ReplyFramer> makeMemcacheFramer() {
  return std::make_unique<backends::memcache::MemcacheReplyFramer>();
}
up::BackendPool::FramerFactory framerFor(const BackendSpec& spec) {
  return spec.protocol == config::Protocol::Redis ? &makeRespFramer : &makeMemcacheFramer;
}


}  // namespace

Worker::Worker(int id, std::shared_ptr<const RoutingSnapshot> snapshot, ListenFds listenFds, WorkerOptions options)
    : SessionHost(id, std::move(snapshot)), initialFds_(std::move(listenFds)), options_(options) {}

Worker::~Worker() = default;

void Worker::start() {
  workerThread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (workerThread_.joinable()) workerThread_.join();
}

void Worker::post(std::function<void(Worker&)> fn) {
  bool ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;  // the worker has stopped: nobody will run it
    inbox_.push_back(std::move(fn));
    ready = ready_;
  }
  // Before the loop exists the inbox is drained by run() itself, right after it sets ready_.
  if (ready) uv_async_send(&async_);
}

void Worker::requestStop() {
  post([](Worker& w) { w.beginStop(); });
}

void Worker::onAsync(uv_async_t* a) {
  auto* self = static_cast<Worker*>(a->data);
  std::vector<std::function<void(Worker&)>> todo;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    todo.swap(self->inbox_);
  }
  for (auto& fn : todo) fn(*self);
}

void Worker::run() {
  // The loop and the async handle are created here, on the worker's own thread, but post()
  // may be called before that: the constructor-time inbox is drained on the first async.
  thread_ = std::this_thread::get_id();
  int rc = uv_loop_init(&loop_);
  if (rc < 0) {
    LOG_ERROR("worker %d: cannot create loop: %s", id_, uv_strerror(rc));
    return;
  }
  async_.data = this;
  uv_async_init(&loop_, &async_, &Worker::onAsync);
  stopTimer_.data = this;
  uv_timer_init(&loop_, &stopTimer_);
  rejoinTimer_.data = this;
  uv_timer_init(&loop_, &rejoinTimer_);
  idleTimer_.data = this;
  uv_timer_init(&loop_, &idleTimer_);
  uv_timer_start(&idleTimer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->sweepIdleClients(); }, 1000, 1000);
  uv_unref(reinterpret_cast<uv_handle_t*>(&idleTimer_));
  if (flusher_.start(&loop_) < 0) LOG_ERROR("worker %d: cannot start flusher", id_);
  applySnapshot(snapshot_, std::move(initialFds_));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ready_ = true;
  }
  onAsync(&async_);  // anything posted before the loop existed
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Everything is closed; run once more so close callbacks complete, then free the loop.
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop_) != 0) LOG_DEBUG("worker %d: loop closed with handles still open", id_);
  backends::io::Buffer::releaseThreadSpares();
}

void Worker::publish(std::shared_ptr<const RoutingSnapshot> next, ListenFds newListeners) {
  auto fds = std::make_shared<ListenFds>(std::move(newListeners));
  post([next = std::move(next), fds](Worker& w) mutable { w.applySnapshot(std::move(next), std::move(*fds)); });
}

void Worker::applySnapshot(std::shared_ptr<const RoutingSnapshot> next, ListenFds newListeners) {
  if (stopping_) {
    for (auto& [name, fd] : newListeners) ::close(fd);
    return;
  }
  // Backends whose key survives keep their connections; new ones are made; the rest retire
  // (the pool's destructor lets each connection answer what it owes, then close).
  auto carry = [&](std::unordered_map<std::string, std::unique_ptr<up::BackendPool>>& byKey, bool makeMissing,
                   std::vector<up::BackendPool*>& byIndex) {
    std::unordered_map<std::string, std::unique_ptr<up::BackendPool>> kept;
    byIndex.assign(next->backends.size(), nullptr);
    for (size_t i = 0; i < next->backends.size(); ++i) {
      const BackendSpec& spec = next->backends[i];
      auto it = byKey.find(spec.key);
      if (it != byKey.end()) {
        byIndex[i] = it->second.get();
        kept.emplace(spec.key, std::move(it->second));
        byKey.erase(it);
      } else if (makeMissing) {
        auto pool = std::make_unique<up::BackendPool>(&loop_, flusher_, spec.endpoint, spec.options, spec.connections,
                                                      framerFor(spec));
        if (spec.preconnect) pool->connectAll();
        byIndex[i] = pool.get();
        kept.emplace(spec.key, std::move(pool));
      }
    }
    byKey = std::move(kept);  // the old map's leftovers are destroyed here: retired
  };
  carry(backendsByKey_, true, backends_);
  carry(backends3ByKey_, false, backends3_);
  // Other databases' connections follow their backend: kept if it stays, retired if not.
  for (auto it = dbPools_.begin(); it != dbPools_.end();) {
    bool stays = false;
    for (const BackendSpec& spec : next->backends) stays = stays || spec.key == it->first.backend;
    it = stays ? std::next(it) : dbPools_.erase(it);
  }
  for (up::BackendPool* bp : backends_) bp->setEventListener(&Worker::onBackendEvent, this);
  for (up::BackendPool* bp : backends3_)
    if (bp != nullptr) bp->setEventListener(&Worker::onBackendEvent, this);

  // Sessions follow their pool by name; clients of a removed pool finish and close.
  if (snapshot_ && snapshot_ != next) {
    std::vector<size_t> remap(snapshot_->pools.size(), ClientSession::kNoPool);
    for (size_t i = 0; i < snapshot_->pools.size(); ++i)
      for (size_t j = 0; j < next->pools.size(); ++j)
        if (next->pools[j].config.name == snapshot_->pools[i].config.name) remap[i] = j;
    for (ClientSession* s = sessions_; s != nullptr;) {
      ClientSession* nextSession = s->listNext;
      s->remapPool(remap);
      s = nextSession;
    }
  }

  // Listeners: keep those whose pool still listens at the same address, close the others,
  // and start the new sockets the control thread opened.
  std::vector<std::unique_ptr<Listener>> keptListeners;
  for (auto& l : listeners_) {
    const RoutingSnapshot& n = *next;
    size_t found = SIZE_MAX;
    for (size_t j = 0; j < n.pools.size(); ++j)
      if (n.pools[j].config.name == l->name && n.pools[j].config.listen.str() == l->listen) found = j;
    if (found != SIZE_MAX && newListeners.find(l->name) == newListeners.end()) {
      l->pool = found;
      keptListeners.push_back(std::move(l));
    } else {
      Listener* raw = l.release();
      Listener::close(raw);
    }
  }
  listeners_ = std::move(keptListeners);
  snapshot_ = std::move(next);
  // A new topology starts with every backend in its ring (ejection state is not carried).
  ejectedUntilMs_.assign(snapshot_->backends.size(), 0);
  ejectedAtUsec_.assign(snapshot_->backends.size(), 0);
  eventLog_.reset(snapshot_->backends.size());
  live_.clear();
  live_.resize(snapshot_->pools.size());
  placements_.assign(snapshot_->pools.size(), Placement{});
  for (size_t p = 0; p < snapshot_->pools.size(); ++p) rebuildPlacement(p);
  notifyRoutingChanged();
  for (auto& [name, fd] : newListeners) {
    size_t pool = SIZE_MAX;
    for (size_t j = 0; j < snapshot_->pools.size(); ++j)
      if (snapshot_->pools[j].config.name == name) pool = j;
    if (pool == SIZE_MAX) {
      ::close(fd);
      continue;
    }
    startListening(pool, fd);
  }
}

up::UpstreamLink& Worker::upstream(uint32_t backend, Channel channel) {
  DEBUG_ASSERT(onOwnThread());
  return this->backend(backend, channel != Channel::Default).pick();
}

up::BackendPool& Worker::backend(uint32_t index, bool resp3) {
  if (!resp3) return *backends_[index];
  // RESP3 clients get their own connections, opened on first use, whose handshake switches
  // the backend to RESP3: their replies then need no translation.
  up::BackendPool*& slot = backends3_[index];
  if (slot == nullptr) {
    const BackendSpec& spec = snapshot_->backends[index];
    const up::Options opts =
        optionsFor(index, spec.protocol == config::Protocol::Redis ? Channel::Resp3 : Channel::Binary, kPoolDb);
    auto pool = std::make_unique<up::BackendPool>(&loop_, flusher_, spec.endpoint, opts, spec.connections, framerFor(spec));
    pool->setEventListener(&Worker::onBackendEvent, this);
    slot = pool.get();
    backends3ByKey_[spec.key] = std::move(pool);
  }
  return *slot;
}

up::Options Worker::optionsFor(uint32_t index, Channel channel, int db) const {
  const BackendSpec& spec = snapshot_->backends[index];
  up::Options opts = spec.options;
  if (db != kPoolDb && spec.protocol == config::Protocol::Redis) {
    // The handshake of the pool's connections, with this database instead of redis_db.
    opts.handshake = backendAuthCommand(snapshot_->pools[spec.pool].config);
    opts.handshakeReplies = opts.handshake.empty() ? 0 : 1;
    const std::string n = std::to_string(db);
    opts.handshake += "*2\r\n$6\r\nSELECT\r\n$" + std::to_string(n.size()) + "\r\n" + n + "\r\n";
    opts.handshakeReplies++;
  }
  if (channel == Channel::Resp3) {
    opts.handshake += "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n";
    opts.handshakeReplies++;
  }
  return opts;
}

up::UpstreamLink& Worker::upstreamInDb(uint32_t index, Channel channel, int db) {
  DEBUG_ASSERT(onOwnThread());
  if (db == kPoolDb) return upstream(index, channel);
  const BackendSpec& spec = snapshot_->backends[index];
  auto& slot = dbPools_[DbPoolKey{spec.key, db, channel == Channel::Resp3}];
  if (!slot)
    slot = std::make_unique<up::BackendPool>(&loop_, flusher_, spec.endpoint, optionsFor(index, channel, db),
                                             spec.connections, framerFor(spec));
  return slot->pick();
}

up::UpstreamLink* Worker::openDedicated(uint32_t index, Channel channel, int db) {
  const BackendSpec& spec = snapshot_->backends[index];
  return new up::UpstreamConn(&loop_, flusher_, spec.endpoint, optionsFor(index, channel, db), framerFor(spec)());
}

up::UpstreamLink* Worker::openSubscriber(uint32_t index, Channel channel, up::ReplySink* sink) {
  const BackendSpec& spec = snapshot_->backends[index];
  up::Options options = optionsFor(index, channel, kPoolDb);
  options.replyTimeoutMs = -1;  // messages come when they come
  auto* conn = new up::UpstreamConn(&loop_, flusher_, spec.endpoint, std::move(options), framerFor(spec)());
  conn->setPushSink(sink);
  return conn;
}

void Worker::onBackendEvent(void* ctx, up::BackendPool& pool, const up::UpstreamConn& conn, up::LinkEvent event) {
  auto* self = static_cast<Worker*>(ctx);
  uint32_t index = UINT32_MAX;
  for (uint32_t i = 0; i < self->backends_.size(); ++i)
    if (self->backends_[i] == &pool || self->backends3_[i] == &pool) index = i;
  if (index == UINT32_MAX) return;  // retired by a reload
  const BackendSpec& spec = self->snapshot_->backends[index];
  const uint64_t now = uv_now(&self->loop_);
  if (event == up::LinkEvent::Connected || event == up::LinkEvent::Failed) {
    char where[256];
    std::snprintf(where, sizeof where, "worker %d: pool %s: backend %s", self->id_,
                  self->snapshot_->pools[spec.pool].config.name.c_str(), spec.endpoint.label.c_str());
    if (event == up::LinkEvent::Connected) self->eventLog_.connected(index, where, now);
    else self->eventLog_.failed(index, where, conn.lastCause(), conn.lastError(), conn.inflight(), now);
  }
  if (event != up::LinkEvent::Connected) self->maybeEject(index, pool);
}

void Worker::maybeEject(uint32_t index, const up::BackendPool& pool) {
  const BackendSpec& spec = snapshot_->backends[index];
  const uint32_t consecutive = pool.consecutiveFailures();
  if (!spec.autoEject || consecutive < spec.failureLimit || ejectedUntilMs_[index] != 0) return;
  eject(index);
  poolStats(snapshot_->pools[spec.pool].config.name).serverEjects++;  // counted once, here
  LOG_WARN("worker %d: pool %s: backend %s ejected for %d ms after %u consecutive failures (%s)", id_,
           snapshot_->pools[spec.pool].config.name.c_str(), spec.endpoint.label.c_str(), spec.retryTimeoutMs,
           consecutive, pool.connections().front()->lastError().c_str());
  if (ejectionListener_) ejectionListener_(id_, snapshot_->generation, index);
}

void Worker::ejectFromPeer(uint64_t generation, uint32_t backend) {
  if (stopping_ || generation != snapshot_->generation || backend >= ejectedUntilMs_.size()) return;
  const BackendSpec& spec = snapshot_->backends[backend];
  if (!spec.autoEject || ejectedUntilMs_[backend] != 0) return;
  eject(backend);
  LOG_DEBUG("worker %d: backend %s ejected along with another worker", id_, spec.endpoint.label.c_str());
}

void Worker::eject(uint32_t index) {
  const BackendSpec& spec = snapshot_->backends[index];
  backends_[index]->resetFailures();
  if (backends3_[index] != nullptr) backends3_[index]->resetFailures();
  ejectedUntilMs_[index] = uv_now(&loop_) + static_cast<uint64_t>(std::max(spec.retryTimeoutMs, 1));
  ejectedAtUsec_[index] = uv_hrtime() / 1000;
  rebuildPlacement(spec.pool);
  notifyRoutingChanged();
  armRejoinTimer();
}

void Worker::notifyRoutingChanged() {
  for (ClientSession* s = sessions_; s != nullptr;) {
    ClientSession* next = s->listNext;  // a session may close itself
    s->onRoutingChanged();
    s = next;
  }
}

void Worker::rebuildPlacement(size_t p) {
  const PoolRoute& route = snapshot_->pools[p];
  LivePool& live = live_[p];
  live.liveRing.reset();
  live.liveNodeBackend.clear();
  placements_[p] = Placement{&route.ring, route.nodeBackend.data()};
  ring::RingSpec spec = route.ring.spec();
  std::unordered_map<std::string, uint32_t> backendOfAddress;
  std::vector<ring::NodeSpec> alive;
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    backendOfAddress[spec.nodes[i].addressOrIdentity()] = route.nodeBackend[i];
    if (ejectedUntilMs_[route.nodeBackend[i]] == 0) alive.push_back(spec.nodes[i]);
  }
  // Nothing ejected, or everything: the full ring (when all are down, requests fail fast with
  // each backend's own error rather than vanishing).
  if (alive.size() == spec.nodes.size() || alive.empty()) return;
  spec.nodes = std::move(alive);
  live.liveRing = std::make_unique<ring::Ring>(std::move(spec));
  for (const ring::NodeSpec& n : live.liveRing->spec().nodes)
    live.liveNodeBackend.push_back(backendOfAddress.at(n.addressOrIdentity()));
  placements_[p] = Placement{live.liveRing.get(), live.liveNodeBackend.data()};
}

void Worker::armRejoinTimer() {
  uint64_t next = 0;
  for (uint64_t until : ejectedUntilMs_)
    if (until != 0 && (next == 0 || until < next)) next = until;
  if (next == 0) {
    uv_timer_stop(&rejoinTimer_);
    return;
  }
  const uint64_t now = uv_now(&loop_);
  uv_timer_start(&rejoinTimer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->onRejoinTimer(); },
                 next > now ? next - now : 0, 0);
}

void Worker::onRejoinTimer() {
  // After server_retry_timeout the backend is tried again: back in the ring; if it still
  // fails, server_failure_limit more failures eject it again.
  const uint64_t now = uv_now(&loop_);
  std::vector<bool> touched(snapshot_->pools.size(), false);
  for (size_t i = 0; i < ejectedUntilMs_.size(); ++i) {
    if (ejectedUntilMs_[i] == 0 || ejectedUntilMs_[i] > now) continue;
    ejectedUntilMs_[i] = 0;
    backends_[i]->resetFailures();
    backends_[i]->retryAll();  // try it now, as twemproxy does, not after a grown backoff
    if (backends3_[i] != nullptr) backends3_[i]->resetFailures();
    touched[snapshot_->backends[i].pool] = true;
    LOG_NOTICE("worker %d: backend %s rejoins the ring of pool %s", id_, snapshot_->backends[i].endpoint.label.c_str(),
               snapshot_->pools[snapshot_->backends[i].pool].config.name.c_str());
  }
  bool any = false;
  for (size_t p = 0; p < touched.size(); ++p)
    if (touched[p]) {
      rebuildPlacement(p);
      any = true;
    }
  if (any) notifyRoutingChanged();
  armRejoinTimer();
}

void Worker::sweepIdleClients() {
  // One pass a second over this worker's sessions: cheaper than a timer per connection, and
  // the timeout is a coarse guard (seconds), not a precise deadline.
  bool any = false;
  for (const PoolRoute& p : snapshot_->pools) any = any || p.config.clientIdleTimeoutMs > 0;
  const bool kills = ClientDirectory::instance().killsPending();  // CLIENT KILL from another worker
  const bool over = backends::io::overBufferLimit();  // let go of clients stalled on a large reply
  for (auto& f : frontends_)
    if (f) f->trimScratch();
  const bool lingers = lingering() > 0;  // closes that wait for the client to hang up
  const bool handshaking = handshakes() > 0;  // TLS handshakes, bounded in time
  if (!any && !kills && !over && !lingers && !handshaking) return;
  const uint64_t now = uv_now(&loop_);
  for (ClientSession* s = sessions_; s != nullptr;) {
    ClientSession* next = s->listNext;
    if (kills && s->takeKill()) {
      s->closeNow();
      s = next;
      continue;
    }
    if (handshaking && s->closeIfHandshakeStalled(now, kTlsHandshakeMs)) {
      s = next;
      continue;
    }
    if (lingers && s->closeIfLingered(now, kLingerMs)) {
      s = next;
      continue;
    }
    if (over && s->shedIfStalled(now, kStreamStallMs)) {
      s = next;
      continue;
    }
    const size_t pool = s->pool();
    if (pool < snapshot_->pools.size()) {
      const int timeout = snapshot_->pools[pool].config.clientIdleTimeoutMs;
      if (timeout > 0) s->closeIfIdle(now, static_cast<uint64_t>(timeout));
    }
    s = next;
  }
}

void Worker::startListening(size_t pool, int fd) {
  auto l = std::make_unique<Listener>();
  l->worker = this;
  l->pool = pool;
  l->name = snapshot_->pools[pool].config.name;
  l->listen = snapshot_->pools[pool].config.listen.str();
  l->unixSocket = snapshot_->pools[pool].config.listen.isUnix();
  l->fd = fd;
  int rc = uv_poll_init_socket(&loop_, &l->poll, fd);
  l->poll.data = l.get();
  if (rc == 0) {
    rc = uv_poll_start(&l->poll, UV_READABLE, [](uv_poll_t* h, int status, int) {
      auto* listener = static_cast<Listener*>(h->data);
      if (status < 0) {
        LOG_WARN("accept error: %s", uv_strerror(status));
        return;
      }
      listener->worker->onAccept(*listener);
    });
  }
  if (rc < 0) {
    LOG_ERROR("worker %d: cannot listen for pool %s: %s", id_, snapshot_->pools[pool].config.name.c_str(), uv_strerror(rc));
  }
  listeners_.push_back(std::move(l));
}

void Worker::onAccept(Listener& l) {
  // Take what is waiting, a bounded number per wakeup so one busy listener cannot starve the
  // loop; with SO_REUSEPORT another worker may have taken it first (EAGAIN).
  for (int i = 0; i < 64; ++i) {
    const int fd = ::accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
        LOG_WARN("worker %d: accept on %s: %s", id_, l.listen.c_str(), std::strerror(errno));
      return;
    }
    const PoolRoute& route = snapshot_->pools[l.pool];
    ClientSession* s = frontend(route.config.protocol).newSession(*this, l.pool);
    s->start(fd, l.unixSocket);
  }
}

Frontend& Worker::frontend(config::Protocol protocol) {
  std::unique_ptr<Frontend>& slot = frontends_[static_cast<size_t>(protocol)];
  if (!slot) slot = options_.makeFrontend(protocol);
  return *slot;
}

PoolGauges* Worker::gauges(size_t pool) {
  const PoolRoute& route = snapshot_->pools[pool];
  auto& slot = gauges_[route.config.name];
  if (slot != route.gauges) slot = route.gauges;  // the same object unless the pool was re-added
  return slot.get();
}

PoolStats& Worker::poolStats(const std::string& name) {
  auto& slot = poolStats_[name];
  if (!slot) slot = std::make_unique<PoolStats>();
  return *slot;
}

WorkerReport Worker::report() const {
  WorkerReport r;
  for (const auto& [name, stats] : poolStats_) r.pools.push_back({name, *stats});
  if (!snapshot_) return r;
  for (const PoolRoute& pool : snapshot_->pools) {
    const auto& nodes = pool.ring.spec().nodes;
    for (size_t i = 0; i < nodes.size(); ++i) {
      BackendReport b;
      b.pool = pool.config.name;
      b.ejected = ejectedUntilMs_[pool.nodeBackend[i]] != 0;
      b.ejectedAtUsec = ejectedAtUsec_[pool.nodeBackend[i]];
      b.identity = nodes[i].identity;
      b.label = nodes[i].labelOrIdentity();
      b.address = nodes[i].addressOrIdentity();
      const uint32_t index = pool.nodeBackend[i];
      for (const up::BackendPool* bp : {backends_[index], backends3_[index]}) {
        if (bp == nullptr) continue;
        for (const up::UpstreamConn* c : bp->connections()) {
          addConnStats(b.conn, c->stats());
          b.inflight += c->inflight();
          b.queuedBytes += c->queuedBytes();
          b.connected += c->connected() ? 1 : 0;
          b.connections++;
          if (b.lastError.empty()) b.lastError = c->lastError();
        }
      }
      r.backends.push_back(std::move(b));
    }
  }
  return r;
}

void Worker::addSession(ClientSession* s) {
  s->listNext = sessions_;
  if (sessions_ != nullptr) sessions_->listPrev = s;
  sessions_ = s;
  sessionCount_++;
}

void Worker::removeSession(ClientSession* s) {
  if (s->listPrev != nullptr) s->listPrev->listNext = s->listNext;
  else sessions_ = s->listNext;
  if (s->listNext != nullptr) s->listNext->listPrev = s->listPrev;
  sessionCount_--;
  if (stopping_) maybeFinishStop();
}

void Worker::beginStop() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& l : listeners_) {
    Listener* raw = l.release();
    Listener::close(raw);
  }
  listeners_.clear();
  // Let clients finish what they have in flight, for a bounded time.
  for (ClientSession* s = sessions_; s != nullptr;) {
    ClientSession* next = s->listNext;
    s->beginDrain();
    s = next;
  }
  uv_timer_start(&stopTimer_, [](uv_timer_t* t) {
    auto* self = static_cast<Worker*>(t->data);
    for (ClientSession* s = self->sessions_; s != nullptr;) {
      ClientSession* next = s->listNext;
      s->closeNow();
      s = next;
    }
  }, static_cast<uint64_t>(options_.drainTimeoutMs), 0);
  maybeFinishStop();
}

void Worker::maybeFinishStop() {
  if (stopped_ || sessionCount_ != 0) return;
  stopped_ = true;
  uv_timer_stop(&stopTimer_);
  uv_close(reinterpret_cast<uv_handle_t*>(&stopTimer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&rejoinTimer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&idleTimer_), nullptr);
  for (auto& [key, pool] : backendsByKey_) pool->retireNow();
  for (auto& [key, pool] : backends3ByKey_) pool->retireNow();
  for (auto& [key, pool] : dbPools_) pool->retireNow();
  dbPools_.clear();
  backends3_.clear();
  backends_.clear();
  backendsByKey_.clear();
  backends3ByKey_.clear();
  flusher_.close();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
}

}  // namespace proxy
