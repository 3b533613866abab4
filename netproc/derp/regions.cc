#include "netproc/derp/regions.h"

#include <algorithm>

namespace tw::derp {

RegionManager::RegionManager(RegionPolicy policy, RegionActions actions, std::function<double()> jitter,
                             MetricsRegistry& metrics)
    : policy_(policy),
      actions_(std::move(actions)),
      jitter_(std::move(jitter)),
      queue_drops_(metrics.counter("derp_send_queue_dropped_total",
                                   "Packets dropped from a full DERP region queue (oldest first)")),
      no_region_drops_(metrics.counter("derp_send_no_region_dropped_total",
                                       "Packets dropped because the peer has no DERP region")),
      dials_(metrics.counter("derp_dials_requested_total", "DERP connections requested")),
      idle_closes_(metrics.counter("derp_idle_closes_total", "Non-home DERP connections closed after 60 s idle")) {}

Duration RegionManager::backoff(int failures) {
  auto n = static_cast<std::int64_t>(std::max(failures, 1));
  Duration base = std::min<Duration>(policy_.backoff_unit * (n * n), policy_.backoff_cap);
  double factor = 0.5 + std::clamp(jitter_(), 0.0, 0.999999);
  return std::chrono::duration_cast<Duration>(base * factor);
}

RegionManager::Region& RegionManager::want(RegionId id, TimePoint now) {
  auto [it, fresh] = regions_.try_emplace(id);
  if (fresh) {
    it->second.phase = Phase::kDialling;
    it->second.last_used = now;
    dials_.inc();
    if (actions_.dial) actions_.dial(id);
  }
  return it->second;
}

void RegionManager::set_home(RegionId home, TimePoint now) {
  home_ = home;
  if (home_ > 0) want(home_, now).last_used = now;
}

void RegionManager::enqueue(Region& r, QueuedPacket p) {
  if (policy_.queue_limit == 0) {
    queue_drops_.inc();
    return;
  }
  while (r.queue.size() >= policy_.queue_limit) {
    r.queue.pop_front();
    queue_drops_.inc();
  }
  r.queue.push_back(std::move(p));
}

std::optional<RegionId> RegionManager::send(const NodePublic& dst, RegionId peer_home, Bytes packet,
                                            TimePoint now) {
  RegionId region = peer_home;
  if (auto rev = reverse_route(dst); rev && connected(*rev)) region = *rev;
  if (region <= 0) {
    no_region_drops_.inc();
    return std::nullopt;
  }
  Region& r = want(region, now);
  r.last_used = now;
  enqueue(r, QueuedPacket{dst, std::move(packet)});
  return region;
}

std::vector<QueuedPacket> RegionManager::take_queued(RegionId region) {
  std::vector<QueuedPacket> out;
  auto it = regions_.find(region);
  if (it == regions_.end() || it->second.phase != Phase::kConnected) return out;
  out.assign(std::make_move_iterator(it->second.queue.begin()), std::make_move_iterator(it->second.queue.end()));
  it->second.queue.clear();
  return out;
}

void RegionManager::on_connected(RegionId region, TimePoint now) {
  auto it = regions_.find(region);
  if (it == regions_.end()) return;  // no longer wanted: the owner's tick closes it
  it->second.phase = Phase::kConnected;
  it->second.failures = 0;
  it->second.last_used = std::max(it->second.last_used, now);
}

void RegionManager::on_failed(RegionId region, TimePoint now) {
  auto it = regions_.find(region);
  if (it == regions_.end()) return;
  Region& r = it->second;
  r.failures += 1;
  r.phase = Phase::kWaiting;
  r.retry_at = now + backoff(r.failures);
  for (auto rit = reverse_.begin(); rit != reverse_.end();) {
    rit = rit->second == region ? reverse_.erase(rit) : std::next(rit);
  }
}

void RegionManager::note_heard(const NodePublic& peer, RegionId region, TimePoint now) {
  reverse_[peer] = region;
  if (auto it = regions_.find(region); it != regions_.end()) it->second.last_used = now;
}

void RegionManager::peer_gone(const NodePublic& peer, RegionId region) {
  auto it = reverse_.find(peer);
  if (it != reverse_.end() && it->second == region) reverse_.erase(it);
}

std::optional<RegionId> RegionManager::reverse_route(const NodePublic& peer) const {
  auto it = reverse_.find(peer);
  if (it == reverse_.end()) return std::nullopt;
  return it->second;
}

bool RegionManager::connected(RegionId region) const {
  auto it = regions_.find(region);
  return it != regions_.end() && it->second.phase == Phase::kConnected;
}

std::size_t RegionManager::queued(RegionId region) const {
  auto it = regions_.find(region);
  return it == regions_.end() ? 0 : it->second.queue.size();
}

std::optional<TimePoint> RegionManager::tick(TimePoint now) {
  std::optional<TimePoint> next;
  auto note = [&](TimePoint t) { next = next ? std::min(*next, t) : t; };
  for (auto it = regions_.begin(); it != regions_.end();) {
    RegionId id = it->first;
    Region& r = it->second;
    if (id != home_ && now - r.last_used >= policy_.idle_close) {
      if (r.phase == Phase::kConnected) {
        idle_closes_.inc();
        if (actions_.close) actions_.close(id);
      }
      queue_drops_.inc(r.queue.size());
      for (auto rit = reverse_.begin(); rit != reverse_.end();) {
        rit = rit->second == id ? reverse_.erase(rit) : std::next(rit);
      }
      it = regions_.erase(it);
      continue;
    }
    if (r.phase == Phase::kWaiting) {
      if (now >= r.retry_at) {
        r.phase = Phase::kDialling;
        dials_.inc();
        if (actions_.dial) actions_.dial(id);
      } else {
        note(r.retry_at);
      }
    }
    if (id != home_) note(r.last_used + policy_.idle_close);
    ++it;
  }
  return next;
}

}  // namespace tw::derp
