// PeerTable: netmap reconcile, the binding verifier, source attribution,
// call-me-maybe handling (docs/direct-underlay.md#pings-and-pongs) and the pinger tick.
#include "tests/unit/magicsock/table_util.h"

namespace tw::magicsock {
namespace {

using namespace test;

const IpPort kA = ep("203.0.113.1:41641");
const IpPort kB = ep("203.0.113.2:41641");
const IpPort kC = ep("198.51.100.3:41641");

TEST(PeerTableTest, FirstNetmapAddsPeersAndAttributesTheirEndpoints) {
  TableHarness h;
  auto st = h.load({netmap_peer(1, {kA}), netmap_peer(2, {kB})});
  EXPECT_EQ(st.added, 2u);
  EXPECT_EQ(h.t.size(), 2u);
  EXPECT_EQ(h.t.attribute(kA), h.id(1));
  EXPECT_EQ(h.t.attribute(kB), h.id(2));
  EXPECT_FALSE(h.t.attribute(kC));
}

TEST(PeerTableTest, ReconcilePrunesRevokedEndpointsKeepsLearnedAndDropsDeparted) {
  TableHarness h;
  h.load({netmap_peer(1, {kA, kB}), netmap_peer(2, {})});
  h.t.on_ping_udp(disco_key(1), node_key(1), kC, h.now);
  auto st = h.load({netmap_peer(1, {kB})});
  EXPECT_EQ(st.changed, 1u);
  EXPECT_EQ(st.removed, 1u);
  EXPECT_FALSE(h.t.attribute(kA));
  EXPECT_EQ(h.t.attribute(kB), h.id(1));
  EXPECT_EQ(h.t.attribute(kC), h.id(1));  // learned from a verified ping: kept
  EXPECT_FALSE(h.t.by_node(node_key(2)));
  EXPECT_FALSE(h.t.member(disco_key(2)));
}

TEST(PeerTableTest, UnchangedPeersAreNotTouched) {
  TableHarness h;
  std::vector<NetmapPeer> nm{netmap_peer(1, {kA}), netmap_peer(2, {kB})};
  h.load(nm);
  auto st = h.load(nm);
  EXPECT_EQ(st.unchanged, 2u);
  EXPECT_EQ(st.changed + st.added + st.removed, 0u);
}

TEST(PeerTableTest, PeerIdIsStableAcrossGenerations) {
  TableHarness h;
  h.load({netmap_peer(1, {kA}), netmap_peer(2, {kB})});
  const PeerId before = h.id(2);
  h.load({netmap_peer(2, {kB, kC})});
  EXPECT_EQ(h.id(2), before);
}

TEST(PeerTableTest, DepartedPeerLosesItsLearnedAttribution) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  h.t.on_ping_udp(disco_key(1), node_key(1), kC, h.now);
  ASSERT_TRUE(h.t.attribute(kC));
  h.load({});
  EXPECT_FALSE(h.t.attribute(kC));
  EXPECT_EQ(h.t.attribution_size(), 0u);
}

TEST(PeerTableTest, NewDiscoKeyResetsWhatWasLearned) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  h.t.on_ping_udp(disco_key(1), node_key(1), kC, h.now);
  NetmapPeer restarted = netmap_peer(1, {kA});
  restarted.disco = disco_key(9);
  h.load({restarted});
  EXPECT_FALSE(h.t.attribute(kC));
  EXPECT_EQ(h.t.attribute(kA), h.id(1));
  EXPECT_FALSE(h.t.member(disco_key(1)));
  EXPECT_EQ(h.t.member(disco_key(9)), h.id(1));
}

TEST(PeerTableTest, PingBindingRequiresTheExactNodeKey) {
  TableHarness h;
  EXPECT_FALSE(h.t.verify_ping(disco_key(1), node_key(1)));  // no netmap: closed
  h.load({netmap_peer(1, {kA}), netmap_peer(2, {kB})});
  EXPECT_EQ(h.t.verify_ping(disco_key(1), node_key(1)), h.id(1));
  EXPECT_FALSE(h.t.verify_ping(disco_key(1), node_key(2)));   // another member's key
  EXPECT_FALSE(h.t.verify_ping(disco_key(3), node_key(3)));   // unknown disco key
  EXPECT_FALSE(h.t.verify_ping(disco_key(1), std::nullopt));  // key-less ping
}

