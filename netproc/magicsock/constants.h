// Timing and size constants of the direct underlay (docs/direct-underlay.md, after
// Go's wgengine/magicsock). One place so tests and code agree.
#pragma once

#include <chrono>
#include <cstddef>

#include "common/clock.h"

namespace tw::magicsock {

using namespace std::chrono_literals;

// Path trust and pinging.
inline constexpr Duration kTrustDuration = 6500ms;        // Go trustUDPAddrDuration
inline constexpr Duration kRefreshBeforeExpiry = 3500ms;  // re-ping best this early
inline constexpr Duration kPingTimeout = 5s;              // pong must come within this
inline constexpr Duration kDiscoPingInterval = 5s;        // per-candidate floor
inline constexpr Duration kGoodEnoughLatency = 5ms;       // quiets non-best discovery
inline constexpr Duration kUpgradeInterval = 60s;         // re-probe for a better path
inline constexpr Duration kPingerTick = 2s;               // pinger period
inline constexpr Duration kFailoverFloor = 1s;            // min unanswered time to failover
inline constexpr Duration kBusyBestProbeInterval = 1s;    // ping a best that carries traffic
inline constexpr int kFailoverRttMultiple = 3;

// Candidates.
inline constexpr std::size_t kMaxLearnedCandidates = 32;  // per peer
inline constexpr Duration kLearnedCandidateLifetime = 45s;
inline constexpr std::size_t kMaxCallMeMaybeEndpoints = 16;

// Rate limits.
inline constexpr Duration kForcedSweepInterval = 5s;        // CMM-triggered sweeps
inline constexpr Duration kPingBackInterval = 1s;           // per candidate, see PeerPaths::ping_back
inline constexpr Duration kOnDemandDiscoveryInterval = 5s;  // send found no trusted path
inline constexpr Duration kCallMeMaybeInterval = 5s;        // per peer
// A call-me-maybe the relay could not deliver (the peer was not connected to it yet)
// is retried after 250 ms, doubling per miss, until the normal interval applies again.
inline constexpr Duration kCallMeMaybeNotHereRetry = 250ms;
inline constexpr Duration kActiveTimeout = 45s;             // Go sessionActiveTimeout

// Our endpoints and STUN.
inline constexpr std::size_t kMaxReflexive = 16;
inline constexpr Duration kReflexiveLifetime = 120s;
inline constexpr std::size_t kMaxAdvertised = 16;
inline constexpr std::size_t kMaxStunInFlight = 16;
inline constexpr Duration kStunTxLifetime = 5s;
inline constexpr Duration kStunIntervalMin = 20s;
inline constexpr Duration kStunIntervalMax = 26s;

}  // namespace tw::magicsock
