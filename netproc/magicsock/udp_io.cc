#include "netproc/magicsock/udp_io.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
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
      rx_gro_messages(r.counter("udp_rx_gro_messages_total",
                                "Coalesced (UDP_GRO) messages received, each split into datagrams")),
      rx_gro_invalid(r.counter("udp_rx_gro_invalid_total",
                               "Messages dropped because their GRO segment size was unusable")),
      rx_gro_dropped(r.counter("udp_rx_gro_dropped_total",
                               "Datagrams of a coalesced message beyond what one burst can take")),
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
      rx_chunks_(2 * kUdpBurst),
      rx_first_chunk_(kUdpBurst),
      rx_chunk_count_(kUdpBurst),
      rx_addr_(kUdpBurst),
      rx_ctl_(kUdpBurst),
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

namespace {

#ifndef UDP_GRO
constexpr int UDP_GRO = 104;
#endif

// The segment size of a message the kernel coalesced: 0 when it carries none (one
// datagram), -1 when the control data is unusable (cut short, a malformed or
// impossible size).
long gro_segment_size(msghdr& h) {
  if ((h.msg_flags & MSG_CTRUNC) != 0) return -1;
  long size = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level != IPPROTO_UDP || c->cmsg_type != UDP_GRO) continue;
    int v = 0;
    if (c->cmsg_len < CMSG_LEN(sizeof v)) return -1;
    std::memcpy(&v, CMSG_DATA(c), sizeof v);
    if (v <= 0 || v > 65535) return -1;
    size = v;
  }
  return size;
}

}  // namespace

std::size_t UdpIo::layout(std::span<const RxPlacement> slots) {
  const std::size_t reserved = std::min(slots.size(), kUdpBurst);
  std::size_t head_min = rx_cap_;
  for (std::size_t i = 0; i < reserved; ++i) head_min = std::min(head_min, slots[i].len[0]);
  const std::size_t seg = gro_segment_;
  std::size_t msgs = 0;
  std::size_t nchunks = 0;
  if (gro_run_ > 1 && reserved >= 2 && seg != 0 && seg <= head_min) {
    // Rows: each message gets `per` slots cut at the expected segment size, the last
    // one whatever is left, so a coalesced run lands one datagram per slot.
    const std::size_t row_max = rx_cap_ / seg;  // >= 1: seg <= head_min <= rx_cap_
    const std::size_t per = std::min({gro_run_, reserved, row_max});
    msgs = reserved / per;
    std::size_t k = 0;
    for (std::size_t m = 0; m < msgs; ++m) {
      const std::size_t row = std::min(m + 1 == msgs ? reserved - k : per, row_max);
      rx_first_chunk_[m] = static_cast<std::uint32_t>(nchunks);
      for (std::size_t j = 0; j < row; ++j, ++k) {
        rx_chunks_[nchunks++] = RxChunk{slots[k].piece[0], static_cast<std::uint32_t>(seg),
                                        static_cast<std::uint32_t>(k)};
      }
      rx_chunk_count_[m] = static_cast<std::uint32_t>(row);
    }
  } else {
    // One slot per message: its dense part, then its overflow area.
    msgs = kUdpBurst;
    for (std::size_t m = 0; m < msgs; ++m) {
      rx_first_chunk_[m] = static_cast<std::uint32_t>(nchunks);
      std::size_t room = rx_cap_;
      std::uint32_t count = 0;
      for (std::size_t j = 0; m < reserved && j < 2; ++j) {
        const std::size_t take = std::min(slots[m].len[j], room);
        if (take == 0) continue;
        rx_chunks_[nchunks++] = RxChunk{slots[m].piece[j], static_cast<std::uint32_t>(take),
                                        j == 0 ? static_cast<std::uint32_t>(m) : kNoSlot};
        room -= take;
        ++count;
      }
      rx_chunk_count_[m] = count;
    }
  }
  std::size_t niov = 0;
  for (std::size_t m = 0; m < msgs; ++m) {
    iovec* iov = &rx_iov_[niov];
    std::size_t parts = 0;
    std::size_t used = 0;
    for (std::uint32_t j = 0; j < rx_chunk_count_[m]; ++j) {
      const RxChunk& c = rx_chunks_[rx_first_chunk_[m] + j];
      iov[parts++] = {c.data, c.len};
      used += c.len;
    }
    if (used < rx_cap_) iov[parts++] = {rx_buf_.get() + m * rx_cap_ + used, rx_cap_ - used};
    niov += parts;
    auto& h = rx_msgs_[m].msg_hdr;
    h = {};
    h.msg_name = &rx_addr_[m];
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_iov = iov;
    h.msg_iovlen = parts;
    h.msg_control = rx_ctl_[m].bytes;
    h.msg_controllen = sizeof rx_ctl_[m].bytes;
  }
  return msgs;
}

