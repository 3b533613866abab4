// The timer wheel behind the pinger tick.
#include "netproc/magicsock/ping_schedule.h"

#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock {
namespace {

using namespace test;

std::vector<PeerId> pop(PingSchedule& s, TimePoint now) {
  std::vector<PeerId> out;
  s.pop_due(now, out);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(PingScheduleTest, PopsOnlyPeersThatAreDue) {
  PingSchedule s;
  s.schedule(1, kStart + 1s);
  s.schedule(2, kStart + 3s);
  s.schedule(3, kStart + 3500ms);
  EXPECT_TRUE(pop(s, kStart + 500ms).empty());
  EXPECT_EQ(pop(s, kStart + 2s), std::vector<PeerId>{1});
  EXPECT_EQ(pop(s, kStart + 3200ms), std::vector<PeerId>{2});
  EXPECT_EQ(pop(s, kStart + 4s), std::vector<PeerId>{3});
  EXPECT_EQ(s.pending(), 0u);
}

TEST(PingScheduleTest, RescheduleSupersedesTheEarlierTime) {
  PingSchedule s;
  s.schedule(7, kStart + 1s);
  s.schedule(7, kStart + 5s);
  EXPECT_TRUE(pop(s, kStart + 2s).empty());
  EXPECT_EQ(pop(s, kStart + 5s), std::vector<PeerId>{7});
  EXPECT_TRUE(pop(s, kStart + 10s).empty());  // popped once only
}

TEST(PingScheduleTest, CancelledPeerIsNeverPopped) {
  PingSchedule s;
  s.schedule(4, kStart + 1s);
  s.cancel(4);
  EXPECT_TRUE(pop(s, kStart + 2s).empty());
  EXPECT_FALSE(s.scheduled(4));
}

TEST(PingScheduleTest, DueTimesBeyondOneRevolutionWaitTheirTurn) {
  PingSchedule s(100ms, 16);  // 1.6 s revolution
  s.schedule(1, kStart);
  s.schedule(2, kStart + 10s);
  EXPECT_EQ(pop(s, kStart + 1s), std::vector<PeerId>{1});
  for (auto t = kStart + 2s; t < kStart + 10s; t += 2s) EXPECT_TRUE(pop(s, t).empty());
  EXPECT_EQ(pop(s, kStart + 10s), std::vector<PeerId>{2});
}

TEST(PingScheduleTest, OverduePeerIsPoppedAtTheNextTick) {
  PingSchedule s;
  pop(s, kStart + 5s);
  s.schedule(9, kStart + 1s);  // already past
  EXPECT_EQ(pop(s, kStart + 5s), std::vector<PeerId>{9});
}

TEST(PingScheduleTest, LongGapBetweenTicksLosesNoPeer) {
  PingSchedule s(100ms, 8);
  s.schedule(1, kStart + 100ms);
  s.schedule(2, kStart + 700ms);
  EXPECT_EQ(pop(s, kStart + 60s), (std::vector<PeerId>{1, 2}));
}

}  // namespace
}  // namespace tw::magicsock
