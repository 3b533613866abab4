// Our reflexive addresses and the endpoint advertiser (docs/direct-underlay.md#our-endpoints).
#include "netproc/magicsock/advertiser.h"
#include "netproc/magicsock/reflexive.h"
#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock {
namespace {

using namespace test;

struct EndpointsHarness {
  MetricsRegistry reg;
  MagicsockMetrics m{reg};
  ReflexiveSet refl{m, false};
  EndpointAdvertiser adv{m};
  TimePoint now = kStart;
};

TEST(ReflexiveSetTest, StunResponseAddsTheMappedAddressOnce) {
  EndpointsHarness h;
  EXPECT_TRUE(h.refl.note_stun(ep("198.51.100.7:40000"), h.now));
  EXPECT_FALSE(h.refl.note_stun(ep("198.51.100.7:40000"), h.now));
  EXPECT_EQ(h.refl.size(), 1u);
  EXPECT_EQ(h.reg.value("reflexive_learned_total"), 1u);
}

TEST(ReflexiveSetTest, StunOnLoopbackYieldsALoopbackReflexiveAddress) {
  EndpointsHarness h;  // a STUN server on the same host or LAN legitimately sees this
  EXPECT_TRUE(h.refl.note_stun(ep("127.0.0.1:41641"), h.now));
}

TEST(ReflexiveSetTest, StunNeverAddsUnspecifiedOrIpv6) {
  EndpointsHarness h;
  EXPECT_FALSE(h.refl.note_stun(ep("0.0.0.0:41641"), h.now));
  EXPECT_FALSE(h.refl.note_stun(ep("[2001:db8::1]:41641"), h.now));
  EXPECT_FALSE(h.refl.note_stun(ep("198.51.100.7:0"), h.now));
  EXPECT_EQ(h.refl.size(), 0u);
}

TEST(ReflexiveSetTest, PongSourceCountsOnlyWhenSolicitedByAMember) {
  EndpointsHarness h;
  EXPECT_FALSE(h.refl.note_pong_src(ep("198.51.100.7:40000"), false, h.now));
  EXPECT_TRUE(h.refl.note_pong_src(ep("198.51.100.7:40000"), true, h.now));
}

TEST(ReflexiveSetTest, PongSourceMustBePingable) {
  EndpointsHarness h;
  for (auto text : {"127.0.0.1:1", "10.0.0.1:1", "[2001:db8::1]:1", "0.0.0.0:1", "224.0.0.1:1"}) {
    EXPECT_FALSE(h.refl.note_pong_src(ep(text), true, h.now)) << text;
  }
  EXPECT_EQ(h.refl.size(), 0u);
}

TEST(ReflexiveSetTest, AddressExpiresTwoMinutesAfterLastConfirmation) {
  EndpointsHarness h;
  h.refl.note_stun(ep("198.51.100.7:40000"), h.now);
  h.now += 100s;
  h.refl.note_stun(ep("198.51.100.7:40000"), h.now);  // confirmed again
  h.now += 119s;
  EXPECT_EQ(h.refl.current(h.now).size(), 1u);
  h.now += 1s;
  EXPECT_TRUE(h.refl.current(h.now).empty());
  h.refl.expire(h.now);
  EXPECT_EQ(h.refl.size(), 0u);
}

TEST(ReflexiveSetTest, SetIsCappedAt16AndStunDisplacesPongLearned) {
  EndpointsHarness h;
  for (int i = 0; i < 16; ++i) {
    h.refl.note_pong_src(IpPort{IpAddr::v4(198, 51, 100, static_cast<std::uint8_t>(i + 1)), 9},
                         true, h.now);
  }
  EXPECT_FALSE(h.refl.note_pong_src(ep("198.51.100.200:9"), true, h.now));
  EXPECT_EQ(h.refl.size(), kMaxReflexive);
  EXPECT_TRUE(h.refl.note_stun(ep("203.0.113.9:9"), h.now));
  EXPECT_EQ(h.refl.size(), kMaxReflexive);
  EXPECT_EQ(h.refl.current(h.now).front().addr, ep("203.0.113.9:9"));
}

TEST(ReflexiveSetTest, StunLearnedAddressesComeFirst) {
  EndpointsHarness h;
  h.refl.note_pong_src(ep("198.51.100.1:9"), true, h.now);
  h.refl.note_stun(ep("203.0.113.1:9"), h.now);
  auto cur = h.refl.current(h.now);
  ASSERT_EQ(cur.size(), 2u);
  EXPECT_EQ(cur[0].source, ReflexiveSource::kStun);
}

TEST(AdvertiserTest, StunFirstThenLanOnlyWhenAllowed) {
  EndpointsHarness h;
  h.refl.note_stun(ep("203.0.113.1:41641"), h.now);
  std::vector<IpPort> local{ep("192.168.1.5:41641")};
  auto off = build_self_endpoints(h.refl, local, AdvertisePolicy{false, false}, h.now);
  ASSERT_EQ(off.size(), 1u);
  EXPECT_EQ(off[0].type, EndpointType::kStun);
  auto on = build_self_endpoints(h.refl, local, AdvertisePolicy{true, false}, h.now);
  ASSERT_EQ(on.size(), 2u);
  EXPECT_EQ(on[0].type, EndpointType::kStun);
  EXPECT_EQ(on[1], (SelfEndpoint{ep("192.168.1.5:41641"), EndpointType::kLocal}));
}

TEST(AdvertiserTest, LocalIpv6IsAdvertisedOnlyWithIpv6Enabled) {
  EndpointsHarness h;
  std::vector<IpPort> local{ep("[2001:db8::5]:41641")};
  EXPECT_TRUE(build_self_endpoints(h.refl, local, AdvertisePolicy{true, false}, h.now).empty());
  EXPECT_EQ(build_self_endpoints(h.refl, local, AdvertisePolicy{true, true}, h.now).size(), 1u);
}

TEST(AdvertiserTest, AtMost16EndpointsAreAdvertised) {
  EndpointsHarness h;
  for (int i = 0; i < 16; ++i)
    h.refl.note_stun(IpPort{IpAddr::v4(203, 0, 113, static_cast<std::uint8_t>(i + 1)), 9}, h.now);
  std::vector<IpPort> local{ep("192.168.1.5:41641")};
  auto set = build_self_endpoints(h.refl, local, AdvertisePolicy{true, false}, h.now);
  EXPECT_EQ(set.size(), kMaxAdvertised);
  for (const auto& e : set) EXPECT_EQ(e.type, EndpointType::kStun);  // most useful kept
}

TEST(AdvertiserTest, PublishesOnlyWhenTheSetChanges) {
  EndpointsHarness h;
  int calls = 0;
  h.adv.subscribe([&](const std::vector<SelfEndpoint>&) { ++calls; });
  std::vector<SelfEndpoint> set{{ep("203.0.113.1:41641"), EndpointType::kStun}};
  EXPECT_TRUE(h.adv.update(set));
  EXPECT_FALSE(h.adv.update(set));
  set.push_back({ep("203.0.113.2:41641"), EndpointType::kStun});
  EXPECT_TRUE(h.adv.update(set));
  EXPECT_EQ(calls, 2);
}

TEST(AdvertiserTest, NewSubscriberGetsTheLastSetReplayed) {
  EndpointsHarness h;
  std::vector<SelfEndpoint> set{{ep("203.0.113.1:41641"), EndpointType::kStun}};
  h.adv.update(set);
  std::vector<SelfEndpoint> got;
  h.adv.subscribe([&](const std::vector<SelfEndpoint>& s) { got = s; });
  EXPECT_EQ(got, set);
}

TEST(AdvertiserTest, NoReplayBeforeAnythingWasPublished) {
  EndpointsHarness h;
  int calls = 0;
  h.adv.subscribe([&](const std::vector<SelfEndpoint>&) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(AdvertiserTest, UnsubscribedCallbackIsNotCalled) {
  EndpointsHarness h;
  int calls = 0;
  auto handle = h.adv.subscribe([&](const std::vector<SelfEndpoint>&) { ++calls; });
  h.adv.unsubscribe(handle);
  h.adv.update({{ep("203.0.113.1:41641"), EndpointType::kStun}});
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace tw::magicsock
