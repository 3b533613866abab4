#include "dataproc/offload/tun_offload.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace tw::offload {
namespace {

constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kTcpFin = 0x01;
constexpr std::uint8_t kTcpSyn = 0x02;
constexpr std::uint8_t kTcpRst = 0x04;
constexpr std::uint8_t kTcpPsh = 0x08;
constexpr std::uint8_t kTcpAck = 0x10;
constexpr std::uint8_t kTcpUrg = 0x20;
constexpr std::uint8_t kTcpEce = 0x40;
constexpr std::uint8_t kTcpCwr = 0x80;
constexpr std::size_t kTcpChecksum = 16;
constexpr std::size_t kMaxHeaders = 60 + 60;  // IPv4 with options + TCP with options

std::uint16_t load_ne16(const std::uint8_t* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
void store_ne16(std::uint8_t* p, std::uint16_t v) { std::memcpy(p, &v, 2); }

// The IPv4 header checksum of the `ihl` bytes at p, the field itself taken as zero.
std::uint16_t ipv4_header_checksum(std::uint8_t* p, std::size_t ihl) {
  p[10] = 0;
  p[11] = 0;
  return fold_complement(checksum_add(ByteView(p, ihl)));
}

// Parsed IP and TCP headers of a packet that is exactly one TCP segment.
struct TcpView {
  bool v4 = false;
  std::size_t ip_hlen = 0;
  std::size_t tcp_hlen = 0;
  std::size_t payload = 0;
  const std::uint8_t* tcp = nullptr;
};

// An unfragmented TCP packet whose IP length matches the buffer exactly; IPv4
// without options and IPv6 without extension headers (what GRO handles here).
bool parse_tcp_exact(ByteView p, TcpView* v) {
  if (p.size() < 20) return false;
  const unsigned version = p[0] >> 4;
  if (version == 4) {
    if ((p[0] & 0x0f) != 5 || p[9] != kProtoTcp) return false;
    if (load_be16(p.data() + 2) != p.size()) return false;
    if ((load_be16(p.data() + 6) & 0x3fff) != 0) return false;  // MF or an offset
    v->v4 = true;
    v->ip_hlen = 20;
  } else if (version == 6) {
    if (p.size() < 40 || p[6] != kProtoTcp) return false;
    if (std::size_t{load_be16(p.data() + 4)} + 40 != p.size()) return false;
    v->v4 = false;
    v->ip_hlen = 40;
  } else {
    return false;
  }
  if (p.size() < v->ip_hlen + 20) return false;
  v->tcp = p.data() + v->ip_hlen;
  v->tcp_hlen = static_cast<std::size_t>(v->tcp[12] >> 4) * 4;
  if (v->tcp_hlen < 20 || v->ip_hlen + v->tcp_hlen > p.size()) return false;
  v->payload = p.size() - v->ip_hlen - v->tcp_hlen;
  return true;
}

}  // namespace

VnetHdr load_vnet_hdr(const std::uint8_t* p) {
  VnetHdr h;
  h.flags = p[0];
  h.gso_type = p[1];
  h.hdr_len = load_ne16(p + 2);
  h.gso_size = load_ne16(p + 4);
  h.csum_start = load_ne16(p + 6);
  h.csum_offset = load_ne16(p + 8);
  return h;
}

void store_vnet_hdr(std::uint8_t* p, const VnetHdr& h) {
  p[0] = h.flags;
  p[1] = h.gso_type;
  store_ne16(p + 2, h.hdr_len);
  store_ne16(p + 4, h.gso_size);
  store_ne16(p + 6, h.csum_start);
  store_ne16(p + 8, h.csum_offset);
}

// Sums native 32-bit words into 64-bit accumulators: no carry can be lost before
// 2^32 words (16 GiB), so there is no carry chain and the loop vectorizes (eight
// independent lanes); the end-around carries are all folded at the end. The
// ones-complement sum does not depend on byte order except for a final swap (RFC
// 1071, 2.(B)). About 4x the rate of a 64-bit add-with-carry loop here.
std::uint16_t checksum_add(ByteView data, std::uint32_t initial) {
  const std::uint8_t* p = data.data();
  std::size_t n = data.size();
  std::uint64_t lane[8] = {};
  while (n >= 32) {
    std::uint32_t w[8];
    std::memcpy(w, p, 32);
    for (int i = 0; i < 8; ++i) lane[i] += w[i];
    p += 32;
    n -= 32;
  }
  std::uint64_t acc = 0;
  for (std::uint64_t l : lane) acc += l;  // each < 2^61 for any real buffer
  while (n >= 4) {
    std::uint32_t w;
    std::memcpy(&w, p, 4);
    acc += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    std::uint16_t w;
    std::memcpy(&w, p, 2);
    acc += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    // In big-endian terms the last byte is a word's high half; loaded natively
    // (little-endian) it is the low half of a word, as the swap below expects.
    if constexpr (std::endian::native == std::endian::little) {
      acc += p[0];
    } else {
      acc += std::uint64_t{p[0]} << 8;
    }
  }
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffu) + (acc >> 16);
  acc = (acc & 0xffffu) + (acc >> 16);
  acc = (acc & 0xffffu) + (acc >> 16);
  std::uint16_t s = static_cast<std::uint16_t>(acc);
  if constexpr (std::endian::native == std::endian::little) {
    s = static_cast<std::uint16_t>((s >> 8) | (s << 8));
  }
  std::uint32_t total = std::uint32_t{s} + initial;
  total = (total & 0xffffu) + (total >> 16);
  total = (total & 0xffffu) + (total >> 16);
  return static_cast<std::uint16_t>(total);
}