int UdpIo::receive_placed(std::span<const RxPlacement> slots, std::span<RxDatagram> out) {
  last_burst_full_ = false;
  const std::size_t msgs = layout(slots);
  const int n = ::recvmmsg(fd_.get(), rx_msgs_.data(), static_cast<unsigned>(msgs), MSG_DONTWAIT, nullptr);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    // One datagram's error (an ICMP error queued on the socket, EINTR, ...): count it
    // and let the caller read on (docs/direct-underlay.md#per-datagram-robustness).
    c_.rx_errors.inc();
    spdlog::debug("udp: receive error: {}", std::strerror(errno));
    return 0;
  }
  last_burst_full_ = static_cast<std::size_t>(n) == msgs;
  std::size_t count = 0;
  // Counted once per burst (one atomic each), not per datagram.
  std::uint64_t datagrams = 0, truncated = 0, bad_source = 0, gro_messages = 0, gro_invalid = 0,
                gro_dropped = 0;
  std::size_t longest_run = 1;
  std::size_t segment = 0;
  RxSegment segs[kMaxGroSegments];
  for (int i = 0; i < n; ++i) {
    auto& h = rx_msgs_[i].msg_hdr;
    if ((h.msg_flags & MSG_TRUNC) != 0) {
      ++datagrams;
      ++truncated;
      continue;
    }
    const long gso = gro_segment_size(h);
    if (gso < 0) {
      ++datagrams;
      ++gro_invalid;
      continue;
    }
    auto src = IpPort::from_sockaddr(reinterpret_cast<const sockaddr*>(&rx_addr_[i]), h.msg_namelen);
    if (!src || !src->valid()) {
      ++datagrams;
      ++bad_source;
      continue;
    }
    const std::span<const RxChunk> chunks(rx_chunks_.data() + rx_first_chunk_[i], rx_chunk_count_[i]);
    const std::size_t room = std::min(kMaxGroSegments, out.size() - count);
    const GroSplitResult r =
        split_gro(chunks, rx_buf_.get() + static_cast<std::size_t>(i) * rx_cap_, rx_cap_,
                  rx_msgs_[i].msg_len, static_cast<std::size_t>(gso), std::span(segs, room));
    for (std::size_t k = 0; k < r.count; ++k) out[count++] = RxDatagram{*src, segs[k]};
    datagrams += r.count + r.dropped;
    gro_dropped += r.dropped;
    if (r.count + r.dropped > 1) {
      ++gro_messages;
      longest_run = std::max(longest_run, r.count + r.dropped);
      segment = static_cast<std::size_t>(gso);
    }
  }
  // The next burst's layout: rows as long as the longest run just seen, cut at its
  // segment size; without runs the rows shrink back to one slot per message.
  if (longest_run > 1) {
    gro_run_ = longest_run;
    gro_segment_ = segment;
  } else if (n > 0) {
    gro_run_ = std::max<std::size_t>(1, gro_run_ / 2);
  }
  c_.rx_datagrams.inc(datagrams);
  if (truncated != 0) c_.rx_truncated.inc(truncated);
  if (bad_source != 0) c_.rx_bad_source.inc(bad_source);
  if (gro_messages != 0) c_.rx_gro_messages.inc(gro_messages);
  if (gro_invalid != 0) c_.rx_gro_invalid.inc(gro_invalid);
  if (gro_dropped != 0) c_.rx_gro_dropped.inc(gro_dropped);
  return static_cast<int>(count);
}

bool UdpIo::receive_burst(const Handler& on_datagram) {
  if (rx_scratch_.empty()) rx_scratch_.resize(kRxMaxDatagrams);  // once
  const int n = receive_placed({}, rx_scratch_);
  if (n < 0) return false;
  for (int i = 0; i < n; ++i) {
    const RxSegment& s = rx_scratch_[i].seg;
    on_datagram(rx_scratch_[i].src, MutableByteView(s.data, s.length));
  }
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
