// The seam between the magicsock runtime and netproc's DERP side. The runtime sends
// through a DerpRelay; the DERP side hands inbound packets to Runtime::on_derp_packet,
// which sorts relayed disco from relayed WireGuard itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/keys.h"

namespace tw::magicsock {

class DerpRelay {
 public:
  virtual ~DerpRelay() = default;
  // Queues `packet` for node `dst`. `peer_region` is the peer's home region (0 if
  // unknown); the relay prefers the region it last heard the peer on. False: no
  // region to send through (dropped; the caller counts it).
  virtual bool send(const NodePublic& dst, std::uint32_t peer_region, ByteView packet) = 0;
  // Whether any region can carry packets now or soon (home wanted or connected).
  virtual bool available() const = 0;
  virtual std::uint32_t home_region() const = 0;
  // For `netcheck`: whether a DERP connection to `region` is up now.
  virtual bool region_connected(std::uint32_t /*region*/) const { return false; }
};

}  // namespace tw::magicsock