std::uint32_t pseudo_header_sum(const std::uint8_t* ip, bool v4, std::uint8_t proto,
                                std::uint32_t l4_len) {
  std::uint32_t sum = 0;
  const std::uint8_t* addrs = ip + (v4 ? 12 : 8);
  const std::size_t alen = v4 ? 8 : 32;
  for (std::size_t i = 0; i < alen; i += 2) sum += load_be16(addrs + i);
  sum += proto;
  sum += l4_len >> 16;
  sum += l4_len & 0xffffu;
  return sum;
}

const char* split_error_name(SplitError e) {
  switch (e) {
    case SplitError::kNone:
      return "none";
    case SplitError::kTruncated:
      return "truncated";
    case SplitError::kBadChecksumSpot:
      return "bad_checksum_spot";
    case SplitError::kUnsupportedGso:
      return "unsupported_gso";
    case SplitError::kBadIpHeader:
      return "bad_ip_header";
    case SplitError::kBadTcpHeader:
      return "bad_tcp_header";
    case SplitError::kBadGsoSize:
      return "bad_gso_size";
  }
  return "unknown";
}

Segmenter::Segmenter() : buf_(kMaxSegments * kMaxHeaders + 65535) {}

SplitError Segmenter::split(std::span<std::uint8_t> read) {
  count_ = 0;
  if (read.size() <= kVnetHdrLen) return SplitError::kTruncated;
  const VnetHdr h = load_vnet_hdr(read.data());
  std::span<std::uint8_t> pkt = read.subspan(kVnetHdrLen);
  const std::uint8_t gso = h.gso_type & static_cast<std::uint8_t>(~kGsoEcn);
  if (gso == kGsoTcpV4 || gso == kGsoTcpV6) return split_tcp(pkt, h, gso == kGsoTcpV4);
  if (gso != kGsoNone) return SplitError::kUnsupportedGso;
  if ((h.flags & kFlagNeedsCsum) != 0) {
    const std::size_t start = h.csum_start;
    const std::size_t at = start + h.csum_offset;
    if (start >= pkt.size() || at + 2 > pkt.size()) return SplitError::kBadChecksumSpot;
    // The field holds the pseudo-header sum; the rest is summed over it.
    std::uint16_t c =
        fold_complement(checksum_add(ByteView(pkt.data() + start, pkt.size() - start)));
    if (c == 0) c = 0xffff;  // UDP's "no checksum" is 0; the same sum in TCP
    store_be16(pkt.data() + at, c);
  }
  views_[0] = ByteView(pkt.data(), pkt.size());
  count_ = 1;
  return SplitError::kNone;
}

