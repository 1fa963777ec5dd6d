#include "backends/upstream/upstream_conn.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/upstream/failure_cause.h"

namespace backends::upstream {
namespace {

static_assert(failureCauseName(FailureCause::ConnectTimeout) == "connect_timeout");
static_assert(failureCauseName(FailureCause::Closed) == "closed");
static_assert(isTimeout(FailureCause::ReplyTimeout) && isTimeout(FailureCause::ConnectTimeout));
static_assert(!isTimeout(FailureCause::Connect) && !isTimeout(FailureCause::Closed));

constexpr int kLimitMs = 5000;  // a test that waits longer than this has failed

// Replies are "\r\n"-terminated lines; a line starting with '-' is an error reply.
class LineFramer final : public ReplyFramer {
 public:
  Frame frame(const char* data, size_t len, uint32_t) override {
    const std::string_view s(data, len);
    const size_t end = s.find("\r\n");
    if (end == std::string_view::npos) return {};
    return {FrameStatus::Complete, end + 2, len > 0 && data[0] == '-'};
  }
  void reset() override {}
};

class RecordingSink final : public ReplySink {
 public:
  void onReply(uint64_t, const char* data, size_t len, bool) override { replies.emplace_back(data, len); }
  void onFailure(uint64_t, std::string_view why) override { failures.emplace_back(why); }

  std::vector<std::string> replies;
  std::vector<std::string> failures;
};

// Keeps large replies: they are handed over whole (takeReply), the rest come by onReply.
class KeepingSink final : public ReplySink {
 public:
  void onReply(uint64_t, const char* data, size_t len, bool) override { copied.emplace_back(data, len); }
  void onFailure(uint64_t, std::string_view why) override { failures.emplace_back(why); }
  bool keepsReply(uint64_t, size_t, bool) override { return true; }
  void takeReply(uint64_t, backends::io::Buffer&& bytes, bool) override {
    taken.emplace_back(bytes.readable(), bytes.readableSize());
    kept.push_back(std::move(bytes));
  }

