// Two engines handshaking in memory with a fake clock: sessions, data both ways,
// rotation, replay defences and the cookie mechanism.
#include <gtest/gtest.h>

#include "tests/unit/wireguard/wg_test_util.h"

namespace tw::wg::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class Handshake : public TwoNodes {};

TEST_F(Handshake, FirstPacketTriggersInitiationAndIsDeliveredAfterHandshake) {
  send_a_to_b(200);
  auto out = take(a.out.to_network);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(message_type(out[0].bytes), 1u);
  EXPECT_EQ(out[0].bytes.size(), kInitiationSize);
  EXPECT_EQ(out[0].peer, 2u);
  deliver(a, out[0].bytes);
  pump();
  ASSERT_EQ(b.tun.size(), 1u);
  EXPECT_EQ(b.tun[0].peer, 1u);
  EXPECT_EQ(b.tun[0].bytes, make_ipv4(ip_a, ip_b, 200));
  EXPECT_EQ(a.dev.counters().handshake_initiations_sent, 1u);
  EXPECT_EQ(b.dev.counters().handshake_initiations_received, 1u);
  EXPECT_EQ(a.dev.counters().handshake_responses_received, 1u);
  EXPECT_TRUE(a.dev.peer_counters(2)->last_handshake.has_value());
  EXPECT_TRUE(b.dev.peer_counters(1)->last_handshake.has_value());
}

TEST_F(Handshake, DataFlowsBothWaysWithCounters) {
  establish();
  for (int i = 0; i < 5; ++i) send_b_to_a(300 + i);
  for (int i = 0; i < 3; ++i) send_a_to_b(50);
  pump();
  EXPECT_EQ(a.tun.size(), 5u);
  EXPECT_EQ(b.tun.size(), 4u);  // 1 from establish + 3
  EXPECT_EQ(a.tun[4].bytes, make_ipv4(ip_b, ip_a, 304));
  EXPECT_EQ(b.dev.peer_counters(1)->tx_packets, 5u);
  EXPECT_EQ(a.dev.peer_counters(2)->rx_packets, 5u);
  EXPECT_EQ(a.dev.peer_counters(2)->rx_bytes, 5u * 320 + 10);
}

TEST_F(Handshake, Ipv6PacketsRouteAndPassTheSourceCheck) {
  const IpAddr v6_a = *IpAddr::parse("fd7a:115c:a1e0::1");
  const IpAddr v6_b = *IpAddr::parse("fd7a:115c:a1e0::2");
  a.dev.set_peers({PeerConfig{2, b.key.public_key(),
                              {*IpPrefix::parse("100.64.0.2/32"), *IpPrefix::parse("fd7a:115c:a1e0::2/128")},
                              {}}});
  b.dev.set_peers({PeerConfig{1, a.key.public_key(),
                              {*IpPrefix::parse("100.64.0.1/32"), *IpPrefix::parse("fd7a:115c:a1e0::1/128")},
                              {}}});
  a.dev.on_tun_packet(make_ipv6(v6_a, v6_b, 77), now(), a.out);
  a.dev.on_tun_packet(make_ipv6(*IpAddr::parse("fd7a:115c:a1e0::9"), v6_b, 10), now(), a.out);
  pump();
  ASSERT_EQ(b.tun.size(), 1u);
  EXPECT_EQ(b.tun[0].bytes, make_ipv6(v6_a, v6_b, 77));
  EXPECT_EQ(b.dev.counters().allowedips_drops, 1u);
}

TEST_F(Handshake, TruncatedInnerPacketIsDropped) {
  establish();
  Bytes p = make_ipv4(ip_a, ip_b, 10);
  store_be16(p.data() + 2, 500);  // claims more than it carries
  a.dev.on_tun_packet(p, now(), a.out);
  pump();
  EXPECT_EQ(b.tun.size(), 1u);
  EXPECT_EQ(b.dev.counters().invalid_inner_packets, 1u);
}

TEST_F(Handshake, TransportCiphertextIsPaddedToSixteen) {
  establish();
  send_a_to_b(1);  // 21-byte IP packet -> 32 bytes padded
  auto out = take(a.out.to_network);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes.size(), kTransportOverhead + 32);
  deliver(a, out[0].bytes);
  EXPECT_EQ(b.tun.back().bytes.size(), 21u);  // trimmed back to the IP length
}

TEST_F(Handshake, ResponderHoldsDataUntilInitiatorConfirmsSession) {
  send_a_to_b();
  deliver(a, take(a.out.to_network)[0].bytes);  // b now has a `next` session only
  EXPECT_FALSE(b.dev.has_session(1, now()));
  send_b_to_a();
  auto from_b = take(b.out.to_network);
  // Handshake messages only (the response, and b's own initiation as the kernel
  // does when it has data but no session); the data itself waits.
  ASSERT_FALSE(from_b.empty());
  for (auto& c : from_b) {
    EXPECT_NE(message_type(c.bytes), 4u);
    deliver(b, c.bytes);
  }
  pump();  // a sends its staged packet, which confirms; b flushes its staged packet
  EXPECT_TRUE(b.dev.has_session(1, now()));
  ASSERT_EQ(a.tun.size(), 1u);
  EXPECT_EQ(a.tun[0].bytes, make_ipv4(ip_b, ip_a, 100));
}

