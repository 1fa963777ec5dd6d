// memcache_session.h: a client speaking memcached: text, meta and binary, told apart per
// request by its first byte, so one connection may mix them.
//
// Keyed requests go to the owner of their key (meta keys with the b flag are decoded first,
// so a key reaches the same server whatever dialect wrote it). Multi-key text retrievals
// (get/gets/gat/gats) are split into one request per owner and merged into a single reply in
// the client's key order with one END.
//
// Quiet requests must keep the backend connection's FIFO in step (one reply per request).
// Meta q requests are sent as they are with an `mn` behind them and framed through its MN, so
// memcached itself decides what quiet mode keeps and the proxy only strips the MN. Text
// noreply and binary ...Q requests are sent in their loud form and the proxy drops what
// memcached would not have sent (noreply: everything; binary: a miss for GETQ/GETKQ/GATQ/
// GATKQ, success for the others). Because replies leave in request order, a barrier (mn, binary NOOP) is
// answered only after every earlier quiet request from this client has settled.
//
// Binary requests travel on their own backend connections (memcached fixes a connection's
// protocol at its first byte), forwarded as binary: memcached speaks it, so nothing is lost
// in translation, and the client's opaque and cas come back untouched.
#pragma once

#include <string>
#include <vector>

#include "backends/memcache/reply_parser.h"
#include "backends/memcache/request_parser.h"
#include "proxy/memcache/memcache_frontend.h"
#include "proxy/memcache/memcache_request.h"
#include "proxy/runtime/client_session.h"

namespace proxy {

class MemcacheSession final : public ClientSession {
 public:
  MemcacheSession(SessionHost& host, MemcacheFrontend& frontend, size_t pool);

 private:
  ~MemcacheSession() override;
  void processInput() override;
  void frameRequests();
  std::string_view tooManyClientsReply() const override { return "SERVER_ERROR too many open connections\r\n"; }
  std::string_view backendErrorPrefix() const override { return ""; }
  void dispatch(const char* req);
  void dispatchText(const char* req);
  void dispatchBinary(const char* req);
  void onFragmentReply(Request& r, uint32_t fragment, const char* data, size_t len, bool isError) override;
  void onFragmentFailure(Request& r, uint32_t fragment, std::string_view why) override;

  MemcacheRequest* newMcRequest() { return static_cast<MemcacheRequest*>(newRequest()); }
  // Sends `bytes` for `key` as the one fragment of `r` (its merge state already begun).
  void forward(MemcacheRequest& r, std::string_view key, const char* bytes, size_t len, Channel channel,
               uint32_t hint = UINT32_MAX);
  void multiGet(const char* req);
  // Sends `bytes` to every live backend of the pool as fragments of `r`.
  void broadcast(MemcacheRequest& r, const char* bytes, size_t len, Channel channel);
  // Every fragment of `r` has settled: merge by its kind, then complete it.
  void fragmentsDone(MemcacheRequest& r);
  void mergeMultiGet(MemcacheRequest& r, const McMultiGet& m);
  // The bytes to send for a quiet request: the request without its quiet marker.
  const char* loudForm(const char* req, size_t& len);
  std::string_view hashKey(const char* req);
  void replyBinary(uint8_t opcode, uint16_t status, uint32_t opaque, std::string_view value);
  // The reply a request gets when its backend failed or refused it.
  void failureReply(MemcacheRequest& r, std::string_view why);
  // Whether a quiet request's reply goes back to the client.
  static bool keepReply(MemcacheRequest& r, const char* data, size_t len);

  // A transition (memcache_transition.cc). A loud one-key read of a moved key: sent with
  // fallback state; false when the key did not move (then sent as usual).
  bool transitionRead(const char* req, std::string_view key, bool binary, bool quiet);
  // The end of a quiet fallback read: a miss answers nothing, a hit goes back quiet.
  void finishQuietFallback(MemcacheRequest& r, const McFallback& f, const char* data, size_t len);
  // A delete of a moved key reaches its previous owner too.
  void transitionDelete(const char* bytes, size_t len, std::string_view key, bool binary);
  // A multi-key get whose owners answered: asks the previous owners for the moved keys that
  // missed; false when there are none (then merged at once).
  bool multiGetFallback(MemcacheRequest& r, McMultiGet& m);
  // Copies `key` from `from` (its previous owner, which had it) to its new owner, in the
  // background.
  void copyOver(std::string_view key, uint32_t from);
  // A reply for a fallback read: true when it asked the previous owner (nothing to relay yet).
  bool onFallbackReply(MemcacheRequest& r, McFallback& f, uint32_t fragment, const char* data, size_t len);

  MemcacheFrontend& frontend_;  // the worker's: parsers, scratch, request pool
  MemcacheScratch& s_;          // frontend_.scratch
  backends::memcache::RequestParser* parser_ = nullptr;  // lent by the frontend while input is pending
  bool inflightBinary_ = false;  // the dialect of the requests in flight (see frameRequests)
};

}  // namespace proxy
