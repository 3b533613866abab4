// PeerPaths with injected time: the reference's path.rs scenarios, adapted to Go's
// path choice (docs/direct-underlay.md), plus candidate lifetime and call-me-maybe rules.
#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock {
namespace {

using namespace test;

const IpPort kA = ep("203.0.113.1:41641");
const IpPort kB = ep("203.0.113.2:41641");
const IpPort kC = ep("203.0.113.3:41641");

TEST(PeerPathsTest, PongConfirmsAndTrustsPath) {
  PathsHarness h;
  h.netmap({kA});
  EXPECT_FALSE(h.p.best_addr(h.now));
  auto out = h.confirm(kA, 10ms);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->rtt, 10ms);
  EXPECT_EQ(out->pinged, kA);
  EXPECT_TRUE(out->became_best);
  EXPECT_EQ(h.p.best_addr(h.now), kA);
}

TEST(PeerPathsTest, BestLatencyIsReportedAndExpiresWithTrust) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  auto st = h.p.status(h.now, true);
  EXPECT_EQ(st.path, PathKind::kDirect);
  EXPECT_EQ(st.best, kA);
  EXPECT_EQ(st.latency, 10ms);
  EXPECT_EQ(st.trust_remaining, kTrustDuration);
  h.now += kTrustDuration + 1ms;
  EXPECT_FALSE(h.p.best_addr(h.now));
  EXPECT_EQ(h.p.status(h.now, true).path, PathKind::kDerp);
  EXPECT_EQ(h.p.status(h.now, false).path, PathKind::kNone);
}

TEST(PeerPathsTest, LowestLatencyPathWins) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 50ms);
  h.netmap({kA, kB});
  h.now += 3s;  // refresh cycle; b is new and never pinged
  auto pings = h.plan();
  ASSERT_TRUE(pings_to(pings, kA));
  ASSERT_TRUE(pings_to(pings, kB));
  h.now += 5ms;
  h.p.note_pong(ping_for(pings, kB)->txid, h.now);
  h.now += 45ms;
  h.p.note_pong(ping_for(pings, kA)->txid, h.now);
  EXPECT_EQ(h.p.best_addr(h.now), kB);
  EXPECT_EQ(h.p.best()->latency, 5ms);
}

TEST(PeerPathsTest, TrustExpiresAndNeedsRefresh) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.now += kTrustDuration + 1s;
  EXPECT_FALSE(h.p.best_addr(h.now));
  EXPECT_TRUE(h.p.needs_refresh(h.now));
}

TEST(PeerPathsTest, ReconcilePrunesRevokedNetmapEndpointAndClearsBest) {
  PathsHarness h;
  h.netmap({kA, kB});
  h.confirm(kA, 10ms);
  auto delta = h.p.set_netmap_endpoints(std::vector<IpPort>{kB}, h.now);
  EXPECT_EQ(delta.removed, std::vector<IpPort>{kA});
  EXPECT_FALSE(h.p.best());
  ASSERT_EQ(h.p.candidates().size(), 1u);
  EXPECT_EQ(h.p.candidates()[0].addr, kB);
  EXPECT_EQ(h.p.in_flight_count(), 1u);  // only b's ping of the first sweep is left
}

TEST(PeerPathsTest, ReconcilePreservesLearnedCandidates) {
  PathsHarness h;
  h.netmap({kA});
  h.p.learn_from_ping(kB, h.now);
  h.p.set_netmap_endpoints({}, h.now);
  ASSERT_EQ(h.p.candidates().size(), 1u);
  EXPECT_EQ(h.p.candidates()[0].addr, kB);
  EXPECT_EQ(h.p.candidates()[0].source, CandidateSource::kPing);
}

TEST(PeerPathsTest, UnsolicitedPongIsIgnored) {
  PathsHarness h;
  h.netmap({kA});
  h.plan();
  TxId unknown{};
  unknown.fill(0x77);
  EXPECT_FALSE(h.p.note_pong(unknown, h.now + 1ms));
  EXPECT_FALSE(h.p.best());
  EXPECT_EQ(h.counter("disco_pong_recv_unsolicited_total"), 1u);
}

