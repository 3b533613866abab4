#include "netproc/disco/datagram_kind.h"

#include "netproc/disco/box.h"
#include "netproc/stun/stun.h"

namespace tw::disco {
namespace {

constexpr std::size_t kWgInitiationLen = 148;
constexpr std::size_t kWgResponseLen = 92;
constexpr std::size_t kWgCookieLen = 64;
constexpr std::size_t kWgMinDataLen = 32;

DatagramKind classify_wireguard(ByteView p) noexcept {
  if (p.size() < 4) return DatagramKind::kUnknown;
  switch (load_le32(p.data())) {  // bytes 1..3 are zero for every WireGuard type
    case 1:
      return p.size() == kWgInitiationLen ? DatagramKind::kWireGuardInitiation
                                          : DatagramKind::kUnknown;
    case 2:
      return p.size() == kWgResponseLen ? DatagramKind::kWireGuardResponse : DatagramKind::kUnknown;
    case 3:
      return p.size() == kWgCookieLen ? DatagramKind::kWireGuardCookie : DatagramKind::kUnknown;
    case 4:
      return p.size() >= kWgMinDataLen ? DatagramKind::kWireGuardData : DatagramKind::kUnknown;
    default:
      return DatagramKind::kUnknown;
  }
}

}  // namespace

DatagramKind classify_datagram(ByteView p) noexcept {
  if (stun::looks_like_binding(p)) return DatagramKind::kStun;
  if (looks_like_disco(p)) return DatagramKind::kDisco;
  return classify_wireguard(p);
}

std::string_view to_string(DatagramKind kind) noexcept {
  switch (kind) {
    case DatagramKind::kStun:
      return "stun";
    case DatagramKind::kDisco:
      return "disco";
    case DatagramKind::kWireGuardInitiation:
      return "wireguard-initiation";
    case DatagramKind::kWireGuardResponse:
      return "wireguard-response";
    case DatagramKind::kWireGuardCookie:
      return "wireguard-cookie";
    case DatagramKind::kWireGuardData:
      return "wireguard-data";
    case DatagramKind::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace tw::disco
