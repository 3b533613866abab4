#include "netproc/magicsock/advertiser.h"

#include <algorithm>

#include "netproc/magicsock/constants.h"

namespace tw::magicsock {
namespace {

bool dialable(const IpPort& a) {
  return a.valid() && a.port != 0 && !a.ip.is_unspecified() && !a.ip.is_multicast() &&
         !a.ip.is_broadcast();
}

void add(std::vector<SelfEndpoint>& out, const IpPort& a, EndpointType t) {
  if (out.size() >= kMaxAdvertised || !dialable(a)) return;
  for (const auto& e : out) {
    if (e.addr == a) return;
  }
  out.push_back(SelfEndpoint{a, t});
}

}  // namespace

std::vector<SelfEndpoint> build_self_endpoints(const ReflexiveSet& reflexive,
                                               std::span<const IpPort> local,
                                               const AdvertisePolicy& policy, TimePoint now) {
  std::vector<SelfEndpoint> out;
  for (const auto& r : reflexive.current(now)) {
    if (r.addr.ip.is_v6() && !policy.enable_ipv6) continue;
    add(out, r.addr, EndpointType::kStun);
  }
  if (policy.advertise_lan_endpoints) {
    for (const auto& a : local) {
      if (a.ip.is_v6() && !policy.enable_ipv6) continue;
      add(out, a, EndpointType::kLocal);
    }
  }
  return out;
}

std::uint64_t EndpointAdvertiser::subscribe(Subscriber s) {
  const std::uint64_t h = next_handle_++;
  if (last_) s(*last_);
  subs_.emplace(h, std::move(s));
  return h;
}

void EndpointAdvertiser::unsubscribe(std::uint64_t handle) { subs_.erase(handle); }

bool EndpointAdvertiser::update(const std::vector<SelfEndpoint>& set) {
  if (last_ && *last_ == set) return false;
  last_ = set;
  m_.endpoints_published.inc();
  auto snapshot = subs_;  // a subscriber may unsubscribe from inside its callback
  for (auto& [h, s] : snapshot) s(*last_);
  return true;
}

}  // namespace tw::magicsock