TEST(PeerPathsTest, RefreshFiresBeforeTrustLapsesWhileStillTrusted) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  const TimePoint confirmed = h.now;
  EXPECT_FALSE(h.p.needs_refresh(confirmed + 100ms));
  const TimePoint t = confirmed + kTrustDuration - kRefreshBeforeExpiry + 1ms;
  EXPECT_TRUE(h.p.needs_refresh(t));
  EXPECT_TRUE(h.p.best_addr(t));
}

TEST(PeerPathsTest, PresumedLostProbesArePrunedAndTheirPongIgnored) {
  PathsHarness h;
  h.netmap({kA});
  auto first = h.plan();
  h.now += kPingTimeout + 1ms;
  auto second = h.plan();
  EXPECT_EQ(h.p.in_flight_count(), 1u);
  EXPECT_FALSE(h.p.note_pong(first[0].txid, h.now));
  EXPECT_TRUE(h.p.note_pong(second[0].txid, h.now + 1ms));
}

TEST(PeerPathsTest, PongTxIdIsSingleUse) {
  PathsHarness h;
  h.netmap({kA});
  auto pings = h.plan();
  h.now += 10ms;
  EXPECT_TRUE(h.p.note_pong(pings[0].txid, h.now));
  EXPECT_FALSE(h.p.note_pong(pings[0].txid, h.now + 1ms));
}

TEST(PeerPathsTest, LatencyIsMeasuredToThePingedAddress) {
  PathsHarness h;
  h.netmap({kA, kB});
  auto pings = h.plan();
  h.now += 30ms;
  auto out = h.p.note_pong(ping_for(pings, kB)->txid, h.now);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->pinged, kB);
  EXPECT_EQ(h.p.find(kB)->latency, 30ms);
  EXPECT_FALSE(h.p.find(kA)->latency);
}

TEST(PeerPathsTest, LearnedCandidatesAreCappedPerPeer) {
  PathsHarness h;
  for (int i = 0; i < 72; ++i) {
    h.p.learn_from_ping(IpPort{IpAddr::v4(203, 0, 113, static_cast<std::uint8_t>(i + 1)), 1000},
                        h.now);
  }
  EXPECT_EQ(h.p.learned_count(), kMaxLearnedCandidates);
  EXPECT_EQ(h.counter("disco_candidate_rejected_cap_total"), 72u - kMaxLearnedCandidates);
}

TEST(PeerPathsTest, LearnedCapDoesNotBlockNetmapOrReAdd) {
  PathsHarness h;
  for (int i = 0; i < 32; ++i) {
    h.p.learn_from_ping(IpPort{IpAddr::v4(203, 0, 113, static_cast<std::uint8_t>(i + 1)), 1000},
                        h.now);
  }
  auto again = h.p.learn_from_ping(IpPort{IpAddr::v4(203, 0, 113, 1), 1000}, h.now);
  EXPECT_EQ(again.added.size(), 1u);  // already present: accepted, no new entry
  EXPECT_EQ(h.p.candidates().size(), 32u);
  h.netmap({kA});
  EXPECT_TRUE(h.p.find(kA));
  EXPECT_EQ(h.p.candidates().size(), 33u);
}

TEST(PeerPathsTest, NearEqualChallengerDoesNotStealTrustedBest) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.netmap({kA, kB});
  h.now += 3s;
  auto pings = h.plan();
  h.now += 9950us;
  auto out = h.p.note_pong(ping_for(pings, kB)->txid, h.now);
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->became_best);
  EXPECT_EQ(h.p.best_addr(h.now), kA);
}

TEST(PeerPathsTest, DecisivelyFasterChallengerTakesBest) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 50ms);
  h.netmap({kA, kB});
  h.now += 3s;
  auto pings = h.plan();
  h.now += 10ms;
  auto out = h.p.note_pong(ping_for(pings, kB)->txid, h.now);
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->became_best);
  EXPECT_EQ(h.p.best_addr(h.now), kB);
}

TEST(PeerPathsTest, PongForCurrentBestRefreshesTrust) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.now += 3s;
  h.confirm(kA, 10ms);
  EXPECT_EQ(h.p.trust_until(), h.now + kTrustDuration);
}

TEST(PeerPathsTest, ExpiredBestDoesNotBlockSwitchToFasterCandidate) {
  PathsHarness h;
  h.netmap({kA, kB});
  auto pings = h.plan();
  h.now += 50ms;
  h.p.note_pong(ping_for(pings, kA)->txid, h.now);
  ASSERT_EQ(h.p.best_addr(h.now), kA);
  h.now += kTrustDuration + 1s;
  auto next = h.plan();
  h.now += 10ms;
  h.p.note_pong(ping_for(next, kB)->txid, h.now);
  EXPECT_EQ(h.p.best_addr(h.now), kB);
}

