// The underlay UDP socket as netproc sees it: an fd the broker bound, received in
// bursts of up to 64 with recvmmsg and sent in batches with sendmmsg
// (docs/direct-underlay.md#per-datagram-robustness). Per-datagram trouble (a receive error, a
// truncated or unattributable datagram, a failed send) is counted and skipped: it
// never stops the caller's loop.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/bytes.h"
#include "common/ipaddr.h"
#include "common/metrics.h"
#include "ipc/unique_fd.h"

namespace tw::magicsock {

constexpr std::size_t kUdpBurst = 64;
constexpr std::size_t kMaxDatagramBytes = 65536;

// Where datagram i of a burst lands first: up to two caller-owned pieces (a ring
// slot's dense part and overflow area, for receiving straight into the net->data
// ring). Whatever does not fit them lands in UdpIo's private buffer at the same
// offset, so every datagram is still receivable up to the configured size and
// truncation means what it always meant. No pieces: the private buffer only.
struct RxPlacement {
  std::uint8_t* piece[2] = {nullptr, nullptr};
  std::size_t len[2] = {0, 0};
  std::size_t pieces_len() const { return len[0] + len[1]; }
};

// A usable datagram of a placed burst: its source, the placement it landed in and
// its whole length (across the pieces and the private remainder).
struct RxDatagram {
  IpPort src;
  std::uint32_t index = 0;
  std::uint32_t length = 0;
};

struct UdpIoCounters {
  explicit UdpIoCounters(MetricsRegistry& r);
  Counter& rx_datagrams;
  Counter& rx_truncated;
  Counter& rx_errors;
  Counter& rx_bad_source;
  Counter& tx_datagrams;
  Counter& tx_errors;
  Counter& tx_gso_batches;
  Counter& tx_gso_refused;
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
  // One recvmmsg burst into `placements` (at most kUdpBurst; their count is the
  // burst size). Usable datagrams go to `out` in arrival order; truncated ones and
  // ones with an unusable source are counted and left out. Returns their count, or
  // -1 on EAGAIN.
  int receive_placed(std::span<const RxPlacement> placements, RxDatagram* out);
  // Datagram `d` of the last placed burst as one private, contiguous view: the
  // pieces are copied into the private buffer in front of the remainder already
  // there. Valid until the next receive.
  MutableByteView gather(const RxDatagram& d, const RxPlacement& placement);

  // Copies the datagram into the send batch; flushes when the batch is full.
  void queue(const IpPort& to, ByteView data);
  // Sends the batch. Runs of consecutive datagrams to one destination with one size
  // (the last may be shorter) go out as one UDP GSO message (UDP_SEGMENT): one trip
  // through the kernel's stack, cut into datagrams at the device. A run the kernel
  // refuses is sent again datagram by datagram (errors counted per datagram); a
  // kernel without UDP GSO turns it off for this socket.
  void flush();
  void set_gso(bool on) { gso_ = on; }
  bool gso() const { return gso_; }
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
  std::vector<iovec> rx_iov_;  // up to three per datagram: two pieces, then private
  std::vector<sockaddr_storage> rx_addr_;
  std::unique_ptr<std::uint8_t[]> tx_buf_;
  std::vector<mmsghdr> tx_msgs_;
  std::vector<iovec> tx_iov_;
  std::vector<sockaddr_storage> tx_addr_;
  std::size_t tx_count_ = 0;
  bool last_burst_full_ = false;
  bool gso_ = true;
  std::vector<mmsghdr> gso_msgs_;  // one per run
  std::vector<std::uint32_t> run_first_, run_len_;
  // One UDP_SEGMENT control message per run (aligned for cmsghdr).
  struct alignas(cmsghdr) GsoControl {
    std::uint8_t bytes[CMSG_SPACE(sizeof(std::uint16_t))];
  };
  std::vector<GsoControl> gso_ctl_;
  void send_each(std::size_t first, std::size_t count);
};

}  // namespace tw::magicsock
