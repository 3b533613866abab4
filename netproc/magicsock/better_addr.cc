#include "netproc/magicsock/better_addr.h"

#include <chrono>

namespace tw::magicsock {
namespace {

int bonus(const IpAddr& ip) {
  int points = 0;
  if (ip.is_loopback()) {
    points += 50;
  } else if (ip.is_link_local_unicast()) {
    points += 30;
  } else if (ip.is_private()) {
    points += 20;
  }
  if (ip.is_v6()) points += 10;
  return points;
}

}  // namespace

bool better_addr(const AddrQuality& a, const AddrQuality& b) {
  if (a.addr == b.addr) return a.wire_mtu > b.wire_mtu;
  if (!b.addr.valid()) return true;
  if (!a.addr.valid()) return false;

  // Integer nanosecond arithmetic, as Go does on time.Duration.
  const std::int64_t la = std::chrono::nanoseconds(a.latency).count();
  const std::int64_t lb = std::chrono::nanoseconds(b.latency).count();
  int a_points = 0;
  int b_points = 0;
  if (la > lb && la > 0) {
    b_points = static_cast<int>(100 - (lb * 100) / la);
  } else if (lb > 0) {
    a_points = static_cast<int>(100 - (la * 100) / lb);
  }
  a_points += bonus(a.addr.ip);
  b_points += bonus(b.addr.ip);

  // Hysteresis: a barely faster path is not worth switching to.
  if (a_points <= 1 && b_points == 0) return false;
  return a_points > b_points;
}

}  // namespace tw::magicsock