TEST(PeerPathsTest, RivalPongDoesNotRefreshHeldBestTrust) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  const auto trust = h.p.trust_until();
  h.netmap({kA, kB});
  h.now += 3s;
  auto pings = h.plan();  // the ping to a is lost
  h.now += 9950us;
  auto out = h.p.note_pong(ping_for(pings, kB)->txid, h.now);
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->refreshed_trust);
  EXPECT_EQ(h.p.trust_until(), trust);
  EXPECT_FALSE(h.p.best_addr(*trust + 1ms));  // a expires on schedule
}

TEST(PeerPathsTest, DiscoveryFloorThrottlesUnconfirmedCandidateTo5s) {
  PathsHarness h;
  h.netmap({kA});
  EXPECT_TRUE(pings_to(h.plan(), kA));
  h.now += 2s;
  EXPECT_FALSE(pings_to(h.plan(), kA));
  h.now += 3s;
  EXPECT_TRUE(pings_to(h.plan(), kA));
}

TEST(PeerPathsTest, ConfirmedBestIsExemptFromTheDiscoveryFloor) {
  PathsHarness h;
  h.netmap({kA, kB});
  h.confirm(kA, 50ms);
  h.now += 3s;  // best pinged 3.05 s ago: inside the floor, but it is the best
  auto pings = h.plan();
  EXPECT_TRUE(pings_to(pings, kA));
  EXPECT_FALSE(pings_to(pings, kB));
}

TEST(PeerPathsTest, GoodEnoughBestQuietsNonBestCandidates) {
  PathsHarness h;
  h.netmap({kA, kB});
  auto first = h.plan();  // full sweep
  EXPECT_TRUE(pings_to(first, kA));
  EXPECT_TRUE(pings_to(first, kB));
  h.now += 3ms;
  h.p.note_pong(ping_for(first, kA)->txid, h.now);
  h.now += 5s;
  auto next = h.plan();
  EXPECT_TRUE(pings_to(next, kA));
  EXPECT_FALSE(pings_to(next, kB));
}

// Keeps `a` confirmed at `rtt` every refresh cycle until `until`; returns whether `b`
// was pinged in the last cycle.
bool run_cycles(PathsHarness& h, const IpPort& a, const IpPort& b, Duration rtt, TimePoint until) {
  bool pinged_b = false;
  while (h.now < until) {
    h.now += 2s;
    auto pings = h.plan();
    pinged_b = pings_to(pings, b);
    if (const PlannedPing* pa = ping_for(pings, a)) h.p.note_pong(pa->txid, h.now + rtt);
  }
  return pinged_b;
}

TEST(PeerPathsTest, GoodEnoughBestIsQuietedIndefinitely) {
  PathsHarness h;
  h.netmap({kA, kB});
  h.confirm(kA, 3ms);
  bool any_b = false;
  const TimePoint stop = h.now + 120s;
  while (h.now < stop) {
    any_b |= run_cycles(h, kA, kB, 3ms, h.now + 2s);
  }
  EXPECT_FALSE(any_b);
  EXPECT_EQ(h.p.best_addr(h.now), kA);
}

TEST(PeerPathsTest, MediocreBestReprobesCandidatesOnUpgradeInterval) {
  PathsHarness h;
  h.netmap({kA, kB});
  const TimePoint first = h.now;
  h.confirm(kA, 50ms);
  bool b_before = false;
  while (h.now < first + 56s) b_before |= run_cycles(h, kA, kB, 50ms, h.now + 2s);
  EXPECT_FALSE(b_before);
  bool b_after = false;
  while (h.now < first + 66s) b_after |= run_cycles(h, kA, kB, 50ms, h.now + 2s);
  EXPECT_TRUE(b_after);
}

TEST(PeerPathsTest, NeverPingedCandidateProbedPromptlyDuringQuiet) {
  PathsHarness h;
  h.netmap({kA, kB});
  h.confirm(kA, 3ms);
  h.p.learn_from_ping(kC, h.now);
  h.now += 3s;
  auto pings = h.plan();
  EXPECT_TRUE(pings_to(pings, kA));
  EXPECT_TRUE(pings_to(pings, kC));
  EXPECT_FALSE(pings_to(pings, kB));
}

