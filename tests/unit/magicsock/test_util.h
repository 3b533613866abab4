// Shared fixtures for the path-logic tests: fake time, deterministic randomness,
// keys and addresses from short literals.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string_view>
#include <vector>

#include "common/ipaddr.h"
#include "common/keys.h"
#include "common/metrics.h"
#include "netproc/magicsock/constants.h"
#include "netproc/magicsock/metrics.h"
#include "netproc/magicsock/peer_paths.h"

namespace tw::magicsock::test {

using namespace std::chrono_literals;

inline IpPort ep(std::string_view text) {
  auto e = IpPort::parse(text);
  EXPECT_TRUE(e.has_value()) << text;
  return e.value_or(IpPort{});
}

inline NodePublic node_key(std::uint8_t n) {
  KeyBytes b{};
  b.fill(n);
  b[31] = 0xA0;
  return NodePublic(b);
}

inline DiscoPublic disco_key(std::uint8_t n) {
  KeyBytes b{};
  b.fill(n);
  b[31] = 0xD0;
  return DiscoPublic(b);
}

inline bool pings_to(const std::vector<PlannedPing>& v, const IpPort& a) {
  return std::any_of(v.begin(), v.end(), [&](const PlannedPing& p) { return p.to == a; });
}

inline const PlannedPing* ping_for(const std::vector<PlannedPing>& v, const IpPort& a) {
  for (const auto& p : v) {
    if (p.to == a) return &p;
  }
  return nullptr;
}

inline constexpr TimePoint kStart = TimePoint{} + std::chrono::hours(1);

// One peer's paths with its own metrics, clock and randomness.
struct PathsHarness {
  explicit PathsHarness(CandidatePolicy policy = {}) : ctx{policy, &m}, p(&ctx) {}

  std::vector<PlannedPing> plan() {
    std::vector<PlannedPing> out;
    p.plan_pings(now, rng, out);
    return out;
  }
  // Plans a cycle and answers the ping to `a` after `rtt`; other pings are lost.
  std::optional<PongOutcome> confirm(const IpPort& a, Duration rtt) {
    auto pings = plan();
    const PlannedPing* ping = ping_for(pings, a);
    EXPECT_NE(ping, nullptr) << "no ping planned to " << a.to_string();
    if (!ping) return std::nullopt;
    now += rtt;
    return p.note_pong(ping->txid, now);
  }
  void netmap(std::initializer_list<IpPort> eps) {
    std::vector<IpPort> v(eps);
    p.set_netmap_endpoints(v, now);
  }
  std::uint64_t counter(const std::string& name) const { return reg.value(name); }

  MetricsRegistry reg;
  MagicsockMetrics m{reg};
  PathsContext ctx;
  SeededRandom rng{42};
  TimePoint now = kStart;
  PeerPaths p;
};

}  // namespace tw::magicsock::test
