// A hashed timer wheel of per-peer next-due times, so a pinger tick touches only the
// peers that have work (10,000 peers with trusted paths must cost ≤ 2 ms a tick).
// Rescheduling is O(1): a new entry supersedes the old one by generation, and stale
// entries are dropped when their slot comes round.
#pragma once

#include <cstdint>
#include <vector>

#include "common/clock.h"

namespace tw::magicsock {

using PeerId = std::uint32_t;

class PingSchedule {
 public:
  explicit PingSchedule(Duration slot_width = std::chrono::milliseconds(100),
                        std::size_t slots = 1024);

  void schedule(PeerId id, TimePoint due);
  void cancel(PeerId id);
  // Appends every peer due at or before `now`, each once, and forgets them.
  void pop_due(TimePoint now, std::vector<PeerId>& out);
  bool scheduled(PeerId id) const;
  std::size_t pending() const { return pending_; }

 private:
  struct Entry {
    PeerId id;
    std::uint32_t gen;
  };
  std::int64_t slot_of(TimePoint t) const;
  void grow(PeerId id);

  Duration width_;
  std::vector<std::vector<Entry>> wheel_;
  std::vector<std::uint32_t> gen_;  // by peer id; odd = scheduled
  std::vector<TimePoint> due_;      // by peer id
  std::vector<Entry> carry_;        // scratch for entries due in a later revolution
  std::int64_t cursor_ = 0;         // next absolute slot to examine
  bool started_ = false;
  std::size_t pending_ = 0;
};

}  // namespace tw::magicsock
