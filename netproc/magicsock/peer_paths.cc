// Candidate bookkeeping, ping planning and pong handling of PeerPaths. The route
// decision and call-me-maybe policy live in peer_paths_route.cc.
#include "netproc/magicsock/peer_paths.h"

#include <algorithm>

#include "netproc/magicsock/better_addr.h"
#include "netproc/magicsock/constants.h"

namespace tw::magicsock {
namespace {

bool contains(std::span<const IpPort> v, const IpPort& a) {
  return std::find(v.begin(), v.end(), a) != v.end();
}

Candidate make_candidate(const IpPort& a, CandidateSource s, TimePoint now) {
  Candidate c;
  c.addr = a;
  c.source = s;
  c.last_seen = now;
  return c;
}

}  // namespace

const Candidate* PeerPaths::find(const IpPort& a) const {
  for (const auto& c : cands_) {
    if (c.addr == a) return &c;
  }
  return nullptr;
}

Candidate* PeerPaths::find_mut(const IpPort& a) {
  return const_cast<Candidate*>(static_cast<const PeerPaths*>(this)->find(a));
}

std::size_t PeerPaths::learned_count() const {
  return static_cast<std::size_t>(std::count_if(
      cands_.begin(), cands_.end(), [](const Candidate& c) { return is_learned(c.source); }));
}

void PeerPaths::clear_best() {
  best_.reset();
  trust_until_.reset();
  best_unanswered_since_.reset();
}

void PeerPaths::remove_candidate(std::size_t i, CandidateDelta& delta) {
  const IpPort addr = cands_[i].addr;
  delta.removed.push_back(addr);
  cands_.erase(cands_.begin() + static_cast<std::ptrdiff_t>(i));
  std::erase_if(in_flight_, [&](const InFlight& f) { return f.to == addr; });
  if (best_ && best_->addr == addr) {
    clear_best();
    m()->best_cleared_pruned.inc();
  }
}

CandidateDelta PeerPaths::set_netmap_endpoints(std::span<const IpPort> eps, TimePoint now) {
  std::vector<IpPort> accepted;
  accepted.reserve(eps.size());
  for (const auto& ep : eps) {
    if (!is_acceptable_netmap_endpoint(ep, ctx_->policy)) {
      m()->netmap_endpoint_filtered.inc();
    } else if (!contains(accepted, ep)) {
      accepted.push_back(ep);
    }
  }
  CandidateDelta delta;
  delta.authoritative = true;
  delta.added.reserve(accepted.size());
  cands_.reserve(cands_.size() + accepted.size());
  for (std::size_t i = cands_.size(); i-- > 0;) {
    if (cands_[i].source == CandidateSource::kNetmap && !contains(accepted, cands_[i].addr)) {
      remove_candidate(i, delta);
      m()->netmap_endpoint_pruned.inc();
    }
  }
  for (const auto& ep : accepted) {
    if (Candidate* c = find_mut(ep)) {
      c->source = CandidateSource::kNetmap;  // control vouches for it now: never expires
    } else {
      cands_.push_back(make_candidate(ep, CandidateSource::kNetmap, now));
    }
    delta.added.push_back(ep);
  }
  return delta;
}

void PeerPaths::add_learned(const IpPort& a, CandidateSource s, TimePoint now,
                            CandidateDelta& delta) {
  if (Candidate* c = find_mut(a)) {
    if (is_learned(c->source)) {
      c->source = s;
      c->last_seen = now;
    }
    delta.added.push_back(a);  // already present counts as accepted
    return;
  }
  if (learned_count() >= kMaxLearnedCandidates) {
    m()->candidate_rejected_cap.inc();
    return;
  }
  cands_.push_back(make_candidate(a, s, now));
  m()->candidate_learned.inc();
  delta.added.push_back(a);
}

CandidateDelta PeerPaths::learn_from_ping(const IpPort& src, TimePoint now) {
  cmm_retry_backoff_ = Duration::zero();
  CandidateDelta delta;
  if (!is_pingable_candidate(src, ctx_->policy.enable_ipv6)) {
    m()->candidate_rejected_filter.inc();
    return delta;
  }
  add_learned(src, CandidateSource::kPing, now, delta);
  return delta;
}

CandidateDelta PeerPaths::learn_from_call_me_maybe(std::span<const IpPort> eps, TimePoint now) {
  cmm_retry_backoff_ = Duration::zero();  // it is on the relay: no more lost call-me-maybe
  std::vector<IpPort> accepted;
  for (const auto& ep : eps) {
    if (accepted.size() == kMaxCallMeMaybeEndpoints) break;
    if (!is_pingable_candidate(ep, ctx_->policy.enable_ipv6)) {
      m()->candidate_rejected_filter.inc();
    } else if (!contains(accepted, ep)) {
      accepted.push_back(ep);
    }
  }
  CandidateDelta delta;
  // The newest call-me-maybe replaces the set the previous one taught us.
  for (std::size_t i = cands_.size(); i-- > 0;) {
    if (cands_[i].source == CandidateSource::kCallMeMaybe && !contains(accepted, cands_[i].addr)) {
      remove_candidate(i, delta);
    }
  }
  for (const auto& ep : accepted) add_learned(ep, CandidateSource::kCallMeMaybe, now, delta);
  return delta;
}

void PeerPaths::expire_in_flight(TimePoint now) {
  for (std::size_t i = 0; i < in_flight_.size();) {
    const InFlight f = in_flight_[i];
    if (now - f.sent < kPingTimeout) {
      ++i;
      continue;
    }
    in_flight_.erase(in_flight_.begin() + static_cast<std::ptrdiff_t>(i));
    m()->ping_timed_out.inc();
    // A path that stopped answering must not win later on an old measurement.
    if (Candidate* c = find_mut(f.to)) c->latency.reset();
    const TimePoint timed_out_at = f.sent + kPingTimeout;
    if (best_ && best_->addr == f.to && (!trust_until_ || *trust_until_ < timed_out_at)) {
      clear_best();
      m()->best_cleared_timeout.inc();
    }
  }
}

CandidateDelta PeerPaths::expire(TimePoint now) {
  CandidateDelta delta;
  for (std::size_t i = cands_.size(); i-- > 0;) {
    const Candidate& c = cands_[i];
    if (is_learned(c.source) && now - c.last_seen >= kLearnedCandidateLifetime) {
      remove_candidate(i, delta);
      m()->candidate_expired.inc();
    }
  }
  expire_in_flight(now);
  return delta;
}

PathState PeerPaths::state(TimePoint now) const {
  if (!best_) return ping_in_flight(now) ? PathState::kProbing : PathState::kNoBest;
  if (!trusted(now)) return PathState::kExpired;
  return best_quiet(now) ? PathState::kFailingOver : PathState::kTrusted;
}

bool PeerPaths::best_quiet(TimePoint now) const {
  const Duration quiet_limit =
      std::max<Duration>(kFailoverRttMultiple * best_->latency, kFailoverFloor);
  return best_unanswered_since_ && now - *best_unanswered_since_ > quiet_limit;
}

bool PeerPaths::ping_in_flight(TimePoint now) const {
  return std::any_of(in_flight_.begin(), in_flight_.end(),
                     [&](const InFlight& f) { return now - f.sent < kPingTimeout; });
}

bool PeerPaths::trusted(TimePoint now) const {
  return best_.has_value() && trust_until_.has_value() && now <= *trust_until_;
}

std::optional<IpPort> PeerPaths::best_addr(TimePoint now) const {
  if (!trusted(now)) return std::nullopt;
  return best_->addr;
}

bool PeerPaths::needs_refresh(TimePoint now) const {
  return !trust_until_ || now + kRefreshBeforeExpiry >= *trust_until_;
}

bool PeerPaths::want_full_ping(TimePoint now) const {
  if (!trusted(now)) return true;
  if (!last_full_ping_) return true;
  if (best_->latency <= kGoodEnoughLatency) return false;
  return now - *last_full_ping_ >= kUpgradeInterval;
}

void PeerPaths::emit(Candidate& c, TimePoint now, RandomSource& rng,
                     std::vector<PlannedPing>& out) {
  PlannedPing p;
  p.to = c.addr;
  rng.fill(p.txid);
  in_flight_.push_back(InFlight{p.txid, c.addr, now});
  c.last_ping = now;
  if (best_ && best_->addr == c.addr && !best_unanswered_since_) best_unanswered_since_ = now;
  m()->ping_planned.inc();
  out.push_back(p);
}

void PeerPaths::plan_pings(TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out) {
  expire_in_flight(now);
  if (!needs_refresh(now)) return;
  const std::optional<IpPort> best = best_addr(now);
  const bool full = want_full_ping(now);
  if (full) last_full_ping_ = now;
  for (auto& c : cands_) {
    bool include;
    if (best && c.addr == *best) {
      include = true;  // the trusted best has no floor
    } else if (!full) {
      include = !c.last_ping;  // quiet cycle: only never-probed candidates
    } else {
      include = !c.last_ping || now - *c.last_ping >= kDiscoPingInterval;
    }
    if (include) emit(c, now, rng, out);
  }
}

bool PeerPaths::force_sweep(TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out) {
  if (last_forced_sweep_ && now - *last_forced_sweep_ < kForcedSweepInterval) {
    m()->forced_sweep_rate_limited.inc();
    return false;
  }
  expire_in_flight(now);
  last_forced_sweep_ = now;
  last_full_ping_ = now;
  m()->forced_sweep.inc();
  for (auto& c : cands_) emit(c, now, rng, out);
  return true;
}

// Why no floor: through two NATs our sweep towards the peer usually reaches its NAT
// before the peer's own ping has opened the mapping there, and is dropped. The
// peer's ping arriving now proves its mapping exists, so the same address answers
// us at once; waiting for the 5 s floor is what made direct-through-NAT take ~7 s.
bool PeerPaths::ping_back(const IpPort& src, TimePoint now, RandomSource& rng,
                          std::vector<PlannedPing>& out) {
  Candidate* c = find_mut(src);
  if (c == nullptr) return false;  // refused by the candidate filter: nothing to probe
  const std::optional<IpPort> best = best_addr(now);
  if (best && *best == src) return false;
  if (c->last_ping_back && now - *c->last_ping_back < kPingBackInterval) {
    m()->ping_back_rate_limited.inc();
    return false;
  }
  expire_in_flight(now);
  c->last_ping_back = now;
  m()->ping_back.inc();
  emit(*c, now, rng, out);
  return true;
}

void PeerPaths::plan_discovery(TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out) {
  expire_in_flight(now);
  last_full_ping_ = now;
  for (auto& c : cands_) {
    if (!c.last_ping || now - *c.last_ping >= kDiscoPingInterval) emit(c, now, rng, out);
  }
}

std::optional<PongOutcome> PeerPaths::note_pong(const TxId& txid, TimePoint now) {
  expire_in_flight(now);  // a pong after the 5 s lifetime is unsolicited
  auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                         [&](const InFlight& f) { return f.txid == txid; });
  if (it == in_flight_.end()) {
    m()->pong_recv_unsolicited.inc();
    return std::nullopt;
  }
  const InFlight f = *it;
  in_flight_.erase(it);  // single use: a replay finds nothing
  m()->pong_recv_solicited.inc();
  PongOutcome out;
  out.pinged = f.to;
  out.rtt = now - f.sent;
  Candidate* c = find_mut(f.to);
  if (!c) return out;
  c->latency = out.rtt;
  if (is_learned(c->source)) c->last_seen = now;  // it answered: still there
  choose_path(f.to, out.rtt, f.sent, now, out);
  return out;
}

