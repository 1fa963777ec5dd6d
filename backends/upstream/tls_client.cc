#include "backends/upstream/tls_client.h"

#include <arpa/inet.h>

#include <algorithm>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace backends::upstream {

namespace {

bool isIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::string lastTlsError(const char* fallback) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? reason : fallback;
}

bool loadCertificateAndKey(SSL_CTX* ctx, const std::string& certFile, const std::string& keyFile, std::string& error) {
  if (SSL_CTX_use_certificate_chain_file(ctx, certFile.c_str()) != 1) {
    error = certFile + ": cannot load the certificate: " + lastTlsError("not a PEM certificate");
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, keyFile.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = keyFile + ": cannot load the private key: " + lastTlsError("not a PEM private key");
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    error = keyFile + ": the private key does not match the certificate " + certFile;
    return false;
  }
  // OpenSSL loads an expired certificate without a word; every peer would then refuse it.
  if (X509* cert = SSL_CTX_get0_certificate(ctx)) {
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
      error = certFile + ": the certificate has expired";
      return false;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
      error = certFile + ": the certificate is not valid yet";
      return false;
    }
  }
  return true;
}

std::shared_ptr<ClientTlsContext> ClientTlsContext::make(const ClientTlsSettings& settings, std::string& error) {
  std::shared_ptr<ClientTlsContext> c(new ClientTlsContext());
  c->settings_ = settings;
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (c->ctx_ == nullptr) {
    error = "cannot create a TLS context: " + lastTlsError("out of memory");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(c->ctx_, TLS1_2_VERSION);
  // Requests are written as they come: partial writes and moving buffers are the norm here.
  SSL_CTX_set_mode(c->ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (settings.verify) {
    SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_PEER, nullptr);
    const int ok = settings.caFile.empty() ? SSL_CTX_set_default_verify_paths(c->ctx_)
                                           : SSL_CTX_load_verify_locations(c->ctx_, settings.caFile.c_str(), nullptr);
    if (ok != 1) {
      error = (settings.caFile.empty() ? std::string("the system's CA certificates") : settings.caFile) +
              ": cannot load CA certificates: " + lastTlsError("no certificate found");
      return nullptr;
    }
  }
  if (!settings.certFile.empty() && !loadCertificateAndKey(c->ctx_, settings.certFile, settings.keyFile, error))
    return nullptr;
  return c;
}

ClientTlsContext::~ClientTlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

TlsClient::TlsClient(std::shared_ptr<ClientTlsContext> context, const std::string& host)
    : context_(std::move(context)) {
  ssl_ = SSL_new(context_->ctx());
  if (ssl_ == nullptr) {
    error_ = "cannot start TLS: " + lastTlsError("out of memory");
    return;
  }
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (in_ == nullptr || out_ == nullptr) {
    if (in_ != nullptr) BIO_free(in_);
    if (out_ != nullptr) BIO_free(out_);
    in_ = out_ = nullptr;
    SSL_free(ssl_);
    ssl_ = nullptr;
    error_ = "cannot start TLS: out of memory";
    return;
  }
  BIO_set_mem_eof_return(in_, -1);  // an empty input BIO means "wait", never end of stream
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_connect_state(ssl_);
  const std::string& name = context_->settings().serverName.empty() ? host : context_->settings().serverName;
  if (isIpLiteral(name)) {
    if (context_->settings().verify) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_, name.c_str());  // SNI is for names only
    if (context_->settings().verify) SSL_set1_host(ssl_, name.c_str());
  }
}

TlsClient::~TlsClient() {
  if (ssl_ != nullptr) SSL_free(ssl_);  // frees both BIOs
}

void TlsClient::feed(const char* p, size_t n) {
  if (in_ != nullptr && n > 0) BIO_write(in_, p, static_cast<int>(n));
}

bool TlsClient::failWith(const char* what, int rc) {
  const int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_ZERO_RETURN) {
    error_ = "the server closed the TLS session";
  } else if (e == SSL_ERROR_SSL && SSL_get_verify_result(ssl_) != X509_V_OK) {
    error_ = std::string(what) + ": certificate verify failed: " +
             X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
    ERR_clear_error();
  } else {
    error_ = std::string(what) + ": " + lastTlsError("protocol error");
  }
  return false;
}

TlsClient::Step TlsClient::handshake() {
  if (ssl_ == nullptr) return Step::Failed;
  if (established_) return Step::Done;
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    established_ = true;
    return Step::Done;
  }
  const int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Step::Pending;
  failWith("TLS handshake failed", rc);
  return Step::Failed;
}

bool TlsClient::decrypt(io::Buffer& plain) {
  for (;;) {
    size_t room = 0;
    char* p = plain.writable(16 * 1024, &room);
    if (p == nullptr) {
      error_ = "out of memory";
      return false;
    }
    const int n = SSL_read(ssl_, p, static_cast<int>(std::min<size_t>(room, 1 << 30)));
    if (n > 0) {
      plain.commit(static_cast<size_t>(n));
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;  // all of it, for now
    return failWith("TLS read failed", n);
  }
}

bool TlsClient::encrypt(const char* p, size_t n) {
  while (n > 0) {
    const int k = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
    if (k <= 0) return failWith("TLS write failed", k);
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

void TlsClient::takeCipher(io::Buffer& out) {
  if (out_ == nullptr) return;
  char* data = nullptr;
  const long n = BIO_get_mem_data(out_, &data);
  if (n <= 0) return;
  out.append(data, static_cast<size_t>(n));
  (void)BIO_reset(out_);
}

}  // namespace backends::upstream