  std::vector<std::string> copied, taken, failures;
  std::vector<backends::io::Buffer> kept;
};

void deleteTcp(uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); }

// A loop with its flush scheduler. The destructor runs the loop until every handle has
// closed, so a connection or server left open shows up as uv_loop_close failing.
class TestLoop {
 public:
  TestLoop() {
    REQUIRE(uv_loop_init(&loop_) == 0);
    REQUIRE(flusher_.start(&loop_) == 0);
    // Wakes the loop regularly so runUntil can give up even when nothing else happens.
    REQUIRE(uv_timer_init(&loop_, &tick_) == 0);
    REQUIRE(uv_timer_start(&tick_, [](uv_timer_t*) {}, 5, 5) == 0);
  }
  ~TestLoop() {
    flusher_.close();
    uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop_) == 0);
  }

  uv_loop_t* get() { return &loop_; }
  io::FlushScheduler& flusher() { return flusher_; }

  template <typename Done>
  bool runUntil(Done done) {
    uv_update_time(&loop_);
    const uint64_t start = uv_now(&loop_);
    while (!done()) {
      if (uv_now(&loop_) - start > static_cast<uint64_t>(kLimitMs)) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

 private:
  uv_loop_t loop_{};
  io::FlushScheduler flusher_;
  uv_timer_t tick_{};
};

// A loopback server on the test's own loop. Handles live on the heap and are freed by their
// close callbacks, so the server object may go away before the loop has run them.
class TestServer {
 public:
  enum class Mode : uint8_t {
    Silent,          // reads and never answers
    CloseAfterRead,  // closes once the request is in (see onRead for why not at accept)
    Echo,            // sends back what it reads
  };

  TestServer(uv_loop_t* loop, Mode mode) : mode_(mode) {
    listener_ = new uv_tcp_t;
    REQUIRE(uv_tcp_init(loop, listener_) == 0);
    listener_->data = this;
    sockaddr_in addr{};
    REQUIRE(uv_ip4_addr("127.0.0.1", 0, &addr) == 0);
    REQUIRE(uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 16, &TestServer::onConnection) == 0);
    sockaddr_in bound{};
    int len = sizeof bound;
    REQUIRE(uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len) == 0);
    port_ = ntohs(bound.sin_port);
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  ~TestServer() {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), &deleteTcp);
    for (uv_tcp_t* c : clients_) uv_close(reinterpret_cast<uv_handle_t*>(c), &deleteTcp);
  }

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  struct WriteReq {
    uv_write_t req{};
    std::string bytes;
  };

  static void onConnection(uv_stream_t* listener, int status) {
    if (status < 0) return;
    auto* self = static_cast<TestServer*>(listener->data);
    auto* client = new uv_tcp_t;
    if (uv_tcp_init(listener->loop, client) != 0) {
      delete client;
      return;
    }
    client->data = self;
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(client)) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(client), &deleteTcp);
      return;
    }
    self->clients_.push_back(client);
    self->accepted_++;
    uv_read_start(reinterpret_cast<uv_stream_t*>(client), &TestServer::onAlloc, &TestServer::onRead);
  }

  static void onAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* self = static_cast<TestServer*>(h->data);
    *buf = uv_buf_init(self->readBuf_, sizeof self->readBuf_);
  }

  static void onRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<TestServer*>(s->data);
    auto* client = reinterpret_cast<uv_tcp_t*>(s);
    // Closing only after the request has been read keeps the receive queue empty, so the
    // kernel ends the stream with a FIN (EOF) rather than a RST (connection reset).
    if (nread < 0 || (nread > 0 && self->mode_ == Mode::CloseAfterRead)) {
      self->closeClient(client);
      return;
    }
    if (nread == 0 || self->mode_ != Mode::Echo) return;
    auto* w = new WriteReq;
    w->bytes.assign(buf->base, static_cast<size_t>(nread));
    w->req.data = w;
    uv_buf_t out = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
    if (uv_write(&w->req, s, &out, 1, [](uv_write_t* r, int) { delete static_cast<WriteReq*>(r->data); }) != 0)
      delete w;
  }

  void closeClient(uv_tcp_t* client) {
    clients_.erase(std::remove(clients_.begin(), clients_.end(), client), clients_.end());
    uv_close(reinterpret_cast<uv_handle_t*>(client), &deleteTcp);
  }

  Mode mode_;
  uv_tcp_t* listener_ = nullptr;
  std::vector<uv_tcp_t*> clients_;
  uint16_t port_ = 0;
  int accepted_ = 0;
  char readBuf_[64 * 1024];
};

// A loopback port nobody listens on: bound by the kernel's choice, then released.
uint16_t closedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// UpstreamConn deletes itself after close(); this closes it on every way out of a test, so
// a failed REQUIRE does not leave handles behind. Declare it after the loop, server and sink.
class ConnGuard {
 public:
  ConnGuard(TestLoop& loop, uint16_t port, Options options) {
    options.minBackoffMs = 60000;  // no background reconnect while the test looks at the result
    options.maxBackoffMs = 60000;
    conn_ = new UpstreamConn(loop.get(), loop.flusher(), Endpoint{"127.0.0.1", port, "", "test"},
                             std::move(options), std::make_unique<LineFramer>());
  }
  ConnGuard(const ConnGuard&) = delete;
  ConnGuard& operator=(const ConnGuard&) = delete;
  ~ConnGuard() { close(); }

  UpstreamConn* operator->() { return conn_; }
  void close() {
    if (conn_ != nullptr) conn_->close();
    conn_ = nullptr;
  }

 private:
  UpstreamConn* conn_ = nullptr;
};

constexpr std::string_view kPing = "PING\r\n";

