// Our advertised endpoints (docs/direct-underlay.md#our-endpoints):
// most useful first (STUN, then LAN only when allowed), at most 16, never an
// unspecified address; published on change and replayed to every new subscriber so
// a late subscriber (the control runner after it connects) loses nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "common/ipaddr.h"
#include "netproc/magicsock/metrics.h"
#include "netproc/magicsock/reflexive.h"

namespace tw::magicsock {

// tailcfg.EndpointType values.
enum class EndpointType : std::uint8_t { kLocal = 1, kStun = 2, kStun4LocalPort = 4 };

struct SelfEndpoint {
  IpPort addr;
  EndpointType type = EndpointType::kStun;
  friend bool operator==(const SelfEndpoint&, const SelfEndpoint&) = default;
};

struct AdvertisePolicy {
  bool advertise_lan_endpoints = false;  // off in the privacy-proxy posture
  bool enable_ipv6 = false;
};

// `local` are interface addresses already paired with the bound port.
std::vector<SelfEndpoint> build_self_endpoints(const ReflexiveSet& reflexive,
                                               std::span<const IpPort> local,
                                               const AdvertisePolicy& policy, TimePoint now);

class EndpointAdvertiser {
 public:
  using Subscriber = std::function<void(const std::vector<SelfEndpoint>&)>;

  explicit EndpointAdvertiser(MagicsockMetrics& metrics) : m_(metrics) {}

  // Replays the last published set to the new subscriber at once.
  std::uint64_t subscribe(Subscriber s);
  void unsubscribe(std::uint64_t handle);
  // Publishes to every subscriber if the set differs from the last one.
  bool update(const std::vector<SelfEndpoint>& set);
  const std::optional<std::vector<SelfEndpoint>>& last() const { return last_; }

 private:
  MagicsockMetrics& m_;
  std::optional<std::vector<SelfEndpoint>> last_;
  std::map<std::uint64_t, Subscriber> subs_;
  std::uint64_t next_handle_ = 1;
};

}  // namespace tw::magicsock
