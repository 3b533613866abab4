// The broker's egress policy (docs/design.md#6-egress-the-single-egress-invariant): the broker is
// the only process that creates sockets, and it dials TCP only to DERP nodes of the current DERP
// map, at their fixed IPv4 by default; a host name is resolved only when the operator set derp_dns.
// STUN goes to fixed IPv4 map entries only (docs/direct-underlay.md#our-endpoints: never resolved).
// Every refusal is logged and counted (egress_refused_total). Pure decisions: the caller does the
// resolving and dialling.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/ipaddr.h"
#include "common/metrics.h"
#include "common/netmap.h"
#include "common/result.h"

namespace tw::broker {

struct EgressOptions {
  bool derp_dns = false;  // config derp_dns: allow resolving DERP host names
  // config derp_insecure_for_tests: a map's InsecureForTests nodes (no TLS checks,
  // loopback allowed) are dialled only when the operator opted in; a pasted map
  // alone cannot turn TLS verification off.
  bool insecure_for_tests = false;
};

// Where a DERP dial may go. Exactly one of `address` (fixed IPv4) and `hostname`
// (to resolve, then check_resolved()) is set.
struct DerpDialTarget {
  std::int64_t region_id = 0;
  std::string node_name;
  std::optional<IpPort> address;
  std::string hostname;
  std::uint16_t port = 443;
  std::string tls_server_name;  // CertName, else HostName: what netproc's TLS checks
  bool insecure_for_tests = false;
};

class EgressPolicy {
 public:
  EgressPolicy(EgressOptions options, MetricsRegistry& metrics);

  // The DERP map in force (from the current netmap); replaces the previous one.
  void set_derp_map(DerpMap map);

  // netproc asks for a DERP connection to (region, node). Returns where to dial, or
  // the reason for refusing (already logged and counted).
  Result<DerpDialTarget> decide_derp_dial(std::int64_t region_id, const std::string& node_name);

  // With derp_dns: may `resolved` (an answer for target.hostname) be dialled?
  Status check_resolved(const DerpDialTarget& target, const IpAddr& resolved);

  // The STUN servers netproc may send to from the underlay socket: fixed IPv4 (or
  // STUNTestIP) entries of the map with STUN enabled, sorted, without duplicates.
  std::vector<IpPort> stun_servers() const;
  // Whether a STUN destination is one of them; refusals are counted.
  bool allow_stun_destination(const IpPort& destination);

  std::uint64_t refused_total() const { return refused_.value(); }

 private:
  Error refuse(const std::string& reason);

  EgressOptions options_;
  DerpMap map_;
  Counter& refused_;
};

}  // namespace tw::broker
