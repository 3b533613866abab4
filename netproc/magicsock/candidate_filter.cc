#include "netproc/magicsock/candidate_filter.h"

namespace tw::magicsock {
namespace {

bool never_a_target(const IpAddr& ip) {
  return !ip.valid() || ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast();
}

bool is_lan_class(const IpAddr& ip) {
  return ip.is_loopback() || ip.is_link_local_unicast() || ip.is_private();
}

}  // namespace

bool is_pingable_candidate(const IpPort& ep, bool enable_ipv6) {
  const IpAddr& ip = ep.ip;
  if (ep.port == 0 || never_a_target(ip)) return false;
  if (ip.is_v6() && !enable_ipv6) return false;
  return !is_lan_class(ip);
}

bool is_acceptable_netmap_endpoint(const IpPort& ep, const CandidatePolicy& policy) {
  const IpAddr& ip = ep.ip;
  if (ep.port == 0 || never_a_target(ip)) return false;
  if (ip.is_v6() && !policy.enable_ipv6) return false;
  return policy.allow_lan_endpoints || !is_lan_class(ip);
}

}  // namespace tw::magicsock