TEST(PeerPathsTest, PingLearnedCandidateExpires45sAfterLastSeen) {
  PathsHarness h;
  h.p.learn_from_ping(kA, h.now);
  h.now += 30s;
  h.p.learn_from_ping(kA, h.now);  // seen again
  h.now += 44s;
  EXPECT_TRUE(h.p.expire(h.now).removed.empty());
  h.now += 1s;
  EXPECT_EQ(h.p.expire(h.now).removed, std::vector<IpPort>{kA});
  EXPECT_TRUE(h.p.candidates().empty());
}

TEST(PeerPathsTest, NetmapCandidateNeverExpires) {
  PathsHarness h;
  h.netmap({kA});
  h.now += 1h;
  h.p.expire(h.now);
  EXPECT_TRUE(h.p.find(kA));
}

TEST(PeerPathsTest, CallMeMaybeReplacesThePreviousCallMeMaybeSet) {
  PathsHarness h;
  std::vector<IpPort> first{kA, kB};
  std::vector<IpPort> second{kB, kC};
  h.p.learn_from_call_me_maybe(first, h.now);
  auto delta = h.p.learn_from_call_me_maybe(second, h.now);
  EXPECT_EQ(delta.removed, std::vector<IpPort>{kA});
  EXPECT_FALSE(h.p.find(kA));
  EXPECT_TRUE(h.p.find(kB));
  EXPECT_TRUE(h.p.find(kC));
}

TEST(PeerPathsTest, CallMeMaybeDropsForbiddenEndpointsAndKeepsPublic) {
  PathsHarness h;
  std::vector<IpPort> eps{ep("127.0.0.1:1"), ep("192.168.0.2:1"), ep("[2001:db8::1]:1"), kA};
  h.p.learn_from_call_me_maybe(eps, h.now);
  ASSERT_EQ(h.p.candidates().size(), 1u);
  EXPECT_EQ(h.p.candidates()[0].addr, kA);
  EXPECT_EQ(h.counter("disco_candidate_rejected_filter_total"), 3u);
}

TEST(PeerPathsTest, CallMeMaybeKeepsAtMost16Endpoints) {
  PathsHarness h;
  std::vector<IpPort> eps;
  for (int i = 0; i < 20; ++i)
    eps.push_back(IpPort{IpAddr::v4(198, 51, 100, static_cast<std::uint8_t>(i + 1)), 7});
  h.p.learn_from_call_me_maybe(eps, h.now);
  EXPECT_EQ(h.p.candidates().size(), kMaxCallMeMaybeEndpoints);
  EXPECT_TRUE(h.p.find(eps[15]));
  EXPECT_FALSE(h.p.find(eps[16]));
}

TEST(PeerPathsTest, ForcedSweepPingsEveryCandidateBypassingTheFloor) {
  PathsHarness h;
  h.netmap({kA, kB});
  h.plan();
  h.now += 1s;
  EXPECT_TRUE(h.plan().empty());
  std::vector<PlannedPing> out;
  EXPECT_TRUE(h.p.force_sweep(h.now, h.rng, out));
  EXPECT_EQ(out.size(), 2u);
}

// Through two NATs our CMM sweep is dropped at the peer's NAT; the peer's ping that
// arrives a moment later must be answered by a ping of ours at once, not after 5 s.
TEST(PeerPathsTest, VerifiedPingIsPingedBackAtOnceDespiteTheFloor) {
  PathsHarness h;
  std::vector<IpPort> cmm{kA};
  h.p.learn_from_call_me_maybe(cmm, h.now);
  std::vector<PlannedPing> sweep;
  ASSERT_TRUE(h.p.force_sweep(h.now, h.rng, sweep));  // lost at the peer's NAT
  h.now += 3ms;
  h.p.learn_from_ping(kA, h.now);
  EXPECT_TRUE(h.plan().empty());  // the 5 s floor holds the ordinary schedule
  std::vector<PlannedPing> back;
  ASSERT_TRUE(h.p.ping_back(kA, h.now, h.rng, back));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].to, kA);
  h.now += 2ms;
  auto out = h.p.note_pong(back[0].txid, h.now);
  ASSERT_TRUE(out);
  EXPECT_EQ(h.p.best_addr(h.now), kA);
  EXPECT_EQ(h.counter("disco_ping_back_total"), 1u);
}