TEST(PeerTableTest, CallMeMaybeBindingRequiresTheDerpSourceToOwnTheDiscoKey) {
  TableHarness h;
  EXPECT_FALSE(h.t.verify_call_me_maybe(disco_key(1), node_key(1)));  // no netmap
  h.load({netmap_peer(1, {kA}), netmap_peer(2, {kB})});
  EXPECT_EQ(h.t.verify_call_me_maybe(disco_key(1), node_key(1)), h.id(1));
  EXPECT_FALSE(h.t.verify_call_me_maybe(disco_key(1), node_key(2)));
  EXPECT_FALSE(h.t.verify_call_me_maybe(disco_key(5), node_key(5)));  // stranger
}

TEST(PeerTableTest, BoundPingLearnsItsSourceAndAttributesIt) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  EXPECT_EQ(h.t.on_ping_udp(disco_key(1), node_key(1), kC, h.now), h.id(1));
  EXPECT_EQ(h.t.attribute(kC), h.id(1));
  EXPECT_EQ(h.counter("disco_ping_recv_total"), 1u);
}

TEST(PeerTableTest, UnboundPingGetsNothingAndLearnsNothing) {
  TableHarness h;
  h.load({netmap_peer(1, {}), netmap_peer(2, {})});
  EXPECT_FALSE(h.t.on_ping_udp(disco_key(1), node_key(2), kC, h.now));
  EXPECT_FALSE(h.t.attribute(kC));
  EXPECT_TRUE(h.t.paths(h.id(1)).candidates().empty());
  EXPECT_EQ(h.counter("disco_ping_recv_rejected_total"), 1u);
  EXPECT_EQ(h.counter("disco_ping_recv_total"), 0u);
}

TEST(PeerTableTest, BoundPingFromPrivateSourceIsAnsweredButNotLearned) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  EXPECT_TRUE(h.t.on_ping_udp(disco_key(1), node_key(1), ep("192.168.1.9:41641"), h.now));
  EXPECT_TRUE(h.t.paths(h.id(1)).candidates().empty());
}

TEST(PeerTableTest, BoundPingIsPingedBackToItsSource) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  auto id = h.t.on_ping_udp(disco_key(1), node_key(1), kC, h.now);
  ASSERT_TRUE(id);
  std::vector<PeerPing> out;
  h.t.ping_back(*id, kC, h.now, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].peer, h.id(1));
  EXPECT_EQ(out[0].ping.to, kC);
  EXPECT_EQ(h.t.paths(h.id(1)).in_flight_count(), 1u);
}

TEST(PeerTableTest, RelayedPingFromTheBoundNodeIsAnswered) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  EXPECT_EQ(h.t.on_ping_derp(disco_key(1), node_key(1), node_key(1)), h.id(1));
  EXPECT_FALSE(h.t.on_ping_derp(disco_key(1), node_key(1), node_key(2)));
  EXPECT_EQ(h.t.paths(h.id(1)).candidates().size(), 1u);  // nothing learned
}

TEST(PeerTableTest, PongFromADifferentSourceConfirmsThePingedPath) {
  TableHarness h;
  const IpPort pinged = ep("203.0.113.1:41641");
  const IpPort other_source = ep("203.0.113.1:51820");
  h.load({netmap_peer(1, {pinged})});
  auto pings = h.tick();
  ASSERT_EQ(pings.size(), 1u);
  // The pong's UDP source is not an input: it is matched by txid only.
  auto r = h.t.on_pong(disco_key(1), pings[0].ping.txid, h.now + 10ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(h.t.paths(h.id(1)).best_addr(h.now + 10ms), pinged);
  EXPECT_FALSE(h.t.attribute(other_source));
}

TEST(PeerTableTest, PongFromNonMemberIsUnsolicited) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  auto pings = h.tick();
  EXPECT_FALSE(h.t.on_pong(disco_key(7), pings[0].ping.txid, h.now));
  EXPECT_TRUE(h.t.on_pong(disco_key(1), pings[0].ping.txid, h.now));
}

TEST(PeerTableTest, CallMeMaybeFromTheOwnerLearnsAndSweepsOnce) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  std::vector<IpPort> eps{kB, ep("10.0.0.1:1"), ep("[2001:db8::1]:1")};
  std::vector<PeerPing> out;
  EXPECT_TRUE(h.t.on_call_me_maybe(disco_key(1), node_key(1), eps, h.now, out));
  EXPECT_EQ(out.size(), 2u);  // a and b; the private and IPv6 ones were filtered
  EXPECT_EQ(h.t.attribute(kB), h.id(1));
  EXPECT_TRUE(h.tick().empty());  // the sweep stamped them: the floor holds
}

