#include "broker/egress_policy.h"

#include <gtest/gtest.h>

namespace tw::broker {
namespace {

DerpNode node(std::string name, std::int64_t region, std::string host, std::optional<IpAddr> v4) {
  DerpNode n;
  n.name = std::move(name);
  n.region_id = region;
  n.host_name = std::move(host);
  n.ipv4 = v4;
  return n;
}

// Region 1: a fixed-IPv4 node and a host-name-only node; region 2: a STUN-only
// node, a node with IPv4 "none" and a test relay on loopback.
DerpMap test_map() {
  DerpMap m;
  DerpRegion r1;
  r1.region_id = 1;
  r1.nodes.push_back(node("1a", 1, "derp1a.example.net", IpAddr::v4(203, 0, 113, 10)));
  r1.nodes.push_back(node("1b", 1, "derp1b.example.net", std::nullopt));
  m.regions[1] = r1;
  DerpRegion r2;
  r2.region_id = 2;
  auto stun = node("2s", 2, "stun2.example.net", IpAddr::v4(198, 51, 100, 7));
  stun.stun_only = true;
  r2.nodes.push_back(stun);
  auto v6only = node("2n", 2, "derp2n.example.net", std::nullopt);
  v6only.ipv4_disabled = true;
  r2.nodes.push_back(v6only);
  auto local = node("2t", 2, "localhost", IpAddr::v4(127, 0, 0, 1));
  local.insecure_for_tests = true;
  local.derp_port = 8443;
  r2.nodes.push_back(local);
  m.regions[2] = r2;
  return m;
}

class EgressPolicyTest : public ::testing::Test {
 protected:
  EgressPolicy make(bool derp_dns, bool insecure_for_tests = true) {
    EgressPolicy p(EgressOptions{derp_dns, insecure_for_tests}, metrics);
    p.set_derp_map(test_map());
    return p;
  }
  MetricsRegistry metrics;
};

TEST_F(EgressPolicyTest, MapNodeWithFixedIpv4IsDialledAtThatAddress) {
  auto p = make(false);
  auto t = p.decide_derp_dial(1, "1a");
  ASSERT_TRUE(t.ok()) << t.error();
  ASSERT_TRUE(t->address.has_value());
  EXPECT_EQ(t->address->to_string(), "203.0.113.10:443");
  EXPECT_TRUE(t->hostname.empty());
  EXPECT_EQ(t->tls_server_name, "derp1a.example.net");
  EXPECT_EQ(metrics.value("egress_refused_total"), 0u);
}

TEST_F(EgressPolicyTest, FixedIpv4WinsEvenWhenDnsIsAllowed) {
  auto p = make(true);
  auto t = p.decide_derp_dial(1, "1a");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->address.has_value());
  EXPECT_TRUE(t->hostname.empty());
}

TEST_F(EgressPolicyTest, NodesOutsideTheMapAreRefusedAndCounted) {
  auto p = make(false);
  auto region = p.decide_derp_dial(9, "9a");
  ASSERT_FALSE(region.ok());
  EXPECT_EQ(region.error(), "DERP region 9 is not in the DERP map");
  auto n = p.decide_derp_dial(1, "1z");
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error(), "DERP node \"1z\" of region 1 is not in the DERP map");
  EXPECT_EQ(metrics.value("egress_refused_total"), 2u);
  EXPECT_EQ(p.refused_total(), 2u);
}

TEST_F(EgressPolicyTest, HostNameOnlyNodeIsRefusedWithoutDerpDns) {
  auto p = make(false);
  auto t = p.decide_derp_dial(1, "1b");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error(), "DERP node \"1b\" of region 1 has no fixed IPv4 and derp_dns is off");
  EXPECT_EQ(metrics.value("egress_refused_total"), 1u);
}

