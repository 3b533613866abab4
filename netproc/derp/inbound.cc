#include "netproc/derp/inbound.h"

#include "netproc/derp/frame.h"

namespace tw::derp {

InboundDispatcher::InboundDispatcher(InboundHandlers handlers, MetricsRegistry& metrics)
    : h_(std::move(handlers)),
      disco_(metrics.counter("derp_recv_disco_total", "Disco packets received over DERP")),
      wireguard_(metrics.counter("derp_recv_wireguard_total", "WireGuard datagrams received over DERP")),
      unknown_(metrics.counter("derp_recv_unknown_peer_dropped_total",
                               "DERP packets dropped: source node key is not a known peer")) {}

void InboundDispatcher::dispatch(const NodePublic& src, RegionId region, ByteView packet) {
  if (looks_like_disco(packet)) {
    // The disco layer checks the sender against the netmap itself
    // (docs/direct-underlay.md#pings-and-pongs).
    disco_.inc();
    if (h_.relayed_disco) h_.relayed_disco(src, region, packet);
    return;
  }
  if (!h_.is_known_peer || !h_.is_known_peer(src)) {
    unknown_.inc();
    return;
  }
  wireguard_.inc();
  if (h_.wireguard) h_.wireguard(src, packet);
}

}  // namespace tw::derp
