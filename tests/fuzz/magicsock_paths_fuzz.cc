// Drives a PeerTable with an arbitrary sequence of netmaps, disco events, ticks,
// sends and rebinds (all outside input: control, peers, the clock) and checks its
// invariants after every step: attribution only to live peers holding the address,
// consistent indexes, best and in-flight pings always among the candidates.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/metrics.h"
#include "netproc/magicsock/peer_table.h"

namespace {

using namespace tw;
using namespace tw::magicsock;

class Input {
 public:
  Input(const std::uint8_t* d, std::size_t n) : d_(d), n_(n) {}
  bool more() const { return i_ < n_; }
  std::uint8_t byte() { return i_ < n_ ? d_[i_++] : 0; }

 private:
  const std::uint8_t* d_;
  std::size_t n_;
  std::size_t i_ = 0;
};

KeyBytes key(std::uint8_t n, std::uint8_t tag) {
  KeyBytes b{};
  b.fill(static_cast<std::uint8_t>(n + 1));
  b[31] = tag;
  return b;
}

// A small pool mixing public, private, loopback, IPv6 and unspecified addresses.
IpPort addr(std::uint8_t b) {
  static const char* const kPool[] = {"203.0.113.1:1",  "203.0.113.2:1", "198.51.100.3:7",
                                      "10.0.0.1:41641", "127.0.0.1:1",   "[2001:db8::1]:1",
                                      "0.0.0.0:1",      "100.64.0.9:9",  "192.168.1.1:2",
                                      "[fe80::1]:3",    "203.0.113.1:2", "224.0.0.1:5"};
  const std::size_t n = sizeof kPool / sizeof kPool[0];
  if (b % 2 == 0) return *IpPort::parse(kPool[(b / 2) % n]);
  return IpPort{IpAddr::v4(203, 0, 113, static_cast<std::uint8_t>(10 + b % 64)), 1000};
}

std::vector<NetmapPeer> netmap(Input& in) {
  std::vector<NetmapPeer> nm;
  const std::uint8_t count = in.byte() % 6;
  for (std::uint8_t i = 0; i < count; ++i) {
    const std::uint8_t who = in.byte() % 8;
    NetmapPeer p{NodePublic(key(who, 0xA0)),
                 DiscoPublic(key(static_cast<std::uint8_t>(who + (in.byte() % 2) * 8), 0xD0)),
                 {},
                 std::nullopt};
    if (in.byte() % 2) p.derp_region = 1;
    const std::uint8_t eps = in.byte() % 5;
    for (std::uint8_t e = 0; e < eps; ++e) p.endpoints.push_back(addr(in.byte()));
    nm.push_back(std::move(p));
  }
  return nm;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  MetricsRegistry reg;
  MagicsockMetrics m(reg);
  SeededRandom rng(size);
  const std::uint8_t flags = in.byte();
  PeerTable t(CandidatePolicy{(flags & 1) != 0, (flags & 2) != 0}, m, rng);
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  std::vector<PeerPing> pings;  // everything planned so far, to answer later

  while (in.more()) {
    const std::uint8_t op = in.byte() % 10;
    const std::uint8_t a = in.byte();
    const std::uint8_t b = in.byte();
    const DiscoPublic disco(key(a % 16, 0xD0));
    const NodePublic node(key(b % 8, 0xA0));
    std::vector<PeerPing> out;
    switch (op) {
      case 0:
        now += std::chrono::milliseconds(a * 50 + b);
        break;
      case 1:
        t.apply_netmap(netmap(in), now);
        break;
      case 2:
        t.on_ping_udp(disco, node, addr(in.byte()), now);
        break;
      case 3:
        if (!pings.empty()) {
          const PeerPing& p = pings[a % pings.size()];
          // Usually from the pinged peer (slots are never shrunk, so the id indexes).
          t.on_pong(b % 4 ? t.info(p.peer).disco : disco, p.ping.txid, now);
        }
        break;
      case 4: {
        std::vector<IpPort> eps;
        for (std::uint8_t i = 0; i < b % 20; ++i) eps.push_back(addr(in.byte()));
        t.on_call_me_maybe(disco, node, eps, now, out);
        break;
      }
      case 5:
        t.pinger_tick(now, out);
        break;
      case 6:
        if (auto id = t.by_node(node)) t.route(*id, now, a % 2, b % 2, out);
        break;
      case 7:
        if (auto id = t.by_node(node)) {
          if (auto p = t.operator_ping(*id, now)) out.push_back(*p);
        }
        break;
      case 8:
        t.rebind(now);
        break;
      case 9: {
        std::vector<PeerId> cmm;
        t.call_me_maybe_tick(now, a % 2, cmm);
        if (auto id = t.by_node(node)) (void)t.status(*id, now, b % 2);
        break;
      }
    }
    pings.insert(pings.end(), out.begin(), out.end());
    if (pings.size() > 256) pings.erase(pings.begin(), pings.begin() + 128);
    if (!t.consistent()) std::abort();
  }
  return 0;
}
