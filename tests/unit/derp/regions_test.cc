#include "netproc/derp/regions.h"

#include <gtest/gtest.h>

namespace tw::derp {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

NodePublic key_of(std::uint8_t fill) {
  KeyBytes b;
  b.fill(fill);
  return NodePublic(b);
}

struct Harness {
  FakeTimeSource clock;
  MetricsRegistry metrics;
  std::vector<RegionId> dials;
  std::vector<RegionId> closes;
  double jitter = 0.5;  // factor 1.0
  RegionManager mgr{RegionPolicy{},
                    RegionActions{[this](RegionId r) { dials.push_back(r); },
                                  [this](RegionId r) { closes.push_back(r); }},
                    [this] { return jitter; }, metrics};
  TimePoint now() const { return clock.now(); }
};

TEST(DerpRegions, HomeRegionIsDialledAtOnceAndNeverClosedForIdleness) {
  Harness h;
  h.mgr.set_home(1, h.now());
  EXPECT_EQ(h.dials, std::vector<RegionId>{1});
  h.mgr.on_connected(1, h.now());
  h.clock.advance(seconds(600));
  h.mgr.tick(h.now());
  EXPECT_TRUE(h.closes.empty());
  EXPECT_TRUE(h.mgr.connected(1));
}

TEST(DerpRegions, PeerHomeRegionIsDialledOnDemandAndClosedAfter60sIdle) {
  Harness h;
  h.mgr.set_home(1, h.now());
  auto r = h.mgr.send(key_of(2), 7, Bytes{1}, h.now());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 7);
  EXPECT_EQ(h.dials, (std::vector<RegionId>{1, 7}));
  h.mgr.on_connected(7, h.now());
  EXPECT_EQ(h.mgr.take_queued(7).size(), 1u);
  h.clock.advance(seconds(59));
  h.mgr.tick(h.now());
  EXPECT_TRUE(h.closes.empty());
  h.clock.advance(seconds(1));
  h.mgr.tick(h.now());
  EXPECT_EQ(h.closes, std::vector<RegionId>{7});
  EXPECT_FALSE(h.mgr.wanted(7));
  EXPECT_EQ(h.metrics.value("derp_idle_closes_total"), 1u);
}

TEST(DerpRegions, SendingKeepsANonHomeRegionOpen) {
  Harness h;
  h.mgr.send(key_of(2), 7, Bytes{1}, h.now());
  h.mgr.on_connected(7, h.now());
  for (int i = 0; i < 5; ++i) {
    h.clock.advance(seconds(30));
    h.mgr.send(key_of(2), 7, Bytes{1}, h.now());
    h.mgr.tick(h.now());
  }
  EXPECT_TRUE(h.closes.empty());
}

TEST(DerpRegions, FullQueueDropsTheOldestAndCountsIt) {
  Harness h;
  for (int i = 0; i < 40; ++i) h.mgr.send(key_of(2), 3, Bytes{static_cast<std::uint8_t>(i)}, h.now());
  EXPECT_EQ(h.mgr.queued(3), 32u);
  EXPECT_EQ(h.metrics.value("derp_send_queue_dropped_total"), 8u);
  h.mgr.on_connected(3, h.now());
  auto q = h.mgr.take_queued(3);
  ASSERT_EQ(q.size(), 32u);
  EXPECT_EQ(q.front().packet, Bytes{8});
  EXPECT_EQ(q.back().packet, Bytes{39});
}

TEST(DerpRegions, PacketForPeerWithoutRegionIsDroppedAndCounted) {
  Harness h;
  EXPECT_FALSE(h.mgr.send(key_of(2), 0, Bytes{1}, h.now()).has_value());
  EXPECT_EQ(h.metrics.value("derp_send_no_region_dropped_total"), 1u);
}

TEST(DerpRegions, BackoffGrowsAsNSquaredTimes10msCappedAt5s) {
  Harness h;
  EXPECT_EQ(h.mgr.backoff(1), milliseconds(10));
  EXPECT_EQ(h.mgr.backoff(3), milliseconds(90));
  EXPECT_EQ(h.mgr.backoff(22), milliseconds(4840));
  EXPECT_EQ(h.mgr.backoff(23), seconds(5));
  EXPECT_EQ(h.mgr.backoff(1000), seconds(5));
}

TEST(DerpRegions, BackoffJitterStaysWithinHalfToOneAndAHalf) {
  Harness h;
  h.jitter = 0.0;
  EXPECT_EQ(h.mgr.backoff(23), milliseconds(2500));
  h.jitter = 0.999999;
  Duration hi = h.mgr.backoff(23);
  EXPECT_LT(hi, milliseconds(7500));
  EXPECT_GT(hi, milliseconds(7499));
}

TEST(DerpRegions, FailedConnectionIsRedialledOnlyAfterBackoff) {
  Harness h;
  h.mgr.set_home(1, h.now());
  h.mgr.on_failed(1, h.now());
  h.mgr.on_failed(1, h.now());  // second failure: 40 ms
  h.dials.clear();
  h.clock.advance(milliseconds(39));
  auto next = h.mgr.tick(h.now());
  EXPECT_TRUE(h.dials.empty());
  ASSERT_TRUE(next.has_value());
  h.clock.advance(milliseconds(1));
  h.mgr.tick(h.now());
  EXPECT_EQ(h.dials, std::vector<RegionId>{1});
  h.mgr.on_connected(1, h.now());
  h.mgr.on_failed(1, h.now());  // success reset the count: back to 10 ms
  h.dials.clear();
  h.clock.advance(milliseconds(10));
  h.mgr.tick(h.now());
  EXPECT_EQ(h.dials, std::vector<RegionId>{1});
}

TEST(DerpRegions, ReverseRouteWinsWhileConnectedAndPeerGoneRemovesIt) {
  Harness h;
  h.mgr.set_home(1, h.now());
  h.mgr.on_connected(1, h.now());
  h.mgr.note_heard(key_of(5), 1, h.now());
  // The peer's home is 9, but we hear it over our home region 1.
  EXPECT_EQ(h.mgr.send(key_of(5), 9, Bytes{1}, h.now()), std::optional<RegionId>(1));
  h.mgr.peer_gone(key_of(5), 1);
  EXPECT_FALSE(h.mgr.reverse_route(key_of(5)).has_value());
  EXPECT_EQ(h.mgr.send(key_of(5), 9, Bytes{1}, h.now()), std::optional<RegionId>(9));
}

TEST(DerpRegions, PeerGoneFromAnotherRegionKeepsTheRoute) {
  Harness h;
  h.mgr.note_heard(key_of(5), 1, h.now());
  h.mgr.peer_gone(key_of(5), 2);
  EXPECT_EQ(h.mgr.reverse_route(key_of(5)), std::optional<RegionId>(1));
}

}  // namespace
}  // namespace tw::derp
