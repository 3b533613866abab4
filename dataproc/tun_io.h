// Packet I/O on the TUN fd the broker created (IFF_VNET_HDR: every read and write
// starts with a virtio-net header): non-blocking reads, up to a burst per readiness
// event, each cut into IP packets by the TSO segmenter; writes of whole TUN frames
// (header + packet, possibly a coalesced TCP segment). No configuration happens
// here: dataproc cannot (and must not) change interfaces.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <utility>  // before Asio
#include <vector>

#include "common/bytes.h"
#include "common/metrics.h"
#include "dataproc/offload/tun_offload.h"
#include "ipc/unique_fd.h"

namespace tw::dataproc {

class TunIo {
 public:
  // Called with each IP packet read; the view is valid during the call only.
  using PacketHandler = std::function<void(ByteView packet)>;
  // Called after a burst has been handed over (a good moment to flush output).
  using BurstDone = std::function<void()>;

  // `name` prefixes the counters: "tun" (the main device) or "exit_tun" (tw-exit).
  TunIo(boost::asio::io_context& io, ipc::UniqueFd fd, std::size_t mtu, MetricsRegistry& metrics,
        const std::string& name = "tun");
  ~TunIo();
  // may_read: asked before every read; false holds reads back (the device queue
  // fills instead, and the kernel's TCP backs off) until resume(), or at the latest
  // until a slow fallback timer retries.
  void start(PacketHandler on_packet, BurstDone on_burst, std::function<bool()> may_read = {});
  // Reads on if reads are held back (the ring has room again: its room bell rang).
  void resume();
  // Writes one TUN frame (virtio-net header + packet) carrying `packets` IP packets;
  // a full device queue drops it (counted), as a NIC would.
  void write_frame(ByteView frame, std::size_t packets);
  // Writes one plain IP packet (behind an empty virtio-net header).
  void write(ByteView packet);

 private:
  void arm();
  void drain();
  void hold_back();

  boost::asio::posix::stream_descriptor fd_;
  std::vector<std::uint8_t> buf_;
  std::vector<std::uint8_t> tx_buf_;  // header + one plain packet
  offload::Segmenter segmenter_;
  PacketHandler on_packet_;
  BurstDone on_burst_;
  std::function<bool()> may_read_;
  boost::asio::steady_timer retry_;
  bool held_ = false;
  bool retry_armed_ = false;
  Counter& rx_held_back_;
  Counter& rx_packets_;
  Counter& rx_gso_reads_;
  Counter& rx_bad_frames_;
  Counter& tx_packets_;
  Counter& tx_frames_;
  Counter& tx_dropped_;
  Counter& read_errors_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tw::dataproc