SplitError Segmenter::split_tcp(std::span<std::uint8_t> pkt, const VnetHdr& h, bool v4) {
  const std::uint8_t* p = pkt.data();
  const std::size_t size = pkt.size();
  std::size_t ip_hlen = 0;
  if (v4) {
    if (size < 20 || (p[0] >> 4) != 4) return SplitError::kBadIpHeader;
    ip_hlen = std::size_t{p[0] & 0x0fu} * 4;
    if (ip_hlen < 20 || ip_hlen > size || p[9] != kProtoTcp) return SplitError::kBadIpHeader;
    if ((load_be16(p + 6) & 0x3fff) != 0) return SplitError::kBadIpHeader;
  } else {
    if (size < 40 || (p[0] >> 4) != 6 || p[6] != kProtoTcp) return SplitError::kBadIpHeader;
    ip_hlen = 40;
  }
  if (size < ip_hlen + 20) return SplitError::kBadTcpHeader;
  const std::size_t tcp_hlen = static_cast<std::size_t>(p[ip_hlen + 12] >> 4) * 4;
  if (tcp_hlen < 20 || ip_hlen + tcp_hlen > size) return SplitError::kBadTcpHeader;
  const std::size_t hlen = ip_hlen + tcp_hlen;
  const std::size_t gso_size = h.gso_size;
  if (gso_size == 0) return SplitError::kBadGsoSize;
  const std::size_t payload = size - hlen;
  const std::size_t nseg = payload == 0 ? 1 : (payload + gso_size - 1) / gso_size;
  if (nseg > kMaxSegments) return SplitError::kBadGsoSize;

  const std::uint32_t seq0 = load_be32(p + ip_hlen + 4);
  const std::uint16_t id0 = v4 ? load_be16(p + 4) : 0;
  std::uint8_t* dst = buf_.data();
  for (std::size_t i = 0; i < nseg; ++i) {
    const std::size_t off = i * gso_size;
    const std::size_t len = std::min(gso_size, payload - off);
    std::memcpy(dst, p, hlen);
    if (len > 0) std::memcpy(dst + hlen, p + hlen + off, len);
    if (v4) {
      store_be16(dst + 2, static_cast<std::uint16_t>(hlen + len));
      store_be16(dst + 4, static_cast<std::uint16_t>(id0 + i));
      store_be16(dst + 10, ipv4_header_checksum(dst, ip_hlen));
    } else {
      store_be16(dst + 4, static_cast<std::uint16_t>(tcp_hlen + len));
    }
    std::uint8_t* tcp = dst + ip_hlen;
    store_be32(tcp + 4, seq0 + static_cast<std::uint32_t>(off));
    if (i + 1 < nseg) tcp[13] &= static_cast<std::uint8_t>(~(kTcpFin | kTcpPsh));
    if (i > 0) tcp[13] &= static_cast<std::uint8_t>(~kTcpCwr);
    tcp[kTcpChecksum] = 0;
    tcp[kTcpChecksum + 1] = 0;
    const auto l4 = static_cast<std::uint32_t>(tcp_hlen + len);
    store_be16(tcp + kTcpChecksum,
               fold_complement(
                   checksum_add(ByteView(tcp, l4), pseudo_header_sum(dst, v4, kProtoTcp, l4))));
    views_[i] = ByteView(dst, hlen + len);
    dst += hlen + len;
  }
  count_ = nseg;
  return SplitError::kNone;
}

// ---- Coalescer ----

