// One regression test per defect of the reference that the Rust reference implementation had
// that lives in the pure path logic, each named after the defect it rules out.
#include "netproc/magicsock/advertiser.h"
#include "netproc/magicsock/reflexive.h"
#include "netproc/magicsock/stun_prober.h"
#include "tests/unit/magicsock/table_util.h"

namespace tw::magicsock {
namespace {

using namespace test;

const IpPort kA = ep("203.0.113.1:41641");
const IpPort kB = ep("203.0.113.2:41641");

// Reference defect: A confirmed at 3 ms dies; B is alive at 20 ms. The reference made A best
// again on every B pong because A's stale 3 ms was the lowest latency ever measured.
TEST(DefectRegressionTest, StaleLatencyDoesNotResurrectADeadPath) {
  PathsHarness h;
  h.netmap({kA, kB});
  auto first = h.plan();
  h.p.note_pong(ping_for(first, kA)->txid, h.now + 3ms);  // a: best at 3 ms; b's pong lost
  for (int cycle = 0; cycle < 20; ++cycle) {
    h.now += 2s;
    auto pings = h.plan();  // a is dead from here on
    if (const PlannedPing* pb = ping_for(pings, kB)) h.p.note_pong(pb->txid, h.now + 20ms);
    h.now += 20ms;
    h.p.expire(h.now);
    if (cycle >= 5) {
      ASSERT_TRUE(h.p.best()) << "cycle " << cycle;
      EXPECT_EQ(h.p.best()->addr, kB) << "cycle " << cycle;
    }
  }
  EXPECT_EQ(h.p.best_addr(h.now), kB);
}

// Reference defect, second case: when the held best is the lowest-latency candidate, the
// reference let any rival's pong refresh the best's trust.
TEST(DefectRegressionTest, SlowerRivalPongDoesNotKeepADeadBestTrusted) {
  PathsHarness h;
  h.netmap({kA, kB});
  auto first = h.plan();
  h.p.note_pong(ping_for(first, kA)->txid, h.now + 3ms);
  h.now += 3ms;
  const auto trust = h.p.trust_until();
  std::vector<PlannedPing> sweep;
  h.now += 1s;
  h.p.force_sweep(h.now, h.rng, sweep);  // a is dead; b answers slower
  h.p.note_pong(ping_for(sweep, kB)->txid, h.now + 20ms);
  EXPECT_EQ(h.p.trust_until(), trust);
}

// Reference defect: control-supplied IPv6 and LAN endpoints became ping targets even in the
// IPv4-only, LAN-off posture.
TEST(DefectRegressionTest, NetmapEndpointsDoNotBypassTheFamilyFilter) {
  PathsHarness h(CandidatePolicy{false, false});
  h.netmap({ep("[2001:db8::1]:41641"), ep("10.1.1.1:41641"), kA});
  auto pings = h.plan();
  ASSERT_EQ(pings.size(), 1u);
  EXPECT_EQ(pings[0].to, kA);
  EXPECT_EQ(h.p.candidates().size(), 1u);
}

// Reference defect: reflexive addresses were only ever cleared by a rebind.
TEST(DefectRegressionTest, ReflexiveAddressesExpire) {
  MetricsRegistry reg;
  MagicsockMetrics m(reg);
  ReflexiveSet set(m, false);
  set.note_stun(ep("198.51.100.7:40000"), kStart);
  EXPECT_TRUE(set.current(kStart + kReflexiveLifetime).empty());
}

// Reference defect: a member could fill the reflexive set with any `src` it liked.
TEST(DefectRegressionTest, PongSourceOfAnyKindIsNotAdvertised) {
  MetricsRegistry reg;
  MagicsockMetrics m(reg);
  ReflexiveSet set(m, false);
  for (auto text : {"127.0.0.1:1", "192.168.0.1:1", "[2001:db8::1]:1", "0.0.0.0:1"}) {
    set.note_pong_src(ep(text), true, kStart);
  }
  EXPECT_EQ(set.size(), 0u);
}

// Reference defect: once 16 stale addresses piled up, fresh STUN results were refused forever.
TEST(DefectRegressionTest, FullReflexiveSetStillLearnsAfterOldEntriesExpire) {
  MetricsRegistry reg;
  MagicsockMetrics m(reg);
  ReflexiveSet set(m, false);
  for (int i = 0; i < 16; ++i)
    set.note_stun(IpPort{IpAddr::v4(198, 51, 100, static_cast<std::uint8_t>(i + 1)), 9}, kStart);
  EXPECT_TRUE(set.note_stun(ep("203.0.113.50:9"), kStart + kReflexiveLifetime));
}

// Reference defect: every member call-me-maybe forced a sweep of all candidates.
TEST(DefectRegressionTest, ForcedSweepsAreRateLimitedPerPeer) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  std::vector<IpPort> eps{kB};
  std::vector<PeerPing> out;
  for (int i = 0; i < 10; ++i) {
    h.t.on_call_me_maybe(disco_key(1), node_key(1), eps, h.now, out);
    h.now += 400ms;
  }
  EXPECT_EQ(out.size(), 2u);  // one sweep of a and b in 4 s
  EXPECT_EQ(h.counter("disco_forced_sweep_rate_limited_total"), 9u);
}

// Reference defect: learned candidates never aged out.
TEST(DefectRegressionTest, LearnedCandidatesAgeOut) {
  PathsHarness h;
  std::vector<IpPort> eps{kB};
  h.p.learn_from_call_me_maybe(eps, h.now);
  h.p.learn_from_ping(kA, h.now);
  h.now += kLearnedCandidateLifetime;
  h.p.expire(h.now);
  EXPECT_TRUE(h.p.candidates().empty());
}

// Reference defect: every peer without a direct path got a call-me-maybe every 5 s, forever.
TEST(DefectRegressionTest, CallMeMaybeIsNotUnconditional) {
  TableHarness h;
  std::vector<NetmapPeer> nm;
  for (std::uint8_t i = 1; i <= 20; ++i)
    nm.push_back(netmap_peer(i, {IpPort{IpAddr::v4(203, 0, 113, i), 1}}));
  h.load(nm);
  std::vector<PeerId> out;
  for (int i = 0; i < 10; ++i) {
    h.t.call_me_maybe_tick(h.now, true, out);
    h.now += 5s;
  }
  EXPECT_TRUE(out.empty());  // nobody is trying to reach these peers
}

// Reference defect: a late STUN response was accepted because the TTL was checked only on send.
TEST(DefectRegressionTest, StunTtlIsCheckedOnReceipt) {
  MetricsRegistry reg;
  MagicsockMetrics m(reg);
  SeededRandom rng(1);
  StunProber p(m, rng);
  p.set_servers(std::vector<IpPort>{ep("198.51.100.10:3478")}, kStart);
  std::vector<StunRequestPlan> out;
  p.poll(kStart, true, out);
  EXPECT_EQ(p.on_response(out[0].txid, kStart + kStunTxLifetime), StunProber::Match::kExpired);
}

// Reference defect: the node advertised its unspecified bind address 0.0.0.0:port.
TEST(DefectRegressionTest, UnspecifiedAddressIsNeverAdvertised) {
  MetricsRegistry reg;
  MagicsockMetrics m(reg);
  ReflexiveSet set(m, false);
  std::vector<IpPort> local{ep("0.0.0.0:41641"), ep("[::]:41641")};
  auto eps = build_self_endpoints(set, local, AdvertisePolicy{true, true}, kStart);
  EXPECT_TRUE(eps.empty());
}

// Reference defect: with a dual-stack socket, IPv4 peers arrived as ::ffff:a.b.c.d and were
// not attributed.
TEST(DefectRegressionTest, V4MappedSourceIsAttributedToTheIpv4Endpoint) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  EXPECT_EQ(h.t.attribute(ep("[::ffff:203.0.113.1]:41641")), h.id(1));
}

