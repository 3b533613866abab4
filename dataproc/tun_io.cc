#include "dataproc/tun_io.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tw::dataproc {

namespace {
constexpr int kBurst = 64;
// Held-back reads normally go on when the ring's room bell rings (resume()); this
// only bounds the wait should a bell never come. Armed once per hold, not re-armed
// while pending: a timer re-armed per hold cost a timerfd_settime each (~7% of the
// sending dataproc under load).
constexpr auto kHoldFallback = std::chrono::milliseconds(2);
}

TunIo::TunIo(boost::asio::io_context& io, ipc::UniqueFd fd, std::size_t /*mtu*/,
             MetricsRegistry& metrics, const std::string& name)
    : fd_(io, fd.release()),
      buf_(offload::kMaxTunRead),
      tx_buf_(offload::kMaxTunRead),
      retry_(io),
      rx_held_back_(metrics.counter(name + "_rx_held_back_total",
                                    "Times TUN reads waited for room in the data->net ring")),
      rx_packets_(metrics.counter(name + "_rx_packets_total",
                                  "IP packets read from the TUN device (after TSO cuts)")),
      rx_gso_reads_(metrics.counter(name + "_rx_gso_reads_total",
                                    "TUN reads that were TSO segments cut here")),
      rx_bad_frames_(
          metrics.counter(name + "_rx_bad_frames_total",
                          "TUN reads dropped: malformed virtio-net header or packet headers")),
      tx_packets_(
          metrics.counter(name + "_tx_packets_total", "IP packets written to the TUN device")),
      tx_frames_(metrics.counter(name + "_tx_frames_total",
                                 "TUN writes (one may carry a coalesced TCP segment)")),
      tx_dropped_(
          metrics.counter(name + "_tx_dropped_total", "Packets the TUN device did not take")),
      read_errors_(metrics.counter(name + "_read_errors_total", "Failed TUN reads")) {}

TunIo::~TunIo() { *alive_ = false; }

void TunIo::start(PacketHandler on_packet, BurstDone on_burst, std::function<bool()> may_read) {
  on_packet_ = std::move(on_packet);
  on_burst_ = std::move(on_burst);
  may_read_ = std::move(may_read);
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
    if (may_read_ && !may_read_()) {
      if (n > 0 && on_burst_) on_burst_();
      return hold_back();
    }
    ssize_t got = ::read(fd_.native_handle(), buf_.data(), buf_.size());
    if (got < 0) {
      if (errno != EAGAIN && errno != EINTR) {
        read_errors_.inc();
        spdlog::debug("tun read: {}", std::strerror(errno));
      }
      break;
    }
    if (got == 0) break;
    const auto err =
        segmenter_.split(std::span<std::uint8_t>(buf_.data(), static_cast<std::size_t>(got)));
    if (err != offload::SplitError::kNone) {
      rx_bad_frames_.inc();
      spdlog::debug("tun read of {} bytes dropped: {}", got, offload::split_error_name(err));
      continue;
    }
    if (segmenter_.count() > 1) rx_gso_reads_.inc();
    rx_packets_.inc(segmenter_.count());
    for (std::size_t i = 0; i < segmenter_.count(); ++i) on_packet_(segmenter_.packet(i));
  }
  if (n > 0 && on_burst_) on_burst_();
  arm();
}

void TunIo::hold_back() {
  rx_held_back_.inc();
  held_ = true;
  if (retry_armed_) return;
  retry_armed_ = true;
  retry_.expires_after(kHoldFallback);
  retry_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!*alive || ec) return;
    retry_armed_ = false;
    resume();
  });
}

void TunIo::resume() {
  if (!held_) return;
  held_ = false;
  drain();
}

void TunIo::write(ByteView packet) {
  if (packet.size() > tx_buf_.size() - offload::kVnetHdrLen) {
    tx_dropped_.inc();
    return;
  }
  std::memset(tx_buf_.data(), 0, offload::kVnetHdrLen);
  std::memcpy(tx_buf_.data() + offload::kVnetHdrLen, packet.data(), packet.size());
  write_frame(ByteView(tx_buf_.data(), offload::kVnetHdrLen + packet.size()), 1);
}

void TunIo::write_frame(ByteView frame, std::size_t packets) {
  ssize_t put = ::write(fd_.native_handle(), frame.data(), frame.size());
  if (put == static_cast<ssize_t>(frame.size())) {
    tx_packets_.inc(packets);
    tx_frames_.inc();
  } else {
    tx_dropped_.inc(packets);
  }
}

}  // namespace tw::dataproc
