// The DERP client against the real tailwarden-derper on loopback: handshakes over
// TLS (insecure and verified) and plain HTTP, relaying with the right source key,
// PeerGone, server pings, fast start, STUN.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include <algorithm>
#include <fstream>

#include "netproc/derp/frame.h"
#include "netproc/derp/http_upgrade.h"
#include "netproc/stun/stun.h"
#include "tests/integration/derp/derper_harness.h"

namespace tw::derptest {
namespace {

using derp::PeerGoneReason;

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes disco_like(std::size_t n = 80) {
  Bytes d(n, 0x42);
  const std::uint8_t magic[] = {0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac};
  std::copy(std::begin(magic), std::end(magic), d.begin());
  return d;
}

class DerpRelay : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { crypto_init(); }
  void SetUp() override { ASSERT_TRUE(make_test_certs(dir_)) << "openssl failed"; }
  std::vector<std::string> tls_args() const {
    return {"--tls-cert", dir_.file("leaf.pem"), "--tls-key", dir_.file("leaf.key")};
  }
  // Two ready clients on the relay.
  void connect_pair(std::uint16_t port, const derp::DerpClientConfig& cfg) {
    a_ = std::make_unique<TestClient>(port, cfg);
    b_ = std::make_unique<TestClient>(port, cfg);
    ASSERT_TRUE(a_->started()) << a_->error();
    ASSERT_TRUE(b_->started()) << b_->error();
    ASSERT_TRUE(pump_until({a_.get(), b_.get()}, [&] { return a_->ready && b_->ready; }))
        << a_->error() << " / " << b_->error();
  }
  void expect_relay_both_ways() {
    ASSERT_TRUE(a_->client().send_packet(b_->key(), bytes_of("from a")).ok());
    ASSERT_TRUE(b_->client().send_packet(a_->key(), bytes_of("from b")).ok());
    ASSERT_TRUE(pump_until({a_.get(), b_.get()}, [&] { return !a_->packets.empty() && !b_->packets.empty(); }));
    EXPECT_EQ(b_->packets[0].src, a_->key());
    EXPECT_EQ(b_->packets[0].packet, bytes_of("from a"));
    EXPECT_EQ(a_->packets[0].src, b_->key());
    EXPECT_EQ(a_->packets[0].packet, bytes_of("from b"));
  }

