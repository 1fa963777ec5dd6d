// fake_host.h: a SessionHost for session unit tests. The loop, the routing snapshot (built
// from YAML text by the real loader, so keys land where they would in production) and the
// client's socket (one end of a socketpair) are real; only the backends are fake: each
// FakeLink records what a session sent and answers when, and how, the test says, so replies
// can arrive out of order across backends, a backend can fail halfway through a merge, or
// refuse at once.
//
//   FakeHost host(kYaml);                      // pools and servers as in a config file
//   RedisFrontend fe;
//   TestClient c = host.connect(fe, 0);        // a session on pool 0, and its client end
//   c.send("*2\r\n$3\r\nGET\r\n$1\r\na\r\n");
//   host.link(host.owner(0, "a")).answer("$1\r\nx\r\n");
//   CHECK(c.receive() == "$1\r\nx\r\n");
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <map>
#include <tuple>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/load.h"
#include "proxy/runtime/client_session.h"
#include "proxy/runtime/frontend.h"
#include "proxy/runtime/session_host.h"

namespace proxy::testing {

// One fake connection to a backend. Like a real one it answers in the order requests were
// sent (a FIFO per link); different links answer in whatever order the test chooses.
class FakeLink final : public backends::upstream::UpstreamLink {
 public:
  struct Sent {
    std::string bytes;
    backends::upstream::ReplySink* sink;
    uint64_t cookie;
    uint64_t seq;
    bool cancelled = false;
  };

  explicit FakeLink(std::string label) : label_(std::move(label)) {}

  uint64_t send(const char* data, size_t len, backends::upstream::ReplySink* sink, uint64_t cookie,
                uint32_t) override {
    if (refuse || closed) {
      lastError_ = closed ? "closed" : "connect failed: connection refused";
      return 0;
    }
    if (pushSink != nullptr) {  // a subscriber link owes no replies
      log.emplace_back(data, len);
      return ++nextSeq_;
    }
    owed.push_back(Sent{std::string(data, len), sink, cookie, ++nextSeq_});
    log.push_back(owed.back().bytes);
    return nextSeq_;
  }
  void cancel(uint64_t seq) override {
    for (Sent& s : owed)
      if (s.seq == seq) s.cancelled = true;
    cancels++;
    if (!closed) return;
    for (const Sent& s : owed)
      if (!s.cancelled && s.sink != nullptr) return;
    hardClosed = true;  // closing when idle, and nothing wanted any more: closes now
  }
  const std::string& label() const override { return label_; }
  const std::string& lastError() const override { return lastError_; }
  void closeWhenIdle() override { closed = true; }
  void close() override {
    closed = true;
    hardClosed = true;
  }
  void setReplyTimeout(int ms) override { replyTimeoutMs = ms; }

  // Answers the oldest request still owed with `reply` (a cancelled one's answer is dropped,
  // as a real link drops it). Returns false when nothing is owed.
  bool answer(std::string_view reply, bool isError = false) {
    if (owed.empty()) return false;
    Sent s = owed.front();
    owed.pop_front();
    if (s.cancelled || s.sink == nullptr) return true;
    // As UpstreamConn does: a large reply the sink keeps is handed over, not copied.
    if (reply.size() >= backends::upstream::ReplySink::kHandOverBytes &&
        s.sink->keepsReply(s.cookie, reply.size(), isError)) {
      backends::io::Buffer whole;
      whole.append(reply.data(), reply.size());
      handedOver++;
      s.sink->takeReply(s.cookie, std::move(whole), isError);
      return true;
    }
    s.sink->onReply(s.cookie, reply.data(), reply.size(), isError);
    return true;
  }
  // Fails every request owed, as a broken connection does.
  void failAll(std::string_view why) {
    std::deque<Sent> todo;
    todo.swap(owed);
    for (Sent& s : todo)
      if (!s.cancelled && s.sink != nullptr) s.sink->onFailure(s.cookie, why);
  }
  // A subscriber link (openSubscriber): the backend sends `frame` (a message, a confirmation).
  void push(std::string_view frame) { pushSink->onReply(0, frame.data(), frame.size(), false); }
  // The bytes of the oldest request owed ("" when none).
  std::string next() const { return owed.empty() ? std::string() : owed.front().bytes; }