// The time-to-direct race: the caller's first WireGuard packet was lost at the relay, so
// we had no traffic towards it and would never have told it our endpoints.
TEST(PeerTableTest, CallMeMaybeFromAnIdlePeerIsAnsweredWithOursAtMostEvery5s) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  std::vector<PeerPing> out;
  std::vector<IpPort> eps{kA};
  ASSERT_TRUE(h.t.on_call_me_maybe(disco_key(1), node_key(1), eps, h.now, out));
  EXPECT_FALSE(h.t.answer_call_me_maybe(h.id(1), h.now, false));  // nothing to tell yet
  EXPECT_TRUE(h.t.answer_call_me_maybe(h.id(1), h.now, true));
  EXPECT_FALSE(h.t.answer_call_me_maybe(h.id(1), h.now + 1s, true));
  // The answer shares the per-peer limit with every other call-me-maybe we send.
  std::vector<PeerPing> pings;
  EXPECT_FALSE(h.t.route(h.id(1), h.now + 2s, true, true, pings).send_call_me_maybe);
  EXPECT_TRUE(h.t.answer_call_me_maybe(h.id(1), h.now + 5s, true));
  EXPECT_EQ(h.counter("disco_call_me_maybe_answer_total"), 2u);
  EXPECT_EQ(h.counter("disco_call_me_maybe_send_total"), 2u);
}

// The other half of that race: our call-me-maybe reached the relay before the peer
// did, and the relay said so. Retry soon (250 ms, doubling), not after 5 s.
TEST(PeerTableTest, CallMeMaybeTheRelayCouldNotDeliverIsRetriedWithBackoff) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  std::vector<PeerPing> pings;
  ASSERT_TRUE(h.t.route(h.id(1), h.now, true, true, pings).send_call_me_maybe);
  std::vector<PeerId> due;
  h.t.on_relay_not_here(node_key(1), h.now + 10ms);
  h.t.call_me_maybe_tick(h.now + 200ms, true, due);
  EXPECT_TRUE(due.empty());
  h.t.call_me_maybe_tick(h.now + 260ms, true, due);
  EXPECT_EQ(due, std::vector<PeerId>{h.id(1)});  // first retry after 250 ms
  due.clear();
  h.t.on_relay_not_here(node_key(1), h.now + 270ms);  // lost again: 500 ms now
  h.t.call_me_maybe_tick(h.now + 700ms, true, due);
  EXPECT_TRUE(due.empty());
  h.t.call_me_maybe_tick(h.now + 780ms, true, due);
  EXPECT_EQ(due, std::vector<PeerId>{h.id(1)});
  due.clear();
  // Without a new "not here" the normal 5 s limit holds again.
  h.t.call_me_maybe_tick(h.now + 2s, true, due);
  EXPECT_TRUE(due.empty());
  EXPECT_EQ(h.counter("disco_call_me_maybe_not_here_total"), 2u);
  // A "not here" about a peer we never called changes nothing.
  h.load({netmap_peer(1, {}), netmap_peer(2, {})});
  h.t.on_relay_not_here(node_key(2), h.now + 2s);
  EXPECT_EQ(h.counter("disco_call_me_maybe_not_here_total"), 2u);
}

TEST(PeerTableTest, CallMeMaybeIsNotAnsweredOverATrustedPath) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  h.answer(h.tick(), 10ms);
  ASSERT_TRUE(h.t.paths(h.id(1)).trusted(h.now + 1s));
  std::vector<PeerPing> out;
  std::vector<IpPort> eps{kA};
  ASSERT_TRUE(h.t.on_call_me_maybe(disco_key(1), node_key(1), eps, h.now + 1s, out));
  EXPECT_FALSE(h.t.answer_call_me_maybe(h.id(1), h.now + 1s, true));
  EXPECT_EQ(h.counter("disco_call_me_maybe_answer_total"), 0u);
}

TEST(PeerTableTest, CallMeMaybeFromAStrangerLearnsNothing) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  std::vector<IpPort> eps{kB};
  std::vector<PeerPing> out;
  EXPECT_FALSE(h.t.on_call_me_maybe(disco_key(3), node_key(3), eps, h.now, out));
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(h.t.attribute(kB));
  EXPECT_EQ(h.counter("disco_call_me_maybe_recv_rejected_total"), 1u);
}

