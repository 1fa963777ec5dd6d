#include "proxy/runtime/tls_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>

#include "backends/upstream/tls_client.h"

namespace proxy {

namespace {

std::string lastSslError(const char* fallback) { return backends::upstream::lastTlsError(fallback); }

}  // namespace

std::shared_ptr<ServerTlsContext> ServerTlsContext::make(const ServerTlsSettings& s, std::string& error) {
  std::shared_ptr<ServerTlsContext> c(new ServerTlsContext());
  c->ctx_ = SSL_CTX_new(TLS_server_method());
  if (c->ctx_ == nullptr) {
    error = "cannot create a TLS context: " + lastSslError("out of memory");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(c->ctx_, s.minVersion == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_mode(c->ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(c->ctx_, SSL_OP_NO_RENEGOTIATION);
  if (!backends::upstream::loadCertificateAndKey(c->ctx_, s.certFile, s.keyFile, error)) return nullptr;
  if (!s.ciphers.empty() && SSL_CTX_set_cipher_list(c->ctx_, s.ciphers.c_str()) != 1) {
    error = "'" + s.ciphers + "': no usable cipher in the list";
    return nullptr;
  }
  if (!s.caFile.empty()) {
    if (SSL_CTX_load_verify_locations(c->ctx_, s.caFile.c_str(), nullptr) != 1) {
      error = s.caFile + ": cannot load CA certificates: " + lastSslError("no certificate found");
      return nullptr;
    }
    if (s.clientAuth != "none") {
      int mode = SSL_VERIFY_PEER;
      if (s.clientAuth == "required") mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_CTX_set_verify(c->ctx_, mode, nullptr);
    }
  }
  return c;
}

ServerTlsContext::~ServerTlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

TlsServerSession::TlsServerSession(std::shared_ptr<ServerTlsContext> context, int fd) : context_(std::move(context)) {
  ssl_ = SSL_new(context_->ctx());
  if (ssl_ == nullptr) {
    error_ = "cannot start TLS: " + lastSslError("out of memory");
    return;
  }
  if (SSL_set_fd(ssl_, fd) != 1) {  // the socket BIO does not close the descriptor (BIO_NOCLOSE)
    SSL_free(ssl_);
    ssl_ = nullptr;
    error_ = "cannot start TLS: " + lastSslError("bad socket");
    return;
  }
  SSL_set_accept_state(ssl_);
}

TlsServerSession::~TlsServerSession() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

bool TlsServerSession::failed(int rc) {
  const int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_WANT_READ) {
    want_ = Want::Read;
    return true;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    want_ = Want::Write;
    return true;
  }
  want_ = Want::None;
  if (e == SSL_ERROR_ZERO_RETURN) error_ = "closed";
  else if (e == SSL_ERROR_SYSCALL) error_ = "connection lost";
  else error_ = lastSslError("protocol error");
  ERR_clear_error();
  return false;
}

bool TlsServerSession::handshake() {
  if (established_) return true;
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    established_ = true;
    want_ = Want::None;
    return true;
  }
  failed(rc);
  return false;
}

ssize_t TlsServerSession::read(char* p, size_t n) {
  const int k = SSL_read(ssl_, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
  if (k > 0) return k;
  if (!failed(k)) return error_ == "closed" || error_ == "connection lost" ? 0 : -1;
  return -1;
}

ssize_t TlsServerSession::write(const char* p, size_t n) {
  const int k = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
  if (k > 0) return k;
  failed(k);
  return -1;
}

bool TlsServerSession::pending() const { return SSL_pending(ssl_) > 0; }

void TlsServerSession::shutdown() {
  if (established_) (void)SSL_shutdown(ssl_);
  ERR_clear_error();
}

}  // namespace proxy
