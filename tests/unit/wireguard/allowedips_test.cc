#include "dataproc/wireguard/allowedips.h"

#include <gtest/gtest.h>

namespace tw::wg {
namespace {

IpPrefix P(const char* s) { return *IpPrefix::parse(s); }
IpAddr A(const char* s) { return *IpAddr::parse(s); }

TEST(AllowedIps, LongestPrefixWinsForOverlappingPrefixes) {
  AllowedIps t;
  t.insert(P("10.0.0.0/8"), 1);
  t.insert(P("10.1.0.0/16"), 2);
  t.insert(P("10.1.2.0/24"), 3);
  t.insert(P("10.1.2.3/32"), 4);
  EXPECT_EQ(t.lookup(A("10.9.9.9")), 1u);
  EXPECT_EQ(t.lookup(A("10.1.9.9")), 2u);
  EXPECT_EQ(t.lookup(A("10.1.2.9")), 3u);
  EXPECT_EQ(t.lookup(A("10.1.2.3")), 4u);
  EXPECT_EQ(t.lookup(A("11.0.0.1")), std::nullopt);
}

TEST(AllowedIps, DefaultRouteCatchesEverythingElse) {
  AllowedIps t;
  t.insert(P("0.0.0.0/0"), 9);
  t.insert(P("100.64.0.2/32"), 2);
  EXPECT_EQ(t.lookup(A("8.8.8.8")), 9u);
  EXPECT_EQ(t.lookup(A("100.64.0.2")), 2u);
  EXPECT_EQ(t.lookup(A("100.64.0.3")), 9u);
  EXPECT_EQ(t.lookup(A("::1")), std::nullopt);  // families are separate
}

TEST(AllowedIps, HostRoutesAreExact) {
  AllowedIps t;
  t.insert(P("100.64.0.1/32"), 1);
  t.insert(P("fd7a:115c:a1e0::1/128"), 1);
  EXPECT_EQ(t.lookup(A("100.64.0.1")), 1u);
  EXPECT_EQ(t.lookup(A("100.64.0.0")), std::nullopt);
  EXPECT_EQ(t.lookup(A("fd7a:115c:a1e0::1")), 1u);
  EXPECT_EQ(t.lookup(A("fd7a:115c:a1e0::2")), std::nullopt);
}

TEST(AllowedIps, Ipv6LongestPrefixAndDefault) {
  AllowedIps t;
  t.insert(P("::/0"), 7);
  t.insert(P("fd7a:115c:a1e0::/48"), 1);
  t.insert(P("fd7a:115c:a1e0:ab12::/64"), 2);
  EXPECT_EQ(t.lookup(A("2001:db8::1")), 7u);
  EXPECT_EQ(t.lookup(A("fd7a:115c:a1e0:1::5")), 1u);
  EXPECT_EQ(t.lookup(A("fd7a:115c:a1e0:ab12::5")), 2u);
  EXPECT_EQ(t.lookup(A("100.64.0.1")), std::nullopt);
}

TEST(AllowedIps, SamePrefixMovesToNewestOwner) {
  AllowedIps t;
  t.insert(P("100.64.0.0/10"), 1);
  t.insert(P("100.64.0.0/10"), 2);
  EXPECT_EQ(t.lookup(A("100.100.1.1")), 2u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_TRUE(t.prefixes_of(1).empty());
}

TEST(AllowedIps, RemovingAPeerUncoversShorterPrefixes) {
  AllowedIps t;
  t.insert(P("0.0.0.0/0"), 1);
  t.insert(P("192.168.0.0/16"), 2);
  t.insert(P("192.168.1.0/24"), 3);
  t.insert(P("fd00::/8"), 2);
  t.remove_peer(2);
  EXPECT_EQ(t.lookup(A("192.168.2.1")), 1u);
  EXPECT_EQ(t.lookup(A("192.168.1.1")), 3u);
  EXPECT_EQ(t.lookup(A("fd00::1")), std::nullopt);
  EXPECT_EQ(t.prefixes_of(3), std::vector<IpPrefix>{P("192.168.1.0/24")});
}

TEST(AllowedIps, RawLookupsMatchAddressLookups) {
  AllowedIps t;
  t.insert(P("100.64.0.0/10"), 5);
  const std::uint8_t v4[4] = {100, 127, 255, 255};
  EXPECT_EQ(t.lookup_v4(v4), 5u);
  const std::uint8_t v4_out[4] = {100, 128, 0, 0};
  EXPECT_EQ(t.lookup_v4(v4_out), std::nullopt);
}

// The last answer is remembered per family; every change must forget it.
TEST(AllowedIps, RepeatedLookupsSeeEveryChange) {
  AllowedIps t;
  const IpAddr v4 = A("100.64.1.2"), v6 = A("fd7a:115c:a1e0::2");
  EXPECT_FALSE(t.lookup(v4).has_value());
  EXPECT_FALSE(t.lookup(v6).has_value());
  t.insert(P("100.64.0.0/10"), 1);
  t.insert(P("fd7a:115c:a1e0::/48"), 1);
  EXPECT_EQ(t.lookup(v4), 1u);
  EXPECT_EQ(t.lookup(v6), 1u);
  t.insert(P("100.64.1.2/32"), 2);  // more specific: a new insert
  t.insert(P("fd7a:115c:a1e0::2/128"), 2);
  EXPECT_EQ(t.lookup(v4), 2u);
  EXPECT_EQ(t.lookup(v6), 2u);
  t.insert(P("100.64.1.2/32"), 3);  // same prefix, new owner: a rebuild
  EXPECT_EQ(t.lookup(v4), 3u);
  EXPECT_EQ(t.lookup(A("100.64.1.3")), 1u);
  EXPECT_EQ(t.lookup(v4), 3u);
  t.remove_peer(3);
  EXPECT_EQ(t.lookup(v4), 1u);
  t.clear();
  EXPECT_FALSE(t.lookup(v4).has_value());
  EXPECT_FALSE(t.lookup(v6).has_value());
}

TEST(AllowedIps, ManyPeersStayCorrect) {
  AllowedIps t;
  for (std::uint32_t i = 0; i < 2000; ++i)
    t.insert(IpPrefix{IpAddr::v4(100, 64, static_cast<std::uint8_t>(i >> 8),
                                 static_cast<std::uint8_t>(i)), 32},
             i);
  for (std::uint32_t i = 0; i < 2000; ++i)
    ASSERT_EQ(t.lookup(IpAddr::v4(100, 64, static_cast<std::uint8_t>(i >> 8),
                                  static_cast<std::uint8_t>(i))),
              i);
}

}  // namespace
}  // namespace tw::wg
