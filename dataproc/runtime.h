// dataproc's event loop: WireGuard between the rings (netproc) and the TUN device.
// The packet path through dataproc (across processes: docs/design.md#5-where-a-packet-goes):
//
// Outbound, TUN to the data->net ring:
//   1. TunIo::drain reads a burst from the TUN fd, cuts TSO segments into packets
//      (offload::Segmenter) -> on_tun_packet for each packet;
//   2. WireGuardDevice::on_tun_packet (wireguard/send.cc): AllowedIPs -> peer;
//      encrypt into EngineOutput::to_network, or stage it and send an initiation;
//   3. flush (after the burst): to_network -> data->net ring (RingProducer::push;
//      a full ring is counted), doorbell rung if netproc sleeps.
//
// Inbound, net->data ring to TUN:
//   4. RingReader copies a burst out of the ring -> on_ring_batch;
//   5. WireGuardDevice::on_datagram (wireguard/receive.cc): handshakes, or
//      handle_transport (receive_transport.cc): decrypt, replay window, AllowedIPs
//      source check -> EngineOutput::to_tun;
//   6. flush: to_tun -> offload::Coalescer (consecutive TCP segments of a flow
//      become one large segment, GRO) -> TunIo::write.
//
// Timers: arm_timer runs WireGuardDevice::on_timer (rekey, keepalive, retries, key
// erasure) at the device's next deadline, then flush.
//
// Control: the broker sends the node private key, the peers (netmap parts) and the
// TUN fd; netproc may ask for one thing only, a sealed DERP ClientInfo.
#pragma once

#include <array>
#include <boost/asio.hpp>
#include <memory>
#include <optional>
#include <utility>  // before Asio

#include "common/metrics.h"
#include "common/packet_filter.h"
#include "common/throttle.h"
#include "dataproc/tun_io.h"
#include "dataproc/wireguard/device.h"
#include "ipc/control_link.h"
#include "ipc/doorbell.h"
#include "ipc/netmap_parts.h"
#include "ipc/ring.h"
#include "ipc/ring_memory.h"

namespace tw::dataproc {

struct RuntimeFds {
  ipc::UniqueFd broker_control;
  ipc::UniqueFd peer_control;
  ipc::RingMemory* rings = nullptr;
  ipc::UniqueFd doorbell_net_to_data;  // we consume net->data: wait on it
  ipc::UniqueFd doorbell_data_to_net;  // we produce data->net: ring it
};

class Runtime {
 public:
  Runtime(boost::asio::io_context& io, RuntimeFds fds);
  // Starts reading both control links and the ring. `on_exit` is called when the
  // broker link closes (the process must end).
  void start(std::function<void(int code)> on_exit);

  MetricsRegistry& metrics() { return metrics_; }

 private:
  void on_broker_message(ipc::ReceivedMessage m);
  void on_netmap(ipc::DataprocNetmap part);
  void on_filter(ipc::DataprocFilter msg);
  // The packet filter's verdict on one packet decrypted from a peer (counted).
  bool filter_allows(ByteView packet, TimePoint now);
  void on_peer_message(ipc::ReceivedMessage m);
  void on_seal_request(const ipc::SealClientInfoRequest& req);
  void on_ring_batch(const ipc::PacketBatch& batch);
  void on_tun_packet(ByteView packet);
  void flush();
  static constexpr std::size_t kTunReadRoom = 2 * ipc::kMaxBurst;
  bool room_for_tun_reads();
  void resume_tun_reads();
  void arm_timer();
  std::string status_json() const;
  std::string metrics_text() const;

  boost::asio::io_context& io_;
  MetricsRegistry metrics_;
  ipc::ControlLink broker_;
  ipc::ControlLink peer_;
  ipc::RingConsumer from_net_;
  ipc::RingProducer to_net_;
  ipc::UniqueFd to_net_bell_;
  std::unique_ptr<ipc::RingReader> reader_;
  ipc::UniqueFd reader_bell_;
  wg::WireGuardDevice device_;
  wg::EngineOutput out_;
  ipc::NetmapAssembler<ipc::DataprocNetmap> assembler_;
  std::unique_ptr<TunIo> tun_;
  offload::Coalescer coalescer_;
  // The exit path (docs/design.md#9-exit-node): decrypted packets to a destination that
  // is not one of self_addresses_ go to exit_tun_ (tw-exit), or are dropped and
  // counted without one. Packets read from exit_tun_ are routed like the main TUN's.
  std::unique_ptr<TunIo> exit_tun_;
  std::vector<IpPrefix> self_addresses_;
  bool have_self_addresses_ = false;
  enum ExitClass { kExitTcp, kExitUdp, kExitIcmp, kExitIpv6, kExitOther, kExitClasses };
  bool to_self(ByteView packet) const;
  ExitClass classify(ByteView packet) const;
  std::array<Counter*, kExitClasses> exit_rx_{};
  boost::asio::steady_timer timer_;
  std::optional<TimePoint> timer_at_;
  bool have_key_ = false;
  std::vector<std::uint32_t> known_peer_ids_;
  std::function<void(int)> on_exit_;
  // The tailnet's packet filter (docs/control.md#packet-filter): nullopt = none.
  std::optional<PacketFilter> filter_;
  FlowTable flows_;
  Counter& filter_drop_no_rule_;
  Counter& filter_drop_invalid_;
  Counter& filter_drop_multicast_;
  Counter& ring_full_drops_;
  Counter& seal_refused_;
  Counter& off_tailnet_dropped_;
  // netproc may ask for a ClientInfo seal per DERP connection, not in a loop.
  TokenBucket seal_bucket_{2.0, 16.0};
};

}  // namespace tw::dataproc