TEST(PeerTableTest, NetmapTakesAnAddressFromALearnedOwner) {
  TableHarness h;
  h.load({netmap_peer(1, {}), netmap_peer(2, {})});
  h.t.on_ping_udp(disco_key(1), node_key(1), kC, h.now);
  h.load({netmap_peer(1, {}), netmap_peer(2, {kC})});
  EXPECT_EQ(h.t.attribute(kC), h.id(2));
}

TEST(PeerTableTest, LearnedAttributionIsFirstWriterWins) {
  TableHarness h;
  h.load({netmap_peer(1, {}), netmap_peer(2, {})});
  h.t.on_ping_udp(disco_key(1), node_key(1), kC, h.now);
  h.t.on_ping_udp(disco_key(2), node_key(2), kC, h.now);
  EXPECT_EQ(h.t.attribute(kC), h.id(1));
}

TEST(PeerTableTest, ExpiredLearnedCandidateLosesAttribution) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  h.t.on_ping_udp(disco_key(1), node_key(1), kC, h.now);
  h.now += kLearnedCandidateLifetime;
  h.tick();
  EXPECT_FALSE(h.t.attribute(kC));
}

TEST(PeerTableTest, NetmapEndpointsOutsideThePolicyAreNeitherPingedNorAttributed) {
  TableHarness h(CandidatePolicy{false, false});
  h.load({netmap_peer(1, {ep("[2001:db8::1]:41641"), ep("192.168.1.2:41641"), kA})});
  auto pings = h.tick();
  ASSERT_EQ(pings.size(), 1u);
  EXPECT_EQ(pings[0].ping.to, kA);
  EXPECT_EQ(h.t.attribution_size(), 1u);
  EXPECT_EQ(h.counter("disco_netmap_endpoint_filtered_total"), 2u);
}

TEST(PeerTableTest, PingerTickTouchesOnlyPeersWithWork) {
  TableHarness h;
  std::vector<NetmapPeer> nm;
  for (std::uint8_t i = 1; i <= 50; ++i) {
    nm.push_back(netmap_peer(i, {IpPort{IpAddr::v4(203, 0, 113, i), 41641}}));
  }
  h.load(nm);
  auto first = h.tick();
  EXPECT_EQ(first.size(), 50u);
  h.answer(first, 10ms);
  h.now += 2s;
  EXPECT_TRUE(h.tick().empty());  // all trusted, refresh due at +3 s
  h.now += 2s;
  EXPECT_EQ(h.tick().size(), 50u);
}

TEST(PeerTableTest, NewPeerIsPingedAtTheNextTick) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  h.answer(h.tick(), 10ms);
  h.now += 1s;
  h.load({netmap_peer(1, {kA}), netmap_peer(2, {kB})});
  auto pings = h.tick();
  ASSERT_EQ(pings.size(), 1u);
  EXPECT_EQ(pings[0].peer, h.id(2));
}

TEST(PeerTableTest, RebindClearsBestAndRepingsAtOnceKeepingCandidates) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  h.answer(h.tick(), 10ms);
  h.now += 100ms;
  ASSERT_TRUE(h.t.paths(h.id(1)).best_addr(h.now));
  h.t.rebind(h.now);
  EXPECT_FALSE(h.t.paths(h.id(1)).best());
  EXPECT_EQ(h.t.paths(h.id(1)).candidates().size(), 1u);
  EXPECT_EQ(h.t.attribute(kA), h.id(1));
  EXPECT_EQ(h.tick().size(), 1u);
}

TEST(PeerTableTest, RouteWithoutTrustedPathRunsDiscoveryAndCallMeMaybe) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  std::vector<PeerPing> out;
  auto plan = h.t.route(h.id(1), h.now, true, true, out);
  EXPECT_EQ(plan.route.kind, RouteKind::kDerp);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_TRUE(plan.send_call_me_maybe);
  out.clear();
  plan = h.t.route(h.id(1), h.now + 1s, true, true, out);
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(plan.send_call_me_maybe);
}

TEST(PeerTableTest, CallMeMaybeTickListsOnlyActiveUntrustedPeers) {
  TableHarness h;
  h.load({netmap_peer(1, {kA}), netmap_peer(2, {kB}), netmap_peer(3, {kC})});
  std::vector<PeerPing> pings;
  h.t.route(h.id(1), h.now, true, false, pings);  // active, no endpoints yet
  h.t.route(h.id(2), h.now, true, false, pings);
  h.answer(pings, 10ms);  // peer 1 and 2 become trusted... then 1's trust lapses
  h.now += 10s;
  h.t.route(h.id(2), h.now, true, false, pings);
  std::vector<PeerId> out;
  h.t.call_me_maybe_tick(h.now, true, out);
  EXPECT_EQ(out, (std::vector<PeerId>{h.id(1), h.id(2)}));
  out.clear();
  h.now += 40s;  // peer 1 idle for 50 s, peer 2 for 40 s
  h.t.call_me_maybe_tick(h.now, true, out);
  EXPECT_EQ(out, std::vector<PeerId>{h.id(2)});
}

