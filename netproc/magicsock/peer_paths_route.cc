// The per-packet route decision (docs/direct-underlay.md#the-send-rule), call-me-maybe
// send policy, operator pings and the status snapshot of PeerPaths.
#include <algorithm>

#include "netproc/magicsock/constants.h"
#include "netproc/magicsock/peer_paths.h"

namespace tw::magicsock {

RouteDecision PeerPaths::route(TimePoint now, bool derp_available) {
  expire_in_flight(now);
  note_active(now);
  RouteDecision d;
  const PathState st = state(now);
  d.kind = route_kind(st, derp_available);
  switch (st) {
    case PathState::kTrusted:
      d.udp = best_->addr;
      break;
    case PathState::kFailingOver:
      d.udp = best_->addr;  // the best went quiet: do not wait out the trust window
      d.failover = true;
      m()->route_failover.inc();
      break;
    case PathState::kExpired:
      d.udp = best_->addr;
      [[fallthrough]];
    case PathState::kNoBest:
    case PathState::kProbing:
      // No trusted path: (re)discover, at most every kOnDemandDiscoveryInterval.
      if (!last_on_demand_ || now - *last_on_demand_ >= kOnDemandDiscoveryInterval) {
        last_on_demand_ = now;
        d.start_discovery = true;
        m()->discovery_on_demand.inc();
      }
      break;
  }
  if (best_ && d.has_udp()) {
    // Traffic rides this address: ping it every second, answered or not, so a dead
    // path fails over quickly and a revived one (after failover or trust expiry) is
    // trusted again within a second instead of at the next 5 s discovery round.
    const Candidate* c = find(best_->addr);
    d.probe_best = c != nullptr && (!c->last_ping || now - *c->last_ping >= kBusyBestProbeInterval);
  }
  switch (d.kind) {
    case RouteKind::kUdp:
      m()->route_udp.inc();
      break;
    case RouteKind::kUdpAndDerp:
      m()->route_udp_and_derp.inc();
      break;
    case RouteKind::kDerp:
      m()->route_derp.inc();
      break;
    case RouteKind::kDrop:
      m()->route_drop_no_route.inc();
      break;
  }
  return d;
}

void PeerPaths::probe_best(TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out) {
  Candidate* c = best_ ? find_mut(best_->addr) : nullptr;
  if (c == nullptr) return;
  m()->best_probe.inc();
  emit(*c, now, rng, out);
}

bool PeerPaths::active(TimePoint now) const {
  return last_active_ && now - *last_active_ < kActiveTimeout;
}

bool PeerPaths::cmm_rate_allows(TimePoint now) const {
  if (!last_cmm_sent_ || now - *last_cmm_sent_ >= kCallMeMaybeInterval) return true;
  return cmm_retry_at_ && now >= *cmm_retry_at_;
}

void PeerPaths::note_cmm_sent(TimePoint now) {
  last_cmm_sent_ = now;
  cmm_retry_at_.reset();
}

void PeerPaths::note_call_me_maybe_not_here(TimePoint now) {
  if (!last_cmm_sent_) return;  // not about anything we sent
  m()->cmm_not_here.inc();
  cmm_retry_backoff_ = cmm_retry_backoff_ == Duration::zero()
                           ? kCallMeMaybeNotHereRetry
                           : std::min<Duration>(2 * cmm_retry_backoff_, kCallMeMaybeInterval);
  cmm_retry_at_ = now + cmm_retry_backoff_;
}

bool PeerPaths::want_call_me_maybe(TimePoint now, bool have_endpoints) {
  if (!active(now) || trusted(now) || !have_endpoints) return false;
  if (!cmm_rate_allows(now)) return false;
  note_cmm_sent(now);
  m()->cmm_send.inc();
  return true;
}

// Why: with no endpoints from control, each side learns the other's only from its
// call-me-maybe. The caller's first WireGuard packet may be lost at the relay (we were
// not connected yet), and then nothing made us "active": its call-me-maybe taught us
// its endpoints and our sweep opened our NAT, but it never learned ours and waited for
// its next 5 s round. The peer asked to be reached, so we are trying to reach it.
bool PeerPaths::want_call_me_maybe_answer(TimePoint now, bool have_endpoints) {
  if (trusted(now) || !have_endpoints) return false;
  if (!cmm_rate_allows(now)) return false;
  note_cmm_sent(now);
  m()->cmm_send.inc();
  m()->cmm_answer.inc();
  return true;
}

std::optional<PlannedPing> PeerPaths::plan_operator_ping(TimePoint now, RandomSource& rng) {
  note_active(now);
  expire_in_flight(now);
  Candidate* target = best_ ? find_mut(best_->addr) : nullptr;
  // No best: the fastest measured candidate, else the first netmap one, else any.
  for (auto& c : cands_) {
    if (best_ || !c.latency) continue;
    if (!target || *c.latency < *target->latency) target = &c;
  }
  for (auto& c : cands_) {
    if (!target && c.source == CandidateSource::kNetmap) target = &c;
  }
  if (!target && !cands_.empty()) target = &cands_.front();
  if (!target) return std::nullopt;
  std::vector<PlannedPing> out;
  emit(*target, now, rng, out);
  return out.front();
}

PeerPathStatus PeerPaths::status(TimePoint now, bool derp_available) const {
  PeerPathStatus s;
  s.state = state(now);
  s.route = route_kind(s.state, derp_available);
  switch (s.state) {
    case PathState::kTrusted:
    case PathState::kFailingOver:
      s.path = PathKind::kDirect;
      s.trust_remaining = *trust_until_ - now;
      break;
    case PathState::kNoBest:
    case PathState::kProbing:
    case PathState::kExpired:
      s.path = derp_available ? PathKind::kDerp : PathKind::kNone;
      break;
  }
  if (best_) {
    s.best = best_->addr;
    s.latency = best_->latency;
  }
  s.candidates.reserve(cands_.size());
  for (const auto& c : cands_) {
    CandidateStatus cs{c.addr, c.source, c.latency, std::nullopt};
    if (is_learned(c.source)) {
      cs.expires_in =
          std::max<Duration>(Duration::zero(), c.last_seen + kLearnedCandidateLifetime - now);
    }
    s.candidates.push_back(cs);
  }
  return s;
}

bool PeerPaths::consistent() const {
  if (best_ && !find(best_->addr)) return false;
  if (best_.has_value() != trust_until_.has_value()) return false;
  for (const auto& f : in_flight_) {
    if (!find(f.to)) return false;
  }
  for (std::size_t i = 0; i < cands_.size(); ++i) {
    for (std::size_t j = i + 1; j < cands_.size(); ++j) {
      if (cands_[i].addr == cands_[j].addr) return false;
    }
  }
  return learned_count() <= kMaxLearnedCandidates;
}

}  // namespace tw::magicsock