Coalescer::Coalescer() : packets_(kMaxPackets), items_(kMaxPackets), out_(kVnetHdrLen + 65535) {}

void Coalescer::reset() {
  packets_count_ = 0;
  items_count_ = 0;
}

namespace {

// A packet GRO may take: ACK set, no flag but ACK/PSH, some payload, checksums right.
bool mergeable(ByteView p, const TcpView& t, std::uint64_t* bad_checksums) {
  const std::uint8_t flags = t.tcp[13];
  if ((flags & kTcpAck) == 0) return false;
  if ((flags & (kTcpFin | kTcpSyn | kTcpRst | kTcpUrg | kTcpEce | kTcpCwr)) != 0) return false;
  if (t.payload == 0) return false;
  if (t.v4 && checksum_add(p.subspan(0, 20)) != 0xffff) {
    ++*bad_checksums;
    return false;
  }
  const auto l4 = static_cast<std::uint32_t>(t.tcp_hlen + t.payload);
  if (checksum_add(ByteView(t.tcp, l4), pseudo_header_sum(p.data(), t.v4, kProtoTcp, l4)) !=
      0xffff) {
    ++*bad_checksums;
    return false;
  }
  return true;
}

}  // namespace

bool Coalescer::try_merge(Item& it, ByteView p) {
  TcpView t;
  if (!parse_tcp_exact(p, &t) || t.v4 != it.v4 || t.tcp_hlen != it.tcp_hlen) return false;
  const std::uint8_t* first = packets_[it.first].bytes.data();
  const std::uint8_t* ftcp = first + it.ip_hlen;
  if (load_be32(t.tcp + 4) != it.next_seq) return false;
  if (t.payload > it.gso_size) return false;
  if (it.count >= kMaxGroupPackets) return false;
  if (it.ip_hlen + it.tcp_hlen + it.total_payload + t.payload > 65535) return false;
  if (it.v4) {
    if (p[1] != first[1] || p[8] != first[8]) return false;  // TOS, TTL
    if ((p[6] & 0x40) != (first[6] & 0x40)) return false;    // DF
    if ((p[6] & 0x40) == 0 &&
        load_be16(p.data() + 4) != static_cast<std::uint16_t>(it.last_ip_id + 1))
      return false;
  } else {
    if (std::memcmp(p.data(), first, 4) != 0 || p[7] != first[7])
      return false;  // class, label, hops
  }
  // ACK number, data offset, flags but PSH, window, options: as the first packet's.
  if (std::memcmp(t.tcp + 8, ftcp + 8, 5) != 0) return false;
  if ((t.tcp[13] & ~kTcpPsh) != (ftcp[13] & ~kTcpPsh)) return false;
  if (std::memcmp(t.tcp + 14, ftcp + 14, 2) != 0) return false;
  if (std::memcmp(t.tcp + 20, ftcp + 20, t.tcp_hlen - 20) != 0) return false;

  const auto idx = static_cast<std::uint32_t>(packets_count_);
  packets_[idx] = Packet{p, UINT32_MAX};
  packets_[it.last].next = idx;
  it.last = idx;
  ++packets_count_;
  ++it.count;
  it.total_payload += static_cast<std::uint32_t>(t.payload);
  it.next_seq += static_cast<std::uint32_t>(t.payload);
  if (it.v4) it.last_ip_id = load_be16(p.data() + 4);
  if ((t.tcp[13] & kTcpPsh) != 0) {
    it.psh = true;
    it.open = false;
  }
  if (t.payload < it.gso_size) it.open = false;
  return true;
}

