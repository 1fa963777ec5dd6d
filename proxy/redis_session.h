// redis_session.h: a client speaking RESP. Frames requests in place, looks each command up in
// the command table, and then: answers it locally, forwards its bytes untouched to the owner
// of its key(s), or splits it into one sub-request per owner and merges the replies in the
// client's key order. The protocol version (RESP2, or RESP3 after HELLO 3) belongs to the
// session; its requests travel over backend connections speaking the same version, so
// backend replies are relayed byte for byte and only the replies the proxy builds itself are
// encoded here.
#pragma once

#include <string>
#include <vector>

#include "backends/resp/reply_parser.h"
#include "backends/resp/request_parser.h"
#include "backends/resp/resp_encode.h"
#include "proxy/client_session.h"
#include "proxy/redis_commands.h"

namespace proxy {

struct PoolRoute;

class RedisSession final : public ClientSession {
 public:
  RedisSession(Worker& worker, size_t pool);

 private:
  enum Kind : uint8_t { kSingle, kMget, kMset, kSum };

  void processInput() override;
  void dispatch(char* req);
  void onFragmentReply(Request& r, uint32_t fragment, const char* data, size_t len, bool isError) override;
  void onFragmentFailure(Request& r, uint32_t fragment, std::string_view why) override;

  void forwardKeyed(const CommandSpec& spec, const char* req, const PoolRoute& route);
  void fanout(const CommandSpec& spec, const char* req, const PoolRoute& route);
  void fragmentDone(Request& r);
  void mergeMget(Request& r);
  // Sends `bytes` to ring node `node`; false (and an error reply) when the backend refuses.
  bool sendTo(Request& r, uint32_t fragment, uint32_t node, const PoolRoute& route, const char* bytes, size_t len);

  // Local commands (redis_local_commands.cc).
  void runLocal(const CommandSpec& spec, const char* req);
  void cmdPing(const char* req);
  void cmdSelect(const char* req);
  void cmdAuth(const char* req);
  void cmdHello(const char* req);
  void cmdCommand(const char* req);
  void cmdClient(const char* req);
  void appendCommandInfo(std::string& out, const CommandSpec& spec);

  void replyError(std::string_view text);  // text starts with the code: "ERR ..."
  void replyUnknownCommand(const char* req);
  std::string_view arg(const char* req, size_t i) const { return parser_.arg(req, i); }
  size_t argc() const { return parser_.argc(); }
  bool authRequired() const;

  backends::resp::RequestParser parser_;
  backends::resp::Protocol protocol_ = backends::resp::Protocol::Resp2;
  bool authenticated_ = false;
  std::string clientName_;
  uint64_t clientId_;
  // Scratch space reused across requests, so steady traffic allocates nothing here.
  std::string scratch_;
  std::vector<uint32_t> keys_;
  std::vector<int32_t> fragmentOfNode_;
  std::vector<std::string> subRequests_;
  std::vector<uint32_t> subKeyCounts_;
  std::vector<std::vector<backends::resp::ByteSpan>> elementSpans_;
};

}  // namespace proxy
