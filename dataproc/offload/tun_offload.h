// TUN offloads (IFF_VNET_HDR): every read from and write to the TUN device starts
// with a virtio-net header. With TUNSETOFFLOAD the kernel hands us TCP segments of
// up to 64 KiB (TSO) and packets whose checksum is still to be completed; on the way
// back we may hand it one large TCP segment built from many received packets of one
// flow (GRO), which the kernel's TCP stack takes in one pass.
//
// Segmenter: one TUN read (header + packet) -> MTU-sized IP packets with complete
//   checksums, as the kernel's TCP segmentation would cut them (IPv4 id and length,
//   IPv6 payload length, TCP sequence numbers, FIN/PSH on the last segment only,
//   CWR on the first only). Any bytes are accepted as input: malformed headers are
//   reported, never trusted.
// Coalescer: decrypted IP packets in arrival order -> TUN writes. Consecutive TCP
//   segments of one flow merge when the kernel's own GRO would merge them (same
//   addresses and ports, contiguous sequence numbers, same ACK number, window, TCP
//   options and IP header fields, only ACK/PSH flags, equal segment sizes but a
//   shorter last one, PSH ends the group) and their checksums verify. Everything
//   else is written unchanged, and packets of one flow keep their order.
//
// Neither allocates after construction.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/bytes.h"

namespace tw::offload {

// struct virtio_net_hdr (legacy layout, native byte order: what TUN uses by default).
constexpr std::size_t kVnetHdrLen = 10;
struct VnetHdr {
  std::uint8_t flags = 0;
  std::uint8_t gso_type = 0;
  std::uint16_t hdr_len = 0;
  std::uint16_t gso_size = 0;
  std::uint16_t csum_start = 0;
  std::uint16_t csum_offset = 0;
};
constexpr std::uint8_t kFlagNeedsCsum = 1;
constexpr std::uint8_t kGsoNone = 0;
constexpr std::uint8_t kGsoTcpV4 = 1;
constexpr std::uint8_t kGsoUdp = 3;
constexpr std::uint8_t kGsoTcpV6 = 4;
constexpr std::uint8_t kGsoUdpL4 = 5;
constexpr std::uint8_t kGsoEcn = 0x80;

VnetHdr load_vnet_hdr(const std::uint8_t* p);
void store_vnet_hdr(std::uint8_t* p, const VnetHdr& h);

// Internet checksum helpers (RFC 1071). checksum_add returns the ones-complement
// sum of `data` as 16-bit big-endian words (an odd last byte padded with zero),
// added to `initial`, folded to 16 bits but not complemented.
std::uint16_t checksum_add(ByteView data, std::uint32_t initial = 0);
// Sum of the TCP/UDP pseudo-header for an IPv4 or IPv6 packet whose addresses are
// at the usual offsets of `ip`.
std::uint32_t pseudo_header_sum(const std::uint8_t* ip, bool v4, std::uint8_t proto,
                                std::uint32_t l4_len);
// Complete checksum over the L4 header and payload (field included as it is).
inline std::uint16_t fold_complement(std::uint16_t sum) { return static_cast<std::uint16_t>(~sum); }

// Largest TUN read: a 64 KiB IP packet after the header.
constexpr std::size_t kMaxTunRead = kVnetHdrLen + 65535;
// A TSO read cut into more segments than this is refused (a kernel at an MTU of
// 576 cuts 64 KiB into ~120).
constexpr std::size_t kMaxSegments = 160;

enum class SplitError : std::uint8_t {
  kNone = 0,
  kTruncated,        // shorter than the virtio-net header, or empty packet
  kBadChecksumSpot,  // csum_start/csum_offset outside the packet
  kUnsupportedGso,   // UDP fragmentation, USO, unknown type
  kBadIpHeader,      // version/type mismatch, bad length, fragment, extension headers
  kBadTcpHeader,     // data offset out of range
  kBadGsoSize,       // gso_size 0 or too many segments
};
const char* split_error_name(SplitError e);

class Segmenter {
 public:
  Segmenter();
  // `read`: exactly what one read() of the TUN returned. The buffer may be
  // modified (checksums completed in place). On kNone, packet(0..count()-1) are
  // the IP packets, valid until the next split() or until `read` changes.
  SplitError split(std::span<std::uint8_t> read);
  std::size_t count() const { return count_; }
  ByteView packet(std::size_t i) const { return views_[i]; }

 private:
  SplitError split_tcp(std::span<std::uint8_t> pkt, const VnetHdr& h, bool v4);
  std::vector<std::uint8_t> buf_;
  std::array<ByteView, kMaxSegments> views_{};
  std::size_t count_ = 0;
};

struct CoalesceStats {
  std::uint64_t writes = 0;          // TUN writes planned
  std::uint64_t merged_packets = 0;  // packets that went out inside a larger segment
  std::uint64_t bad_checksums = 0;   // TCP candidates whose checksum did not verify
};

class Coalescer {
 public:
  static constexpr std::size_t kMaxPackets = 256;  // per batch: finish() before adding more
  static constexpr std::size_t kMaxGroupPackets = 64;

  Coalescer();
  // Adds one IP packet; the bytes must stay valid until finish() returns. False
  // (nothing added) when kMaxPackets are pending: finish() first.
  [[nodiscard]] bool add(ByteView packet);
  // Calls emit(ByteView frame, std::size_t packets) once per TUN write (virtio-net
  // header + packet, carrying `packets` of the added packets), in order, then
  // forgets the batch. The view is valid during the call only.
  template <class Emit>
  void finish(Emit&& emit) {
    for (std::size_t i = 0; i < items_count_; ++i) emit(build(i), std::size_t{items_[i].count});
    reset();
  }
  std::size_t pending() const { return packets_count_; }
  const CoalesceStats& stats() const { return stats_; }

 private:
  struct Flow {
    std::array<std::uint8_t, 36> key{};  // addresses and ports, zero padded
    bool v4 = false;
  };
  struct Packet {
    ByteView bytes;
    std::uint32_t next = UINT32_MAX;  // next packet of the same item
  };
  struct Item {
    std::uint32_t first = 0;
    std::uint32_t last = 0;
    std::uint32_t count = 1;
    bool open = false;  // may still take packets
    bool tcp = false;   // a TCP flow (others join nothing)
    bool v4 = false;
    std::uint16_t ip_hlen = 0;
    std::uint16_t tcp_hlen = 0;
    std::uint16_t gso_size = 0;  // payload of the first packet
    std::uint32_t total_payload = 0;
    std::uint32_t next_seq = 0;
    std::uint16_t last_ip_id = 0;
    bool psh = false;
    Flow flow;
  };
  ByteView build(std::size_t item);
  void reset();
  bool try_merge(Item& it, ByteView p);

  std::vector<Packet> packets_;
  std::vector<Item> items_;
  std::size_t packets_count_ = 0;
  std::size_t items_count_ = 0;
  std::vector<std::uint8_t> out_;
  CoalesceStats stats_;
};

}  // namespace tw::offload
