// The underlay UDP socket as netproc sees it: an fd the broker bound, received in
// bursts of up to 64 with recvmmsg and sent in batches with sendmmsg
// (spec/direct-underlay.md §0.1–§0.2). Per-datagram trouble (a receive error, a
// truncated or unattributable datagram, a failed send) is counted and skipped: it
// never stops the caller's loop.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/bytes.h"
#include "common/ipaddr.h"
#include "common/metrics.h"
#include "ipc/unique_fd.h"

namespace tw::magicsock {

constexpr std::size_t kUdpBurst = 64;
constexpr std::size_t kMaxDatagramBytes = 65536;

struct UdpIoCounters {
  explicit UdpIoCounters(MetricsRegistry& r);
  Counter& rx_datagrams;
  Counter& rx_truncated;
  Counter& rx_errors;
  Counter& rx_bad_source;
  Counter& tx_datagrams;
  Counter& tx_errors;
};

class UdpIo {
 public:
  // Takes the fd; it must already be non-blocking (the broker binds it so; we set
  // O_NONBLOCK with fcntl, which the sandbox allows, not setsockopt).
  UdpIo(ipc::UniqueFd fd, UdpIoCounters& counters, std::size_t rx_buffer_bytes = kMaxDatagramBytes);
  UdpIo(const UdpIo&) = delete;
  UdpIo& operator=(const UdpIo&) = delete;

  int fd() const { return fd_.get(); }
  bool v6_socket() const { return v6_; }
  std::uint16_t local_port() const { return port_; }
  // Gives up the fd (for `release-udp`); the object is unusable afterwards.
  void close() { fd_.reset(); }

  // One recvmmsg burst. Calls `on_datagram` for every whole datagram with a valid
  // source; the views stay valid until the next receive. Returns false when the
  // socket had nothing (EAGAIN); true when the caller should try again (a burst
  // was read, or one datagram's error was counted and skipped).
  using Handler = std::function<void(const IpPort& src, MutableByteView data)>;
  bool receive_burst(const Handler& on_datagram);
  // Receives without a callback: into `srcs`/`views` (size kUdpBurst); returns the
  // count of usable datagrams, or -1 on EAGAIN. The hot path of the runtime.
  int receive_into(IpPort* srcs, MutableByteView* views);

  // Copies the datagram into the send batch; flushes when the batch is full.
  void queue(const IpPort& to, ByteView data);
  void flush();
  std::size_t queued() const { return tx_count_; }
  // Whether the last receive filled a whole burst (more is probably waiting).
  bool last_burst_full() const { return last_burst_full_; }

 private:
  ipc::UniqueFd fd_;
  UdpIoCounters& c_;
  bool v6_ = false;
  std::uint16_t port_ = 0;
  std::size_t rx_cap_;
  std::unique_ptr<std::uint8_t[]> rx_buf_;
  std::vector<mmsghdr> rx_msgs_;
  std::vector<iovec> rx_iov_;
  std::vector<sockaddr_storage> rx_addr_;
  std::unique_ptr<std::uint8_t[]> tx_buf_;
  std::vector<mmsghdr> tx_msgs_;
  std::vector<iovec> tx_iov_;
  std::vector<sockaddr_storage> tx_addr_;
  std::size_t tx_count_ = 0;
  bool last_burst_full_ = false;
};

}  // namespace tw::magicsock
