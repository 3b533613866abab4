// Demux of one datagram on the shared underlay socket
// (docs/direct-underlay.md#per-datagram-robustness). Header bytes and length only: no allocation,
// no crypto.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/bytes.h"

namespace tw::disco {

enum class DatagramKind : std::uint8_t {
  kStun,                 // stun.Is and method Binding: goes to the STUN client
  kDisco,                // >= 62 bytes with the disco magic
  kWireGuardInitiation,  // exactly 148 bytes, LE u32 type 1
  kWireGuardResponse,    // exactly 92 bytes, type 2
  kWireGuardCookie,      // exactly 64 bytes, type 3
  kWireGuardData,        // >= 32 bytes, type 4
  kUnknown,
};

// Checked in Go's order: STUN, then disco, then WireGuard by type and size.
DatagramKind classify_datagram(ByteView packet) noexcept;

// "stun", "disco", "wireguard-initiation", ... (the `tailwarden debug classify` words).
std::string_view to_string(DatagramKind kind) noexcept;

}  // namespace tw::disco
