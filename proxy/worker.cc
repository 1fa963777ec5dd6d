#include "proxy/worker.h"

#include <unistd.h>

#include "backends/resp/resp_reply_framer.h"
#include "proxy/client_factory.h"
#include "proxy/client_session.h"
#include "proxy/log.h"

namespace proxy {

namespace up = backends::upstream;

struct Worker::Listener {
  Worker* worker;
  size_t pool;
  bool unixSocket;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h{};
};

namespace {

std::unique_ptr<up::ReplyFramer> makeRespFramer() { return std::make_unique<backends::resp::RespReplyFramer>(); }

// The handshake of a RESP3 connection: HELLO 3 first, so replies come back in the client's version.
constexpr std::string_view kHello3 = "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n";

}  // namespace

Worker::Worker(int id, std::shared_ptr<const RoutingSnapshot> snapshot, std::vector<int> listenFds, WorkerOptions options)
    : id_(id), snapshot_(std::move(snapshot)), initialFds_(std::move(listenFds)), options_(options) {}

Worker::~Worker() = default;

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::post(std::function<void(Worker&)> fn) {
  bool ready;
  {
    std::lock_guard<std::mutex> lock(mutex_);
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
  int rc = uv_loop_init(&loop_);
  if (rc < 0) {
    LOG_ERROR("worker %d: cannot create loop: %s", id_, uv_strerror(rc));
    return;
  }
  async_.data = this;
  uv_async_init(&loop_, &async_, &Worker::onAsync);
  stopTimer_.data = this;
  uv_timer_init(&loop_, &stopTimer_);
  if (flusher_.start(&loop_) < 0) LOG_ERROR("worker %d: cannot start flusher", id_);
  applySnapshot(snapshot_);
  for (size_t p = 0; p < initialFds_.size(); ++p) startListening(p, initialFds_[p]);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ready_ = true;
  }
  onAsync(&async_);  // anything posted before the loop existed
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Everything is closed; run once more so close callbacks complete, then free the loop.
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop_) != 0) LOG_DEBUG("worker %d: loop closed with handles still open", id_);
}

void Worker::applySnapshot(std::shared_ptr<const RoutingSnapshot> next) {
  std::unordered_map<std::string, std::unique_ptr<up::BackendPool>> kept;
  std::vector<up::BackendPool*> byIndex;
  for (const BackendSpec& spec : next->backends) {
    auto it = backendsByKey_.find(spec.key);
    if (it != backendsByKey_.end()) {
      byIndex.push_back(it->second.get());
      kept.emplace(spec.key, std::move(it->second));
      backendsByKey_.erase(it);
      continue;
    }
    auto pool = std::make_unique<up::BackendPool>(&loop_, flusher_, spec.endpoint, spec.options, spec.connections,
                                                  &makeRespFramer);
    if (spec.preconnect) pool->connectAll();
    byIndex.push_back(pool.get());
    kept.emplace(spec.key, std::move(pool));
  }
  backendsByKey_.clear();  // what is left was removed: its connections fail what they owe and close
  backendsByKey_ = std::move(kept);
  backends_ = std::move(byIndex);
  backends3_.clear();
  backends3_.resize(backends_.size());
  snapshot_ = std::move(next);
}

up::BackendPool& Worker::backend(uint32_t index, bool resp3) {
  if (!resp3) return *backends_[index];
  // RESP3 clients get their own connections, opened on first use, whose handshake switches
  // the backend to RESP3: their replies then need no translation.
  auto& slot = backends3_[index];
  if (!slot) {
    const BackendSpec& spec = snapshot_->backends[index];
    up::Options opts = spec.options;
    opts.handshake = std::string(kHello3) + opts.handshake;
    opts.handshakeReplies++;
    slot = std::make_unique<up::BackendPool>(&loop_, flusher_, spec.endpoint, opts, spec.connections, &makeRespFramer);
  }
  return *slot;
}

up::UpstreamConn* Worker::openDedicated(uint32_t index, bool resp3) {
  const BackendSpec& spec = snapshot_->backends[index];
  up::Options opts = spec.options;
  if (resp3) {
    opts.handshake = std::string(kHello3) + opts.handshake;
    opts.handshakeReplies++;
  }
  return new up::UpstreamConn(&loop_, flusher_, spec.endpoint, opts, makeRespFramer());
}

void Worker::startListening(size_t pool, int fd) {
  auto l = std::make_unique<Listener>();
  l->worker = this;
  l->pool = pool;
  l->unixSocket = snapshot_->pools[pool].config.listen.isUnix();
  int rc = l->unixSocket ? uv_pipe_init(&loop_, &l->h.pipe, 0) : uv_tcp_init(&loop_, &l->h.tcp);
  if (rc == 0) rc = l->unixSocket ? uv_pipe_open(&l->h.pipe, fd) : uv_tcp_open(&l->h.tcp, fd);
  l->h.handle.data = l.get();
  if (rc == 0) {
    rc = uv_listen(&l->h.stream, snapshot_->pools[pool].config.backlog, [](uv_stream_t* s, int status) {
      auto* listener = static_cast<Listener*>(s->data);
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
  const PoolRoute& route = snapshot_->pools[l.pool];
  ClientSession* s = makeSession(*this, l.pool, route.config.protocol);
  stats_.clientConnections.add();
  s->acceptFrom(&l.h.stream, l.unixSocket);
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
  stats_.clientsClosed.add();
  if (stopping_) maybeFinishStop();
}

void Worker::beginStop() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& l : listeners_) uv_close(&l->h.handle, nullptr);
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
  backends3_.clear();
  backends_.clear();
  backendsByKey_.clear();
  flusher_.close();
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
}

}  // namespace proxy
