#include "netproc/derp/inbound.h"

#include <gtest/gtest.h>

namespace tw::derp {
namespace {

NodePublic key_of(std::uint8_t fill) {
  KeyBytes b;
  b.fill(fill);
  return NodePublic(b);
}

struct Seen {
  int disco = 0;
  int wg = 0;
  NodePublic last_src;
  RegionId last_region = 0;
};

InboundHandlers handlers(Seen& s) {
  return InboundHandlers{
      [](const NodePublic& k) { return k == key_of(1); },
      [&s](const NodePublic& src, RegionId region, ByteView) {
        ++s.disco;
        s.last_src = src;
        s.last_region = region;
      },
      [&s](const NodePublic& src, ByteView) {
        ++s.wg;
        s.last_src = src;
      }};
}

Bytes disco_packet() {
  Bytes d(80, 0);
  const std::uint8_t magic[] = {0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac};
  std::copy(std::begin(magic), std::end(magic), d.begin());
  return d;
}

TEST(DerpInbound, DiscoGoesToRelayedDiscoWithSourceKeyAndRegion) {
  Seen s;
  MetricsRegistry m;
  InboundDispatcher d(handlers(s), m);
  d.dispatch(key_of(9), 900, disco_packet());  // the disco layer checks the key itself
  EXPECT_EQ(s.disco, 1);
  EXPECT_EQ(s.wg, 0);
  EXPECT_EQ(s.last_src, key_of(9));
  EXPECT_EQ(s.last_region, 900);
}

TEST(DerpInbound, WireGuardFromKnownPeerIsDelivered) {
  Seen s;
  MetricsRegistry m;
  InboundDispatcher d(handlers(s), m);
  d.dispatch(key_of(1), 900, Bytes{4, 0, 0, 0, 1, 2, 3});
  EXPECT_EQ(s.wg, 1);
  EXPECT_EQ(s.last_src, key_of(1));
  EXPECT_EQ(m.value("derp_recv_wireguard_total"), 1u);
}

TEST(DerpInbound, WireGuardFromUnknownKeyIsDroppedAndCounted) {
  Seen s;
  MetricsRegistry m;
  InboundDispatcher d(handlers(s), m);
  d.dispatch(key_of(2), 900, Bytes{4, 0, 0, 0});
  Bytes short_disco = disco_packet();
  short_disco.resize(61);  // magic but too short: not disco, and the key is unknown
  d.dispatch(key_of(2), 900, short_disco);
  EXPECT_EQ(s.wg, 0);
  EXPECT_EQ(s.disco, 0);
  EXPECT_EQ(m.value("derp_recv_unknown_peer_dropped_total"), 2u);
}

}  // namespace
}  // namespace tw::derp
