// redis_session.h: a client speaking RESP. Frames requests in place, looks each command up in
// the command table (redis_commands.h) and calls the row's handler, which answers it locally,
// forwards its bytes untouched to the owner of its key(s), or splits it into one sub-request
// per owner and merges the replies in the client's key order. The protocol version (RESP2,
// or RESP3 after HELLO 3) belongs to the session; its requests travel over backend
// connections speaking the same version, so backend replies are relayed byte for byte and
// only the replies the proxy builds itself are encoded here.
//
// Files: redis_session.cc (framing, dispatch, routing, fan-out and merges),
// redis_local_commands.cc (what the proxy answers itself), redis_transaction.cc
// (MULTI/EXEC/WATCH). See runtime/client_session.h for the life of a request.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/resp/reply_parser.h"
#include "backends/resp/request_parser.h"
#include "backends/resp/resp_encode.h"
#include "proxy/redis/redis_commands.h"
#include "proxy/redis/redis_frontend.h"
#include "proxy/redis/redis_pubsub.h"
#include "proxy/redis/redis_request.h"
#include "proxy/runtime/client_directory.h"
#include "proxy/runtime/client_session.h"

namespace proxy {

struct PoolRoute;

class RedisSession final : public ClientSession {
 public:
  RedisSession(SessionHost& host, RedisFrontend& frontend, size_t pool);

  // Command handlers: the command table's rows point here (CommandHandler). `req` is the
  // request being dispatched; its arguments are read through the lent parser.
  void forwardKeyed(const CommandSpec& spec, const char* req);
  void fanout(const CommandSpec& spec, const char* req);
  void cmdRefused(const CommandSpec& spec, const char* req);
  void cmdPure(const CommandSpec& spec, const char* req);
  void cmdQuit(const CommandSpec& spec, const char* req);
  void cmdSelect(const CommandSpec& spec, const char* req);
  void cmdAuth(const CommandSpec& spec, const char* req);
  void cmdAcl(const CommandSpec& spec, const char* req);
  void cmdHello(const CommandSpec& spec, const char* req);
  void cmdCommand(const CommandSpec& spec, const char* req);
  void cmdClient(const CommandSpec& spec, const char* req);
  void cmdDbsize(const CommandSpec& spec, const char* req);
  void cmdInfo(const CommandSpec& spec, const char* req);
  void cmdMulti(const CommandSpec& spec, const char* req);
  void cmdExec(const CommandSpec& spec, const char* req);
  void cmdDiscard(const CommandSpec& spec, const char* req);
  void cmdWatch(const CommandSpec& spec, const char* req);
  void cmdUnwatch(const CommandSpec& spec, const char* req);
  void cmdReset(const CommandSpec& spec, const char* req);
  void cmdScript(const CommandSpec& spec, const char* req);
  void cmdBlocking(const CommandSpec& spec, const char* req);
  void cmdWait(const CommandSpec& spec, const char* req);
  void cmdSubscribe(const CommandSpec& spec, const char* req);
  void cmdUnsubscribe(const CommandSpec& spec, const char* req);
  void cmdPubsub(const CommandSpec& spec, const char* req);
  void cmdFlush(const CommandSpec& spec, const char* req);
  void cmdKeys(const CommandSpec& spec, const char* req);
  void cmdRandomkey(const CommandSpec& spec, const char* req);
  void cmdScan(const CommandSpec& spec, const char* req);
  void cmdFunction(const CommandSpec& spec, const char* req);
  // Replies of kPure commands (PureReply), also computed for commands queued in MULTI.
  bool pingReply(const char* req, std::string& out);
  bool echoReply(const char* req, std::string& out);
  bool timeReply(const char* req, std::string& out);

 private:
  friend struct PubSubState;
  ~RedisSession() override;
  void onRoutingChanged() override;
  void onStart(int fd) override;
  bool takeKill() override;

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
  bool keepsFragmentReply(Request& r, uint32_t fragment, size_t len, bool isError) override;
  void onFragmentTaken(Request& r, uint32_t fragment, bool isError) override;

