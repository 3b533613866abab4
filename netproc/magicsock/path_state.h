// The named states of a peer's direct path and the send rule over them
// (docs/direct-underlay.md#the-path-state-machine). PeerPaths keeps timestamps;
// PeerPaths::state(now) names what they mean at `now`, and route(), next_due() and
// status() switch on it.
#pragma once

#include <cstdint>
#include <string_view>

namespace tw::magicsock {

//                  pong from a candidate (it becomes the best)
//   kNoBest --pings out--> kProbing ---------------------------------> kTrusted <--+
//     ^  ^                    |                                          |  ^      |
//     |  +---all timed out----+              ping to the best unanswered |  | pong |
//     |                                      for > max(3 x RTT, 1 s)     v  |      |
//     |                                                             kFailingOver   |
//     |                                            trust ends            |         |
//     |  best cleared: its ping timed    kTrusted -----------+           | trust   |
//     |  out after expiry; pruned;                           v           v ends    |
//     +--rebind (invalidate_best) ------------------------ kExpired ---------------+
//                                                        pong from the best
//                                                        or a better address
enum class PathState : std::uint8_t {
  kNoBest,       // no best path and no ping in flight: DERP
  kProbing,      // no best path yet, pings to candidates in flight: DERP
  kTrusted,      // the best answered within kTrustDuration: UDP only
  kFailingOver,  // trusted, but a ping to it is unanswered too long: UDP and DERP
  kExpired,      // a best is known but its trust ended: UDP and DERP
};

enum class RouteKind : std::uint8_t { kDrop, kDerp, kUdp, kUdpAndDerp };

// The send rule: how a WireGuard datagram for a peer in state `s` goes out.
constexpr RouteKind route_kind(PathState s, bool derp_available) {
  switch (s) {
    case PathState::kTrusted:
      return RouteKind::kUdp;
    case PathState::kFailingOver:
    case PathState::kExpired:
      return derp_available ? RouteKind::kUdpAndDerp : RouteKind::kUdp;
    case PathState::kNoBest:
    case PathState::kProbing:
      return derp_available ? RouteKind::kDerp : RouteKind::kDrop;
  }
  return RouteKind::kDrop;
}

// For status output: "no_best", "probing", "trusted", "failing_over", "expired".
constexpr std::string_view to_string(PathState s) {
  switch (s) {
    case PathState::kNoBest:
      return "no_best";
    case PathState::kProbing:
      return "probing";
    case PathState::kTrusted:
      return "trusted";
    case PathState::kFailingOver:
      return "failing_over";
    case PathState::kExpired:
      return "expired";
  }
  return "no_best";
}

// For status output: "none", "derp", "udp", "udp+derp".
constexpr std::string_view to_string(RouteKind r) {
  switch (r) {
    case RouteKind::kDrop:
      return "none";
    case RouteKind::kDerp:
      return "derp";
    case RouteKind::kUdp:
      return "udp";
    case RouteKind::kUdpAndDerp:
      return "udp+derp";
  }
  return "none";
}

}  // namespace tw::magicsock
