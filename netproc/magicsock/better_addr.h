// Go's betterAddr (wgengine/magicsock/endpoint.go): should a
// path that just answered replace the current best? Latency points, LAN and IPv6
// bonuses and a small hysteresis so near-equal paths do not flap.
#pragma once

#include <cstdint>

#include "common/clock.h"
#include "common/ipaddr.h"

namespace tw::magicsock {

struct AddrQuality {
  IpPort addr;  // invalid = no path
  Duration latency{};
  std::uint16_t wire_mtu = 0;  // 0 = unknown (we do not probe path MTU)
};

bool better_addr(const AddrQuality& a, const AddrQuality& b);

}  // namespace tw::magicsock