TEST_CASE("UpstreamConn: replies reach the sink and leave no failure cause") {
  TestLoop loop;
  TestServer server(loop.get(), TestServer::Mode::Echo);
  RecordingSink sink;
  ConnGuard conn(loop, server.port(), Options{});

  REQUIRE(conn->send(kPing.data(), kPing.size(), &sink, 1, 0) != 0);
  REQUIRE(loop.runUntil([&] { return !sink.replies.empty() || !sink.failures.empty(); }));
  CHECK(sink.failures.empty());
  REQUIRE(sink.replies.size() == 1);
  CHECK(sink.replies[0] == kPing);
  CHECK(conn->lastCause() == FailureCause::None);
  CHECK(conn->lastError().empty());
  CHECK(conn->stats().replies == 1);
  CHECK(conn->stats().errors == 0);
}

TEST_CASE("UpstreamConn: a large reply is handed over whole, and the replies after it still arrive") {
  TestLoop loop;
  TestServer server(loop.get(), TestServer::Mode::Echo);
  KeepingSink sink;
  ConnGuard conn(loop, server.port(), Options{});
  const std::string big = std::string(ReplySink::kHandOverBytes + 12345, 'x') + "\r\n";
  REQUIRE(conn->send(big.data(), big.size(), &sink, 1, 0) != 0);
  REQUIRE(conn->send(kPing.data(), kPing.size(), &sink, 2, 0) != 0);
  REQUIRE(loop.runUntil([&] { return sink.copied.size() + sink.taken.size() == 2 || !sink.failures.empty(); }));
  CHECK(sink.failures.empty());
  REQUIRE(sink.taken.size() == 1);
  CHECK(sink.taken[0] == big);
  CHECK(sink.kept[0].readableSize() == big.size());
  REQUIRE(sink.copied.size() == 1);
  CHECK(sink.copied[0] == kPing);  // small: copied as always
  CHECK(conn->stats().replies == 2);
}

TEST_CASE("Buffer::takeFront hands over the front bytes' storage and keeps the rest") {
  backends::io::Buffer b;
  const std::string front(100000, 'f');
  b.append(front.data(), front.size());
  b.append("tail", 4);
  const char* storage = b.readable();
  backends::io::Buffer taken = b.takeFront(front.size());
  CHECK(taken.readable() == storage);  // the same storage: nothing copied
  CHECK(std::string(taken.readable(), taken.readableSize()) == front);
  CHECK(std::string(b.readable(), b.readableSize()) == "tail");
  backends::io::Buffer all = b.takeFront(4);
  CHECK(b.empty());
  CHECK(std::string(all.readable(), all.readableSize()) == "tail");
}

TEST_CASE("UpstreamConn: a refused connect fails the request with cause Connect") {
  TestLoop loop;
  RecordingSink sink;
  ConnGuard conn(loop, closedPort(), Options{});

  REQUIRE(conn->send(kPing.data(), kPing.size(), &sink, 1, 0) != 0);
  REQUIRE(loop.runUntil([&] { return !sink.failures.empty(); }));
  REQUIRE(sink.failures.size() == 1);
  CHECK(sink.failures[0].find("connect failed") != std::string::npos);
  CHECK(sink.failures[0] == "backend test: connect failed: Connection refused");
  CHECK(conn->lastError() == "connect failed: Connection refused");
  CHECK(conn->lastCause() == FailureCause::Connect);
  CHECK(conn->stats().errors == 1);
  CHECK(conn->stats().eofs == 0);
  CHECK(conn->stats().timeouts == 0);
  CHECK(conn->stats().failures == 1);

  // Backing off: refused at once, and lastError still says why; counted as a failure too.
  CHECK(conn->send(kPing.data(), kPing.size(), &sink, 2, 0) == 0);
  CHECK(conn->stats().failures == 2);
  CHECK(conn->lastCause() == FailureCause::Connect);
  CHECK(conn->lastError() == "connect failed: Connection refused");
}

