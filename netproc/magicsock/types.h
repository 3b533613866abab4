// Small value types shared by the path logic: transaction ids, candidate sources,
// ping orders and the injected randomness.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/ipaddr.h"

namespace tw::magicsock {

// Disco ping transaction id (12 random bytes, single use).
using TxId = std::array<std::uint8_t, 12>;

// Where a candidate endpoint came from; decides its filter, cap and lifetime.
enum class CandidateSource : std::uint8_t {
  kNetmap,       // control-supplied, lives until the netmap drops it
  kPing,         // a verified ping's UDP source (learned, expires)
  kCallMeMaybe,  // listed in a member's call-me-maybe (learned, replaced by the next)
};
std::string_view to_string(CandidateSource s);
inline bool is_learned(CandidateSource s) { return s != CandidateSource::kNetmap; }

// A disco ping the I/O side should seal and send.
struct PlannedPing {
  IpPort to;
  TxId txid{};
};

// Randomness is injected so tests and benchmarks are deterministic; production uses
// libsodium (SodiumRandom).
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual void fill(std::span<std::uint8_t> out) = 0;
  // Uniform in [0, bound); bound > 0.
  virtual std::uint64_t uniform(std::uint64_t bound) = 0;
};

class SodiumRandom final : public RandomSource {
 public:
  void fill(std::span<std::uint8_t> out) override;
  std::uint64_t uniform(std::uint64_t bound) override;
};

// SplitMix64: fast, seedable, not cryptographic. Tests and benchmarks only.
class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(std::uint64_t seed) : s_(seed) {}
  void fill(std::span<std::uint8_t> out) override;
  std::uint64_t uniform(std::uint64_t bound) override { return next() % bound; }
  std::uint64_t next();

 private:
  std::uint64_t s_;
};

}  // namespace tw::magicsock
