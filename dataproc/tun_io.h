// Packet I/O on the TUN fd the broker created: non-blocking batched reads (up to a
// burst per readiness event) and writes. No configuration happens here: dataproc
// cannot (and must not) change interfaces.
#pragma once

#include <utility>  // before Asio

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>
#include <vector>

#include "common/bytes.h"
#include "common/metrics.h"
#include "ipc/unique_fd.h"

namespace tw::dataproc {

class TunIo {
 public:
  // Called with each packet read; the view is valid during the call only.
  using PacketHandler = std::function<void(ByteView packet)>;
  // Called after a burst has been handed over (a good moment to flush output).
  using BurstDone = std::function<void()>;

  // `name` prefixes the counters: "tun" (the main device) or "exit_tun" (tw-exit).
  TunIo(boost::asio::io_context& io, ipc::UniqueFd fd, std::size_t mtu, MetricsRegistry& metrics,
        const std::string& name = "tun");
  ~TunIo();
  void start(PacketHandler on_packet, BurstDone on_burst);
  // Writes one packet; a full device queue drops it (counted), as a NIC would.
  void write(ByteView packet);

 private:
  void arm();
  void drain();

  boost::asio::posix::stream_descriptor fd_;
  std::vector<std::uint8_t> buf_;
  PacketHandler on_packet_;
  BurstDone on_burst_;
  Counter& rx_packets_;
  Counter& tx_packets_;
  Counter& tx_dropped_;
  Counter& read_errors_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tw::dataproc