  RedisRequest* newRedisRequest() { return static_cast<RedisRequest*>(newRequest()); }
  // Every fragment of `r` has settled: merge by its kind, then complete it.
  void fragmentsDone(RedisRequest& r);
  void mergeMget(RedisRequest& r, MgetMerge& m);
  void mergeInfo(RedisRequest& r, const InfoMerge& m);
  // HELLO's map: server, version (the backends'), proto, id, mode, role, modules.
  void appendHelloReply(std::string& out, std::string_view version);
  void mergeExec(RedisRequest& r, const ExecMerge& m);
  void mergeEveryBackend(RedisRequest& r, const EveryBackendMerge& m);
  void mergeScan(RedisRequest& r, const ScanMerge& m);
  void mergeWait(RedisRequest& r);
  // deny_commands names this command.
  bool denied(const CommandSpec& spec) const;
  // The same command to every live server of the pool, answered by combining their replies.
  void toEveryServer(const char* req, EveryBackendMerge::Combine combine);
  // The link requests for backend `backend` (a snapshot backend index) use: this client's
  // WATCH connection when it watches keys there, else a shared one of the client's version.
  backends::upstream::UpstreamLink& linkFor(uint32_t backend);
  Channel channel() const { return protocol_ == backends::resp::Protocol::Resp3 ? Channel::Resp3 : Channel::Default; }
  // Appends argument i of the request being dispatched, RESP-encoded.
  void appendEncodedArg(std::string& out, const char* req, size_t i);
  // The request being dispatched as RESP: the client's own bytes, or, for an inline request,
  // re-encoded into scratch (backends are only ever sent RESP). Valid until scratch is reused.
  std::string_view asResp(const char* req) {
    if (!parser_->isInline()) return {req, parser_->size()};
    s_.bytes.clear();
    backends::resp::appendMultibulk(s_.bytes, req, parser_->args());
    return s_.bytes;
  }
  // Sends the request being dispatched, unchanged (an inline request re-encoded as RESP), as
  // a new fragment of `r`.
  bool sendWhole(Request& r, uint32_t owner, const char* req);
  bool sendTo(Request& r, uint32_t fragment, uint32_t backend, const char* bytes, size_t len) {
    return sendFragment(r, fragment, backend, linkFor(backend), bytes, len);
  }
  // One request to every live backend of the pool (DBSIZE, INFO), merged as `M`.
  template <typename M>
  M& broadcast(RedisRequest& r, std::string_view bytes);
  // The backend owning all of the request's keys; false (and an error reply) if they have several.
  bool singleOwner(const CommandSpec& spec, const char* req, uint32_t& owner);
  void appendCommandInfo(std::string& out, const CommandSpec& spec);
  // CLIENT (redis_clients.cc).
  void clientList(const char* req);
  void clientKill(const char* req);

  // Blocking commands (redis_blocking.cc).
  // This client's own connection to `backend`, opened (and counted) if needed; nullptr, with
  // an error replied, when max_blocking_connections is reached.
  backends::upstream::UpstreamLink* blockingLink(uint32_t backend);
  // Lets the client's own connection go: closed once idle, or at once with `now`.
  void releaseBlockingLink(bool now);
  // Reserves `n` of the pool's max_blocking_connections for connections of this client's own
  // (blocking commands, WAIT, subscriptions): the gauge they count in, or nullptr (counted as
  // refused) when the pool's clients hold them all already. releaseOwnConnections gives them back.
  PoolGauges* reserveOwnConnections(uint32_t n);
  void releaseOwnConnections(PoolGauges* gauges, uint32_t n);
  // The refusal when reserveOwnConnections failed; `what` the connections are for.
  void replyOverOwnConnections(std::string_view what);

  // A transition (redis_transition.cc): sends the MIGRATEs that bring the request's moved keys
  // to their new owners; false when none of its keys moved.
  bool startMigration(const CommandSpec& spec, const char* req, const PoolRoute& route);
  void onMigrateReply(RedisRequest& r, MigrateMerge& m, uint32_t fragment, const char* data, size_t len, bool isError);
  // Sends the next step for key `key` of `m` (DUMP, PEXPIRETIME, the reconciling script, DEL).
  void migrationStep(RedisRequest& r, MigrateMerge& m, uint32_t key, MigrateMerge::Step step);

