// Time for pure logic: code takes `now` from an injected clock so tests need no sleeps.
#pragma once

#include <chrono>

namespace tw {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;
using std::chrono::milliseconds;
using std::chrono::seconds;

class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual TimePoint now() const = 0;
};

class SystemTimeSource final : public TimeSource {
 public:
  TimePoint now() const override { return Clock::now(); }
};

// A clock that moves only when told to.
class FakeTimeSource final : public TimeSource {
 public:
  explicit FakeTimeSource(TimePoint start = TimePoint{} + std::chrono::hours(1)) : now_(start) {}
  TimePoint now() const override { return now_; }
  void advance(Duration d) { now_ += d; }
  void set(TimePoint t) { now_ = t; }

 private:
  TimePoint now_;
};

}  // namespace tw
