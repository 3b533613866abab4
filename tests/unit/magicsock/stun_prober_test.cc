// STUN prober schedule and transactions (docs/direct-underlay.md#our-endpoints).
#include "netproc/magicsock/stun_prober.h"

#include <set>

#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock {
namespace {

using namespace test;

struct StunHarness {
  MetricsRegistry reg;
  MagicsockMetrics m{reg};
  SeededRandom rng{3};
  StunProber p{m, rng};
  TimePoint now = kStart;
  std::vector<StunRequestPlan> poll(bool have_peers = true) {
    std::vector<StunRequestPlan> out;
    p.poll(now, have_peers, out);
    return out;
  }
};

// n distinct STUN servers 198.51.100.1.. on port 3478.
std::vector<IpPort> servers(int n) {
  std::vector<IpPort> out;
  out.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    out.push_back(IpPort{IpAddr::v4(198, 51, 100, static_cast<std::uint8_t>(i + 1)), 3478});
  return out;
}

const std::vector<IpPort> kServers{test::ep("198.51.100.10:3478"), test::ep("198.51.100.11:3478")};

TEST(StunProberTest, SweepsAtOnceWhenTheNodeStarts) {
  StunHarness h;
  h.p.set_servers(kServers, h.now);
  EXPECT_EQ(h.poll(false).size(), 2u);  // the first sweep does not wait for peers
  EXPECT_TRUE(h.poll().empty());
}

TEST(StunProberTest, DerpMapChangeTriggersAnImmediateSweep) {
  StunHarness h;
  h.p.set_servers(kServers, h.now);
  h.poll();
  h.now += 3s;
  h.p.set_servers(std::vector<IpPort>{ep("198.51.100.12:3478")}, h.now);
  auto out = h.poll();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].server, ep("198.51.100.12:3478"));
}

TEST(StunProberTest, PeriodicSweepIsJitteredBetween20And26Seconds) {
  StunHarness h;
  std::set<std::int64_t> distinct;
  for (int i = 0; i < 1000; ++i) {
    const Duration d = h.p.draw_interval();
    EXPECT_GE(d, 20s);
    EXPECT_LT(d, 26s);
    distinct.insert(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  }
  EXPECT_GT(distinct.size(), 100u);
}

TEST(StunProberTest, PeriodicSweepRunsOnlyWhileTheNodeHasPeers) {
  StunHarness h;
  h.p.set_servers(kServers, h.now);
  h.poll();
  h.now += 26s;
  EXPECT_TRUE(h.poll(false).empty());  // no peers: skipped
  h.now += 26s;
  EXPECT_EQ(h.poll(true).size(), 2u);
}

TEST(StunProberTest, OnlyFixedIpv4ServersAreUsed) {
  StunHarness h;
  std::vector<IpPort> servers{ep("[2001:db8::3]:3478"), ep("0.0.0.0:3478"), ep("198.51.100.10:0"),
                              ep("198.51.100.10:3478")};
  h.p.set_servers(servers, h.now);
  EXPECT_EQ(h.p.servers(), std::vector<IpPort>{ep("198.51.100.10:3478")});
  EXPECT_EQ(h.reg.value("stun_server_skipped_total"), 3u);
}

TEST(StunProberTest, AtMost16TransactionsInFlight) {
  StunHarness h;
  const std::vector<IpPort> many = servers(20);
  h.p.set_servers(many, h.now);
  EXPECT_EQ(h.poll().size(), kMaxStunInFlight);
  EXPECT_EQ(h.p.in_flight(), kMaxStunInFlight);
  EXPECT_EQ(h.reg.value("stun_request_dropped_in_flight_cap_total"), 4u);
}

// With more servers than the in-flight cap, successive sweeps rotate: every one of
// 40 servers is asked within three sweeps, not the first 16 forever.
TEST(StunProberTest, SweepsRotateThroughMoreServersThanTheCap) {
  StunHarness h;
  const std::vector<IpPort> many = servers(40);
  h.p.set_servers(many, h.now);
  std::set<IpPort> asked;
  for (int sweep = 0; sweep < 3; ++sweep) {
    for (const auto& r : h.poll()) asked.insert(r.server);
    h.now += 26s;  // past the next periodic sweep; the earlier transactions expired
  }
  EXPECT_EQ(asked.size(), many.size());
}

TEST(StunProberTest, ExpiredTransactionsFreeTheirSlotOnTheNextSweep) {
  StunHarness h;
  h.p.set_servers(kServers, h.now);
  h.poll();
  h.now += 26s;
  h.poll();
  EXPECT_EQ(h.p.in_flight(), 2u);  // the first two were pruned, not accumulated
}

TEST(StunProberTest, MatchingResponseWithinFiveSecondsIsAcceptedOnce) {
  StunHarness h;
  h.p.set_servers(kServers, h.now);
  auto out = h.poll();
  EXPECT_EQ(h.p.on_response(out[0].txid, h.now + 4999ms), StunProber::Match::kMatched);
  EXPECT_EQ(h.p.on_response(out[0].txid, h.now + 4999ms), StunProber::Match::kUnknown);
}

TEST(StunProberTest, UnknownTxidIsNotMatched) {
  StunHarness h;
  StunTxId txid{};
  EXPECT_EQ(h.p.on_response(txid, h.now), StunProber::Match::kUnknown);
  EXPECT_EQ(h.reg.value("stun_response_unknown_total"), 1u);
}

TEST(StunProberTest, RebindForgetsTransactionsAndSweepsAtOnce) {
  StunHarness h;
  h.p.set_servers(kServers, h.now);
  auto old = h.poll();
  h.now += 1s;
  h.p.on_rebind(h.now);
  EXPECT_EQ(h.p.on_response(old[0].txid, h.now), StunProber::Match::kUnknown);
  EXPECT_EQ(h.poll(false).size(), 2u);
}

TEST(StunProberTest, EmptyServerListSendsNothing) {
  StunHarness h;
  h.p.set_servers({}, h.now);
  EXPECT_TRUE(h.poll().empty());
}

}  // namespace
}  // namespace tw::magicsock
