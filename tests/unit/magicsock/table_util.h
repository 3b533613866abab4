// Fixture for PeerTable tests: a table with its own metrics, clock and randomness.
#pragma once

#include "netproc/magicsock/peer_table.h"
#include "tests/unit/magicsock/test_util.h"

namespace tw::magicsock::test {

inline NetmapPeer netmap_peer(std::uint8_t n, std::vector<IpPort> eps,
                              std::optional<std::uint16_t> region = 1) {
  return NetmapPeer{node_key(n), disco_key(n), std::move(eps), region};
}

struct TableHarness {
  explicit TableHarness(CandidatePolicy policy = {}) : t(policy, m, rng) {}

  ReconcileStats load(const std::vector<NetmapPeer>& peers) { return t.apply_netmap(peers, now); }
  PeerId id(std::uint8_t n) const { return *t.by_node(node_key(n)); }
  std::vector<PeerPing> tick() {
    std::vector<PeerPing> out;
    t.pinger_tick(now, out);
    return out;
  }
  // Answers every ping in `pings` after `rtt` (as if each peer ponged).
  void answer(const std::vector<PeerPing>& pings, Duration rtt) {
    for (const auto& p : pings) t.on_pong(t.info(p.peer).disco, p.ping.txid, now + rtt);
  }
  std::uint64_t counter(const std::string& name) const { return reg.value(name); }

  MetricsRegistry reg;
  MagicsockMetrics m{reg};
  SeededRandom rng{7};
  TimePoint now = kStart;
  PeerTable t;
};

}  // namespace tw::magicsock::test
