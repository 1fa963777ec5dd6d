#include "proxy/control/admin_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>

namespace proxy {

AdminTls::AdminTls(const std::shared_ptr<ServerTlsContext>& context) : context_(context) {
  ssl_ = SSL_new(context_->ctx());
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (ssl_ == nullptr || in_ == nullptr || out_ == nullptr) {
    if (in_ != nullptr) BIO_free(in_);
    if (out_ != nullptr) BIO_free(out_);
    if (ssl_ != nullptr) SSL_free(ssl_);
    ssl_ = nullptr;
    in_ = out_ = nullptr;
    return;
  }
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_accept_state(ssl_);
}

AdminTls::~AdminTls() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

bool AdminTls::receive(std::string_view cipher, std::string& plain) {
  if (ssl_ == nullptr) return false;
  BIO_write(in_, cipher.data(), static_cast<int>(cipher.size()));
  char buf[4096];
  for (;;) {
    const int n = SSL_read(ssl_, buf, sizeof buf);  // drives the handshake first
    if (n > 0) {
      plain.append(buf, static_cast<size_t>(n));
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
  }
}

bool AdminTls::seal(std::string_view plain) {
  if (ssl_ == nullptr) return false;
  while (!plain.empty()) {
    const int n = SSL_write(ssl_, plain.data(), static_cast<int>(std::min<size_t>(plain.size(), 1 << 30)));
    if (n <= 0) {
      ERR_clear_error();
      return false;
    }
    plain.remove_prefix(static_cast<size_t>(n));
  }
  (void)SSL_shutdown(ssl_);
  ERR_clear_error();
  return true;
}

std::string AdminTls::takeCipher() {
  std::string out;
  if (out_ == nullptr) return out;
  char* data = nullptr;
  const long n = BIO_get_mem_data(out_, &data);
  if (n > 0) out.assign(data, static_cast<size_t>(n));
  (void)BIO_reset(out_);
  return out;
}

}  // namespace proxy