  TempDir dir_;
  std::unique_ptr<TestClient> a_, b_;
};

TEST_F(DerpRelay, TlsInsecureForTestsHandshakesAndRelaysBothWaysWithSourceKeys) {
  Derper d(dir_, tls_args());
  ASSERT_TRUE(d.started());
  connect_pair(d.port(), insecure_tls_config());
  expect_relay_both_ways();
}

TEST_F(DerpRelay, TlsVerifiedAgainstTestCaAndHostNameRelays) {
  Derper d(dir_, tls_args());
  ASSERT_TRUE(d.started());
  derp::DerpClientConfig cfg;
  cfg.host_name = "derp.test";
  cfg.tls.ca_file = dir_.file("ca.pem");
  connect_pair(d.port(), cfg);
  expect_relay_both_ways();
}

TEST_F(DerpRelay, CertNameOverridesHostNameForVerification) {
  Derper d(dir_, tls_args());
  ASSERT_TRUE(d.started());
  derp::DerpClientConfig cfg;
  cfg.host_name = "127.0.0.1";
  cfg.cert_name = "derp.test";
  cfg.tls.ca_file = dir_.file("ca.pem");
  TestClient c(d.port(), cfg);
  ASSERT_TRUE(c.started()) << c.error();
  EXPECT_TRUE(pump_until({&c}, [&] { return c.ready || c.failed(); }));
  EXPECT_TRUE(c.ready) << c.error();
}

TEST_F(DerpRelay, TlsWithWrongNameOrUnknownCaIsRefused) {
  Derper d(dir_, tls_args());
  ASSERT_TRUE(d.started());
  derp::DerpClientConfig wrong_name;
  wrong_name.host_name = "other.test";
  wrong_name.tls.ca_file = dir_.file("ca.pem");
  TestClient c1(d.port(), wrong_name);  // may fail inside start() already: loopback is fast
  pump_until({&c1}, [&] { return c1.ready || c1.failed(); });
  EXPECT_FALSE(c1.ready);
  EXPECT_NE(c1.error().find("certificate verify failed"), std::string::npos) << c1.error();

  derp::DerpClientConfig system_cas;  // the test CA is not in the system store
  system_cas.host_name = "derp.test";
  TestClient c2(d.port(), system_cas);
  pump_until({&c2}, [&] { return c2.ready || c2.failed(); });
  EXPECT_FALSE(c2.ready);
  EXPECT_NE(c2.error().find("certificate verify failed"), std::string::npos) << c2.error();
}

TEST_F(DerpRelay, PlainHttpRelaysBothWays) {
  Derper d(dir_, {"--plain-http"});
  ASSERT_TRUE(d.started());
  connect_pair(d.port(), plain_config());
  expect_relay_both_ways();
}

// A receiver that stops reading loses the oldest packets once its socket and its
// 32-packet queue at the relay are full, and still gets the newest ones in order
// (Tailscale drops from the head of the queue).
TEST_F(DerpRelay, StalledReceiverLosesOldestPacketsButGetsTheNewest) {
  Derper d(dir_, {"--plain-http", "--write-timeout-ms", "20000"});
  ASSERT_TRUE(d.started());
  connect_pair(d.port(), plain_config());
  constexpr std::uint32_t kPackets = 20000;  // 28 MB: far beyond every socket buffer towards B
  constexpr std::uint32_t kQueue = 32;
  Bytes pkt(1400, 0x11);
  auto a_drained = [&] { return !a_->client().wants_write(); };
  for (std::uint32_t i = 0; i < kPackets; ++i) {
    store_be32(pkt.data(), i);
    ASSERT_TRUE(a_->client().send_packet(b_->key(), pkt).ok());
    if (i % 64 == 63) {
      ASSERT_TRUE(pump_until({a_.get()}, a_drained)) << a_->error();
    }
  }
  ASSERT_TRUE(pump_until({a_.get()}, a_drained)) << a_->error();
  pump_until({a_.get()}, [] { return false; }, 500);  // the relay reads the rest while B still stalls

  auto last_arrived = [&] {
    return !b_->packets.empty() && load_be32(b_->packets.back().packet.data()) == kPackets - 1;
  };
  ASSERT_TRUE(pump_until({b_.get()}, last_arrived, 10000)) << b_->error();
  std::vector<std::uint32_t> seqs;
  for (const auto& p : b_->packets) seqs.push_back(load_be32(p.packet.data()));
  EXPECT_LT(seqs.size(), kPackets - kQueue);  // packets were dropped...
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_EQ(std::adjacent_find(seqs.begin(), seqs.end()), seqs.end());
  ASSERT_GE(seqs.size(), kQueue);  // ...but never the newest: the queue's 32 all arrive
  for (std::uint32_t k = 0; k < kQueue; ++k) EXPECT_EQ(seqs[seqs.size() - kQueue + k], kPackets - kQueue + k);
}

TEST_F(DerpRelay, DiscoToAbsentPeerGetsNotHereButOtherPacketsGetNothing) {
  Derper d(dir_, {"--plain-http"});
  ASSERT_TRUE(d.started());
  connect_pair(d.port(), plain_config());
  NodePublic absent = NodePrivate::generate().public_key();
  ASSERT_TRUE(a_->client().send_packet(absent, Bytes(100, 0x01)).ok());  // WireGuard-ish
  ASSERT_TRUE(a_->client().send_packet(absent, disco_like()).ok());
  ASSERT_TRUE(pump_until({a_.get()}, [&] { return !a_->gone.empty(); }));
  pump_until({a_.get()}, [] { return false; }, 200);  // anything more would arrive now
  ASSERT_EQ(a_->gone.size(), 1u);
  EXPECT_EQ(a_->gone[0].peer, absent);
  EXPECT_EQ(a_->gone[0].reason, PeerGoneReason::kNotHere);
}

TEST_F(DerpRelay, NotHereRepliesAreLimitedToABurstOfThree) {
  Derper d(dir_, {"--plain-http"});
  ASSERT_TRUE(d.started());
  connect_pair(d.port(), plain_config());
  NodePublic absent = NodePrivate::generate().public_key();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(a_->client().send_packet(absent, disco_like()).ok());
  pump_until({a_.get()}, [] { return false; }, 300);
  EXPECT_EQ(a_->gone.size(), 3u);
}

TEST_F(DerpRelay, ReceiverIsToldWhenTheSenderDisconnects) {
  Derper d(dir_, tls_args());
  ASSERT_TRUE(d.started());
  connect_pair(d.port(), insecure_tls_config());
  ASSERT_TRUE(a_->client().send_packet(b_->key(), bytes_of("hi")).ok());
  ASSERT_TRUE(pump_until({a_.get(), b_.get()}, [&] { return !b_->packets.empty(); }));
  NodePublic a_key = a_->key();
  a_->close();
  ASSERT_TRUE(pump_until({b_.get()}, [&] { return !b_->gone.empty(); }));
  EXPECT_EQ(b_->gone[0].peer, a_key);
  EXPECT_EQ(b_->gone[0].reason, PeerGoneReason::kDisconnected);
}

TEST_F(DerpRelay, ClientAnswersServerPings) {
  Derper d(dir_, {"--plain-http", "--ping-interval-ms", "50"});
  ASSERT_TRUE(d.started());
  TestClient c(d.port(), plain_config());
  ASSERT_TRUE(c.started()) << c.error();
  std::string want = "pong " + c.key().to_string();
  EXPECT_TRUE(pump_until({&c}, [&] { return d.output().find(want) != std::string::npos; }));
}

TEST_F(DerpRelay, HomeRegionClientTellsTheServerItIsPreferred) {
  Derper d(dir_, {"--plain-http"});
  ASSERT_TRUE(d.started());
  auto cfg = plain_config();
  cfg.preferred = true;
  TestClient home(d.port(), cfg);
  TestClient other(d.port(), plain_config());
  ASSERT_TRUE(pump_until({&home, &other}, [&] { return home.ready && other.ready; }));
  std::string want = "preferred " + home.key().to_string();
  EXPECT_TRUE(pump_until({&home}, [&] { return d.output().find(want) != std::string::npos; })) << d.output();
  EXPECT_EQ(d.output().find("preferred " + other.key().to_string()), std::string::npos);
}

TEST_F(DerpRelay, ClientGivesUpAfter120sWithoutInput) {
  Derper d(dir_, {"--plain-http"});
  ASSERT_TRUE(d.started());
  TestClient c(d.port(), plain_config());
  ASSERT_TRUE(pump_until({&c}, [&] { return c.ready; }));
  TimePoint now = Clock::now();
  EXPECT_TRUE(c.client().check_timeout(now + std::chrono::seconds(100)).ok());
  EXPECT_FALSE(c.client().check_timeout(now + std::chrono::seconds(121)).ok());
}

TEST_F(DerpRelay, ServerKeepalivesPushTheReadDeadlineForward) {
  Derper d(dir_, {"--plain-http", "--keepalive-ms", "100"});
  ASSERT_TRUE(d.started());
  TestClient c(d.port(), plain_config());
  ASSERT_TRUE(pump_until({&c}, [&] { return c.ready; }));
  TimePoint first = c.client().deadline();
  // Nothing is sent either way; only keepalives can move the deadline.
  EXPECT_TRUE(pump_until({&c}, [&] { return c.client().deadline() > first + std::chrono::milliseconds(150); }, 3000));
  EXPECT_FALSE(c.failed()) << c.error();
}

// Raw protocol checks of the server, without our client.
Bytes read_some(int fd, std::size_t want) {
  Bytes got;
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::uint8_t buf[4096];
  while (got.size() < want) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.insert(got.end(), buf, buf + n);
  }
  return got;
}

