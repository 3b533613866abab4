// Fuzz target: whatever a (possibly compromised) netproc or the network hands the
// WireGuard engine, as datagrams or as TUN packets, it must never crash, and a
// datagram that fails authentication must never reach the TUN.
#include <cstdint>
#include <cstdlib>

#include "dataproc/wireguard/device.h"

namespace {

struct Fixture {
  tw::wg::WireGuardDevice dev;
  tw::wg::EngineOutput out;
  tw::TimePoint now = tw::TimePoint{} + std::chrono::hours(1);
  Fixture() {
    tw::crypto_init();
    dev.set_private_key(tw::NodePrivate::generate());
    dev.set_peers({tw::wg::PeerConfig{1, tw::NodePrivate::generate().public_key(),
                                      {*tw::IpPrefix::parse("100.64.0.0/10"),
                                       *tw::IpPrefix::parse("fd7a::/16")},
                                      {}}});
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture f;
  if (size == 0) return 0;
  f.out.clear();
  const std::uint8_t mode = data[0];
  tw::ByteView rest(data + 1, size - 1);
  f.now += std::chrono::milliseconds(mode);
  if (mode & 1) {
    f.dev.on_tun_packet(rest, f.now, f.out);
  } else {
    // Make the header plausible half of the time so parsing goes past the type check.
    tw::Bytes d(rest.begin(), rest.end());
    if ((mode & 2) && d.size() >= 4) {
      d[0] = static_cast<std::uint8_t>(1 + (mode >> 2) % 4);
      d[1] = d[2] = d[3] = 0;
    }
    f.dev.on_datagram(mode >> 4, d, f.now, f.out);
    // Nobody but the peer (whose private key is unknown here) can produce a packet
    // that decrypts, so nothing may come out for the TUN.
    if (!f.out.to_tun.empty()) std::abort();
  }
  f.dev.on_timer(f.now, f.out);
  return 0;
}