  std::deque<Sent> owed;         // sent and not answered yet, oldest first
  std::vector<std::string> log;  // everything ever sent, in order
  bool refuse = false;           // send() refuses at once (a backend backing off)
  bool closed = false;
  bool hardClosed = false;
  int cancels = 0;
  int handedOver = 0;  // large replies given to their sink whole (takeReply)
  int replyTimeoutMs = -2;  // what setReplyTimeout last set (-2: never called)
  backends::upstream::ReplySink* pushSink = nullptr;  // set for subscriber links

 private:
  std::string label_;
  std::string lastError_;
  uint64_t nextSeq_ = 0;
};

// The client's end of a session's socket.
class TestClient {
 public:
  TestClient(class FakeHost* host, int fd) : host_(host), fd_(fd) {}
  TestClient(TestClient&& o) noexcept : host_(o.host_), fd_(o.fd_) { o.fd_ = -1; }
  ~TestClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  void send(std::string_view bytes);
  // Everything the session wrote so far (after letting the loop run).
  std::string receive();
  // Closes the client's end (the session sees EOF).
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // True once the session closed its end of the socket.
  bool closedByPeer();

 private:
  FakeHost* host_;
  int fd_;
};

// Declare the frontend before the host: the host closes its sessions when it goes, and they
// give their requests back to the frontend's pool.
class FakeHost final : public SessionHost {
 public:
  // `yaml` is a config file's text (twemproxy's format).
  explicit FakeHost(const std::string& yaml) : SessionHost(0, nullptr) {
    config::Topology topology;
    config::LoadError error;
    if (!config::loadTopologyText(yaml, "test.yml", topology, error)) throw std::runtime_error(error.str());
    snapshot_ = RoutingSnapshot::build(topology, 1);
    for (const PoolRoute& p : snapshot_->pools) placements_.push_back(Placement{&p.ring, p.nodeBackend.data()});
    thread_ = std::this_thread::get_id();
    if (uv_loop_init(&loop_) != 0 || flusher_.start(&loop_) != 0) throw std::runtime_error("loop");
  }
  ~FakeHost() {
    closeAll();
    // As real links do when they close: what is still owed fails, so sinks that own
    // themselves (a transition's background copy) let go.
    for (auto& [key, l] : links_) l->failAll("link closed");
    for (auto& [key, l] : dbLinks_) l->failAll("link closed");
    for (auto& l : dedicated_) l->failAll("link closed");
    flusher_.close();
    for (int i = 0; i < 10; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    uv_loop_close(&loop_);
  }

  // A session of `frontend` on pool `pool`, started on one end of a socketpair.
  TestClient connect(Frontend& frontend, size_t pool) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair");
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    ::fcntl(fds[1], F_SETFL, O_NONBLOCK);
    frontend.newSession(*this, pool)->start(fds[0], true);
    return TestClient(this, fds[1]);
  }
  // Closes every session now (cancelling what they wait for) and lets their handles close.
  void closeAll() {
    // closeNow() is idempotent: a session already closing waits for its close callback.
    for (ClientSession* s = sessions_; s != nullptr;) {
      ClientSession* next = s->listNext;
      s->closeNow();
      s = next;
    }
    for (int i = 0; i < 100 && sessions_ != nullptr; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  }
  // Lets the loop run until it has nothing left to do at once.
  void settle() {
    for (int i = 0; i < 20; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
  }

  // The snapshot backend index that owns `key` in pool `pool`.
  uint32_t owner(size_t pool, std::string_view key) const { return placement(pool).backendOf(key); }
  // A key of the form prefix + number that `backend` owns in pool `pool`.
  std::string keyOn(size_t pool, uint32_t backend, std::string_view prefix = "k") const {
    for (int i = 0; i < 100000; ++i) {
      std::string k = std::string(prefix) + std::to_string(i);
      if (owner(pool, k) == backend) return k;
    }
    throw std::runtime_error("no key found for backend");
  }
  FakeLink& link(uint32_t backend, Channel channel = Channel::Default) {
    auto& slot = links_[{backend, channel}];
    if (!slot) slot = std::make_unique<FakeLink>(snapshot_->backends[backend].endpoint.label);
    return *slot;
  }
  std::vector<std::unique_ptr<FakeLink>>& dedicated() { return dedicated_; }
  PoolStats& stats(const std::string& pool) { return stats_[pool]; }
  size_t sessions() const { return sessionCount_; }

  backends::upstream::UpstreamLink& upstream(uint32_t backend, Channel channel) override {
    return link(backend, channel);
  }
  backends::upstream::UpstreamLink& upstreamInDb(uint32_t backend, Channel channel, int db) override {
    if (db == kPoolDb) return link(backend, channel);
    auto& slot = dbLinks_[{backend, channel, db}];
    if (!slot) slot = std::make_unique<FakeLink>(snapshot_->backends[backend].endpoint.label);
    return *slot;
  }
  FakeLink& linkInDb(uint32_t backend, int db, Channel channel = Channel::Default) {
    return static_cast<FakeLink&>(upstreamInDb(backend, channel, db));
  }
  backends::upstream::UpstreamLink* openDedicated(uint32_t backend, Channel, int db) override {
    dedicatedDb.push_back(db);
    dedicated_.push_back(std::make_unique<FakeLink>(snapshot_->backends[backend].endpoint.label));
    return dedicated_.back().get();
  }
  backends::upstream::UpstreamLink* openSubscriber(uint32_t backend, Channel channel,
                                                   backends::upstream::ReplySink* sink) override {
    auto* l = static_cast<FakeLink*>(openDedicated(backend, channel, kPoolDb));
    l->pushSink = sink;
    subscriberOf[backend] = l;
    return l;
  }
  std::map<uint32_t, FakeLink*> subscriberOf;
  std::vector<int> dedicatedDb;  // the database each dedicated link was opened in  // the last subscriber link opened per backend
  PoolStats& poolStats(const std::string& name) override { return stats_[name]; }
  PoolGauges* gauges(size_t) override { return &gauges_; }
  void addSession(ClientSession* s) override {
    s->listNext = sessions_;
    if (sessions_ != nullptr) sessions_->listPrev = s;
    sessions_ = s;
    sessionCount_++;
  }
  void removeSession(ClientSession* s) override {
    if (s->listPrev != nullptr) s->listPrev->listNext = s->listNext;
    else sessions_ = s->listNext;
    if (s->listNext != nullptr) s->listNext->listPrev = s->listPrev;
    sessionCount_--;
  }

 private:
  std::map<std::pair<uint32_t, Channel>, std::unique_ptr<FakeLink>> links_;
  std::map<std::tuple<uint32_t, Channel, int>, std::unique_ptr<FakeLink>> dbLinks_;
  std::vector<std::unique_ptr<FakeLink>> dedicated_;
  std::map<std::string, PoolStats> stats_;
  PoolGauges gauges_;
  ClientSession* sessions_ = nullptr;
  size_t sessionCount_ = 0;
};

inline void TestClient::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EAGAIN) {
      host_->settle();
      continue;
    }
    if (n <= 0) throw std::runtime_error("client write failed");
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  host_->settle();
}

inline std::string TestClient::receive() {
  host_->settle();
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

inline bool TestClient::closedByPeer() {
  host_->settle();
  char c;
  const ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK);
  return n == 0;
}

}  // namespace proxy::testing
