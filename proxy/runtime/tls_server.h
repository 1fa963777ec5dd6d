// tls_server.h: TLS for the clients of a pool that listens with it (tls_cert_file ...).
//
// ServerTlsContext is a pool's OpenSSL SSL_CTX (certificate and key, optional CA for client
// certificates and whether they are required, minimum version, ciphers), made on the control
// thread at start and at each reload; sessions accepted after a reload use the new one, and
// established ones keep theirs. TlsServerSession is one client connection's TLS, reading and
// writing the non-blocking socket itself, so the session's plain read()/send() calls become
// these when the pool listens with TLS, and nothing else changes.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace proxy {

struct ServerTlsSettings {
  std::string certFile;
  std::string keyFile;
  std::string caFile;           // CAs for client certificates ("": none asked for)
  std::string clientAuth;       // "none", "optional" or "required"
  std::string minVersion;       // "1.2" or "1.3"
  std::string ciphers;          // OpenSSL cipher list for TLS 1.2 ("": OpenSSL's default)
};

class ServerTlsContext {
 public:
  // Reads the files now; null with `error` starting with the file at fault.
  static std::shared_ptr<ServerTlsContext> make(const ServerTlsSettings& settings, std::string& error);
  ~ServerTlsContext();
  ServerTlsContext(const ServerTlsContext&) = delete;
  ServerTlsContext& operator=(const ServerTlsContext&) = delete;
  SSL_CTX* ctx() const { return ctx_; }

 private:
  ServerTlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
};

class TlsServerSession {
 public:
  // What a read or write needs next: the socket readable, writable, or nothing (it failed).
  enum class Want { None, Read, Write };

  TlsServerSession(std::shared_ptr<ServerTlsContext> context, int fd);
  ~TlsServerSession();
  TlsServerSession(const TlsServerSession&) = delete;
  TlsServerSession& operator=(const TlsServerSession&) = delete;

  bool ok() const { return ssl_ != nullptr; }
  bool established() const { return established_; }
  // Advances the handshake: true once it is done; false with want() saying what it waits for
  // (None: it failed, error() says why).
  bool handshake();
  // As read(2) and send(2): bytes moved, 0 for the peer's close_notify or EOF (read), or -1
  // with want() set (Read/Write: try again then; None: failed).
  ssize_t read(char* p, size_t n);
  ssize_t write(const char* p, size_t n);
  // Plaintext already decrypted and waiting: the socket may not be readable for it.
  bool pending() const;
  // Sends close_notify, best effort (the connection is closing).
  void shutdown();
  Want want() const { return want_; }
  const std::string& error() const { return error_; }

 private:
  bool failed(int rc);

  std::shared_ptr<ServerTlsContext> context_;
  SSL* ssl_ = nullptr;
  bool established_ = false;
  Want want_ = Want::None;
  std::string error_;
};

}  // namespace proxy
