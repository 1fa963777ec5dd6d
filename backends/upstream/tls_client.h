// tls_client.h: TLS to a backend, on the connection's own event loop.
//
// ClientTlsContext is what a pool's backend_tls_* settings become: one OpenSSL SSL_CTX (CA to
// verify the servers with, optional client certificate and key), made on the control thread
// at start and at each reload and shared by every connection of the pool. TlsClient is one
// connection's TLS session over memory BIOs: the connection keeps reading and writing its
// socket through libuv as for plain TCP and passes the bytes through this object, so TLS
// adds no thread and no blocking call, and a handshake is bounded by the connect timeout.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "backends/io/buffer.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace backends::upstream {

// Shared by every TLS context of the process (the proxy's listeners use them too).
// The reason of the last OpenSSL error, e.g. "certificate verify failed"; `fallback` if none.
std::string lastTlsError(const char* fallback);
// Loads a PEM certificate (chain) and its key into `ctx` and checks that they match and that
// the certificate is valid now: false with `error` starting with the file at fault.
bool loadCertificateAndKey(SSL_CTX* ctx, const std::string& certFile, const std::string& keyFile, std::string& error);

struct ClientTlsSettings {
  std::string caFile;      // PEM CAs the servers' certificates must chain to ("": the system's)
  std::string certFile;    // PEM client certificate (chain) presented to the servers, or ""
  std::string keyFile;     // its private key, or ""
  std::string serverName;  // SNI and the name checked; "": each server's host
  bool verify = true;      // check the server's certificate chain and name
};

class ClientTlsContext {
 public:
  // Reads the files now. Null with `error` naming the file and what is wrong with it.
  static std::shared_ptr<ClientTlsContext> make(const ClientTlsSettings& settings, std::string& error);
  ~ClientTlsContext();
  ClientTlsContext(const ClientTlsContext&) = delete;
  ClientTlsContext& operator=(const ClientTlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  const ClientTlsSettings& settings() const { return settings_; }

 private:
  ClientTlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  ClientTlsSettings settings_;
};

class TlsClient {
 public:
  enum class Step { Done, Pending, Failed };

  // `host`: the server's address as configured (a name or an IP literal), checked against
  // its certificate unless the context names another server name.
  TlsClient(std::shared_ptr<ClientTlsContext> context, const std::string& host);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool established() const { return established_; }
  // Bytes read from the socket.
  void feed(const char* p, size_t n);
  // Advances the handshake with what was fed; its records to send wait in pendingCipher().
  Step handshake();
  // Decrypts what was fed into `plain`. False on a TLS failure or the server's close_notify
  // (error() says which).
  bool decrypt(io::Buffer& plain);
  // Encrypts p[0, n): all of it (memory BIOs never refuse), into pendingCipher().
  bool encrypt(const char* p, size_t n);
  // Moves the records waiting to be sent to `out`.
  void takeCipher(io::Buffer& out);
  const std::string& error() const { return error_; }

 private:
  bool failWith(const char* what, int rc);

  std::shared_ptr<ClientTlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // socket -> OpenSSL (owned by ssl_)
  BIO* out_ = nullptr;  // OpenSSL -> socket (owned by ssl_)
  bool established_ = false;
  std::string error_;
};

}  // namespace backends::upstream
