// Per-peer direct-path state as pure logic with an injected clock: candidate
// endpoints with their source and lifetime, in-flight disco pings, the best path and
// its trust window, the ping schedule and the per-packet route decision
// (docs/direct-underlay.md; Go semantics for path choice).
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "common/clock.h"
#include "common/ipaddr.h"
#include "netproc/magicsock/candidate_filter.h"
#include "netproc/magicsock/metrics.h"
#include "netproc/magicsock/path_state.h"
#include "netproc/magicsock/status.h"
#include "netproc/magicsock/types.h"

namespace tw::magicsock {

struct Candidate {
  IpPort addr;
  CandidateSource source = CandidateSource::kPing;
  TimePoint last_seen{};  // a learned candidate expires kLearnedCandidateLifetime after
  std::optional<TimePoint> last_ping;
  std::optional<Duration> latency;  // last RTT; cleared when a ping to it times out
  std::optional<TimePoint> last_ping_back;
};

struct BestPath {
  IpPort addr;
  Duration latency{};
};

// Addresses that entered or left the candidate set, so the peer table can keep the
// source-attribution map in sync. Netmap additions are authoritative (they may take
// an address from another peer); learned ones are first-writer-wins.
struct CandidateDelta {
  std::vector<IpPort> added;
  std::vector<IpPort> removed;
  bool authoritative = false;
  bool empty() const { return added.empty() && removed.empty(); }
};

struct RouteDecision {
  RouteKind kind = RouteKind::kDrop;
  IpPort udp;                    // set when kind carries UDP
  bool failover = false;         // DERP added because the trusted best went quiet
  bool start_discovery = false;  // the caller should run discovery for this peer now
  bool probe_best = false;       // the caller should ping the best now (PeerPaths::probe_best)
  bool has_udp() const { return kind == RouteKind::kUdp || kind == RouteKind::kUdpAndDerp; }
  bool has_derp() const { return kind == RouteKind::kDerp || kind == RouteKind::kUdpAndDerp; }
};

struct PongOutcome {
  IpPort pinged;  // latency is measured to the address we pinged, not the pong's source
  Duration rtt{};
  bool became_best = false;
  bool refreshed_trust = false;
};

// Shared, read-only configuration of every PeerPaths of one socket.
struct PathsContext {
  CandidatePolicy policy;
  MagicsockMetrics* metrics = nullptr;
};

class PeerPaths {
 public:
  explicit PeerPaths(const PathsContext* ctx) : ctx_(ctx) {}

  // --- candidates
  CandidateDelta set_netmap_endpoints(std::span<const IpPort> eps, TimePoint now);
  CandidateDelta learn_from_ping(const IpPort& src, TimePoint now);
  CandidateDelta learn_from_call_me_maybe(std::span<const IpPort> eps, TimePoint now);
  // Drops learned candidates past their lifetime and settles timed-out pings.
  CandidateDelta expire(TimePoint now);

  // --- pings (each appends to `out` and records the ping as in flight)
  void plan_pings(TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out);
  // Call-me-maybe sweep: every candidate, no floor; at most once per 5 s.
  bool force_sweep(TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out);
  // A verified ping from `src` just crossed both NATs inward: answer it with a ping
  // of our own at once (no 5 s floor, at most once per second per candidate) unless
  // `src` is already our trusted best. Returns whether a ping was planned.
  bool ping_back(const IpPort& src, TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out);
  // A best that carries traffic is pinged every second (route() asks for it), so a
  // path that died is noticed by fast failover within ~2 s (not after the refresh
  // ping 3 s after the last pong plus the failover wait), and one that came back is
  // trusted again within a second.
  void probe_best(TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out);
  // On-demand discovery after a send found no trusted path (floor still applies).
  void plan_discovery(TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out);
  // Operator ping: the best, else the most useful candidate; counts as activity.
  std::optional<PlannedPing> plan_operator_ping(TimePoint now, RandomSource& rng);
  std::optional<PongOutcome> note_pong(const TxId& txid, TimePoint now);
  // When this peer next has ping or expiry work; nullopt = nothing to do.
  std::optional<TimePoint> next_due(TimePoint now) const;

