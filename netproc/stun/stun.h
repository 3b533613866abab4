// STUN (RFC 5389) as Tailscale speaks it: the 40-byte binding request with SOFTWARE
// "tailnode" and FINGERPRINT, and binding-response parsing with Go's rules.
// Pure codec: no sockets, no policy. The IPv4-only
// policy is the caller's: the parser returns IPv6 mapped addresses too.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/bytes.h"
#include "common/ipaddr.h"
#include "common/result.h"

namespace tw::stun {

constexpr std::size_t kHeaderLen = 20;
constexpr std::size_t kRequestLen = 40;
constexpr std::size_t kTxIdLen = 12;
constexpr std::uint32_t kMagicCookie = 0x2112a442;
constexpr std::uint16_t kBindingRequest = 0x0001;
constexpr std::uint16_t kBindingSuccess = 0x0101;
constexpr std::uint16_t kAttrMappedAddress = 0x0001;
constexpr std::uint16_t kAttrXorMappedAddress = 0x0020;
constexpr std::uint16_t kAttrXorMappedAddressAlt = 0x8020;  // sent by some servers
constexpr std::uint16_t kAttrSoftware = 0x8022;
constexpr std::uint16_t kAttrFingerprint = 0x8028;
constexpr std::uint32_t kFingerprintXor = 0x5354554e;

using TxId = std::array<std::uint8_t, kTxIdLen>;
using BindingRequest = std::array<std::uint8_t, kRequestLen>;

// A fresh random transaction id (libsodium CSPRNG).
TxId new_txid();

// CRC-32/IEEE (Boost.CRC); check value crc32("123456789") == 0xcbf43926.
std::uint32_t crc32_ieee(ByteView bytes);
// STUN FINGERPRINT value over `bytes`: CRC-32 XOR 0x5354554e.
std::uint32_t fingerprint(ByteView bytes);

// The exact 40 bytes Tailscale sends (and its STUN servers require).
BindingRequest binding_request(const TxId& txid);

// Go's stun.Is: >= 20 bytes, top two bits of byte 0 clear, magic cookie at 4..8.
bool is_stun(ByteView packet) noexcept;
// The socket demux test: stun.Is and method Binding (b[1] == 1).
bool looks_like_binding(ByteView packet) noexcept;
// True when the packet carries `txid` at bytes 8..20 (no other check).
bool txid_matches(ByteView packet, const TxId& txid) noexcept;

struct BindingResponse {
  TxId txid{};
  IpPort mapped;  // unmapped: a v4-in-v6 address comes back as IPv4
};

// Go's stun.ParseResponse: XOR-MAPPED-ADDRESS (0x0020 or 0x8020; the last one wins),
// MAPPED-ADDRESS as a fallback, trailing bytes past the declared length ignored, any
// truncation rejected. IPv6 addresses are returned; filtering is the caller's job.
Result<BindingResponse> parse_binding_response(ByteView packet);

}  // namespace tw::stun