TEST_F(EgressPolicyTest, HostNameOnlyNodeIsHandedBackForResolvingWithDerpDns) {
  auto p = make(true);
  auto t = p.decide_derp_dial(1, "1b");
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_FALSE(t->address.has_value());
  EXPECT_EQ(t->hostname, "derp1b.example.net");
  EXPECT_EQ(t->port, 443);
  EXPECT_TRUE(p.check_resolved(*t, IpAddr::v4(203, 0, 113, 20)).ok());
  // Answers that would leave the IPv4-only posture or reach the host itself are not dialled.
  EXPECT_FALSE(p.check_resolved(*t, *IpAddr::parse("2001:db8::1")).ok());
  EXPECT_FALSE(p.check_resolved(*t, IpAddr::v4(127, 0, 0, 1)).ok());
  EXPECT_FALSE(p.check_resolved(*t, IpAddr::v4(0, 0, 0, 0)).ok());
  EXPECT_EQ(metrics.value("egress_refused_total"), 3u);
}

TEST_F(EgressPolicyTest, NothingIsResolvedForAFixedAddressNode) {
  auto p = make(true);
  auto t = p.decide_derp_dial(1, "1a");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(p.check_resolved(*t, IpAddr::v4(203, 0, 113, 99)).ok());
}

TEST_F(EgressPolicyTest, StunOnlyAndIpv4DisabledNodesAreNeverDialled) {
  auto p = make(true);
  auto stun = p.decide_derp_dial(2, "2s");
  ASSERT_FALSE(stun.ok());
  EXPECT_EQ(stun.error(), "DERP node \"2s\" of region 2 is STUN-only");
  auto none = p.decide_derp_dial(2, "2n");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().find("IPv4 disabled"), std::string::npos);
}

TEST_F(EgressPolicyTest, LoopbackRelayOnlyWhenMarkedInsecureForTests) {
  auto p = make(false);
  auto t = p.decide_derp_dial(2, "2t");
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->address->to_string(), "127.0.0.1:8443");
  EXPECT_TRUE(t->insecure_for_tests);

  auto m = test_map();
  m.regions[2].nodes[2].insecure_for_tests = false;
  p.set_derp_map(m);
  auto refused = p.decide_derp_dial(2, "2t");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("127.0.0.1 is loopback"), std::string::npos);
}

TEST_F(EgressPolicyTest, InsecureForTestsNodesNeedTheConfigOptIn) {
  auto p = make(false, false);
  auto refused = p.decide_derp_dial(2, "2t");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("InsecureForTests, and the config does not opt in"),
            std::string::npos)
      << refused.error();
  EXPECT_TRUE(p.decide_derp_dial(1, "1a").ok());  // ordinary nodes are unaffected
}

TEST_F(EgressPolicyTest, NewDerpMapRevokesNodesItNoLongerLists) {
  auto p = make(false);
  ASSERT_TRUE(p.decide_derp_dial(1, "1a").ok());
  auto m = test_map();
  m.regions.erase(1);
  p.set_derp_map(m);
  EXPECT_FALSE(p.decide_derp_dial(1, "1a").ok());
}

TEST_F(EgressPolicyTest, StunServersAreTheFixedIpv4MapEntriesOnly) {
  auto m = test_map();
  m.regions[1].nodes[0].stun_port = -1;  // STUN disabled on 1a
  auto p = make(true);
  p.set_derp_map(m);
  std::vector<std::string> got;
  for (const auto& s : p.stun_servers()) got.push_back(s.to_string());
  // 1b has only a host name: never resolved for STUN, even with derp_dns.
  EXPECT_EQ(got, (std::vector<std::string>{"127.0.0.1:3478", "198.51.100.7:3478"}));
  EXPECT_TRUE(p.allow_stun_destination(*IpPort::parse("198.51.100.7:3478")));
  EXPECT_FALSE(p.allow_stun_destination(*IpPort::parse("203.0.113.10:3478")));
  EXPECT_FALSE(p.allow_stun_destination(*IpPort::parse("198.51.100.7:3479")));
  EXPECT_EQ(metrics.value("egress_refused_total"), 2u);
  EXPECT_NE(metrics.prometheus_text().find("tailwarden_egress_refused_total 2"), std::string::npos);
}

}  // namespace
}  // namespace tw::broker
