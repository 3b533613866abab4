#include "dataproc/wireguard/replay.h"

#include <gtest/gtest.h>

#include "dataproc/wireguard/messages.h"

namespace tw::wg {
namespace {

constexpr std::uint64_t kLimit = kRejectAfterMessages;

TEST(ReplayWindow, AcceptsInOrderCounters) {
  ReplayWindow w;
  for (std::uint64_t i = 0; i < 20000; ++i) ASSERT_TRUE(w.accept(i, kLimit)) << i;
}

TEST(ReplayWindow, RejectsDuplicates) {
  ReplayWindow w;
  EXPECT_TRUE(w.accept(0, kLimit));
  EXPECT_FALSE(w.accept(0, kLimit));
  EXPECT_TRUE(w.accept(5, kLimit));
  EXPECT_FALSE(w.accept(5, kLimit));
  EXPECT_TRUE(w.accept(3, kLimit));
  EXPECT_FALSE(w.accept(3, kLimit));
}

TEST(ReplayWindow, AcceptsOutOfOrderWithinWindow) {
  ReplayWindow w;
  EXPECT_TRUE(w.accept(100, kLimit));
  EXPECT_TRUE(w.accept(99, kLimit));
  EXPECT_TRUE(w.accept(1, kLimit));
  EXPECT_TRUE(w.accept(50, kLimit));
  EXPECT_FALSE(w.accept(50, kLimit));
  EXPECT_TRUE(w.accept(101, kLimit));
}

TEST(ReplayWindow, WindowEdgesAreExact) {
  ReplayWindow w;
  const std::uint64_t top = 3 * ReplayWindow::kWindowSize;
  EXPECT_TRUE(w.accept(top, kLimit));
  EXPECT_TRUE(w.accept(top - ReplayWindow::kWindowSize, kLimit));       // oldest allowed
  EXPECT_FALSE(w.accept(top - ReplayWindow::kWindowSize - 1, kLimit));  // one too old
  EXPECT_FALSE(w.accept(top - ReplayWindow::kWindowSize, kLimit));      // now a duplicate
}

TEST(ReplayWindow, WindowIsAtLeast2048) { EXPECT_GE(ReplayWindow::kWindowSize, 2048u); }

TEST(ReplayWindow, BigJumpForgetsEverythingOlder) {
  ReplayWindow w;
  for (std::uint64_t i = 0; i < 64; ++i) ASSERT_TRUE(w.accept(i, kLimit));
  EXPECT_TRUE(w.accept(1'000'000, kLimit));
  EXPECT_FALSE(w.accept(63, kLimit));
  // Counters just below the new head were never seen: accepted once.
  EXPECT_TRUE(w.accept(1'000'000 - 64, kLimit));
  EXPECT_FALSE(w.accept(1'000'000 - 64, kLimit));
}

TEST(ReplayWindow, SlidingAcrossRingWrapClearsStaleBits) {
  ReplayWindow w;
  // Fill a full ring's worth, then move exactly one ring ahead: the reused blocks
  // must read as unseen.
  const std::uint64_t ring = ReplayWindow::kBlocks * ReplayWindow::kBlockBits;
  for (std::uint64_t i = 0; i < ring; ++i) ASSERT_TRUE(w.accept(i, kLimit));
  for (std::uint64_t i = ring; i < 2 * ring; ++i) ASSERT_TRUE(w.accept(i, kLimit)) << i;
}

TEST(ReplayWindow, RejectsCountersAtOrPastTheLimit) {
  ReplayWindow w;
  EXPECT_FALSE(w.accept(kLimit, kLimit));
  EXPECT_FALSE(w.accept(~0ULL, kLimit));
  EXPECT_TRUE(w.accept(kLimit - 1, kLimit));
}

}  // namespace
}  // namespace tw::wg