TEST_F(DerpRelay, FastStartGetsFramesWithoutAnHttpResponse) {
  std::ofstream(dir_.file("server.key")) << "privkey:" << std::string(64, '5') << "\n";
  Derper d(dir_, {"--plain-http", "--key-file", dir_.file("server.key")});
  ASSERT_TRUE(d.started());
  NodePrivate server_priv = *NodePrivate::parse("privkey:" + std::string(64, '5'));
  NodePrivate me = NodePrivate::generate();
  std::string json = derp::client_info_json();
  Bytes sealed(24 + crypto_box_MACBYTES + json.size());
  randombytes_buf(sealed.data(), 24);
  ASSERT_EQ(crypto_box_easy(sealed.data() + 24, reinterpret_cast<const std::uint8_t*>(json.data()), json.size(),
                            sealed.data(), server_priv.public_key().data(), me.data()),
            0);
  std::string req = "GET /derp HTTP/1.1\r\nHost: x\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\n\r\n";
  Bytes wire = bytes_of(req);
  derp::append_frame(wire, derp::FrameType::kClientInfo, derp::client_info_payload(me.public_key(), sealed));
  int fd = connect_loopback(d.port());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, wire.data(), wire.size(), 0), static_cast<ssize_t>(wire.size()));
  Bytes got = read_some(fd, 45 + 5 + 24 + 16);
  ::close(fd);
  derp::FrameReader r;
  r.feed(got);
  auto f1 = r.next();
  ASSERT_TRUE(f1.ok() && f1->has_value()) << "no frame; got: " << std::string(got.begin(), got.end());
  EXPECT_EQ((*f1)->type, 0x01);
  auto sk = derp::parse_server_key((*f1)->payload);
  ASSERT_TRUE(sk.ok());
  EXPECT_EQ(sk->key, server_priv.public_key());
  auto f2 = r.next();
  ASSERT_TRUE(f2.ok() && f2->has_value());
  EXPECT_EQ((*f2)->type, 0x03);  // ServerInfo: the handshake completed
}

