// Sorting of packets received over DERP: a disco-looking
// payload goes to the relayed-disco handler with the DERP source key and region;
// anything else is a WireGuard datagram from the peer owning the source node key,
// and is dropped (and counted) when that key is not a known peer.
#pragma once

#include <functional>

#include "common/bytes.h"
#include "common/keys.h"
#include "common/metrics.h"
#include "netproc/derp/regions.h"

namespace tw::derp {

struct InboundHandlers {
  std::function<bool(const NodePublic&)> is_known_peer;
  std::function<void(const NodePublic& src, RegionId region, ByteView disco)> relayed_disco;
  std::function<void(const NodePublic& src, ByteView datagram)> wireguard;
};

class InboundDispatcher {
 public:
  InboundDispatcher(InboundHandlers handlers, MetricsRegistry& metrics);
  void dispatch(const NodePublic& src, RegionId region, ByteView packet);

 private:
  InboundHandlers h_;
  Counter& disco_;
  Counter& wireguard_;
  Counter& unknown_;
};

}  // namespace tw::derp
