// Which addresses may become ping targets (docs/direct-underlay.md#candidates).
// Disco pings leave from the host's real address, so peer-supplied addresses are
// filtered hard; control-supplied ones are trusted but still filtered by family and
// by the LAN policy.
#pragma once

#include "common/ipaddr.h"

namespace tw::magicsock {

struct CandidatePolicy {
  bool enable_ipv6 = false;         // IPv6 candidates only when the socket is dual-stack
  bool allow_lan_endpoints = true;  // private/loopback/link-local from the netmap
};

// Peer-supplied (ping source, call-me-maybe): public unicast only.
bool is_pingable_candidate(const IpPort& ep, bool enable_ipv6);

// Control-supplied (netmap): family gate always; LAN classes only with the policy.
bool is_acceptable_netmap_endpoint(const IpPort& ep, const CandidatePolicy& policy);

}  // namespace tw::magicsock
