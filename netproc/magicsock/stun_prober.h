// STUN prober schedule and transaction state (docs/direct-underlay.md#our-endpoints): a sweep at
// once on start, on a DERP-map change and after a rebind, then every 20–26 s (jittered, redrawn
// each cycle) while the node has peers. Fixed IPv4 servers only; at most 16 transactions in flight
// (a sweep starts where the last one hit that cap, so every server gets its turn); a response is
// accepted only within 5 s of its request, checked on receipt.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "common/clock.h"
#include "common/ipaddr.h"
#include "netproc/magicsock/metrics.h"
#include "netproc/magicsock/types.h"

namespace tw::magicsock {

using StunTxId = std::array<std::uint8_t, 12>;

// Whether the prober sends to this server: IPv4 (STUN stays IPv4 even with
// enable_ipv6), a real port, a unicast address.
bool usable_stun_server(const IpPort& server);

struct StunRequestPlan {
  IpPort server;
  StunTxId txid{};
};

class StunProber {
 public:
  enum class Match : std::uint8_t { kMatched, kExpired, kUnknown };

  StunProber(MagicsockMetrics& metrics, RandomSource& rng) : m_(metrics), rng_(rng) {}

  // Servers from the DERP map (already resolved fixed addresses; hostnames never
  // reach here). Non-IPv4 or unusable ones are skipped. Triggers an immediate sweep.
  void set_servers(std::span<const IpPort> servers, TimePoint now);
  void start(TimePoint now) {
    immediate_ = true;
    (void)now;
  }
  // The old socket's mappings are meaningless: forget transactions, sweep at once.
  void on_rebind(TimePoint now);

  // Appends the requests due now. Periodic sweeps need peers; immediate ones do not.
  void poll(TimePoint now, bool have_peers, std::vector<StunRequestPlan>& out);
  // Single use: a matched or expired txid is forgotten.
  Match on_response(const StunTxId& txid, TimePoint now);

  std::optional<TimePoint> next_sweep() const { return next_sweep_; }
  std::size_t in_flight() const { return in_flight_.size(); }
  const std::vector<IpPort>& servers() const { return servers_; }
  Duration draw_interval();

 private:
  struct InFlight {
    StunTxId txid{};
    TimePoint sent{};
  };
  void sweep(TimePoint now, std::vector<StunRequestPlan>& out);
  std::size_t rotation_ = 0;  // index of the server the next sweep starts with

  MagicsockMetrics& m_;
  RandomSource& rng_;
  std::vector<IpPort> servers_;
  std::vector<InFlight> in_flight_;
  std::optional<TimePoint> next_sweep_;
  bool immediate_ = false;
};

}  // namespace tw::magicsock
