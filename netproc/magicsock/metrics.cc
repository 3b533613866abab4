#include "netproc/magicsock/metrics.h"

namespace tw::magicsock {

MagicsockMetrics::MagicsockMetrics(MetricsRegistry& r)
    : candidate_learned(
          r.counter("disco_candidate_learned_total", "Learned candidate endpoints accepted")),
      candidate_rejected_filter(
          r.counter("disco_candidate_rejected_filter_total",
                    "Peer-supplied endpoints refused by is_pingable_candidate")),
      candidate_rejected_cap(r.counter("disco_candidate_rejected_cap_total",
                                       "Learned endpoints refused by the per-peer cap")),
      candidate_expired(r.counter("disco_candidate_expired_total",
                                  "Learned candidates removed after their lifetime")),
      netmap_endpoint_filtered(r.counter("disco_netmap_endpoint_filtered_total",
                                         "Netmap endpoints refused by family or LAN policy")),
      netmap_endpoint_pruned(r.counter("disco_netmap_endpoint_pruned_total",
                                       "Netmap endpoints removed by a newer netmap")),
      ping_planned(r.counter("disco_ping_sent_total", "Disco pings planned for sending")),
      ping_timed_out(
          r.counter("disco_ping_timeout_total", "Disco pings that got no pong within 5 s")),
      ping_recv(r.counter("disco_ping_recv_total", "Disco pings accepted")),
      ping_recv_rejected(r.counter("disco_ping_recv_rejected_total",
                                   "Disco pings refused by the binding verifier")),
      pong_recv(r.counter("disco_pong_recv_total", "Disco pongs received from members")),
      pong_recv_solicited(
          r.counter("disco_pong_recv_solicited_total", "Pongs that matched an in-flight ping")),
      pong_recv_unsolicited(r.counter("disco_pong_recv_unsolicited_total",
                                      "Pongs with an unknown, used or expired txid")),
      best_changed(r.counter("disco_best_path_changed_total", "Best direct path replaced")),
      best_kept_hysteresis(
          r.counter("disco_best_path_kept_total", "A rival pong did not beat the trusted best")),
      best_cleared_timeout(r.counter("disco_best_path_cleared_timeout_total",
                                     "Best cleared after an unanswered ping past trust")),
      best_cleared_pruned(r.counter("disco_best_path_cleared_pruned_total",
                                    "Best cleared because its candidate went away")),
      cmm_recv(r.counter("disco_call_me_maybe_recv_total", "Call-me-maybe accepted")),
      cmm_recv_rejected(r.counter("disco_call_me_maybe_recv_rejected_total",
                                  "Call-me-maybe refused (not over DERP or not the owner)")),
      cmm_send(r.counter("disco_call_me_maybe_send_total", "Call-me-maybe decided to send")),
      cmm_answer(r.counter("disco_call_me_maybe_answer_total",
                           "Call-me-maybe answered with ours (no trusted path to the caller)")),
      cmm_not_here(r.counter("disco_call_me_maybe_not_here_total",
                             "Relay said the peer was not connected after our call-me-maybe")),
      forced_sweep(r.counter("disco_forced_sweep_total", "Call-me-maybe triggered ping sweeps")),
      forced_sweep_rate_limited(r.counter("disco_forced_sweep_rate_limited_total",
                                          "Sweeps skipped by the 5 s per-peer limit")),
      discovery_on_demand(r.counter("disco_discovery_on_demand_total",
                                    "Discovery started by a send without trusted path")),
      ping_back(r.counter("disco_ping_back_total",
                          "Pings answered at once with a ping to the verified source")),
      best_probe(r.counter("disco_best_probe_total",
                           "Pings to a trusted best that carries traffic (1 s cadence)")),
      ping_back_rate_limited(r.counter("disco_ping_back_rate_limited_total",
                                       "Ping-backs skipped by the 1 s per-candidate limit")),
      route_udp(r.counter("route_udp_total", "Packets routed by UDP only")),
      route_udp_and_derp(r.counter("route_udp_and_derp_total", "Packets routed by UDP and DERP")),
      route_derp(r.counter("route_derp_total", "Packets routed by DERP only")),
      route_failover(
          r.counter("route_failover_total", "Packets duplicated to DERP by fast failover")),
      route_drop_no_route(
          r.counter("route_drop_no_route_total", "Packets dropped with no route at all")),
      reflexive_learned(r.counter("reflexive_learned_total", "New reflexive addresses")),
      reflexive_rejected(
          r.counter("reflexive_rejected_total", "Reflexive candidates refused by the filter")),
      reflexive_cap_dropped(
          r.counter("reflexive_cap_dropped_total", "Reflexive addresses refused by the cap")),
      reflexive_expired(
          r.counter("reflexive_expired_total", "Reflexive addresses expired after 2 min")),
      endpoints_published(r.counter("endpoints_published_total", "Endpoint set publications")),
      stun_request_planned(r.counter("stun_request_sent_total", "STUN binding requests planned")),
      stun_request_dropped_in_flight_cap(r.counter("stun_request_dropped_in_flight_cap_total",
                                                   "STUN requests dropped by the in-flight cap")),
      stun_server_skipped(
          r.counter("stun_server_skipped_total", "STUN servers skipped (not fixed IPv4)")),
      stun_response_matched(
          r.counter("stun_response_matched_total", "STUN responses matching an in-flight txid")),
      stun_response_expired(
          r.counter("stun_response_expired_total", "STUN responses arriving after 5 s")),
      stun_response_unknown(
          r.counter("stun_response_unknown_total", "STUN responses with an unknown txid")) {}

}  // namespace tw::magicsock
