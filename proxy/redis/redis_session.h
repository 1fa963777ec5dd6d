// redis_session.h: a client speaking RESP. Frames requests in place, looks each command up in
// the command table, and then: answers it locally, forwards its bytes untouched to the owner
// of its key(s), or splits it into one sub-request per owner and merges the replies in the
// client's key order. The protocol version (RESP2, or RESP3 after HELLO 3) belongs to the
// session; its requests travel over backend connections speaking the same version, so
// backend replies are relayed byte for byte and only the replies the proxy builds itself are
// encoded here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/resp/reply_parser.h"
#include "backends/resp/request_parser.h"
#include "backends/resp/resp_encode.h"
#include "proxy/runtime/client_session.h"
#include "proxy/redis/redis_commands.h"
#include "proxy/runtime/session_scratch.h"

namespace proxy {

struct PoolRoute;

class RedisSession final : public ClientSession {
 public:
  RedisSession(Worker& worker, size_t pool);

 private:
  ~RedisSession() override;

  enum Kind : uint8_t { kSingle, kMget, kMset, kSum, kInfo, kExec };
  // Request::aux of a multi-key request sent whole to the one server owning all its keys:
  // a good reply is relayed as it is.
  static constexpr uint64_t kWholeReply = 1;

  // A command queued between MULTI and EXEC: its RESP bytes and the backend that owns its
  // keys, or (backend < 0) a reply the proxy computed itself (PING, ECHO, TIME).
  struct Queued {
    std::string bytes;
    int32_t backend;
  };

  void processInput() override;
  void frameRequests();
  std::string_view tooManyClientsReply() const override { return "-ERR max number of clients reached\r\n"; }
  std::string_view backendErrorPrefix() const override { return "ERR "; }
  void dispatch(char* req);
  void onFragmentReply(Request& r, uint32_t fragment, const char* data, size_t len, bool isError) override;
  void onFragmentFailure(Request& r, uint32_t fragment, std::string_view why) override;

  void forwardKeyed(const CommandSpec& spec, const char* req);
  void fanout(const CommandSpec& spec, const char* req);
  void fragmentDone(Request& r);
  void mergeMget(Request& r);
  // The connection requests for backend `backend` (a snapshot backend index) use: this
  // client's WATCH connection when it watches keys there, else a shared connection.
  backends::upstream::UpstreamConn& connFor(uint32_t backend);
  // Appends argument i of the request being dispatched, RESP-encoded.
  void appendEncodedArg(std::string& out, const char* req, size_t i);
  // Sends the request being dispatched, unchanged (an inline request re-encoded as RESP), as
  // a new fragment of `r`.
  bool sendWhole(Request& r, uint32_t owner, const char* req);
  bool sendTo(Request& r, uint32_t fragment, uint32_t backend, const char* bytes, size_t len) {
    return sendFragment(r, fragment, backend, connFor(backend), bytes, len);
  }
  // One request to every live backend of the pool (DBSIZE, INFO); `detail` is kept in the
  // request's `sum` for the merge (INFO: the sections asked for).
  void broadcast(Kind kind, std::string_view bytes, int64_t detail = 0);
  static constexpr int64_t kInfoServer = 1, kInfoProxy = 2, kInfoKeyspace = 4;
  static constexpr int64_t kInfoAll = kInfoServer | kInfoProxy | kInfoKeyspace;
  void mergeInfo(Request& r);
  // The backend owning all of the request's keys; false (and an error reply) if they have several.
  bool singleOwner(const CommandSpec& spec, const char* req, uint32_t& owner);

  // Local commands (redis_local_commands.cc).
  void runLocal(const CommandSpec& spec, const char* req);
  void cmdPing(const char* req);
  void cmdSelect(const char* req);
  void cmdAuth(const char* req);
  void cmdHello(const char* req);
  void cmdCommand(const char* req);
  void cmdClient(const char* req);
  void appendCommandInfo(std::string& out, const CommandSpec& spec);
  bool pureLocalReply(const CommandSpec& spec, const char* req, std::string& out);

  // Transactions (redis_transaction.cc).
  void cmdMulti();
  void queueInMulti(const CommandSpec& spec, const char* req);
  void cmdExec();
  void cmdDiscard();
  void cmdWatch(const CommandSpec& spec, const char* req);
  void cmdUnwatch(const char* req);
  void cmdReset();
  void abortMulti(std::string_view error);
  void mergeExec(Request& r);
  void releaseWatch();

  void replyError(std::string_view text);  // text starts with the code: "ERR ..."
  void replyUnknownCommand(const char* req);
  std::string_view arg(const char* req, size_t i) const { return parser_->arg(req, i); }
  size_t argc() const { return parser_->argc(); }
  bool authRequired() const;

  backends::resp::RequestParser* parser_ = nullptr;  // lent by the worker while input is pending
  backends::resp::Protocol protocol_ = backends::resp::Protocol::Resp2;
  bool authenticated_ = false;
  uint64_t clientId_;
  // State few connections ever have (a name, a transaction, a WATCH), allocated on first use
  // so an idle connection does not carry it.
  struct RareState {
    std::string clientName;
    bool inMulti = false;
    bool multiAborted = false;
    int32_t multiBackend = -1;  // the backend of the first queued command (strict mode)
    std::vector<Queued> queued;
    backends::upstream::UpstreamConn* watchConn = nullptr;
    uint32_t watchBackend = 0;
  };
  std::unique_ptr<RareState> rare_;
  RareState& rare() {
    if (!rare_) rare_ = std::make_unique<RareState>();
    return *rare_;
  }
  bool inMulti() const { return rare_ && rare_->inMulti; }
  backends::upstream::UpstreamConn* watchConn() const { return rare_ ? rare_->watchConn : nullptr; }
  SessionScratch& s_;  // the worker's scratch space (see session_scratch.h)
};

}  // namespace proxy