TEST_F(DerpRelay, RequestWithoutUpgradeGets426) {
  Derper d(dir_, {"--plain-http"});
  ASSERT_TRUE(d.started());
  int fd = connect_loopback(d.port());
  ASSERT_GE(fd, 0);
  std::string req = "GET /derp HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_GT(::send(fd, req.data(), req.size(), 0), 0);
  Bytes got = read_some(fd, 1 << 20);
  ::close(fd);
  std::string text(got.begin(), got.end());
  EXPECT_EQ(text.rfind("HTTP/1.1 426", 0), 0u) << text;
  EXPECT_NE(text.find("DERP requires connection upgrade"), std::string::npos);
}

TEST_F(DerpRelay, StunPortAnswersTailscaleBindingRequestWithOurAddress) {
  Derper d(dir_, {"--plain-http", "--stun-port", "0"});
  ASSERT_TRUE(d.started());
  ASSERT_NE(d.stun_port(), 0);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local), 0);
  socklen_t len = sizeof local;
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  sockaddr_in to = local;
  to.sin_port = htons(d.stun_port());
  auto txid = stun::new_txid();
  auto req = stun::binding_request(txid);
  ASSERT_EQ(::sendto(fd, req.data(), req.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 40);
  Bytes got = read_some(fd, 1);
  ::close(fd);
  auto resp = stun::parse_binding_response(got);
  ASSERT_TRUE(resp.ok()) << resp.error();
  EXPECT_EQ(resp->txid, txid);
  EXPECT_EQ(resp->mapped, (IpPort{IpAddr::v4(127, 0, 0, 1), ntohs(local.sin_port)}));
}

}  // namespace
}  // namespace tw::derptest
