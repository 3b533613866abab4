// Counters for every path decision and drop (docs/direct-underlay.md#observability). Registered
// once; the hot path only increments. Exported names get the "tailwarden_" prefix.
#pragma once

#include "common/metrics.h"

namespace tw::magicsock {

struct MagicsockMetrics {
  explicit MagicsockMetrics(MetricsRegistry& r);

  // Candidates.
  Counter& candidate_learned;
  Counter& candidate_rejected_filter;
  Counter& candidate_rejected_cap;
  Counter& candidate_expired;
  Counter& netmap_endpoint_filtered;
  Counter& netmap_endpoint_pruned;
  // Pings and pongs.
  Counter& ping_planned;
  Counter& ping_timed_out;
  Counter& ping_recv;
  Counter& ping_recv_rejected;
  Counter& pong_recv;
  Counter& pong_recv_solicited;
  Counter& pong_recv_unsolicited;
  // Path choice.
  Counter& best_changed;
  Counter& best_kept_hysteresis;
  Counter& best_cleared_timeout;
  Counter& best_cleared_pruned;
  // Call-me-maybe and sweeps.
  Counter& cmm_recv;
  Counter& cmm_recv_rejected;
  Counter& cmm_send;
  Counter& cmm_answer;
  Counter& cmm_not_here;
  Counter& forced_sweep;
  Counter& forced_sweep_rate_limited;
  Counter& discovery_on_demand;
  Counter& ping_back;
  Counter& best_probe;
  Counter& ping_back_rate_limited;
  // Per-packet route.
  Counter& route_udp;
  Counter& route_udp_and_derp;
  Counter& route_derp;
  Counter& route_failover;
  Counter& route_drop_no_route;
  // Our endpoints and STUN.
  Counter& reflexive_learned;
  Counter& reflexive_rejected;
  Counter& reflexive_cap_dropped;
  Counter& reflexive_expired;
  Counter& endpoints_published;
  Counter& stun_request_planned;
  Counter& stun_request_dropped_in_flight_cap;
  Counter& stun_server_skipped;
  Counter& stun_response_matched;
  Counter& stun_response_expired;
  Counter& stun_response_unknown;
};

}  // namespace tw::magicsock
