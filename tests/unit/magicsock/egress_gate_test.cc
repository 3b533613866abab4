#include "netproc/magicsock/egress_gate.h"

#include <gtest/gtest.h>

namespace tw::magicsock {
namespace {

using namespace std::chrono_literals;
using D = EgressGate::Decision;

IpPort ep(const char* t) { return *IpPort::parse(t); }

TEST(EgressGate, DisabledLetsEverythingThrough) {
  MetricsRegistry m;
  EgressGate g(m);
  std::vector<EgressGate::Request> req;
  EXPECT_EQ(g.check(1, ep("198.18.9.9:1"), Clock::now(), req), D::kSend);
  EXPECT_TRUE(req.empty());
}

TEST(EgressGate, NetmapAndStunPassLearnedWaitForTheBroker) {
  MetricsRegistry m;
  EgressGate g(m);
  g.enable(true);
  const IpPort netmap = ep("198.18.0.2:41641"), stun = ep("198.18.0.9:3478"),
               learned = ep("198.18.7.7:40000");
  g.set_netmap_endpoints(std::vector<IpPort>{netmap});
  g.set_stun_servers(std::vector<IpPort>{stun});
  const auto now = Clock::now();
  std::vector<EgressGate::Request> req;
  EXPECT_EQ(g.check(1, netmap, now, req), D::kSend);
  EXPECT_EQ(g.check(0, stun, now, req), D::kSend);
  EXPECT_TRUE(req.empty());
  // A learned address: held, and one registration asked for (not two).
  EXPECT_EQ(g.check(1, learned, now, req), D::kHold);
  g.hold(learned, Bytes{1, 2, 3}, now);
  EXPECT_EQ(g.check(1, learned, now + 10ms, req), D::kHold);
  g.hold(learned, Bytes{4}, now + 10ms);
  ASSERT_EQ(req.size(), 1u);
  EXPECT_EQ(req[0], (EgressGate::Request{1, learned}));
  // Not a peer's address at all: never asked for, dropped.
  EXPECT_EQ(g.check(0, ep("198.18.6.6:1"), now, req), D::kDrop);
  // Approved: the held datagrams go, in order; later ones pass at once.
  auto out = g.on_verdict(std::vector<IpPort>{learned}, {}, 45s, now + 20ms);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].second, (Bytes{1, 2, 3}));
  EXPECT_EQ(out[1].second, (Bytes{4}));
  EXPECT_EQ(g.held(), 0u);
  req.clear();
  EXPECT_EQ(g.check(1, learned, now + 1s, req), D::kSend);
  EXPECT_TRUE(req.empty());
  // In use 35 s later: still allowed, and renewed before it lapses.
  EXPECT_EQ(g.check(1, learned, now + 35s, req), D::kSend);
  EXPECT_EQ(req.size(), 1u);
  // Lapsed without renewal: held again.
  EXPECT_EQ(g.check(1, learned, now + 50s, req), D::kHold);
}

TEST(EgressGate, RefusedCandidatesAreDroppedForAWhileAndHeldOnesCounted) {
  MetricsRegistry m;
  EgressGate g(m);
  g.enable(true);
  const IpPort bad = ep("198.18.7.8:1");
  const auto now = Clock::now();
  std::vector<EgressGate::Request> req;
  EXPECT_EQ(g.check(1, bad, now, req), D::kHold);
  g.hold(bad, Bytes{9}, now);
  EXPECT_TRUE(g.on_verdict({}, std::vector<IpPort>{bad}, 45s, now).empty());
  EXPECT_EQ(m.value("egress_held_dropped_total"), 1u);
  EXPECT_EQ(m.value("egress_candidates_refused_total"), 1u);
  EXPECT_EQ(g.check(1, bad, now + 1s, req), D::kDrop);
  EXPECT_EQ(g.check(1, bad, now + 6s, req), D::kHold);  // asked again later
  EXPECT_EQ(req.size(), 2u);
}

TEST(EgressGate, HeldDatagramsAreBounded) {
  MetricsRegistry m;
  EgressGate g(m);
  g.enable(true);
  const auto now = Clock::now();
  for (int i = 0; i < 10; ++i) g.hold(ep("198.18.7.9:1"), Bytes{static_cast<std::uint8_t>(i)}, now);
  EXPECT_EQ(g.held(), EgressGate::kMaxHeldPerAddress);
  for (int i = 0; i < 100; ++i)
    g.hold(IpPort{IpAddr::v4(198, 18, 8, static_cast<std::uint8_t>(i)), 1}, Bytes{1}, now);
  EXPECT_LE(g.held(), EgressGate::kMaxHeldPerAddress + EgressGate::kMaxHeldAddresses);
  g.expire(now + 4s);
  EXPECT_EQ(g.held(), 0u);
}

}  // namespace
}  // namespace tw::magicsock
