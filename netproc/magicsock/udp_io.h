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
#include "netproc/magicsock/gro_split.h"
#include "ipc/unique_fd.h"

namespace tw::magicsock {

constexpr std::size_t kUdpBurst = 64;
constexpr std::size_t kMaxDatagramBytes = 65536;

// A free net->data ring slot a burst may receive into: its dense part and its
// overflow area (see ipc/ring.h). Whatever does not fit the slots lands in UdpIo's
// private buffer, so every datagram is still receivable up to the configured size
// and truncation means what it always meant.
struct RxPlacement {
  std::uint8_t* piece[2] = {nullptr, nullptr};
  std::size_t len[2] = {0, 0};
  std::size_t pieces_len() const { return len[0] + len[1]; }
};

// A usable datagram of a burst: its source and where it is (seg.slot: the index of
// the RxPlacement whose dense part it starts and fits, in place; kNoSlot: in
// UdpIo's private buffer). Valid until the next receive.
struct RxDatagram {
  IpPort src;
  RxSegment seg;
};

// Datagrams one burst can yield: every message of a burst may carry a GRO run.
constexpr std::size_t kRxMaxDatagrams = kUdpBurst * kMaxGroSegments;

struct UdpIoCounters {
  explicit UdpIoCounters(MetricsRegistry& r);
  Counter& rx_datagrams;
  Counter& rx_truncated;
  Counter& rx_errors;
  Counter& rx_bad_source;
  Counter& rx_gro_messages;
  Counter& rx_gro_invalid;
  Counter& rx_gro_dropped;
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
  // source (a GRO message split into its datagrams); the views stay valid until
  // the next receive. Returns false when the socket had nothing (EAGAIN); true when
  // the caller should try again (a burst was read, or one error was counted).
  using Handler = std::function<void(const IpPort& src, MutableByteView data)>;
  bool receive_burst(const Handler& on_datagram);
  // One recvmmsg burst, received into `slots` (free ring slots, at most kUdpBurst;
  // may be empty) as far as they go, the rest into the private buffer. Messages the
  // kernel coalesced (UDP_GRO) are split at their segment size: datagrams that lie
  // exactly at the start of a slot's dense part stay there, the others are put
  // together in the private buffer. Usable datagrams go to `out` in arrival order;
  // truncated messages, unusable sources, bad GRO metadata and datagrams beyond
  // `out` are counted and left out. Returns their count, or -1 on EAGAIN.
  //
  // The layout adapts: while the sender's runs arrive coalesced, each message is
  // given a row of slots cut at the last segment size seen (one datagram per slot,
  // no copy); otherwise every message gets one slot (dense part, then overflow).
  int receive_placed(std::span<const RxPlacement> slots, std::span<RxDatagram> out);

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
  std::vector<iovec> rx_iov_;      // per message: its chunks, then its private part
  std::vector<RxChunk> rx_chunks_;  // per message, from rx_first_chunk_[i]
  std::vector<std::uint32_t> rx_first_chunk_, rx_chunk_count_;
  std::vector<sockaddr_storage> rx_addr_;
  // One UDP_GRO control message per message (an int: the segment size).
  struct alignas(cmsghdr) GroControl {
    std::uint8_t bytes[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(int))];
  };
  std::vector<GroControl> rx_ctl_;
  std::vector<RxDatagram> rx_scratch_;  // receive_burst's output
  std::size_t gro_segment_ = 0;  // segment size of the last coalesced message
  std::size_t gro_run_ = 1;      // datagrams per message expected (the layout's row)
  std::size_t layout(std::span<const RxPlacement> slots);
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
