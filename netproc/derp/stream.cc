#include "netproc/derp/stream.h"

#include "common/ipaddr.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace tw::derp {
namespace {

std::string ssl_error_text() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// Relayed packets arrive as a stream of small records: with read-ahead one read(2)
// pulls in up to this many bytes (several records) instead of two calls per record
// (header, then body).
constexpr long kTlsReadBuffer = 64 * 1024 + 1024;

void tune_ctx(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, kTlsReadBuffer);
}

IoResult errno_result(const char* what) {
  if (errno == EAGAIN || errno == EWOULDBLOCK) return {IoResult::kWantRead, 0, {}};
  return {IoResult::kError, 0, std::string(what) + ": " + std::strerror(errno)};
}

}  // namespace

Status make_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return make_error(std::string("fcntl O_NONBLOCK: ") + std::strerror(errno));
  return ok_status();
}

void set_tcp_nodelay(int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // not a TCP fd in some tests
}

PlainStream::~PlainStream() {
  if (fd_ >= 0) ::close(fd_);
}

IoResult PlainStream::read(MutableByteView buf) {
  ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
  if (n > 0) return {IoResult::kDone, static_cast<std::size_t>(n), {}};
  if (n == 0) return {IoResult::kClosed, 0, {}};
  if (errno == EINTR) return {IoResult::kWantRead, 0, {}};
  return errno_result("recv");
}

IoResult PlainStream::write(ByteView buf) {
  ssize_t n = ::send(fd_, buf.data(), buf.size(), MSG_NOSIGNAL);
  if (n >= 0) return {IoResult::kDone, static_cast<std::size_t>(n), {}};
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {IoResult::kWantWrite, 0, {}};
  return errno_result("send");
}

Result<SslCtxPtr> make_client_ctx(const TlsClientConfig& cfg) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return make_error("SSL_CTX_new: " + ssl_error_text());
  tune_ctx(ctx.get());
  if (cfg.insecure_for_tests) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    return ctx;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  int ok = (cfg.ca_file.empty() && cfg.ca_dir.empty())
               ? SSL_CTX_set_default_verify_paths(ctx.get())
               : SSL_CTX_load_verify_locations(ctx.get(), cfg.ca_file.empty() ? nullptr : cfg.ca_file.c_str(),
                                               cfg.ca_dir.empty() ? nullptr : cfg.ca_dir.c_str());
  if (ok != 1) return make_error("loading CA certificates: " + ssl_error_text());
  return ctx;
}

Result<SslCtxPtr> make_server_ctx(const std::string& cert_file, const std::string& key_file) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return make_error("SSL_CTX_new: " + ssl_error_text());
  tune_ctx(ctx.get());
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1)
    return make_error("TLS certificate " + cert_file + ": " + ssl_error_text());
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return make_error("TLS key " + key_file + ": " + ssl_error_text());
  return ctx;
}

Result<std::unique_ptr<TlsStream>> TlsStream::client(SSL_CTX* ctx, int fd, const TlsClientConfig& cfg) {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) return make_error("SSL_new: " + ssl_error_text());
  if (!cfg.verify_name.empty()) {
    // SNI only for names; an IP literal is checked as an IP SAN and not sent as SNI.
    bool is_ip = IpAddr::parse(cfg.verify_name).has_value();
    if (!is_ip) SSL_set_tlsext_host_name(ssl.get(), cfg.verify_name.c_str());
    if (!cfg.insecure_for_tests) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
      int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, cfg.verify_name.c_str())
                     : X509_VERIFY_PARAM_set1_host(param, cfg.verify_name.c_str(), 0);
      if (ok != 1) return make_error("TLS: cannot set verify name " + cfg.verify_name);
    }
  } else if (!cfg.insecure_for_tests) {
    return make_error("TLS: no name to verify the DERP server against");
  }
  SSL_set_connect_state(ssl.get());
  return std::unique_ptr<TlsStream>(new TlsStream(std::move(ssl), fd));
}

Result<std::unique_ptr<TlsStream>> TlsStream::server(SSL_CTX* ctx, int fd) {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) return make_error("SSL_new: " + ssl_error_text());
  SSL_set_accept_state(ssl.get());
  return std::unique_ptr<TlsStream>(new TlsStream(std::move(ssl), fd));
}

TlsStream::~TlsStream() {
  ssl_.reset();
  if (fd_ >= 0) ::close(fd_);
}

IoResult TlsStream::classify(int ret) {
  int err = SSL_get_error(ssl_.get(), ret);
  switch (err) {
    case SSL_ERROR_WANT_READ: return {IoResult::kWantRead, 0, {}};
    case SSL_ERROR_WANT_WRITE: return {IoResult::kWantWrite, 0, {}};
    case SSL_ERROR_ZERO_RETURN: return {IoResult::kClosed, 0, {}};
    case SSL_ERROR_SYSCALL: {
      ERR_clear_error();
      if (errno == 0) return {IoResult::kClosed, 0, {}};
      return {IoResult::kError, 0, std::string("TLS transport: ") + std::strerror(errno)};
    }
    default: return {IoResult::kError, 0, "TLS: " + ssl_error_text()};
  }
}

IoResult TlsStream::read(MutableByteView buf) {
  std::size_t n = 0;
  errno = 0;
  int r = SSL_read_ex(ssl_.get(), buf.data(), buf.size(), &n);
  if (r == 1) return {IoResult::kDone, n, {}};
  return classify(r);
}

IoResult TlsStream::write(ByteView buf) {
  std::size_t n = 0;
  errno = 0;
  int r = SSL_write_ex(ssl_.get(), buf.data(), buf.size(), &n);
  if (r == 1) return {IoResult::kDone, n, {}};
  return classify(r);
}

}  // namespace tw::derp
