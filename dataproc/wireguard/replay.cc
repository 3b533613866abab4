#include "dataproc/wireguard/replay.h"

#include <algorithm>

namespace tw::wg {

void ReplayWindow::reset() {
  last_ = 0;
  any_ = false;
  ring_.fill(0);
}

bool ReplayWindow::accept(std::uint64_t counter, std::uint64_t limit) {
  if (counter >= limit) return false;
  std::uint64_t block = counter / kBlockBits;
  if (!any_ || counter > last_) {
    // Slide forward: clear the blocks between the old head and the new one.
    const std::uint64_t current = last_ / kBlockBits;
    const std::uint64_t diff = any_ ? std::min<std::uint64_t>(block - current, kBlocks) : kBlocks;
    for (std::uint64_t i = 1; i <= diff; ++i) ring_[(current + i) % kBlocks] = 0;
    last_ = counter;
    any_ = true;
  } else if (last_ - counter > kWindowSize) {
    return false;
  }
  block %= kBlocks;
  const std::uint64_t bit = 1ULL << (counter % kBlockBits);
  const std::uint64_t old = ring_[block];
  ring_[block] = old | bit;
  return (old & bit) == 0;
}

}  // namespace tw::wg
