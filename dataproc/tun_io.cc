#include "dataproc/tun_io.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tw::dataproc {

namespace {
constexpr int kBurst = 64;
}

TunIo::TunIo(boost::asio::io_context& io, ipc::UniqueFd fd, std::size_t mtu, MetricsRegistry& metrics,
             const std::string& name)
    : fd_(io, fd.release()),
      buf_(std::max<std::size_t>(mtu, 1500) + 64),
      rx_packets_(metrics.counter(name + "_rx_packets_total", "Packets read from the TUN device")),
      tx_packets_(metrics.counter(name + "_tx_packets_total", "Packets written to the TUN device")),
      tx_dropped_(metrics.counter(name + "_tx_dropped_total", "Packets the TUN device did not take")),
      read_errors_(metrics.counter(name + "_read_errors_total", "Failed TUN reads")) {}

TunIo::~TunIo() { *alive_ = false; }

void TunIo::start(PacketHandler on_packet, BurstDone on_burst) {
  on_packet_ = std::move(on_packet);
  on_burst_ = std::move(on_burst);
  arm();
}

void TunIo::arm() {
  fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                 [this, alive = alive_](boost::system::error_code ec) {
                   if (!*alive || ec) return;
                   drain();
                 });
}

void TunIo::drain() {
  int n = 0;
  for (; n < kBurst; ++n) {
    ssize_t got = ::read(fd_.native_handle(), buf_.data(), buf_.size());
    if (got < 0) {
      if (errno != EAGAIN && errno != EINTR) {
        read_errors_.inc();
        spdlog::debug("tun read: {}", std::strerror(errno));
      }
      break;
    }
    if (got == 0) break;
    rx_packets_.inc();
    on_packet_(ByteView(buf_.data(), static_cast<std::size_t>(got)));
  }
  if (n > 0 && on_burst_) on_burst_();
  arm();
}

void TunIo::write(ByteView packet) {
  ssize_t put = ::write(fd_.native_handle(), packet.data(), packet.size());
  if (put == static_cast<ssize_t>(packet.size())) {
    tx_packets_.inc();
  } else {
    tx_dropped_.inc();
  }
}

}  // namespace tw::dataproc