TEST_F(Handshake, ReplayedInitiationIsRejected) {
  send_a_to_b();
  auto init = take(a.out.to_network)[0].bytes;
  deliver(a, init);
  EXPECT_EQ(take(b.out.to_network).size(), 1u);  // the response
  clock.advance(seconds(1));
  deliver(a, init);
  EXPECT_TRUE(take(b.out.to_network).empty());
  EXPECT_EQ(b.dev.counters().replayed_initiations, 1u);
  EXPECT_EQ(b.dev.counters().handshake_initiations_received, 1u);
}

TEST_F(Handshake, InitiationWithBadMac1IsDroppedSilently) {
  send_a_to_b();
  auto init = take(a.out.to_network)[0].bytes;
  init[initiation::kMac1] ^= 1;
  deliver(a, init);
  EXPECT_TRUE(take(b.out.to_network).empty());
  EXPECT_EQ(b.dev.counters().invalid_mac1, 1u);
}

TEST_F(Handshake, InitiationFromUnknownKeyFails) {
  FakeTimeSource c2;
  Node stranger(c2, {});
  stranger.dev.set_peers({PeerConfig{7, b.key.public_key(), {*IpPrefix::parse("100.64.0.2/32")}, {}}});
  stranger.dev.on_tun_packet(make_ipv4(IpAddr::v4(100, 64, 0, 9), ip_b, 10), now(), stranger.out);
  auto init = take(stranger.out.to_network)[0].bytes;
  b.dev.on_datagram(99, init, now(), b.out);
  EXPECT_TRUE(take(b.out.to_network).empty());
  EXPECT_EQ(b.dev.counters().handshakes_failed, 1u);
}

TEST_F(Handshake, ReplayedTransportPacketIsDroppedOnce) {
  establish();
  send_a_to_b();
  auto data = take(a.out.to_network)[0].bytes;
  deliver(a, data);
  deliver(a, data);
  EXPECT_EQ(b.tun.size(), 2u);  // the establish packet + one copy
  EXPECT_EQ(b.dev.counters().replays, 1u);
}

TEST_F(Handshake, TamperedTransportPacketCountsAsDecryptionFailure) {
  establish();
  send_a_to_b();
  auto data = take(a.out.to_network)[0].bytes;
  data[transport::kPayload + 3] ^= 0x80;
  deliver(a, data);
  EXPECT_EQ(b.tun.size(), 1u);
  EXPECT_EQ(b.dev.counters().decryption_failures, 1u);
}

TEST_F(Handshake, InnerSourceOutsideAllowedIpsIsDropped) {
  establish();
  a.dev.on_tun_packet(make_ipv4(IpAddr::v4(100, 64, 0, 99), ip_b, 40), now(), a.out);
  pump();
  EXPECT_EQ(b.tun.size(), 1u);
  EXPECT_EQ(b.dev.counters().allowedips_drops, 1u);
}

TEST_F(Handshake, PacketWithoutRouteIsCountedAndDropped) {
  establish();
  a.dev.on_tun_packet(make_ipv4(ip_a, IpAddr::v4(100, 64, 0, 50), 40), now(), a.out);
  EXPECT_TRUE(a.out.to_network.empty());
  EXPECT_EQ(a.dev.counters().no_route, 1u);
}

TEST_F(Handshake, GarbageDatagramsAreCountedNotProcessed) {
  establish();
  Bytes junk(148, 0);
  junk[0] = 1;
  deliver(a, junk);       // right size, bad mac1
  deliver(a, Bytes{9, 9});  // not WireGuard at all
  Bytes wrong_index(48, 0);
  wrong_index[0] = 4;
  deliver(a, wrong_index);
  EXPECT_EQ(b.dev.counters().invalid_mac1, 1u);
  EXPECT_EQ(b.dev.counters().invalid_messages, 1u);
  EXPECT_EQ(b.dev.counters().unknown_index, 1u);
}

TEST_F(Handshake, AuthenticatedSourceIsReportedWhenHintDiffers) {
  send_a_to_b();
  auto init = take(a.out.to_network)[0].bytes;
  b.dev.on_datagram(/*hint=*/0, init, now(), b.out);
  ASSERT_EQ(b.out.attributions.size(), 1u);
  EXPECT_EQ(b.out.attributions[0].hint, 0u);
  EXPECT_EQ(b.out.attributions[0].peer, 1u);
}

