// Per-peer path state for `tailwarden status --json` (docs/direct-underlay.md#observability).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/ipaddr.h"
#include "netproc/magicsock/path_state.h"
#include "netproc/magicsock/types.h"

namespace tw::magicsock {

enum class PathKind : std::uint8_t { kNone, kDerp, kDirect };

inline std::string_view to_string(PathKind p) {
  switch (p) {
    case PathKind::kDirect:
      return "direct";
    case PathKind::kDerp:
      return "derp";
    case PathKind::kNone:
      return "none";
  }
  return "none";
}

struct CandidateStatus {
  IpPort addr;
  CandidateSource source = CandidateSource::kNetmap;
  std::optional<Duration> latency;
  std::optional<Duration> expires_in;  // learned candidates only
};

struct PeerPathStatus {
  PathKind path = PathKind::kNone;
  PathState state = PathState::kNoBest;
  RouteKind route = RouteKind::kDrop;  // how a datagram sent now goes out
  std::optional<IpPort> best;
  std::optional<Duration> latency;
  Duration trust_remaining{};  // zero when not trusted
  std::vector<CandidateStatus> candidates;
};

}  // namespace tw::magicsock
