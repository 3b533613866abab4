// A byte stream over an already connected, non-blocking TCP fd: plain, or TLS with
// OpenSSL 3 (client or server role). Calls never block; they report whether they
// need the fd readable or writable before progress is possible. The fd stays owned by
// the caller of `adopt` (the Stream closes it on destruction).
#pragma once

#include <memory>
#include <string>

#include <openssl/ssl.h>

#include "common/bytes.h"
#include "common/result.h"

namespace tw::derp {

struct IoResult {
  enum Kind { kDone, kWantRead, kWantWrite, kClosed, kError } kind = kDone;
  std::size_t n = 0;  // bytes moved when kDone
  std::string error;
};

class Stream {
 public:
  virtual ~Stream() = default;
  virtual IoResult read(MutableByteView buf) = 0;
  virtual IoResult write(ByteView buf) = 0;
  virtual int fd() const = 0;
};

// Owns a socket fd and closes it.
class PlainStream final : public Stream {
 public:
  explicit PlainStream(int fd) : fd_(fd) {}
  ~PlainStream() override;
  PlainStream(const PlainStream&) = delete;
  PlainStream& operator=(const PlainStream&) = delete;
  IoResult read(MutableByteView buf) override;
  IoResult write(ByteView buf) override;
  int fd() const override { return fd_; }

 private:
  int fd_;
};

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

struct TlsClientConfig {
  std::string verify_name;  // DERPNode.CertName, else HostName
  std::string ca_file;      // PEM bundle; empty with ca_dir empty → system default paths
  std::string ca_dir;
  bool insecure_for_tests = false;  // no certificate or name verification at all
};

Result<SslCtxPtr> make_client_ctx(const TlsClientConfig& cfg);
Result<SslCtxPtr> make_server_ctx(const std::string& cert_file, const std::string& key_file);

class TlsStream final : public Stream {
 public:
  // The handshake runs inside the first reads/writes. `verify_name` sets SNI and the
  // name checked with X509_VERIFY_PARAM_set1_host (client only, unless insecure).
  static Result<std::unique_ptr<TlsStream>> client(SSL_CTX* ctx, int fd, const TlsClientConfig& cfg);
  static Result<std::unique_ptr<TlsStream>> server(SSL_CTX* ctx, int fd);
  ~TlsStream() override;
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;
  IoResult read(MutableByteView buf) override;
  IoResult write(ByteView buf) override;
  int fd() const override { return fd_; }

 private:
  TlsStream(SslPtr ssl, int fd) : ssl_(std::move(ssl)), fd_(fd) {}
  IoResult classify(int ret);
  SslPtr ssl_;
  int fd_;
};

// Sets O_NONBLOCK (and TCP_NODELAY where it applies).
// O_NONBLOCK only: netproc's seccomp filter forbids setsockopt, so the broker sets
// TCP_NODELAY on the fds it dials; servers call set_tcp_nodelay themselves.
Status make_nonblocking(int fd);
void set_tcp_nodelay(int fd);

}  // namespace tw::derp