  // Pub/sub (redis_pubsub.cc).
  PubSubState& pubsub();
  // RESP2 with a subscription: only (un)subscribing, PING, QUIT and RESET are allowed.
  bool inSubscribedMode() const;
  void appendSubscriptionFrame(std::string& out, std::string_view word, const std::string* name, size_t count);
  backends::upstream::UpstreamLink* subscriberLink(uint32_t backend);
  void onPubSubFrame(const char* data, size_t len);
  void onPubSubFailure(std::string_view why);
  void flushPubSub();
  void noteSubscriptionCounts();  // into the directory entry (CLIENT LIST)
  void closeSubscriberLinks();
  void endPubSub();
  void pubsubRoutingChanged();

  // Transactions (redis_transaction.cc).
  void queueInMulti(const CommandSpec& spec, const char* req);
  void abortMulti(std::string_view error);
  void releaseWatch();

  void replyError(std::string_view text);  // text starts with the code: "ERR ..."
  void replyUnknownCommand(const char* req);
  std::string_view arg(const char* req, size_t i) const { return parser_->arg(req, i); }
  size_t argc() const { return parser_->argc(); }
  bool authRequired() const;
  // Logs this client in as `user` (`default`: redis_auth's user) if `password` is right:
  // true, and its limits apply from now on; false (counted) otherwise.
  bool login(std::string_view user, std::string_view password);
  // A logged-in user's limits (users: commands read-only, key_prefix): true if it may run
  // the request, else a NOPERM reply was sent.
  bool permitted(const CommandSpec& spec, const char* req);
  struct UserLimits {
    std::string name;
    bool readOnly = false;
    std::string keyPrefix;
  };

  RedisFrontend& frontend_;  // the worker's: parsers, scratch, request pool
  RedisScratch& s_;          // frontend_.scratch
  backends::resp::RequestParser* parser_ = nullptr;  // lent by the frontend while input is pending
  backends::resp::Protocol protocol_ = backends::resp::Protocol::Resp2;
  bool authenticated_ = false;
  std::unique_ptr<UserLimits> user_;  // null: the default user (redis_auth, or no auth), no limits
  int db_ = SessionHost::kPoolDb;  // SELECT n: the database this client's requests reach
  uint64_t clientId_;
  // This client in the process's directory (CLIENT LIST, CLIENT KILL); owns its name.
  ClientEntry entry_;
  // Set by a handler that cannot run the request yet (it must not overtake the client's
  // earlier requests): the request stays in the input and runs again once they are answered.
  bool deferred_ = false;
  // The request at the head of the input had its moved keys brought to their new owners
  // (a transition); it runs now, or fails with rare_->migrateError.
  bool premigrated_ = false;
  // State few connections ever have (a name, a transaction, a WATCH), allocated on first use
  // so an idle connection does not carry it.
  struct RareState {
    bool inMulti = false;
    bool multiAborted = false;
    int32_t multiBackend = -1;  // the backend of the first queued command (strict mode)
    std::vector<Queued> queued;
    size_t queuedBytes = 0;  // of `queued` (bounded by max_request_bytes)
    backends::upstream::UpstreamLink* watchLink = nullptr;
    uint32_t watchBackend = 0;  // its snapshot index, kept current across reloads by watchKey
    std::string watchKey;
    // The client's own connection for blocking commands, kept for its next one (job
    // workers block in a loop on the same keys); counted in blockingGauges->blocking.
    backends::upstream::UpstreamLink* blockLink = nullptr;
    Channel blockChannel = Channel::Default;
    int blockDb = SessionHost::kPoolDb;
    PoolGauges* blockGauges = nullptr;
    std::string blockKey;  // the backend's identity across reloads (BackendSpec::key)
    std::unique_ptr<PubSubState> pubsub;  // once the client subscribes
    std::string migrateError;  // why the last premigration failed ("" when it did not)
  };
  std::unique_ptr<RareState> rare_;
  RareState& rare() {
    if (!rare_) rare_ = std::make_unique<RareState>();
    return *rare_;
  }
  bool inMulti() const { return rare_ && rare_->inMulti; }
  void setQueuedBytes(size_t bytes);  // rare().queuedBytes, counted against --max-buffered-bytes
  backends::upstream::UpstreamLink* watchLink() const { return rare_ ? rare_->watchLink : nullptr; }
};

}  // namespace proxy
