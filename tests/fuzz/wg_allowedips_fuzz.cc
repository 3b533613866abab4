// Fuzz target: AllowedIPs inserts, peer removals and lookups agree with a naive
// longest-prefix scan over the same prefixes.
#include <cstdint>
#include <cstdlib>
#include <map>

#include "dataproc/wireguard/allowedips.h"

namespace {

tw::IpPrefix masked(tw::IpAddr addr, unsigned bits) {
  const unsigned max = addr.is_v4() ? 32 : 128;
  bits %= max + 1;
  auto raw = addr.raw();
  for (unsigned i = bits; i < max; ++i) raw[i / 8] &= static_cast<std::uint8_t>(~(0x80 >> (i % 8)));
  tw::IpAddr a = addr.is_v4() ? tw::IpAddr::v4(raw[0], raw[1], raw[2], raw[3])
                              : tw::IpAddr::from16(raw.data());
  return tw::IpPrefix{a, static_cast<std::uint8_t>(bits)};
}

std::optional<tw::wg::PeerId> naive(const std::map<tw::IpPrefix, tw::wg::PeerId>& m,
                                    const tw::IpAddr& a) {
  int best_bits = -1;
  std::optional<tw::wg::PeerId> best;
  for (const auto& [p, peer] : m)
    if (p.contains(a) && p.bits > best_bits) best_bits = p.bits, best = peer;
  return best;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tw::wg::AllowedIps t;
  std::map<tw::IpPrefix, tw::wg::PeerId> ref;
  std::size_t i = 0;
  while (i + 19 <= size) {
    const std::uint8_t op = data[i];
    const std::uint8_t bits = data[i + 1];
    const tw::wg::PeerId peer = data[i + 2] % 8;
    std::uint8_t b16[16];
    for (int k = 0; k < 16; ++k) b16[k] = data[i + 3 + k];
    i += 19;
    // Avoid v4-mapped v6 so each family stays what the fuzzer picked.
    if (!(op & 4)) b16[10] = 0;
    const tw::IpAddr addr = (op & 4) ? tw::IpAddr::v4(b16[0], b16[1], b16[2], b16[3])
                                     : tw::IpAddr::from16(b16);
    switch (op % 4) {
      case 0:
      case 1: {
        const tw::IpPrefix p = masked(addr, bits);
        t.insert(p, peer);
        ref[p] = peer;
        break;
      }
      case 2:
        t.remove_peer(peer);
        std::erase_if(ref, [peer](const auto& e) { return e.second == peer; });
        break;
      default:
        if (t.lookup(addr) != naive(ref, addr)) std::abort();
        break;
    }
  }
  if (t.size() != ref.size()) std::abort();
  return 0;
}
