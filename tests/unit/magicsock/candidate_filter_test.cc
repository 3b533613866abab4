// is_pingable_candidate and the netmap endpoint policy (docs/direct-underlay.md#candidates).
#include "netproc/magicsock/candidate_filter.h"

#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock {
namespace {

using test::ep;

TEST(CandidateFilterTest, PingableCandidateRejectsForbiddenClasses) {
  for (auto text : {"0.0.0.0:1", "127.0.0.1:1", "127.9.9.9:1", "169.254.1.1:1", "224.0.0.1:1",
                    "255.255.255.255:1", "10.1.2.3:1", "172.16.0.1:1", "172.31.255.1:1",
                    "192.168.1.1:1", "[2001:db8::1]:1"}) {
    EXPECT_FALSE(is_pingable_candidate(ep(text), false)) << text;
  }
}

TEST(CandidateFilterTest, PingableCandidateAcceptsPublicIpv4AndCgnat) {
  EXPECT_TRUE(is_pingable_candidate(ep("203.0.113.7:41641"), false));
  EXPECT_TRUE(is_pingable_candidate(ep("198.51.100.2:1"), false));
  EXPECT_TRUE(is_pingable_candidate(ep("100.64.0.1:1"), false));
}

TEST(CandidateFilterTest, PingableCandidateRejectsPortZero) {
  EXPECT_FALSE(is_pingable_candidate(ep("203.0.113.7:0"), false));
}

TEST(CandidateFilterTest, GateOffRejectsAllIpv6GateOnAcceptsOnlyGlobalUnicast) {
  EXPECT_FALSE(is_pingable_candidate(ep("[2001:db8::1]:1"), false));
  EXPECT_TRUE(is_pingable_candidate(ep("[2001:db8::1]:1"), true));
  for (auto text : {"[::1]:1", "[fe80::1]:1", "[fc00::1]:1", "[::]:1", "[ff02::1]:1"}) {
    EXPECT_FALSE(is_pingable_candidate(ep(text), true)) << text;
  }
}

TEST(CandidateFilterTest, V4MappedCandidateIsJudgedAsIpv4) {
  EXPECT_TRUE(is_pingable_candidate(ep("[::ffff:203.0.113.7]:1"), false));
  EXPECT_FALSE(is_pingable_candidate(ep("[::ffff:10.0.0.1]:1"), false));
}

TEST(CandidateFilterTest, NetmapEndpointsAreFilteredByFamily) {
  CandidatePolicy v4only{false, true};
  EXPECT_FALSE(is_acceptable_netmap_endpoint(ep("[2001:db8::1]:41641"), v4only));
  CandidatePolicy dual{true, true};
  EXPECT_TRUE(is_acceptable_netmap_endpoint(ep("[2001:db8::1]:41641"), dual));
}

TEST(CandidateFilterTest, NetmapLanEndpointsNeedAllowLan) {
  CandidatePolicy lan_on{false, true};
  CandidatePolicy lan_off{false, false};
  for (auto text : {"192.168.1.5:41641", "10.0.0.1:41641", "127.0.0.1:41641", "169.254.3.3:1"}) {
    EXPECT_TRUE(is_acceptable_netmap_endpoint(ep(text), lan_on)) << text;
    EXPECT_FALSE(is_acceptable_netmap_endpoint(ep(text), lan_off)) << text;
  }
  EXPECT_FALSE(is_acceptable_netmap_endpoint(ep("0.0.0.0:41641"), lan_on));
  EXPECT_FALSE(is_acceptable_netmap_endpoint(ep("224.0.0.1:41641"), lan_on));
  EXPECT_TRUE(is_acceptable_netmap_endpoint(ep("203.0.113.7:41641"), lan_off));
}

}  // namespace
}  // namespace tw::magicsock
