#include "netproc/magicsock/udp_io.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace tw::magicsock {

UdpIoCounters::UdpIoCounters(MetricsRegistry& r)
    : rx_datagrams(
          r.counter("udp_rx_datagrams_total", "Datagrams received on the underlay socket")),
      rx_truncated(
          r.counter("udp_rx_truncated_total", "Datagrams dropped because they were truncated")),
      rx_errors(r.counter("udp_rx_errors_total", "Receive errors counted and skipped")),
      rx_bad_source(
          r.counter("udp_rx_bad_source_total", "Datagrams with an unusable source address")),
      tx_datagrams(r.counter("udp_tx_datagrams_total", "Datagrams sent on the underlay socket")),
      tx_errors(r.counter("udp_tx_errors_total", "Datagrams whose send failed (counted, skipped)")),
      tx_gso_batches(r.counter("udp_tx_gso_batches_total",
                               "UDP GSO messages sent (each carries several datagrams)")),
      tx_gso_refused(
          r.counter("udp_tx_gso_refused_total",
                    "UDP GSO messages the kernel refused (resent datagram by datagram)")) {}

UdpIo::UdpIo(ipc::UniqueFd fd, UdpIoCounters& counters, std::size_t rx_buffer_bytes)
    : fd_(std::move(fd)),
      c_(counters),
      rx_cap_(rx_buffer_bytes),
      rx_buf_(std::make_unique<std::uint8_t[]>(rx_buffer_bytes * kUdpBurst)),
      rx_msgs_(kUdpBurst),
      rx_iov_(3 * kUdpBurst),
      rx_addr_(kUdpBurst),
      tx_buf_(std::make_unique<std::uint8_t[]>(kMaxDatagramBytes * kUdpBurst)),
      tx_msgs_(kUdpBurst),
      tx_iov_(kUdpBurst),
      tx_addr_(kUdpBurst),
      gso_msgs_(kUdpBurst),
      run_first_(kUdpBurst),
      run_len_(kUdpBurst),
      gso_ctl_(kUdpBurst) {
  const int fl = ::fcntl(fd_.get(), F_GETFL);
  if (fl >= 0) (void)::fcntl(fd_.get(), F_SETFL, fl | O_NONBLOCK);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    v6_ = ss.ss_family == AF_INET6;
    if (auto a = IpPort::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len)) port_ = a->port;
  }
}

int UdpIo::receive_placed(std::span<const RxPlacement> placements, RxDatagram* out) {
  const std::size_t burst = std::min(placements.size(), kUdpBurst);
  last_burst_full_ = false;
  if (burst == 0) return 0;
  for (std::size_t i = 0; i < burst; ++i) {
    const RxPlacement& p = placements[i];
    iovec* iov = &rx_iov_[3 * i];
    std::size_t parts = 0;
    std::size_t room = rx_cap_;
    for (std::size_t j = 0; j < 2; ++j) {
      const std::size_t take = std::min(p.len[j], room);
      if (take == 0) continue;
      iov[parts++] = {p.piece[j], take};
      room -= take;
    }
    if (room != 0) iov[parts++] = {rx_buf_.get() + i * rx_cap_ + (rx_cap_ - room), room};
    auto& h = rx_msgs_[i].msg_hdr;
    h = {};
    h.msg_name = &rx_addr_[i];
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_iov = iov;
    h.msg_iovlen = parts;
  }
  const int n = ::recvmmsg(fd_.get(), rx_msgs_.data(), static_cast<unsigned>(burst), MSG_DONTWAIT, nullptr);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    // One datagram's error (an ICMP error queued on the socket, EINTR, ...): count it
    // and let the caller read on (docs/direct-underlay.md#per-datagram-robustness).
    c_.rx_errors.inc();
    spdlog::debug("udp: receive error: {}", std::strerror(errno));
    return 0;
  }
  last_burst_full_ = static_cast<std::size_t>(n) == burst;
  c_.rx_datagrams.inc(static_cast<std::uint64_t>(n));  // one atomic per burst, not per datagram
  int out_count = 0;
  std::uint64_t truncated = 0;
  std::uint64_t bad_source = 0;
  for (int i = 0; i < n; ++i) {
    const auto& h = rx_msgs_[i].msg_hdr;
    if ((h.msg_flags & MSG_TRUNC) != 0) {
      ++truncated;
      continue;
    }
    auto src = IpPort::from_sockaddr(reinterpret_cast<const sockaddr*>(&rx_addr_[i]), h.msg_namelen);
    if (!src || !src->valid()) {
      ++bad_source;
      continue;
    }
    out[out_count++] = RxDatagram{*src, static_cast<std::uint32_t>(i), rx_msgs_[i].msg_len};
  }
  if (truncated != 0) c_.rx_truncated.inc(truncated);
  if (bad_source != 0) c_.rx_bad_source.inc(bad_source);
  return out_count;
}