  // --- sending
  RouteDecision route(TimePoint now, bool derp_available);
  bool want_call_me_maybe(TimePoint now, bool have_endpoints);
  // A call-me-maybe from this peer just arrived and our sweep towards it opened our
  // NAT: answer with ours (same 5 s per-peer limit, only without a trusted path), so
  // that its sweep towards us comes through. See docs/direct-underlay.md.
  bool want_call_me_maybe_answer(TimePoint now, bool have_endpoints);
  // The relay answered our latest call-me-maybe with "peer not here": it was lost.
  // The next one may go after a short backoff (kCallMeMaybeNotHereRetry, doubling)
  // instead of the full 5 s; a sign of life from the peer ends the backoff.
  void note_call_me_maybe_not_here(TimePoint now);
  void note_active(TimePoint now) { last_active_ = now; }
  // Outbound traffic or an operator ping within the last 45 s.
  bool active(TimePoint now) const;

  // Rebind: the old socket's mappings are gone; candidates stay, re-ping at once.
  void invalidate_best();

  // --- readers
  PathState state(TimePoint now) const;
  bool trusted(TimePoint now) const;
  std::optional<IpPort> best_addr(TimePoint now) const;  // trusted only
  const std::optional<BestPath>& best() const { return best_; }
  std::optional<TimePoint> trust_until() const { return trust_until_; }
  bool needs_refresh(TimePoint now) const;
  const std::vector<Candidate>& candidates() const { return cands_; }
  const Candidate* find(const IpPort& a) const;
  std::size_t learned_count() const;
  std::size_t in_flight_count() const { return in_flight_.size(); }
  PeerPathStatus status(TimePoint now, bool derp_available) const;
  // Internal invariants (best and in-flight targets are candidates, learned cap
  // holds); for tests and fuzzing.
  bool consistent() const;

 private:
  struct InFlight {
    TxId txid{};
    IpPort to;
    TimePoint sent{};
  };

  Candidate* find_mut(const IpPort& a);
  void remove_candidate(std::size_t i, CandidateDelta& delta);
  void add_learned(const IpPort& a, CandidateSource s, TimePoint now, CandidateDelta& delta);
  void expire_in_flight(TimePoint now);
  void emit(Candidate& c, TimePoint now, RandomSource& rng, std::vector<PlannedPing>& out);
  bool want_full_ping(TimePoint now) const;
  // A ping to the trusted best has gone unanswered for more than max(3 x RTT, 1 s).
  bool best_quiet(TimePoint now) const;
  bool ping_in_flight(TimePoint now) const;
  void choose_path(const IpPort& to, Duration rtt, TimePoint sent, TimePoint now, PongOutcome& out);
  void note_best_answered(TimePoint sent);
  void clear_best();
  bool cmm_rate_allows(TimePoint now) const;
  void note_cmm_sent(TimePoint now);
  MagicsockMetrics* m() const { return ctx_->metrics; }

  const PathsContext* ctx_;
  std::vector<Candidate> cands_;
  std::vector<InFlight> in_flight_;
  std::optional<BestPath> best_;
  std::optional<TimePoint> trust_until_;
  std::optional<TimePoint> best_unanswered_since_;  // oldest unanswered ping to best
  std::optional<TimePoint> last_full_ping_;
  std::optional<TimePoint> last_forced_sweep_;
  std::optional<TimePoint> last_on_demand_;
  std::optional<TimePoint> last_cmm_sent_;
  std::optional<TimePoint> cmm_retry_at_;  // earlier than the 5 s limit: our last CMM was lost
  Duration cmm_retry_backoff_{};           // zero: no call-me-maybe lost since the peer was heard
  std::optional<TimePoint> last_active_;
};

}  // namespace tw::magicsock
