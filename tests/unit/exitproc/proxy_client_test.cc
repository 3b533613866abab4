// The SOCKS5 and HTTP CONNECT client handshakes, byte for byte against the RFCs.
#include "exitproc/proxy_client.h"

#include <gtest/gtest.h>
#include <sodium.h>

namespace tw::exitproc {
namespace {

Bytes b(std::initializer_list<int> v) {
  Bytes o;
  for (int x : v) o.push_back(static_cast<std::uint8_t>(x));
  return o;
}
Bytes s(std::string_view t) { return Bytes(t.begin(), t.end()); }
std::string str(const Bytes& v) { return std::string(v.begin(), v.end()); }

ConnectTarget ip_target() {
  return ConnectTarget{std::array<std::uint8_t, 4>{198, 18, 7, 80}, "", 8080};
}
ConnectTarget name_target() { return ConnectTarget{std::nullopt, "example.test", 443}; }

std::unique_ptr<ProxyHandshake> make(ProxyKind k, const ConnectTarget& t, const Credentials& c) {
  auto h = make_handshake(k, t, c);
  EXPECT_TRUE(h.ok()) << (h.ok() ? "" : h.error());
  return std::move(*h);
}

TEST(Socks5Test, UsernamePasswordThenConnectToIpv4) {
  auto h = make(ProxyKind::kSocks5, ip_target(), {"alice", "pw"});
  EXPECT_EQ(h->take_output(), b({5, 1, 2}));
  EXPECT_EQ(h->feed(b({5, 2})), 2u);
  EXPECT_EQ(h->take_output(), b({1, 5, 'a', 'l', 'i', 'c', 'e', 2, 'p', 'w'}));
  EXPECT_EQ(h->feed(b({1, 0})), 2u);
  EXPECT_EQ(h->take_output(), b({5, 1, 0, 1, 198, 18, 7, 80, 0x1f, 0x90}));
  // The reply arrives with the first tunnel bytes; only the reply is consumed.
  Bytes reply = b({5, 0, 0, 1, 198, 18, 5, 2, 0x12, 0x34, 'H', 'I'});
  EXPECT_EQ(h->feed(reply), 10u);
  EXPECT_EQ(h->state(), HandshakeState::kDone);
  EXPECT_EQ(h->feed(b({'x'})), 0u) << "nothing consumed after the handshake";
}

TEST(Socks5Test, NoAuthConnectToDomainAndEveryReplyAddressType) {
  for (const Bytes& reply :
       {b({5, 0, 0, 1, 1, 2, 3, 4, 0, 80}),
        b({5, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 80}),
        b({5, 0, 0, 3, 3, 'a', 'b', 'c', 0, 80})}) {
    auto h = make(ProxyKind::kSocks5, name_target(), {});
    EXPECT_EQ(h->take_output(), b({5, 1, 0}));
    EXPECT_EQ(h->feed(b({5, 0})), 2u);
    Bytes want = b({5, 1, 0, 3, 12});
    for (char c : std::string("example.test")) want.push_back(static_cast<std::uint8_t>(c));
    want.push_back(1);
    want.push_back(0xbb);
    EXPECT_EQ(h->take_output(), want);
    // One byte at a time: the parser never over-reads.
    std::size_t used = 0;
    for (std::uint8_t byte : reply) used += h->feed(ByteView(&byte, 1));
    EXPECT_EQ(used, reply.size());
    EXPECT_EQ(h->state(), HandshakeState::kDone);
  }
}

TEST(Socks5Test, RefusalsAreClassified) {
  {
    auto h = make(ProxyKind::kSocks5, ip_target(), {"alice", "wrong"});
    h->feed(b({5, 2}));
    h->feed(b({1, 1}));
    EXPECT_EQ(h->state(), HandshakeState::kFailed);
    EXPECT_EQ(h->failure().kind, Refusal::kAuthRefused);
    EXPECT_EQ(h->failure().detail.find("wrong"), std::string::npos) << "no credentials in errors";
  }
  {
    auto h = make(ProxyKind::kSocks5, ip_target(), {});
    h->feed(b({5, 0xff}));
    EXPECT_EQ(h->failure().kind, Refusal::kAuthRefused);
  }
  {
    auto h = make(ProxyKind::kSocks5, ip_target(), {});
    h->feed(b({5, 2}));  // username/password chosen though we offered none
    EXPECT_EQ(h->failure().kind, Refusal::kProxyHandshake);
  }
  {
    auto h = make(ProxyKind::kSocks5, ip_target(), {});
    h->feed(b({5, 0}));
    h->feed(b({5, 5}));  // refused after two bytes, the proxy may close now
    EXPECT_EQ(h->failure().kind, Refusal::kConnectRefused);
    EXPECT_NE(h->failure().detail.find("connection refused"), std::string::npos);
  }
  for (const Bytes& bad : {b({4, 0}), b({5, 0, 1}), b({5, 0, 0, 2}), b({5, 0, 0, 3, 0})}) {
    auto h = make(ProxyKind::kSocks5, ip_target(), {});
    h->feed(b({5, 0}));
    h->feed(bad);
    EXPECT_EQ(h->state(), HandshakeState::kFailed);
    EXPECT_EQ(h->failure().kind, Refusal::kProxyHandshake);
  }
  {
    auto h = make(ProxyKind::kSocks5, ip_target(), {});
    h->feed(b({5, 0, 5, 0, 0, 1, 1, 2}));  // truncated reply, then EOF
    EXPECT_EQ(h->state(), HandshakeState::kRunning);
    h->on_eof();
    EXPECT_EQ(h->failure().kind, Refusal::kProxyHandshake);
  }
}

TEST(HttpConnectTest, RequestCarriesBasicAuthAndTargetAuthority) {
  auto h = make(ProxyKind::kHttpConnect, ip_target(), {"alice", "open sesame"});
  // base64("alice:open sesame") per RFC 4648.
  EXPECT_EQ(str(h->take_output()),
            "CONNECT 198.18.7.80:8080 HTTP/1.1\r\nHost: 198.18.7.80:8080\r\n"
            "Proxy-Authorization: Basic YWxpY2U6b3BlbiBzZXNhbWU=\r\n\r\n");
  const std::string reply =
      "HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy\r\n\r\nDATA";
  EXPECT_EQ(h->feed(s(reply)), reply.size() - 4) << "the tunnel's first bytes are left";
  EXPECT_EQ(h->state(), HandshakeState::kDone);
  auto n = make(ProxyKind::kHttpConnect, name_target(), {});
  EXPECT_EQ(str(n->take_output()),
            "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n");
  n->feed(s("HTTP/1.1 204\r\n\r\n"));
  EXPECT_EQ(n->state(), HandshakeState::kDone) << "any 2xx, reason phrase optional";
}

TEST(HttpConnectTest, StatusClassesAndMalformedReplies) {
  auto run = [](std::string_view reply) {
    auto h = make(ProxyKind::kHttpConnect, ip_target(), {});
    h->take_output();
    for (char c : reply) h->feed(b({static_cast<unsigned char>(c)}));
    return h;
  };
  EXPECT_EQ(run("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
                ->failure()
                .kind,
            Refusal::kAuthRefused);
  EXPECT_EQ(run("HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"Tinyproxy\"\r\n\r\n")
                ->failure()
                .kind,
            Refusal::kAuthRefused)
      << "tinyproxy's answer to bad CONNECT credentials";
  EXPECT_EQ(run("HTTP/1.1 403 Forbidden\r\n\r\n")->failure().kind, Refusal::kConnectRefused);
  EXPECT_EQ(run("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")->failure().kind,
            Refusal::kConnectRefused);
  for (std::string_view bad :
       {"HTTP/2.0 200 OK\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty\r\n\r\n", "HTTP/1.1 200 OK\r\nA\x01: b\r\n\r\n",
        "HTTP/1.1 200 OK\nX: y\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 099 x\r\n\r\n"}) {
    auto h = run(bad);
    EXPECT_EQ(h->state(), HandshakeState::kFailed) << bad;
    EXPECT_EQ(h->failure().kind, Refusal::kProxyHandshake) << bad;
  }
  auto h = make(ProxyKind::kHttpConnect, ip_target(), {});
  std::string big = "HTTP/1.1 200 OK\r\nX: " + std::string(kMaxHttpReplyHeader, 'a');
  const std::size_t used = h->feed(s(big));
  EXPECT_EQ(h->failure().kind, Refusal::kProxyHandshake);
  EXPECT_EQ(used, kMaxHttpReplyHeader + 1) << "the bound stops reading";
}

TEST(ProxyClientTest, UnencodableTargetsAndCredentialsAreRefused) {
  EXPECT_FALSE(make_handshake(ProxyKind::kSocks5, ConnectTarget{std::nullopt, "", 80}, {}).ok());
  EXPECT_FALSE(
      make_handshake(ProxyKind::kSocks5, ConnectTarget{std::nullopt, std::string(256, 'a'), 80}, {})
          .ok());
  EXPECT_FALSE(
      make_handshake(ProxyKind::kSocks5, ConnectTarget{std::nullopt, "a\r\nb", 80}, {}).ok());
  EXPECT_FALSE(
      make_handshake(ProxyKind::kHttpConnect, ConnectTarget{std::nullopt, "a b", 80}, {}).ok());
  EXPECT_FALSE(make_handshake(
                   ProxyKind::kSocks5,
                   ip_target().port == 0 ? ip_target() : ConnectTarget{ip_target().ipv4, "", 0}, {})
                   .ok());
  EXPECT_FALSE(make_handshake(ProxyKind::kSocks5, ip_target(), {std::string(256, 'u'), "p"}).ok());
  EXPECT_FALSE(make_handshake(ProxyKind::kHttpConnect, ip_target(), {"a:b", "p"}).ok());
  EXPECT_TRUE(make_handshake(ProxyKind::kSocks5, ip_target(), {"a:b", "p"}).ok());
  EXPECT_FALSE(make_handshake(ProxyKind::kHttpConnect, ip_target(), {"a", "p\r\nX: y"}).ok());
}

}  // namespace
}  // namespace tw::exitproc
