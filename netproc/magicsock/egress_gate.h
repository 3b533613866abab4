// netproc's side of the kernel egress allowlist (docs/deploy.md, "Egress"): when the
// broker enforces one, the underlay socket reaches only the netmap endpoints, the
// STUN servers of the DERP map and the learned candidates the broker approved. The
// gate asks the broker to approve a learned candidate before the first datagram goes
// to it, holds a few disco datagrams meanwhile (a pong to a new ping source, the
// first pings), sends them once approved, and renews approvals in use before they
// lapse. Without an allowlist the gate lets everything through.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/ipaddr.h"
#include "common/metrics.h"

namespace tw::magicsock {

class EgressGate {
 public:
  static constexpr std::size_t kMaxHeldPerAddress = 4;
  static constexpr std::size_t kMaxHeldAddresses = 64;
  static constexpr Duration kHoldFor = std::chrono::seconds(3);
  static constexpr Duration kRenewBefore = std::chrono::seconds(15);
  static constexpr Duration kRetryAfter = std::chrono::seconds(2);
  static constexpr Duration kRefusedFor = std::chrono::seconds(5);

  enum class Decision { kSend, kHold, kDrop };
  using Request = std::pair<std::uint32_t, IpPort>;  // broker peer id, candidate

  explicit EgressGate(MetricsRegistry& metrics);

  void enable(bool on) { enabled_ = on; }
  bool enabled() const { return enabled_; }
  // What the broker approves by itself: every netmap endpoint, the STUN servers.
  void set_netmap_endpoints(std::span<const IpPort> endpoints);
  void set_stun_servers(std::span<const IpPort> servers);

  // May a datagram go to `to` (of broker peer `peer_id`; 0 = none) now? Approvals to
  // ask for are appended to `requests`.
  Decision check(std::uint32_t peer_id, const IpPort& to, TimePoint now,
                 std::vector<Request>& requests);
  // Keeps a copy until the verdict (bounded; the oldest are dropped and counted).
  void hold(const IpPort& to, ByteView datagram, TimePoint now);
  // The broker's answer. Returns the held datagrams that may go now.
  std::vector<std::pair<IpPort, Bytes>> on_verdict(std::span<const IpPort> approved,
                                                   std::span<const IpPort> refused,
                                                   Duration lifetime, TimePoint now);
  // Drops held datagrams older than kHoldFor and forgets lapsed approvals.
  void expire(TimePoint now);

  bool approved(const IpPort& to, TimePoint now) const;
  std::size_t held() const;

 private:
  bool enabled_ = false;
  std::set<IpPort> netmap_;
  std::set<IpPort> stun_;
  std::unordered_map<IpPort, TimePoint> approved_until_;
  std::unordered_map<IpPort, TimePoint> requested_at_;
  std::unordered_map<IpPort, TimePoint> refused_until_;
  std::map<IpPort, std::vector<std::pair<TimePoint, Bytes>>> held_;
  Counter& requested_;
  Counter& refused_;
  Counter& held_dropped_;
};

}  // namespace tw::magicsock