// Reference defect: when trust lapsed between route recomputes, packets were dropped.
TEST(DefectRegressionTest, PacketsFallBackToDerpPerSendWhenTrustLapses) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.now += kTrustDuration + 1ms;
  auto d = h.p.route(h.now, true);
  EXPECT_TRUE(d.has_derp());
  EXPECT_TRUE(d.has_udp());
  EXPECT_TRUE(d.start_discovery);  // and the NoPath demand-ping the reference lacked
}

// Reference defect: the first advertisement was lost when the subscriber came late.
TEST(DefectRegressionTest, FirstAdvertisementIsNotLostByALateSubscriber) {
  MetricsRegistry reg;
  MagicsockMetrics m(reg);
  EndpointAdvertiser adv(m);
  adv.update({{ep("203.0.113.1:41641"), EndpointType::kStun}});
  std::size_t got = 0;
  adv.subscribe([&](const std::vector<SelfEndpoint>& s) { got = s.size(); });
  EXPECT_EQ(got, 1u);
}

// Reference defect: with no best, the on-demand ping target was the first candidate in hash
// order; with none, nothing may be left registered.
TEST(DefectRegressionTest, OperatorPingLeavesNoStateWhenThereIsNoTarget) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  EXPECT_FALSE(h.t.operator_ping(h.id(1), h.now));
  EXPECT_EQ(h.t.paths(h.id(1)).in_flight_count(), 0u);
}

// Reference defect: the DERP source of a relayed call-me-maybe was not checked against the
// node owning the disco key.
TEST(DefectRegressionTest, RelayedCallMeMaybeFromANodeNotOwningTheDiscoKeyIsRejected) {
  TableHarness h;
  h.load({netmap_peer(1, {}), netmap_peer(2, {})});
  std::vector<IpPort> eps{kB};
  std::vector<PeerPing> out;
  EXPECT_FALSE(h.t.on_call_me_maybe(disco_key(1), node_key(2), eps, h.now, out));
  EXPECT_TRUE(h.t.paths(h.id(1)).candidates().empty());
}

// Reference defect (related): relayed pings were dropped, so `tailscale ping` over DERP got no
// answer.
TEST(DefectRegressionTest, RelayedPingIsAnswered) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  EXPECT_TRUE(h.t.on_ping_derp(disco_key(1), node_key(1), node_key(1)));
}

// Reference defect: trust counted as valid at `now <= until` in one place and `now < until` in
// another; and the verifier lagged the reconcile.
TEST(DefectRegressionTest, TrustBoundaryIsTheSameForReadersAndPathChoice) {
  PathsHarness h;
  h.netmap({kA, kB});
  h.confirm(kA, 10ms);
  const TimePoint until = *h.p.trust_until();
  EXPECT_TRUE(h.p.best_addr(until));
  EXPECT_FALSE(h.p.best_addr(until + 1ns));
  std::vector<PlannedPing> sweep;
  h.p.force_sweep(until - 10ms, h.rng, sweep);
  // At exactly `until` the best still holds against an equally fast rival.
  auto out = h.p.note_pong(ping_for(sweep, kB)->txid, until);
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->became_best);
  EXPECT_EQ(h.p.best()->addr, kA);
}

TEST(DefectRegressionTest, NewPeerPingIsAcceptedRightAfterTheReconcile) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  EXPECT_TRUE(h.t.on_ping_udp(disco_key(1), node_key(1), kA, h.now));
}

}  // namespace
}  // namespace tw::magicsock