bool Coalescer::add(ByteView p) {
  if (packets_count_ == kMaxPackets) return false;
  TcpView t;
  const bool tcp = parse_tcp_exact(p, &t);
  const bool candidate = tcp && mergeable(p, t, &stats_.bad_checksums);
  Flow f;
  if (tcp) {
    f.v4 = t.v4;
    const std::uint8_t* addrs = p.data() + (t.v4 ? 12 : 8);
    const std::size_t alen = t.v4 ? 8 : 32;
    std::memcpy(f.key.data(), addrs, alen);
    std::memcpy(f.key.data() + alen, t.tcp, 4);  // ports
    // The latest item of this flow is the only one it may join (order within a flow).
    for (std::size_t i = items_count_; i-- > 0;) {
      Item& it = items_[i];
      if (!it.tcp || it.flow.v4 != f.v4 || it.flow.key != f.key) continue;
      if (!it.open) break;
      if (candidate && try_merge(it, p)) return true;
      it.open = false;
      break;
    }
  }
  const auto idx = static_cast<std::uint32_t>(packets_count_++);
  packets_[idx] = Packet{p, UINT32_MAX};
  Item& it = items_[items_count_++];
  it = Item{};
  it.first = it.last = idx;
  it.count = 1;
  if (!tcp) return true;  // not a flow: written as it is, joined by nothing
  it.tcp = true;
  it.flow = f;
  it.v4 = t.v4;
  it.ip_hlen = static_cast<std::uint16_t>(t.ip_hlen);
  it.tcp_hlen = static_cast<std::uint16_t>(t.tcp_hlen);
  it.open = candidate && (t.tcp[13] & kTcpPsh) == 0;
  it.gso_size = static_cast<std::uint16_t>(std::min<std::size_t>(t.payload, 65535));
  it.total_payload = static_cast<std::uint32_t>(t.payload);
  it.next_seq = load_be32(t.tcp + 4) + static_cast<std::uint32_t>(t.payload);
  it.last_ip_id = t.v4 ? load_be16(p.data() + 4) : 0;
  return true;
}

ByteView Coalescer::build(std::size_t i) {
  const Item& it = items_[i];
  std::uint8_t* o = out_.data();
  ++stats_.writes;
  const ByteView first = packets_[it.first].bytes;
  if (it.count == 1) {
    std::memset(o, 0, kVnetHdrLen);
    std::memcpy(o + kVnetHdrLen, first.data(), first.size());
    return ByteView(o, kVnetHdrLen + first.size());
  }
  stats_.merged_packets += it.count;
  const std::size_t hlen = std::size_t{it.ip_hlen} + it.tcp_hlen;
  std::uint8_t* ip = o + kVnetHdrLen;
  std::memcpy(ip, first.data(), hlen);
  std::size_t at = hlen;
  for (std::uint32_t k = it.first; k != UINT32_MAX; k = packets_[k].next) {
    const ByteView b = packets_[k].bytes;
    std::memcpy(ip + at, b.data() + hlen, b.size() - hlen);
    at += b.size() - hlen;
  }
  const std::size_t total = at;
  if (it.v4) {
    store_be16(ip + 2, static_cast<std::uint16_t>(total));
    store_be16(ip + 10, ipv4_header_checksum(ip, it.ip_hlen));
  } else {
    store_be16(ip + 4, static_cast<std::uint16_t>(total - 40));
  }
  std::uint8_t* tcp = ip + it.ip_hlen;
  if (it.psh) tcp[13] |= kTcpPsh;
  const auto l4 = static_cast<std::uint32_t>(total - it.ip_hlen);
  // Checksum left to the kernel: the field holds the pseudo-header sum.
  store_be16(tcp + kTcpChecksum, checksum_add({}, pseudo_header_sum(ip, it.v4, kProtoTcp, l4)));
  VnetHdr h;
  h.flags = kFlagNeedsCsum;
  h.gso_type = it.v4 ? kGsoTcpV4 : kGsoTcpV6;
  h.hdr_len = static_cast<std::uint16_t>(hlen);
  h.gso_size = it.gso_size;
  h.csum_start = it.ip_hlen;
  h.csum_offset = kTcpChecksum;
  store_vnet_hdr(o, h);
  return ByteView(o, kVnetHdrLen + total);
}

}  // namespace tw::offload
