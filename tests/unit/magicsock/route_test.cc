// The per-packet route decision (docs/direct-underlay.md#the-send-rule, and the
// reference's route-updater scenarios it replaces), fast failover, on-demand
// discovery and the call-me-maybe send policy.
#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock {
namespace {

using namespace test;

const IpPort kA = ep("203.0.113.1:41641");
const IpPort kB = ep("203.0.113.2:41641");

TEST(RouteTest, TrustedBestSendsByUdpOnly) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  auto d = h.p.route(h.now, true);
  EXPECT_EQ(d.kind, RouteKind::kUdp);
  EXPECT_EQ(d.udp, kA);
  EXPECT_FALSE(d.start_discovery);
}

TEST(RouteTest, BestWithExpiredTrustSendsByUdpAndDerp) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.now += kTrustDuration + 1ms;
  auto d = h.p.route(h.now, true);
  EXPECT_EQ(d.kind, RouteKind::kUdpAndDerp);
  EXPECT_EQ(d.udp, kA);
}

TEST(RouteTest, NoBestSendsByDerpOnly) {
  PathsHarness h;
  h.netmap({kA});
  EXPECT_EQ(h.p.route(h.now, true).kind, RouteKind::kDerp);
}

TEST(RouteTest, NoRouteAtAllDropsAndCounts) {
  PathsHarness h;
  auto d = h.p.route(h.now, false);
  EXPECT_EQ(d.kind, RouteKind::kDrop);
  EXPECT_FALSE(d.has_udp());
  EXPECT_FALSE(d.has_derp());
  EXPECT_EQ(h.counter("route_drop_no_route_total"), 1u);
}

TEST(RouteTest, DirectReadyPeerUsesUdpEvenWithoutDerpRegion) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  EXPECT_EQ(h.p.route(h.now, false).kind, RouteKind::kUdp);
}

TEST(RouteTest, PeerWithoutDirectPathStaysOnDerp) {
  PathsHarness h;  // the route-updater's "empty ready set is pure DERP"
  h.netmap({kA, kB});
  h.plan();
  EXPECT_EQ(h.p.route(h.now + 1s, true).kind, RouteKind::kDerp);
}

TEST(RouteTest, QuietTrustedBestFailsOverToUdpAndDerpAfterOneSecond) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);  // 3 × RTT = 30 ms, so the 1 s floor applies
  h.now += 3s;
  h.plan();  // refresh ping to a: never answered
  h.now += 1s;
  EXPECT_EQ(h.p.route(h.now, true).kind, RouteKind::kUdp);
  h.now += 1ms;
  auto d = h.p.route(h.now, true);
  EXPECT_EQ(d.kind, RouteKind::kUdpAndDerp);
  EXPECT_TRUE(d.failover);
  EXPECT_TRUE(h.p.best_addr(h.now));  // still trusted: failover precedes expiry
}

TEST(RouteTest, FailoverWaitsThreeRttsOnASlowPath) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 500ms);
  h.now += 3s;
  ASSERT_EQ(h.plan().size(), 1u);
  h.now += 1500ms;
  EXPECT_EQ(h.p.route(h.now, true).kind, RouteKind::kUdp);
  h.now += 1ms;
  EXPECT_TRUE(h.p.route(h.now, true).failover);
}

TEST(RouteTest, AnsweredPingEndsFailover) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.now += 3s;
  auto pings = h.plan();
  h.now += 1200ms;
  ASSERT_TRUE(h.p.route(h.now, true).failover);
  h.p.note_pong(pings[0].txid, h.now);
  EXPECT_EQ(h.p.route(h.now, true).kind, RouteKind::kUdp);
}

TEST(RouteTest, OneLostPingDoesNotFailOverWhenALaterOneIsAnswered) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.now += 3s;
  h.plan();  // lost
  h.now += 500ms;
  std::vector<PlannedPing> out;
  h.p.force_sweep(h.now, h.rng, out);
  h.now += 10ms;
  h.p.note_pong(out[0].txid, h.now);
  h.now += 1s;
  EXPECT_FALSE(h.p.route(h.now, true).failover);
}

TEST(RouteTest, BusyTrustedBestIsProbedEverySecondWhileAnswered) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);  // the confirming ping went out 10 ms ago
  EXPECT_FALSE(h.p.route(h.now, true).probe_best);
  h.now += 990ms;
  auto d = h.p.route(h.now, true);
  ASSERT_TRUE(d.probe_best);
  std::vector<PlannedPing> out;
  h.p.probe_best(h.now, h.rng, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to, kA);
  EXPECT_FALSE(h.p.route(h.now + 500ms, true).probe_best);  // at most one a second
  h.now += 10ms;
  h.p.note_pong(out[0].txid, h.now);
  EXPECT_FALSE(h.p.route(h.now + 980ms, true).probe_best);
  EXPECT_TRUE(h.p.route(h.now + 990ms, true).probe_best);
  EXPECT_EQ(h.counter("disco_best_probe_total"), 1u);
}

