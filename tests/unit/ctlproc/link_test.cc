// The broker <-> ctlproc link codecs and the netmap part reassembly.
#include "ctlproc/link.h"

#include <gtest/gtest.h>

#include "ctlproc/netmap_json.h"

namespace tw::ctl {
namespace {

TEST(LinkTest, SetupRoundTripsAndBadBodiesAreRefused) {
  crypto_init();
  CtlSetup s;
  s.machine_private = random_clamped_private();
  s.node_public = NodePrivate::generate().public_key();
  s.authority = "198.18.0.1:8080";
  s.auth_key = "tskey-x";
  s.hostname = "h";
  s.home_derp = 7;
  s.endpoints = {{*IpPort::parse("198.18.0.2:41641"), EndpointType::kStun}};
  s.routable_ips = {*IpPrefix::parse("0.0.0.0/0"), *IpPrefix::parse("::/0")};
  Bytes d = encode_link(ToCtlproc(s));
  auto back = decode_to_ctlproc(d, 0);
  ASSERT_TRUE(back.ok()) << back.error();
  const auto& got = std::get<CtlSetup>(*back);
  EXPECT_EQ(got.machine_private, s.machine_private);
  EXPECT_EQ(got.authority, s.authority);
  EXPECT_EQ(got.endpoints.size(), 1u);
  EXPECT_EQ(got.endpoints[0].type, EndpointType::kStun);
  EXPECT_EQ(got.routable_ips, s.routable_ips);
  EXPECT_FALSE(decode_to_ctlproc(d, 1).ok()) << "an fd on CtlSetup";
  Bytes cut(d.begin(), d.end() - 1);
  EXPECT_FALSE(decode_to_ctlproc(cut, 0).ok());
  Bytes wrong = d;
  wrong[0] ^= 1;
  EXPECT_FALSE(decode_to_ctlproc(wrong, 0).ok());
  EXPECT_FALSE(decode_to_broker(d, 0).ok()) << "a broker-bound decoder refuses ctlproc types";
  auto conn = decode_to_ctlproc(encode_link(ToCtlproc(CtlConn{ConnPurpose::kSession})), 0);
  EXPECT_FALSE(conn.ok()) << "CtlConn without its fd";
}

TEST(LinkTest, StatusCarriesKeyExpiry) {
  CtlStatus s;
  s.state = "connected";
  s.maps = 3;
  s.key_expiry = "2026-12-04T18:00:00Z";
  s.key_expired = true;
  s.expired_peers = 2;
  Bytes d = encode_link(ToBroker(s));
  auto back = decode_to_broker(d, 0);
  ASSERT_TRUE(back.ok()) << back.error();
  const auto& got = std::get<CtlStatus>(*back);
  EXPECT_EQ(got.key_expiry, s.key_expiry);
  EXPECT_TRUE(got.key_expired);
  EXPECT_EQ(got.expired_peers, 2u);
  Bytes bad = d;
  bad[bad.size() - 9] = 2;  // key_expired must be 0 or 1
  EXPECT_FALSE(decode_to_broker(bad, 0).ok());
}

TEST(LinkTest, NetmapsSplitAndReassembleInOrderOnly) {
  Netmap nm;
  nm.self.name = "self-1";
  nm.self.node_key = NodePrivate::generate().public_key();
  for (int i = 0; i < 3000; ++i) {
    NetmapPeer p;
    p.name = "peer-" + std::to_string(i);
    p.node_key = NodePrivate::generate().public_key();
    p.disco_key = DiscoPrivate::generate().public_key();
    p.addresses = {*IpPrefix::parse("100.64." + std::to_string(i / 250) + "." +
                                    std::to_string(i % 250 + 1) + "/32")};
    p.allowed_ips = p.addresses;
    nm.peers.push_back(p);
  }
  const std::string json = netmap_to_json(nm);
  auto parts = split_netmap(1, json);
  ASSERT_GT(parts.size(), 2u);
  NetmapAssembler a;
  std::optional<Netmap> done;
  for (const auto& p : parts) {
    Bytes d = encode_link(ToBroker(p));
    ASSERT_LE(d.size(), kMaxLinkDatagram);
    auto m = decode_to_broker(d, 0);
    ASSERT_TRUE(m.ok()) << m.error();
    auto r = a.add(std::get<CtlNetmapPart>(*m));
    ASSERT_TRUE(r.ok()) << r.error();
    if (r->has_value()) {
      auto nm = parse_netmap(**r, "control");
      ASSERT_TRUE(nm.ok()) << nm.error();
      done = std::move(*nm);
    }
  }
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->peers.size(), 3000u);
  NetmapAssembler b;
  ASSERT_TRUE(b.add(parts[0]).ok());
  EXPECT_FALSE(b.add(parts[2]).ok()) << "a skipped part";
}

}  // namespace
}  // namespace tw::ctl
