// DERP region latency from STUN RTTs (netcheck), with an injected clock.
#include "netproc/magicsock/derp_latency.h"

#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock {
namespace {

using namespace test;
using Stun = DerpRegionLatency::Stun;

// fra: two nodes with STUN; nyc: one; relay: DERP only (STUNPort -1 and an IPv6-only
// node); shared: its node uses fra's first STUN server.
DerpMap lab_map(int fra_b_port = 3478) {
  const std::string text = R"({"Regions":{
    "1":{"RegionID":1,"RegionCode":"fra","RegionName":"Frankfurt","Nodes":[
      {"Name":"1a","RegionID":1,"HostName":"a.fra","IPv4":"198.18.1.1"},
      {"Name":"1b","RegionID":1,"HostName":"b.fra","IPv4":"198.18.1.2","STUNPort":)" +
                           std::to_string(fra_b_port) + R"(}]},
    "2":{"RegionID":2,"RegionCode":"nyc","RegionName":"New York","Nodes":[
      {"Name":"2a","RegionID":2,"HostName":"a.nyc","IPv4":"198.18.2.1","STUNPort":3479}]},
    "3":{"RegionID":3,"RegionCode":"relay","RegionName":"Relay only","Nodes":[
      {"Name":"3a","RegionID":3,"HostName":"a.relay","IPv4":"198.18.3.1","STUNPort":-1},
      {"Name":"3b","RegionID":3,"HostName":"b.relay","IPv4":"none","IPv6":"2001:db8::1"}]},
    "4":{"RegionID":4,"RegionCode":"shared","Nodes":[
      {"Name":"4a","RegionID":4,"HostName":"a.shared","IPv4":"198.18.4.1","STUNTestIP":"198.18.1.1"}]}}})";
  auto m = parse_derp_map(text, "test");
  EXPECT_TRUE(m.ok()) << m.error();
  return m.ok() ? *m : DerpMap{};
}

// The result points into `r`: a temporary report would leave it dangling.
const DerpRegionLatency* find(std::vector<DerpRegionLatency>&&, std::string_view) = delete;
const DerpRegionLatency* find(const std::vector<DerpRegionLatency>& r, std::string_view code) {
  for (const auto& l : r) {
    if (l.code == code) return &l;
  }
  return nullptr;
}

TEST(DerpLatencyTest, BeforeAnyAnswerRegionsAreUnansweredOrWithoutStun) {
  DerpLatencyTable t;
  t.set_map(lab_map());
  auto r = t.report(kStart);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(find(r, "fra")->stun, Stun::kNoReply);
  EXPECT_EQ(find(r, "nyc")->stun, Stun::kNoReply);
  EXPECT_EQ(find(r, "shared")->stun, Stun::kNoReply);
  EXPECT_EQ(find(r, "relay")->stun, Stun::kNoStun) << "STUNPort -1 and an IPv6-only node give no IPv4 STUN";
  EXPECT_EQ(r.back().code, "relay");
  EXPECT_EQ(find(r, "nyc")->name, "New York");
}

TEST(DerpLatencyTest, RegionsAreSortedByLatestRttAndNameTheNodeThatAnswered) {
  DerpLatencyTable t;
  t.set_map(lab_map(3480));
  TimePoint now = kStart;
  t.on_stun_rtt(ep("198.18.2.1:3479"), 30ms, now);
  t.on_stun_rtt(ep("198.18.1.2:3480"), 12ms, now + 1ms);
  now += 5s;
  auto r = t.report(now);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].code, "fra");
  EXPECT_EQ(r[0].stun, Stun::kMeasured);
  EXPECT_EQ(r[0].latest, 12ms);
  EXPECT_EQ(r[0].node, "1b");
  EXPECT_EQ(r[0].server, ep("198.18.1.2:3480"));
  EXPECT_EQ(r[0].age, 5s - 1ms);
  EXPECT_EQ(r[1].code, "nyc");
  EXPECT_EQ(r[1].latest, 30ms);
  EXPECT_EQ(r[2].code, "shared");
  EXPECT_EQ(r[2].stun, Stun::kNoReply);
  EXPECT_EQ(r[3].code, "relay");
}

TEST(DerpLatencyTest, LatestFollowsTheNewestAnswerAndMinTheSmallestOfAnyNode) {
  DerpLatencyTable t;
  t.set_map(lab_map(3480));
  TimePoint now = kStart;
  t.on_stun_rtt(ep("198.18.1.1:3478"), 8ms, now);
  now += 20s;
  t.on_stun_rtt(ep("198.18.1.2:3480"), 15ms, now);
  now += 1s;
  auto rep = t.report(now);
  const auto* fra = find(rep, "fra");
  ASSERT_NE(fra, nullptr);
  EXPECT_EQ(fra->latest, 15ms);
  EXPECT_EQ(fra->node, "1b");
  EXPECT_EQ(fra->min, 8ms) << "node 1a answered faster earlier";
  EXPECT_EQ(fra->age, 1s);
  now += 20s;
  t.on_stun_rtt(ep("198.18.1.2:3480"), 40ms, now);
  rep = t.report(now);
  fra = find(rep, "fra");
  EXPECT_EQ(fra->latest, 40ms);
  EXPECT_EQ(fra->min, 8ms);
}

TEST(DerpLatencyTest, OneAnswerCreditsEveryRegionSharingTheStunServer) {
  DerpLatencyTable t;
  t.set_map(lab_map());
  t.on_stun_rtt(ep("198.18.1.1:3478"), 4ms, kStart);
  auto r = t.report(kStart);
  EXPECT_EQ(find(r, "fra")->latest, 4ms);
  EXPECT_EQ(find(r, "shared")->latest, 4ms);
  EXPECT_EQ(find(r, "shared")->node, "4a");
}

TEST(DerpLatencyTest, AnswersFromServersOutsideTheMapAreIgnored) {
  DerpLatencyTable t;
  t.set_map(lab_map());
  t.on_stun_rtt(ep("198.18.9.9:3478"), 1ms, kStart);
  for (const auto& l : t.report(kStart)) EXPECT_NE(l.stun, Stun::kMeasured) << l.code;
}

TEST(DerpLatencyTest, ReloadKeepsUnchangedNodesAndDropsMovedOnes) {
  DerpLatencyTable t;
  t.set_map(lab_map(3480));
  t.on_stun_rtt(ep("198.18.2.1:3479"), 30ms, kStart);
  t.on_stun_rtt(ep("198.18.1.2:3480"), 12ms, kStart);
  t.set_map(lab_map(3481));  // fra's node 1b moved its STUN port
  auto r = t.report(kStart);
  EXPECT_EQ(find(r, "nyc")->stun, Stun::kMeasured);
  EXPECT_EQ(find(r, "fra")->stun, Stun::kNoReply);
}

TEST(DerpLatencyTest, RebindForgetsMeasurements) {
  DerpLatencyTable t;
  t.set_map(lab_map());
  t.on_stun_rtt(ep("198.18.2.1:3479"), 30ms, kStart);
  t.clear_measurements();
  const auto rep = t.report(kStart);
  EXPECT_EQ(find(rep, "nyc")->stun, Stun::kNoReply);
}

}  // namespace
}  // namespace tw::magicsock
