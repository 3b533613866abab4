// Limits on what one process may ask of another per unit of time (a child of the
// broker, netproc of dataproc's sealing service): a token bucket. Pure; the caller
// passes the time.
#pragma once

#include <algorithm>
#include <chrono>

namespace tw {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(double rate_per_second, double burst)
      : rate_(rate_per_second), burst_(burst), tokens_(burst) {}

  // Takes one token if there is one.
  bool take(Clock::time_point now) {
    refill(now);
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

  // Whether the bucket has refilled to its burst (taking from it now would start over).
  bool full(Clock::time_point now) {
    refill(now);
    return tokens_ >= burst_;
  }

 private:
  void refill(Clock::time_point now) {
    if (refilled_ == Clock::time_point{}) refilled_ = now;
    const double elapsed = std::chrono::duration<double>(now - refilled_).count();
    tokens_ = std::min(burst_, tokens_ + std::max(0.0, elapsed) * rate_);
    refilled_ = std::max(refilled_, now);
  }

  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point refilled_{};
};

}  // namespace tw
