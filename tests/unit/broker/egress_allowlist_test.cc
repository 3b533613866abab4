#include "broker/egress_allowlist.h"

#include <gtest/gtest.h>

namespace tw::broker {
namespace {

using namespace std::chrono_literals;
using Clock = CandidateRegistry::Clock;
using V = CandidateRegistry::Verdict;

IpPort ep(const char* text) { return *IpPort::parse(text); }

TEST(EgressAllowlist, NeverListRefusesLoopbackMulticastBroadcastAndUnspecified) {
  for (const char* a :
       {"127.0.0.1", "127.0.0.53", "0.0.0.0", "224.0.0.251", "239.1.2.3", "255.255.255.255"}) {
    EXPECT_TRUE(never_an_underlay_destination(*IpAddr::parse(a), true)) << a;
  }
  EXPECT_TRUE(never_an_underlay_destination(*IpAddr::parse("::1"), true));
  EXPECT_TRUE(never_an_underlay_destination(*IpAddr::parse("2001:db8::1"), false));  // IPv6 off
  EXPECT_FALSE(never_an_underlay_destination(*IpAddr::parse("2001:db8::1"), true));
  EXPECT_FALSE(never_an_underlay_destination(*IpAddr::parse("198.18.0.2"), false));
  EXPECT_FALSE(
      never_an_underlay_destination(*IpAddr::parse("10.0.0.1"), false));  // netmap LAN endpoints
}

TEST(EgressAllowlist, PingableForBrokerIsPublicUnicastOnly) {
  EXPECT_TRUE(is_pingable_for_broker(ep("198.18.7.9:41641"), false));
  EXPECT_TRUE(is_pingable_for_broker(ep("100.64.1.1:41641"), false));
  for (const char* a : {"10.1.2.3:1", "192.168.1.1:1", "172.16.0.1:1", "169.254.1.1:1",
                        "127.0.0.1:53", "198.18.7.9:0", "224.0.0.1:5353"}) {
    EXPECT_FALSE(is_pingable_for_broker(ep(a), false)) << a;
  }
}

TEST(EgressAllowlist, RouteSourceRefusesTheHostsOwnAddressesAndLoopback) {
  // 127.0.0.1 is always one of the host's own addresses: the route picks it as
  // source; any other loopback destination is local too (a loopback source).
  EXPECT_FALSE(route_for(ep("127.0.0.1:53")).has_value());
  EXPECT_FALSE(route_for(ep("127.0.0.53:53")).has_value());
}

TEST(EgressAllowlist, RebuildScriptReplacesRulesAndElementsInOneBatch) {
  std::vector<AllowElement> els = {
      {ep("198.18.0.2:41641"), *IpAddr::parse("198.18.0.1"), 2, std::nullopt},
      {ep("198.18.9.9:3478"), *IpAddr::parse("198.18.0.1"), 7, 45s},
  };
  const std::string s = nft_rebuild_script("tailwarden_7", 41641, els);
  EXPECT_NE(s.find("flush chain inet tailwarden_7 underlay_out\n"), std::string::npos);
  EXPECT_NE(s.find("flush set inet tailwarden_7 allow4\n"), std::string::npos);
  // The outgoing interface is part of the key: an IP_PKTINFO ipi_ifindex that names
  // another interface makes a tuple that is not in the set.
  EXPECT_NE(s.find("allow4 { type ipv4_addr . inet_service . ipv4_addr . iface_index;"),
            std::string::npos);
  EXPECT_NE(s.find("udp sport 41641 ip daddr . udp dport . ip saddr . meta oif @allow4 accept"),
            std::string::npos);
  EXPECT_NE(s.find("udp sport 41641 counter name dropped drop"), std::string::npos);
  EXPECT_NE(s.find("add element inet tailwarden_7 allow4 { 198.18.0.2 . 41641 . 198.18.0.1 . 2, "
                   "198.18.9.9 . 3478 . 198.18.0.1 . 7 timeout 45s }"),
            std::string::npos);
  EXPECT_EQ(s.find("allow6 {  "), std::string::npos);
  // The accept rules come before the drop.
  EXPECT_LT(s.find("@allow4 accept"), s.find("counter name dropped drop"));
  // No socket: no rules at all, so nothing of anyone else's is dropped.
  EXPECT_EQ(nft_rebuild_script("t", 0, els).find("add rule"), std::string::npos);
}

TEST(EgressAllowlist, AddScriptRenewsLifetimes) {
  std::vector<AllowElement> els = {{ep("198.18.9.9:41641"), *IpAddr::parse("198.18.0.1"), 3, 45s}};
  EXPECT_EQ(nft_add_script("t", els),
            "add element inet t allow4 { 198.18.9.9 . 41641 . 198.18.0.1 . 3 timeout 45s }\n"
            "delete element inet t allow4 { 198.18.9.9 . 41641 . 198.18.0.1 . 3 }\n"
            "add element inet t allow4 { 198.18.9.9 . 41641 . 198.18.0.1 . 3 timeout 45s }\n");
  EXPECT_EQ(nft_add_script("t", {}), "");
}

TEST(EgressAllowlist, TunRoutesNeverCoverUnderlayDestinations) {
  auto pfx = [](const char* t) { return *IpPrefix::parse(t); };
  const std::vector<IpPrefix> in = {pfx("100.64.0.2/32"), pfx("100.64.0.2/32"), pfx("0.0.0.0/1"),
                                    pfx("128.0.0.0/1"),   pfx("0.0.0.0/0"),     pfx("10.9.0.0/16"),
                                    pfx("198.18.0.0/24")};
  const std::vector<IpAddr> underlay = {*IpAddr::parse("203.0.113.10"),
                                        *IpAddr::parse("198.18.0.7")};
  auto plan = plan_tun_routes(in, underlay);
  // The exit split covering the DERP node and the prefix holding a peer endpoint are
  // not routed; /0 never; the duplicate once.
  EXPECT_EQ(plan.routes,
            (std::vector<IpPrefix>{pfx("100.64.0.2/32"), pfx("0.0.0.0/1"), pfx("10.9.0.0/16")}));
  EXPECT_EQ(plan.skipped, (std::vector<IpPrefix>{pfx("128.0.0.0/1"), pfx("198.18.0.0/24")}));
}

TEST(CandidateRegistry, CapsPerPeerAndRefusesUnknownPeersAndUnpingable) {
  CandidateRegistry r(CandidateRegistry::Limits{32, 45s, 1000, 1000});
  r.set_peers({1, 2});
  const auto now = Clock::now();
  EXPECT_EQ(r.admit(9, ep("198.18.1.1:1"), false, now), V::kUnknownPeer);
  EXPECT_EQ(r.admit(1, ep("127.0.0.1:53"), false, now), V::kNotPingable);
  EXPECT_EQ(r.admit(1, ep("10.0.0.1:41641"), false, now), V::kNotPingable);
  for (int i = 0; i < 32; ++i) {
    IpPort a{IpAddr::v4(198, 18, 1, static_cast<std::uint8_t>(i)), 41641};
    EXPECT_EQ(r.admit(1, a, false, now), V::kAccepted);
  }
  EXPECT_EQ(r.admit(1, ep("198.18.2.1:41641"), false, now), V::kPeerFull);
  // A known address is renewed, not refused; another peer has its own cap.
  EXPECT_EQ(r.admit(1, ep("198.18.1.3:41641"), false, now), V::kAccepted);
  EXPECT_EQ(r.admit(2, ep("198.18.2.1:41641"), false, now), V::kAccepted);
  EXPECT_EQ(r.live(now).size(), 33u);
  // 45 s later they are gone and the cap is free again.
  EXPECT_TRUE(r.live(now + 46s).empty());
  EXPECT_EQ(r.admit(1, ep("198.18.2.1:41641"), false, now + 46s), V::kAccepted);
  // A peer that leaves the netmap takes its candidates with it.
  r.set_peers({2});
  EXPECT_EQ(r.admit(1, ep("198.18.2.2:41641"), false, now + 46s), V::kUnknownPeer);
}

TEST(CandidateRegistry, RateLimited) {
  CandidateRegistry r(CandidateRegistry::Limits{32, 45s, 10, 5});
  r.set_peers({1});
  const auto now = Clock::now();
  int accepted = 0, limited = 0;
  for (int i = 0; i < 20; ++i) {
    auto v =
        r.admit(1, IpPort{IpAddr::v4(198, 18, 3, static_cast<std::uint8_t>(i)), 1}, false, now);
    accepted += v == V::kAccepted;
    limited += v == V::kRateLimited;
  }
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(limited, 15);
  // One second later ten more tokens (capped at the burst of five).
  accepted = 0;
  for (int i = 0; i < 20; ++i) {
    accepted += r.admit(1, IpPort{IpAddr::v4(198, 18, 4, static_cast<std::uint8_t>(i)), 1}, false,
                        now + 1s) == V::kAccepted;
  }
  EXPECT_EQ(accepted, 5);
}

}  // namespace
}  // namespace tw::broker