MutableByteView UdpIo::gather(const RxDatagram& d, const RxPlacement& placement) {
  std::uint8_t* dst = rx_buf_.get() + std::size_t{d.index} * rx_cap_;
  std::size_t at = 0;  // where the piece sits in the private layout
  for (std::size_t j = 0; j < 2; ++j) {
    const std::size_t piece = std::min(placement.len[j], rx_cap_ - at);
    const std::size_t copy = at < d.length ? std::min<std::size_t>(piece, d.length - at) : 0;
    if (copy != 0) std::memcpy(dst + at, placement.piece[j], copy);
    at += piece;
  }
  return MutableByteView(dst, d.length);
}

int UdpIo::receive_into(IpPort* srcs, MutableByteView* views) {
  static const RxPlacement kPrivateOnly[kUdpBurst] = {};
  RxDatagram got[kUdpBurst];
  const int n = receive_placed(kPrivateOnly, got);
  for (int i = 0; i < n; ++i) {
    srcs[i] = got[i].src;
    views[i] = MutableByteView(rx_buf_.get() + std::size_t{got[i].index} * rx_cap_, got[i].length);
  }
  return n;
}

bool UdpIo::receive_burst(const Handler& on_datagram) {
  IpPort srcs[kUdpBurst];
  MutableByteView views[kUdpBurst];
  const int n = receive_into(srcs, views);
  if (n < 0) return false;
  for (int i = 0; i < n; ++i) on_datagram(srcs[i], views[i]);
  return true;
}

void UdpIo::queue(const IpPort& to, ByteView data) {
  if (!fd_ || data.size() > kMaxDatagramBytes) {
    c_.tx_errors.inc();
    return;
  }
  if (tx_count_ == kUdpBurst) flush();
  const std::size_t i = tx_count_;
  std::uint8_t* slot = tx_buf_.get() + i * kMaxDatagramBytes;
  std::memcpy(slot, data.data(), data.size());
  tx_iov_[i] = {slot, data.size()};
  auto& h = tx_msgs_[i].msg_hdr;
  h = {};
  h.msg_namelen = to.to_sockaddr(&tx_addr_[i], v6_);
  h.msg_name = &tx_addr_[i];
  h.msg_iov = &tx_iov_[i];
  h.msg_iovlen = 1;
  ++tx_count_;
}

namespace {

#ifndef UDP_SEGMENT
constexpr int UDP_SEGMENT = 103;
#endif
constexpr std::size_t kGsoMaxSegments = 64;   // UDP_MAX_SEGMENTS of older kernels
constexpr std::size_t kGsoMaxBytes = 65000;   // below 64 KiB with any IP header
constexpr std::size_t kGsoMaxSegment = 1472;  // fits a 1500-byte link: anything
                                              // larger the kernel would refuse

bool same_destination(const mmsghdr& a, const mmsghdr& b) {
  return a.msg_hdr.msg_namelen == b.msg_hdr.msg_namelen &&
         std::memcmp(a.msg_hdr.msg_name, b.msg_hdr.msg_name, a.msg_hdr.msg_namelen) == 0;
}

// Errors that mean "no UDP GSO here" rather than "not this destination".
bool gso_unsupported(int err) { return err == EIO || err == EOPNOTSUPP || err == ENOPROTOOPT; }

}  // namespace