TEST(PeerPathsTest, PingBackIsLimitedToOncePerSecondPerCandidate) {
  PathsHarness h;
  h.p.learn_from_ping(kA, h.now);
  std::vector<PlannedPing> out;
  EXPECT_TRUE(h.p.ping_back(kA, h.now, h.rng, out));
  h.now += kPingBackInterval - 1ms;
  EXPECT_FALSE(h.p.ping_back(kA, h.now, h.rng, out));
  EXPECT_EQ(h.counter("disco_ping_back_rate_limited_total"), 1u);
  h.now += 1ms;
  EXPECT_TRUE(h.p.ping_back(kA, h.now, h.rng, out));
  EXPECT_EQ(out.size(), 2u);
}

TEST(PeerPathsTest, NoPingBackToTheTrustedBestOrAnUnknownAddress) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  std::vector<PlannedPing> out;
  EXPECT_FALSE(h.p.ping_back(kA, h.now, h.rng, out));  // its own schedule keeps it fresh
  EXPECT_FALSE(h.p.ping_back(kB, h.now, h.rng, out));  // filtered or never learned
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(h.p.consistent());
}

TEST(PeerPathsTest, TimedOutPingToExpiredBestClearsBest) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  h.now += 3s;
  h.plan();               // refresh ping to a, never answered
  h.now += kPingTimeout;  // times out after trust lapsed (confirm + 6.5 s)
  h.p.expire(h.now);
  EXPECT_FALSE(h.p.best());
  EXPECT_EQ(h.counter("disco_best_path_cleared_timeout_total"), 1u);
}

TEST(PeerPathsTest, TimedOutPingWhileStillTrustedKeepsBest) {
  PathsHarness h;
  h.netmap({kA, kB});
  h.confirm(kA, 10ms);
  std::vector<PlannedPing> out;
  h.p.force_sweep(h.now, h.rng, out);  // ping a at confirm time: times out at +5 s
  h.now += kPingTimeout;
  h.p.expire(h.now);
  EXPECT_TRUE(h.p.best());  // trust (until +6.5 s) outlived the timeout
}

TEST(PeerPathsTest, InvalidateBestKeepsCandidatesAndRepingsAtOnce) {
  PathsHarness h;
  h.netmap({kA, kB});
  h.confirm(kA, 10ms);
  h.p.invalidate_best();
  EXPECT_FALSE(h.p.best());
  EXPECT_FALSE(h.p.trust_until());
  EXPECT_EQ(h.p.in_flight_count(), 0u);
  EXPECT_EQ(h.p.candidates().size(), 2u);
  EXPECT_FALSE(h.p.find(kA)->latency);
  auto pings = h.plan();
  EXPECT_TRUE(pings_to(pings, kA));
  EXPECT_TRUE(pings_to(pings, kB));
}

TEST(PeerPathsTest, NextDueIsTheRefreshTimeWhileTrusted) {
  PathsHarness h;
  h.netmap({kA});
  h.confirm(kA, 10ms);
  EXPECT_EQ(h.p.next_due(h.now), *h.p.trust_until() - kRefreshBeforeExpiry);
}

TEST(PeerPathsTest, NextDueHonoursTheDiscoveryFloorWithoutBest) {
  PathsHarness h;
  h.netmap({kA});
  EXPECT_EQ(h.p.next_due(h.now), h.now);  // never pinged: due now
  h.plan();
  EXPECT_EQ(h.p.next_due(h.now), h.now + kDiscoPingInterval);
}

TEST(PeerPathsTest, StatusListsCandidatesWithSourceAndExpiry) {
  PathsHarness h;
  h.netmap({kA});
  h.p.learn_from_ping(kB, h.now);
  auto st = h.p.status(h.now + 5s, true);
  ASSERT_EQ(st.candidates.size(), 2u);
  EXPECT_EQ(st.candidates[0].source, CandidateSource::kNetmap);
  EXPECT_FALSE(st.candidates[0].expires_in);
  EXPECT_EQ(st.candidates[1].source, CandidateSource::kPing);
  EXPECT_EQ(st.candidates[1].expires_in, 40s);
}

}  // namespace
}  // namespace tw::magicsock