TEST(PeerTableTest, StatusShowsPathBestLatencyAndCandidates) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  h.answer(h.tick(), 12ms);
  auto st = h.t.status(h.id(1), h.now + 1s, true);
  EXPECT_EQ(st.path, PathKind::kDirect);
  EXPECT_EQ(st.best, kA);
  EXPECT_EQ(st.latency, 12ms);
  EXPECT_EQ(st.candidates.size(), 1u);
}

TEST(PeerTableTest, LearnedCapCountsOnlyAddressesThatPassTheFilter) {
  TableHarness h;
  h.load({netmap_peer(1, {})});
  for (int i = 0; i < 40; ++i) {  // private junk uses none of the cap
    h.t.on_ping_udp(disco_key(1), node_key(1),
                    IpPort{IpAddr::v4(10, 0, 0, static_cast<std::uint8_t>(i + 1)), 1}, h.now);
  }
  EXPECT_EQ(h.t.paths(h.id(1)).learned_count(), 0u);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 30; ++i) {
      const auto third = static_cast<std::uint8_t>(round * 30 + i + 1);
      h.t.on_ping_udp(disco_key(1), node_key(1), IpPort{IpAddr::v4(198, 51, third, 1), 1}, h.now);
    }
  }
  EXPECT_EQ(h.t.paths(h.id(1)).learned_count(), kMaxLearnedCandidates);
  EXPECT_EQ(h.t.attribution_size(), kMaxLearnedCandidates);
  const IpPort first{IpAddr::v4(198, 51, 1, 1), 1};
  h.t.on_ping_udp(disco_key(1), node_key(1), first, h.now);  // re-add keeps attribution
  EXPECT_EQ(h.t.attribute(first), h.id(1));
  EXPECT_TRUE(h.t.consistent());
}

TEST(PeerTableTest, NetmapEndpointsAreUncappedAndPrunedOnReconcile) {
  TableHarness h;
  std::vector<IpPort> many;
  for (int i = 0; i < 40; ++i)
    many.push_back(IpPort{IpAddr::v4(198, 51, 100, static_cast<std::uint8_t>(i + 1)), 1});
  h.load({netmap_peer(1, many)});
  EXPECT_EQ(h.t.attribution_size(), 40u);
  h.load({netmap_peer(1, {many[0], many[1]})});
  EXPECT_EQ(h.t.attribution_size(), 2u);
  EXPECT_EQ(h.t.paths(h.id(1)).candidates().size(), 2u);
  EXPECT_TRUE(h.t.consistent());
}

TEST(PeerTableTest, PongCountersTellSolicitedFromUnsolicited) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  auto pings = h.tick();
  TxId bogus{};
  bogus.fill(1);
  h.t.on_pong(disco_key(1), bogus, h.now);
  h.t.on_pong(disco_key(1), pings[0].ping.txid, h.now + 1ms);
  EXPECT_EQ(h.counter("disco_pong_recv_total"), 2u);
  EXPECT_EQ(h.counter("disco_pong_recv_solicited_total"), 1u);
  EXPECT_EQ(h.counter("disco_pong_recv_unsolicited_total"), 1u);
}

TEST(PeerTableTest, SendToADepartedPeerIsDroppedAndCounted) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  const PeerId gone = h.id(1);
  h.load({});
  std::vector<PeerPing> out;
  auto plan = h.t.route(gone, h.now, true, true, out);
  EXPECT_EQ(plan.route.kind, RouteKind::kDrop);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(h.counter("route_drop_no_route_total"), 1u);
}

TEST(PeerTableTest, CallMeMaybeFromAnUnknownPeerSweepsNothing) {
  TableHarness h;
  h.load({netmap_peer(1, {kA})});
  std::vector<IpPort> eps{kB};
  std::vector<PeerPing> out;
  h.t.on_call_me_maybe(disco_key(4), node_key(4), eps, h.now, out);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(h.t.consistent());
}

}  // namespace
}  // namespace tw::magicsock
