// netproc speaks TLS to DERP over a TCP fd the broker dialled: the whole handshake and
// record exchange must run under the filter once the SSL_CTX exists. Here both ends
// run in the sandboxed child, over a stream socketpair made before the sandbox.
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "tests/unit/policy/sandbox_child.h"

namespace tw::policy {
namespace {

using testing::require;

// A self-signed P-256 certificate for the server end, made in memory.
bool add_self_signed_identity(SSL_CTX* ctx) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  bool ok = key != nullptr && cert != nullptr;
  if (ok) {
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("derp.test"), -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, key);
    ok = X509_sign(cert, key, EVP_sha256()) > 0 && SSL_CTX_use_certificate(ctx, cert) == 1 &&
         SSL_CTX_use_PrivateKey(ctx, key) == 1;
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  return ok;
}

TEST(NetprocSandbox, TlsHandshakeAndRecordsRunOverAnInheritedStream) {
  EXPECT_EXIT(
      {
        int sv[2];
        require(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
        SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
        require(server_ctx && client_ctx && add_self_signed_identity(server_ctx), "TLS contexts");
        SSL_CTX_set_min_proto_version(client_ctx, TLS1_3_VERSION);
        testing::enter_sandbox(ProcessRole::kNetproc);

        std::thread server([&] {
          SSL* s = SSL_new(server_ctx);
          SSL_set_fd(s, sv[1]);
          require(SSL_accept(s) == 1, "server handshake");
          char buf[16] = {};
          require(SSL_read(s, buf, sizeof buf) == 4 && std::memcmp(buf, "ping", 4) == 0, "server read");
          require(SSL_write(s, "pong", 4) == 4, "server write");
          SSL_shutdown(s);
          SSL_free(s);
        });
        SSL* c = SSL_new(client_ctx);
        SSL_set_fd(c, sv[0]);
        SSL_set_tlsext_host_name(c, "derp.test");
        require(SSL_connect(c) == 1, "client handshake");
        require(SSL_write(c, "ping", 4) == 4, "client write");
        char buf[16] = {};
        require(SSL_read(c, buf, sizeof buf) == 4 && std::memcmp(buf, "pong", 4) == 0, "client read");
        server.join();
        SSL_free(c);
        ::_exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace tw::policy
