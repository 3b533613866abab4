// The named path states of PeerPaths (docs/direct-underlay.md#the-path-state-machine):
// each transition of the drawing in path_state.h, and what status() reports in each.
#include "netproc/magicsock/path_state.h"

#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock::test {
namespace {

const IpPort kA = ep("198.18.0.3:41641");

TEST(PathStateTest, NoBestThenProbingWhilePingsAreOutThenNoBestWhenTheyTimeOut) {
  PathsHarness h;
  EXPECT_EQ(h.p.state(h.now), PathState::kNoBest);
  h.netmap({kA});
  EXPECT_EQ(h.p.state(h.now), PathState::kNoBest);
  ASSERT_EQ(h.plan().size(), 1u);
  EXPECT_EQ(h.p.state(h.now), PathState::kProbing);
  h.now += kPingTimeout;
  EXPECT_EQ(h.p.state(h.now), PathState::kNoBest);
}

TEST(PathStateTest, PongMakesTrustedQuietBestFailsOverAndTrustEndExpires) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  EXPECT_EQ(h.p.state(h.now), PathState::kTrusted);
  h.now += 3s;
  ASSERT_EQ(h.plan().size(), 1u);  // refresh ping to the best: never answered
  h.now += kFailoverFloor;
  EXPECT_EQ(h.p.state(h.now), PathState::kTrusted);
  h.now += 1ms;
  EXPECT_EQ(h.p.state(h.now), PathState::kFailingOver);
  h.now = kStart + 10ms + kTrustDuration + 1ms;
  EXPECT_EQ(h.p.state(h.now), PathState::kExpired);
}

TEST(PathStateTest, PongFromTheBestEndsFailover) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.now += 3s;
  auto pings = h.plan();
  h.now += 1200ms;
  ASSERT_EQ(h.p.state(h.now), PathState::kFailingOver);
  h.p.note_pong(pings[0].txid, h.now);
  EXPECT_EQ(h.p.state(h.now), PathState::kTrusted);
}

TEST(PathStateTest, RebindTakesTrustedBackToNoBest) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  ASSERT_EQ(h.p.state(h.now), PathState::kTrusted);
  h.p.invalidate_best();
  EXPECT_EQ(h.p.state(h.now), PathState::kNoBest);
}

TEST(PathStateTest, StatusNamesTheStateAndTheRouteOfADatagramSentNow) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  auto s = h.p.status(h.now, true);
  EXPECT_EQ(s.path, PathKind::kDirect);
  EXPECT_EQ(s.state, PathState::kTrusted);
  EXPECT_EQ(s.route, RouteKind::kUdp);
  h.now += 3s;
  h.plan();
  h.now += 1200ms;
  s = h.p.status(h.now, true);
  EXPECT_EQ(s.path, PathKind::kDirect);  // still trusted...
  EXPECT_EQ(s.state, PathState::kFailingOver);
  EXPECT_EQ(s.route, RouteKind::kUdpAndDerp);  // ...but sent both ways, as route() does
  EXPECT_EQ(h.p.route(h.now, true).kind, s.route);
  h.now = kStart + 10ms + kTrustDuration + 1ms;  // trust ended; the refresh ping not yet timed out
  s = h.p.status(h.now, true);
  EXPECT_EQ(s.path, PathKind::kDerp);
  EXPECT_EQ(s.state, PathState::kExpired);
  EXPECT_EQ(s.route, RouteKind::kUdpAndDerp);
  EXPECT_EQ(h.p.status(h.now, false).route, RouteKind::kUdp);  // no DERP: UDP alone
}

TEST(PathStateTest, SendRuleOverEveryState) {
  EXPECT_EQ(route_kind(PathState::kNoBest, true), RouteKind::kDerp);
  EXPECT_EQ(route_kind(PathState::kNoBest, false), RouteKind::kDrop);
  EXPECT_EQ(route_kind(PathState::kProbing, true), RouteKind::kDerp);
  EXPECT_EQ(route_kind(PathState::kTrusted, true), RouteKind::kUdp);
  EXPECT_EQ(route_kind(PathState::kFailingOver, true), RouteKind::kUdpAndDerp);
  EXPECT_EQ(route_kind(PathState::kFailingOver, false), RouteKind::kUdp);
  EXPECT_EQ(route_kind(PathState::kExpired, true), RouteKind::kUdpAndDerp);
  EXPECT_EQ(to_string(PathState::kFailingOver), "failing_over");
  EXPECT_EQ(to_string(RouteKind::kUdpAndDerp), "udp+derp");
}

}  // namespace
}  // namespace tw::magicsock::test
