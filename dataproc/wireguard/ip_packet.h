// Just enough of IPv4/IPv6 headers to route a packet: its source or destination
// address and its length, with bounds checks (the bytes come from the TUN or from a
// decrypted peer packet).
#pragma once

#include <cstdint>
#include <optional>

#include "common/bytes.h"

namespace tw::wg {

struct IpAddressRef {
  bool v4;
  const std::uint8_t* bytes;  // 4 or 16 bytes inside the packet
};

// Destination of an IPv4 (>= 20 bytes) or IPv6 (>= 40 bytes) packet.
inline std::optional<IpAddressRef> ip_destination(ByteView p) {
  if (p.empty()) return std::nullopt;
  const unsigned version = p[0] >> 4;
  if (version == 4 && p.size() >= 20) return IpAddressRef{true, p.data() + 16};
  if (version == 6 && p.size() >= 40) return IpAddressRef{false, p.data() + 24};
  return std::nullopt;
}

// Source address and the length the header claims; nullopt if the header is
// truncated or claims more bytes than `p` holds.
struct IpSourceAndLength {
  IpAddressRef source;
  std::size_t length;
};
inline std::optional<IpSourceAndLength> ip_source_and_length(ByteView p) {
  if (p.empty()) return std::nullopt;
  const unsigned version = p[0] >> 4;
  if (version == 4 && p.size() >= 20) {
    const std::size_t len = load_be16(p.data() + 2);
    if (len < 20 || len > p.size()) return std::nullopt;
    return IpSourceAndLength{{true, p.data() + 12}, len};
  }
  if (version == 6 && p.size() >= 40) {
    const std::size_t len = std::size_t{load_be16(p.data() + 4)} + 40;
    if (len > p.size()) return std::nullopt;
    return IpSourceAndLength{{false, p.data() + 8}, len};
  }
  return std::nullopt;
}

}  // namespace tw::wg