void PeerPaths::note_best_answered(TimePoint sent) {
  if (!best_unanswered_since_ || *best_unanswered_since_ > sent) return;
  // Later pings to the best may still be outstanding; the oldest of them counts now.
  best_unanswered_since_.reset();
  for (const auto& f : in_flight_) {
    if (f.to == best_->addr && f.sent > sent &&
        (!best_unanswered_since_ || f.sent < *best_unanswered_since_)) {
      best_unanswered_since_ = f.sent;
    }
  }
}

// Go's rule: only the address that just answered competes with the current best.
void PeerPaths::choose_path(const IpPort& to, Duration rtt, TimePoint sent, TimePoint now,
                            PongOutcome& out) {
  const AddrQuality challenger{to, rtt, 0};
  const bool replace = !best_ || !trusted(now) ||
                       better_addr(challenger, AddrQuality{best_->addr, best_->latency, 0});
  if (replace && (!best_ || best_->addr != to)) {
    best_ = BestPath{to, rtt};
    best_unanswered_since_.reset();
    out.became_best = true;
    m()->best_changed.inc();
  } else if (best_->addr != to) {
    m()->best_kept_hysteresis.inc();
    return;  // a rival's pong never refreshes the best's trust
  }
  best_->latency = rtt;
  trust_until_ = now + kTrustDuration;
  out.refreshed_trust = true;
  note_best_answered(sent);
}

std::optional<TimePoint> PeerPaths::next_due(TimePoint now) const {
  if (cands_.empty() && in_flight_.empty()) return std::nullopt;
  std::optional<TimePoint> due;
  auto consider = [&](TimePoint t) {
    if (!due || t < *due) due = t;
  };
  for (const auto& c : cands_) {
    if (is_learned(c.source)) consider(c.last_seen + kLearnedCandidateLifetime);
  }
  for (const auto& f : in_flight_) consider(f.sent + kPingTimeout);
  switch (state(now)) {
    case PathState::kTrusted:
    case PathState::kFailingOver:
      consider(*trust_until_ - kRefreshBeforeExpiry);  // refresh the best before it lapses
      break;
    case PathState::kNoBest:
    case PathState::kProbing:
    case PathState::kExpired:
      for (const auto& c : cands_) consider(c.last_ping ? *c.last_ping + kDiscoPingInterval : now);
      break;
  }
  return due;
}

void PeerPaths::invalidate_best() {
  clear_best();
  in_flight_.clear();
  last_full_ping_.reset();
  for (auto& c : cands_) {
    c.latency.reset();    // measured over the old socket
    c.last_ping.reset();  // re-ping at once
  }
}

}  // namespace tw::magicsock
