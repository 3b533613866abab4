#include "netproc/magicsock/ping_schedule.h"

#include <algorithm>

namespace tw::magicsock {

PingSchedule::PingSchedule(Duration slot_width, std::size_t slots)
    : width_(slot_width), wheel_(slots) {}

std::int64_t PingSchedule::slot_of(TimePoint t) const { return t.time_since_epoch() / width_; }

void PingSchedule::grow(PeerId id) {
  if (id >= gen_.size()) {
    gen_.resize(id + 1, 0);
    due_.resize(id + 1);
  }
}

bool PingSchedule::scheduled(PeerId id) const { return id < gen_.size() && (gen_[id] & 1U); }

void PingSchedule::schedule(PeerId id, TimePoint due) {
  grow(id);
  if (!(gen_[id] & 1U)) ++pending_;
  gen_[id] += (gen_[id] & 1U) ? 2 : 1;  // odd = live; a new value orphans old entries
  due_[id] = due;
  std::int64_t slot = slot_of(due);
  if (!started_) {
    cursor_ = slot;
    started_ = true;
  }
  slot = std::max(slot, cursor_);  // overdue: examine at the next pop
  wheel_[static_cast<std::size_t>(slot) % wheel_.size()].push_back(Entry{id, gen_[id]});
}

void PingSchedule::cancel(PeerId id) {
  if (!scheduled(id)) return;
  ++gen_[id];
  --pending_;
}

void PingSchedule::pop_due(TimePoint now, std::vector<PeerId>& out) {
  const std::int64_t last = slot_of(now);
  if (!started_) {
    cursor_ = last;
    started_ = true;
    return;
  }
  const std::int64_t n = static_cast<std::int64_t>(wheel_.size());
  const std::int64_t first = std::max(cursor_, last - n + 1);  // one revolution at most
  for (std::int64_t s = first; s <= last; ++s) {
    auto& bucket = wheel_[static_cast<std::size_t>(s % n)];
    for (const Entry& e : bucket) {
      if (gen_[e.id] != e.gen) continue;  // superseded or cancelled
      if (due_[e.id] <= now) {
        ++gen_[e.id];
        --pending_;
        out.push_back(e.id);
      } else {
        carry_.push_back(e);  // a later revolution, or later within this slot
      }
    }
    bucket.clear();
  }
  cursor_ = last;  // the current slot may still hold entries due later in it
  for (const Entry& e : carry_) {
    std::int64_t slot = std::max(slot_of(due_[e.id]), cursor_);
    wheel_[static_cast<std::size_t>(slot % n)].push_back(e);
  }
  carry_.clear();
}

}  // namespace tw::magicsock
