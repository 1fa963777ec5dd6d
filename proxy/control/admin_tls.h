// admin_tls.h: TLS for the admin listener (--admin-tls-cert/--admin-tls-key), over memory
// BIOs so that the listener keeps reading and writing its libuv streams as for plain HTTP.
// One request and one answer per connection, so the whole answer is encrypted at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "proxy/runtime/tls_server.h"

typedef struct bio_st BIO;

namespace proxy {

class AdminTls {
 public:
  explicit AdminTls(const std::shared_ptr<ServerTlsContext>& context);
  ~AdminTls();
  AdminTls(const AdminTls&) = delete;
  AdminTls& operator=(const AdminTls&) = delete;

  // Bytes from the socket: advances the handshake and appends what they decrypt to `plain`.
  // False when the session failed (the connection is to be closed).
  bool receive(std::string_view cipher, std::string& plain);
  // Encrypts `plain` (the whole answer), then close_notify.
  bool seal(std::string_view plain);
  // What is to be written to the socket now (handshake records, or the sealed answer).
  std::string takeCipher();

 private:
  std::shared_ptr<ServerTlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

}  // namespace proxy