void UdpIo::send_each(std::size_t first, std::size_t count) {
  std::size_t done = 0;
  while (done < count) {
    const int n = ::sendmmsg(fd_.get(), tx_msgs_.data() + first + done,
                             static_cast<unsigned>(count - done), 0);
    if (n > 0) {
      c_.tx_datagrams.inc(static_cast<std::uint64_t>(n));
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // sendmmsg reports the error of the first unsent datagram: skip that one only, so
    // one bad destination never cuts the rest of the batch.
    c_.tx_errors.inc();
    spdlog::debug("udp: send error: {}", std::strerror(errno));
    ++done;
  }
}

void UdpIo::flush() {
  if (tx_count_ == 0) return;
  if (!gso_) {
    send_each(0, tx_count_);
    tx_count_ = 0;
    return;
  }
  // Runs: consecutive datagrams to one destination, one size, the last maybe shorter.
  std::size_t runs = 0;
  for (std::size_t i = 0; i < tx_count_;) {
    const std::size_t seg = tx_iov_[i].iov_len;
    std::size_t j = i + 1;
    std::size_t total = seg;
    if (seg <= kGsoMaxSegment) {
      while (j < tx_count_ && j - i < kGsoMaxSegments && tx_iov_[j].iov_len <= seg &&
             total + tx_iov_[j].iov_len <= kGsoMaxBytes &&
             same_destination(tx_msgs_[i], tx_msgs_[j])) {
        total += tx_iov_[j].iov_len;
        const bool shorter = tx_iov_[j].iov_len < seg;
        ++j;
        if (shorter) break;
      }
    }
    msghdr& h = gso_msgs_[runs].msg_hdr;
    h = tx_msgs_[i].msg_hdr;
    h.msg_iov = &tx_iov_[i];
    h.msg_iovlen = j - i;
    if (j - i > 1) {
      h.msg_control = gso_ctl_[runs].bytes;
      h.msg_controllen = sizeof gso_ctl_[runs].bytes;
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = IPPROTO_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      const auto size = static_cast<std::uint16_t>(seg);
      std::memcpy(CMSG_DATA(c), &size, sizeof size);
    }
    run_first_[runs] = static_cast<std::uint32_t>(i);
    run_len_[runs] = static_cast<std::uint32_t>(j - i);
    ++runs;
    i = j;
  }
  std::size_t done = 0;
  while (done < runs) {
    const int n =
        ::sendmmsg(fd_.get(), gso_msgs_.data() + done, static_cast<unsigned>(runs - done), 0);
    if (n > 0) {
      for (std::size_t k = done; k < done + static_cast<std::size_t>(n); ++k) {
        c_.tx_datagrams.inc(run_len_[k]);
        if (run_len_[k] > 1) c_.tx_gso_batches.inc();
      }
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const int err = n < 0 ? errno : EIO;
    if (run_len_[done] > 1) {
      // Refused as a whole: the datagrams go one by one, each counted on its own.
      c_.tx_gso_refused.inc();
      if (gso_unsupported(err)) {
        spdlog::info("udp: GSO refused ({}): sending datagram by datagram",
                     std::generic_category().message(err));
        gso_ = false;
      }
      send_each(run_first_[done], run_len_[done]);
    } else {
      c_.tx_errors.inc();
      spdlog::debug("udp: send error: {}", std::generic_category().message(err));
    }
    ++done;
  }
  tx_count_ = 0;
}

}  // namespace tw::magicsock
