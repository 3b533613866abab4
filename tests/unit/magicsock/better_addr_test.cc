// Go's TestBetterAddr expectations for better_addr().
#include "netproc/magicsock/better_addr.h"

#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock {
namespace {

using test::ep;

AddrQuality q(std::string_view addr, Duration latency, std::uint16_t mtu = 0) {
  return AddrQuality{ep(addr), latency, mtu};
}

TEST(BetterAddrTest, OnePercentFasterPublicPathDoesNotWin) {
  EXPECT_FALSE(better_addr(q("1.2.3.4:555", 100ms), q("5.6.7.8:555", 101ms)));
}

TEST(BetterAddrTest, ThreePercentFasterPublicPathWins) {
  EXPECT_TRUE(better_addr(q("1.2.3.4:555", 100ms), q("5.6.7.8:555", 103ms)));
}

TEST(BetterAddrTest, PrivatePathWinsWhenLatenciesAreClose) {
  EXPECT_TRUE(better_addr(q("10.0.0.2:123", 100ms), q("1.2.3.4:555", 91ms)));
}

TEST(BetterAddrTest, PrivatePathLosesToMuchFasterPublicPath) {
  EXPECT_FALSE(better_addr(q("10.0.0.2:123", 100ms), q("1.2.3.4:555", 30ms)));
}

TEST(BetterAddrTest, Ipv6WinsWhenLatenciesAreClose) {
  EXPECT_TRUE(better_addr(q("[2001::5]:123", 100ms), q("1.2.3.4:555", 91ms)));
}

TEST(BetterAddrTest, Ipv6LosesToMuchFasterIpv4) {
  EXPECT_FALSE(better_addr(q("[2001::5]:123", 100ms), q("1.2.3.4:555", 30ms)));
}

TEST(BetterAddrTest, PrivateIpv4BeatsPublicIpv6AtSimilarLatency) {
  EXPECT_TRUE(better_addr(q("192.168.0.1:555", 100ms), q("[2001::5]:123", 101ms)));
}

TEST(BetterAddrTest, LinkLocalBeatsUniqueLocalAtSimilarLatency) {
  EXPECT_TRUE(better_addr(q("[fe80::1]:123", 101ms),
                          q("[fd89:1a8a:8888:9999:aaaa:bbbb:cccc:dddd]:555", 100ms)));
}

TEST(BetterAddrTest, LinkLocalLosesToLoopback) {
  EXPECT_FALSE(better_addr(q("[fe80::1]:123", 101ms), q("[::1]:555", 100ms)));
}

TEST(BetterAddrTest, SameAddressWinsOnlyWithLargerMtu) {
  EXPECT_TRUE(better_addr(q("1.1.1.1:555", 100ms, 1500), q("1.1.1.1:555", 100ms, 0)));
  EXPECT_FALSE(better_addr(q("1.1.1.1:555", 10ms, 0), q("1.1.1.1:555", 100ms, 0)));
}

TEST(BetterAddrTest, ZeroLatencyOnBothSidesIsNotBetter) {
  EXPECT_FALSE(better_addr(q("1.1.1.1:555", 0ms), q("1.1.1.2:555", 0ms)));
}

TEST(BetterAddrTest, AnyPathBeatsNoPathAndNoPathBeatsNothing) {
  EXPECT_TRUE(better_addr(q("1.1.1.1:555", 100ms), AddrQuality{}));
  EXPECT_FALSE(better_addr(AddrQuality{}, q("1.1.1.1:555", 100ms)));
}

}  // namespace
}  // namespace tw::magicsock
