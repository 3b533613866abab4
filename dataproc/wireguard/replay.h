// The anti-replay window for transport counters: a sliding bitmap of 8128 counters
// (a ring of 64-bit blocks, as wireguard-go keeps). Checked after authentication, so
// only genuine packets can move it.
#pragma once

#include <array>
#include <cstdint>

namespace tw::wg {

class ReplayWindow {
 public:
  static constexpr std::size_t kBlocks = 128;
  static constexpr std::uint64_t kBlockBits = 64;
  static constexpr std::uint64_t kWindowSize = (kBlocks - 1) * kBlockBits;  // 8128

  // Accepts `counter` (and records it) unless it was seen before, is older than the
  // window allows, or is at or beyond `limit`.
  bool accept(std::uint64_t counter, std::uint64_t limit);
  void reset();

 private:
  std::uint64_t last_ = 0;
  bool any_ = false;
  std::array<std::uint64_t, kBlocks> ring_{};
};

}  // namespace tw::wg
