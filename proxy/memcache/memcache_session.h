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
#include "proxy/runtime/client_session.h"
#include "proxy/runtime/session_scratch.h"

namespace proxy {

class MemcacheSession final : public ClientSession {
 public:
  MemcacheSession(Worker& worker, size_t pool);

 private:
  enum Kind : uint8_t {
    kRelay,        // the backend's reply, as is
    kQuietText,    // text noreply: nothing goes back, whatever the reply
    kQuietMeta,    // meta q: sent quiet with an mn behind it; the backend's reply minus the MN
    kBinary,       // binary: relayed; for a quiet opcode, success/miss dropped and opcode restored
    kMultiGet,     // text get over several shards: items merged in key order, one END
    kFlush,        // flush_all to every backend: OK when all said OK
    kBinaryFlush,  // binary FLUSH to every backend
  };

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

  // Routes `bytes` for `key` as a single-fragment request of `kind`.
  void forward(std::string_view key, const char* bytes, size_t len, Kind kind, uint64_t aux, bool binary,
               uint32_t hint = UINT32_MAX);
  void multiGet(const char* req);
  void broadcast(const char* bytes, size_t len, Kind kind, uint64_t aux, bool binary);
  void finish(Request& r);
  // The bytes to send for a quiet request: the request without its quiet marker.
  const char* loudForm(const char* req, size_t& len);
  std::string_view hashKey(const char* req);
  void replyBinary(uint8_t opcode, uint16_t status, uint32_t opaque, std::string_view value);
  void failureReply(Request& r, std::string_view why);
  bool keepReply(const Request& r, const char* data, size_t len) const;

  backends::memcache::RequestParser* parser_ = nullptr;  // lent by the worker while input is pending
  SessionScratch& s_;  // the worker's scratch space (see session_scratch.h)
  bool inflightBinary_ = false;  // the dialect of the requests in flight (see frameRequests)
};

}  // namespace proxy