// With probes every second, a path that dies is failed over within ~2 s of the
// last pong instead of up to 3 s + 1 s + one pinger tick.
TEST(RouteTest, DeadBusyBestFailsOverWithinTwoSecondsOfItsLastPong) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  const TimePoint last_pong = h.now;
  std::vector<PlannedPing> out;
  bool failed_over = false;
  for (int step = 0; step < 400 && !failed_over; ++step) {  // a packet every 5 ms
    h.now += 5ms;
    auto d = h.p.route(h.now, true);
    if (d.probe_best) h.p.probe_best(h.now, h.rng, out);  // never answered
    failed_over = d.failover;
  }
  ASSERT_TRUE(failed_over);
  EXPECT_LE(h.now - last_pong, 2010ms);
  EXPECT_EQ(out.size(), 2u);  // the one that went unanswered, and the next second's
}

// During failover the best is still pinged every second while traffic flows by UDP
// and DERP, so the first answer after the outage ends the duplication at once.
TEST(RouteTest, ProbesContinueDuringFailoverAndTheFirstAnswerEndsIt) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  std::vector<PlannedPing> out;
  bool failed_over = false;
  for (int step = 0; step < 800; ++step) {  // 4 s of a packet every 5 ms, UDP dead
    h.now += 5ms;
    auto d = h.p.route(h.now, true);
    failed_over = failed_over || d.failover;
    if (d.probe_best) h.p.probe_best(h.now, h.rng, out);
  }
  ASSERT_TRUE(failed_over);
  EXPECT_EQ(out.size(), 4u);
  h.now += 10ms;
  ASSERT_TRUE(h.p.note_pong(out.back().txid, h.now));  // the path is back
  auto d = h.p.route(h.now, true);
  EXPECT_EQ(d.kind, RouteKind::kUdp);
  EXPECT_FALSE(d.failover);
}

TEST(RouteTest, SendWithoutTrustedPathStartsDiscoveryAtMostEvery5s) {
  PathsHarness h;
  h.netmap({kA});
  EXPECT_TRUE(h.p.route(h.now, true).start_discovery);
  h.now += 4999ms;
  EXPECT_FALSE(h.p.route(h.now, true).start_discovery);
  h.now += 1ms;
  EXPECT_TRUE(h.p.route(h.now, true).start_discovery);
  EXPECT_EQ(h.counter("disco_discovery_on_demand_total"), 2u);
}

TEST(RouteTest, SendOverTrustedPathStartsNoDiscovery) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  EXPECT_FALSE(h.p.route(h.now, true).start_discovery);
}

TEST(RouteTest, CallMeMaybeOnlyWhileActivelyReachingThePeer) {
  PathsHarness h;
  h.netmap({kA});
  EXPECT_FALSE(h.p.want_call_me_maybe(h.now, true));  // no traffic: nothing to reach
  h.p.route(h.now, true);
  EXPECT_TRUE(h.p.want_call_me_maybe(h.now, true));
  EXPECT_FALSE(h.p.want_call_me_maybe(h.now + 4s, true));  // 5 s apart
  EXPECT_TRUE(h.p.want_call_me_maybe(h.now + 5s, true));
  EXPECT_FALSE(h.p.want_call_me_maybe(h.now + 45s, true));  // idle 45 s
}

TEST(RouteTest, CallMeMaybeNotSentOverATrustedPath) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.p.route(h.now, true);
  EXPECT_FALSE(h.p.want_call_me_maybe(h.now, true));
}

TEST(RouteTest, CallMeMaybeNotSentWithoutEndpointsToAdvertise) {
  PathsHarness h;
  h.p.route(h.now, true);
  EXPECT_FALSE(h.p.want_call_me_maybe(h.now, false));
  EXPECT_TRUE(h.p.want_call_me_maybe(h.now, true));  // the failed try used no budget
}

TEST(RouteTest, OperatorPingCountsAsActivityAndTargetsBest) {
  PathsHarness h;
  h.netmap({kB, kA});
  h.confirm(kA, 10ms);
  h.now += 1s;
  auto ping = h.p.plan_operator_ping(h.now, h.rng);
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->to, kA);
  EXPECT_TRUE(h.p.active(h.now));
}

TEST(RouteTest, OperatorPingWithoutBestPrefersTheFastestMeasuredCandidate) {
  PathsHarness h;
  const IpPort c = ep("203.0.113.3:41641");
  h.netmap({c, kA, kB});
  auto pings = h.plan();
  h.p.note_pong(ping_for(pings, kB)->txid, h.now + 20ms);  // b becomes best
  h.p.note_pong(ping_for(pings, kA)->txid, h.now + 40ms);  // a measured, not best
  h.netmap({c, kA});                                       // b revoked: no best left
  ASSERT_FALSE(h.p.best());
  h.now += 1s;
  auto ping = h.p.plan_operator_ping(h.now, h.rng);
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->to, kA);  // not merely the first candidate (c)
}

TEST(RouteTest, OperatorPingWithNoCandidateLeavesNothingInFlight) {
  PathsHarness h;
  EXPECT_FALSE(h.p.plan_operator_ping(h.now, h.rng));
  EXPECT_EQ(h.p.in_flight_count(), 0u);
}

}  // namespace
}  // namespace tw::magicsock