TEST_F(Handshake, SessionsSurviveANetmapThatRenumbersThePeer) {
  establish();
  b.dev.set_peers({PeerConfig{42, a.key.public_key(), {*IpPrefix::parse("100.64.0.1/32")}, {}}});
  EXPECT_TRUE(b.dev.has_session(42, now()));
  send_a_to_b();
  auto data = take(a.out.to_network)[0].bytes;
  b.dev.on_datagram(42, data, now(), b.out);
  auto tun = take(b.out.to_tun);
  ASSERT_EQ(tun.size(), 1u);
  EXPECT_EQ(tun[0].peer, 42u);
}

TEST_F(Handshake, RemovedPeerLosesSessionAndRoutes) {
  establish();
  b.dev.set_peers({});
  EXPECT_EQ(b.dev.peer_count(), 0u);
  send_a_to_b();
  pump();
  EXPECT_EQ(b.tun.size(), 1u);
  EXPECT_GE(b.dev.counters().unknown_index, 1u);
}

// b's dataproc restarted (fresh engine, same keys): a still sends on the old session.
TEST_F(Handshake, PeerThatLostItsSessionStartsAHandshakeOnTheFirstUnknownIndex) {
  establish();
  b.dev.set_peers({});
  b.dev.set_peers({PeerConfig{1, a.key.public_key(), {*IpPrefix::parse("100.64.0.1/32")}, {}}});
  ASSERT_FALSE(b.dev.has_session(1, now()));
  send_a_to_b();
  pump();
  EXPECT_EQ(b.dev.counters().unknown_index, 1u);
  EXPECT_EQ(b.dev.counters().unknown_index_initiations, 1u);
  EXPECT_TRUE(b.dev.has_session(1, now()));
  EXPECT_TRUE(a.dev.has_session(2, now()));
  const std::size_t before = b.tun.size();
  send_a_to_b();
  pump();
  EXPECT_EQ(b.tun.size(), before + 1);  // no 15 s wait for a's own rekey
}

TEST_F(Handshake, UnknownIndexWhileHoldingASessionStartsNoHandshake) {
  establish();
  send_a_to_b();
  auto data = take(a.out.to_network)[0].bytes;
  store_le32(data.data() + 4, 0xdeadbeef);  // receiver index nobody holds
  const auto sent = b.dev.counters().handshake_initiations_sent;
  b.dev.on_datagram(1, data, now(), b.out);
  EXPECT_EQ(b.dev.counters().unknown_index, 1u);
  EXPECT_EQ(b.dev.counters().unknown_index_initiations, 0u);
  EXPECT_EQ(b.dev.counters().handshake_initiations_sent, sent);
  EXPECT_TRUE(take(b.out.to_network).empty());
}

TEST_F(Handshake, NewPrivateKeyDropsSessions) {
  establish();
  a.dev.set_private_key(NodePrivate::generate());
  EXPECT_FALSE(a.dev.has_session(2, now()));
}

class UnderLoad : public TwoNodes {
 protected:
  static DeviceOptions always_loaded() {
    DeviceOptions o;
    o.under_load_handshakes_per_second = 0;
    return o;
  }
  UnderLoad() : TwoNodes({}, always_loaded()) {}
};

TEST_F(UnderLoad, ResponderAnswersWithCookieThenAcceptsMac2) {
  send_a_to_b();
  auto init = take(a.out.to_network)[0].bytes;
  EXPECT_EQ(Bytes(init.end() - 16, init.end()), Bytes(16, 0));  // no cookie yet: mac2 zero
  deliver(a, init);
  auto reply = take(b.out.to_network);
  ASSERT_EQ(reply.size(), 1u);
  EXPECT_EQ(message_type(reply[0].bytes), 3u);
  EXPECT_EQ(reply[0].bytes.size(), kCookieReplySize);
  EXPECT_EQ(b.dev.counters().cookie_replies_sent, 1u);
  EXPECT_EQ(b.dev.counters().handshake_initiations_received, 0u);
  deliver(b, reply[0].bytes);
  EXPECT_EQ(a.dev.counters().cookie_replies_received, 1u);

  clock.advance(kRekeyTimeout + kRekeyTimeoutJitterMax + milliseconds(1));
  a.dev.on_timer(now(), a.out);
  auto retry = take(a.out.to_network);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_NE(Bytes(retry[0].bytes.end() - 16, retry[0].bytes.end()), Bytes(16, 0));
  deliver(a, retry[0].bytes);
  pump();
  EXPECT_EQ(b.dev.counters().handshake_initiations_received, 1u);
  EXPECT_TRUE(a.dev.has_session(2, now()));
  EXPECT_EQ(b.tun.size(), 1u);
}

TEST_F(UnderLoad, CookieReplyForgedByAnotherKeyIsIgnored) {
  send_a_to_b();
  auto init = take(a.out.to_network)[0].bytes;
  deliver(a, init);
  auto reply = take(b.out.to_network)[0].bytes;
  reply[cookie_reply::kCookie] ^= 1;
  deliver(b, reply);
  EXPECT_EQ(a.dev.counters().cookie_replies_received, 0u);
  EXPECT_EQ(a.dev.counters().invalid_messages, 1u);
}

}  // namespace
}  // namespace tw::wg::testing