TEST_CASE("UpstreamConn: a backend that closes the socket fails the request with cause Closed") {
  TestLoop loop;
  TestServer server(loop.get(), TestServer::Mode::CloseAfterRead);
  RecordingSink sink;
  ConnGuard conn(loop, server.port(), Options{});

  REQUIRE(conn->send(kPing.data(), kPing.size(), &sink, 1, 0) != 0);
  REQUIRE(loop.runUntil([&] { return !sink.failures.empty(); }));
  CHECK(server.accepted() == 1);
  REQUIRE(sink.failures.size() == 1);
  CHECK(sink.failures[0] == "backend test: connection closed by backend");
  CHECK(conn->lastError() == "connection closed by backend");
  CHECK(conn->lastCause() == FailureCause::Closed);
  CHECK(conn->stats().eofs == 1);
  CHECK(conn->stats().errors == 0);
  CHECK(conn->stats().timeouts == 0);
}

TEST_CASE("UpstreamConn: a backend that never answers fails the request with cause ReplyTimeout") {
  TestLoop loop;
  TestServer server(loop.get(), TestServer::Mode::Silent);
  RecordingSink sink;
  Options options;
  options.replyTimeoutMs = 50;
  ConnGuard conn(loop, server.port(), options);

  REQUIRE(conn->send(kPing.data(), kPing.size(), &sink, 1, 0) != 0);
  REQUIRE(loop.runUntil([&] { return !sink.failures.empty(); }));
  REQUIRE(sink.failures.size() == 1);
  CHECK(sink.failures[0] == "backend test: timed out: no reply within 50 ms");
  CHECK(conn->lastError() == "timed out: no reply within 50 ms");
  CHECK(conn->lastCause() == FailureCause::ReplyTimeout);
  CHECK(conn->stats().timeouts == 1);
  CHECK(conn->stats().errors == 1);
  CHECK(conn->stats().eofs == 0);
}

#ifdef __linux__
// Linux drops a SYN while the listener's accept queue is full; with a backlog of 0 one
// connection nobody accepts fills it, so the next connect hangs until its timeout.
TEST_CASE("UpstreamConn: a connect that hangs fails the request with cause ConnectTimeout") {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  REQUIRE(::listen(listener, 0) == 0);
  const int filler = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(filler >= 0);
  REQUIRE(::connect(filler, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);

  {
    TestLoop loop;
    RecordingSink sink;
    Options options;
    options.connectTimeoutMs = 100;
    ConnGuard conn(loop, ntohs(addr.sin_port), options);

    REQUIRE(conn->send(kPing.data(), kPing.size(), &sink, 1, 0) != 0);
    REQUIRE(loop.runUntil([&] { return !sink.failures.empty(); }));
    REQUIRE(sink.failures.size() == 1);
    CHECK(sink.failures[0] == "backend test: connect timed out after 100 ms");
    CHECK(conn->lastCause() == FailureCause::ConnectTimeout);
    CHECK(conn->stats().timeouts == 1);
    CHECK(conn->stats().errors == 1);
  }
  ::close(filler);
  ::close(listener);
}
#endif

TEST_CASE("UpstreamConn: sends while closing are refused with cause Removed") {
  TestLoop loop;
  TestServer server(loop.get(), TestServer::Mode::Silent);
  RecordingSink sink;
  ConnGuard conn(loop, server.port(), Options{});

  REQUIRE(conn->send(kPing.data(), kPing.size(), &sink, 1, 0) != 0);
  conn->closeWhenIdle();  // one request is owed: the connection stays open for its reply
  CHECK(conn->send(kPing.data(), kPing.size(), &sink, 2, 0) == 0);
  CHECK(conn->lastCause() == FailureCause::Removed);
  CHECK(conn->lastError() == "backend test removed");

  conn.close();
  REQUIRE(sink.failures.size() == 1);
  CHECK(sink.failures[0] == "backend test: backend removed from the configuration");
}

}  // namespace
}  // namespace backends::upstream
