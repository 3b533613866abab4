#include "netproc/stun/stun.h"

#include <sodium.h>

#include <boost/crc.hpp>
#include <cstring>
#include <optional>

namespace tw::stun {
namespace {

constexpr std::array<std::uint8_t, 8> kSoftware = {'t', 'a', 'i', 'l', 'n', 'o', 'd', 'e'};

struct Attr {
  std::uint16_t type;
  ByteView value;  // unpadded
};

// Walks type-length-value attributes padded to 4 bytes, as Go's foreachAttr.
// Returns false on any truncation.
template <typename Fn>
bool for_each_attr(ByteView attrs, Fn&& fn) {
  while (!attrs.empty()) {
    if (attrs.size() < 4) return false;
    const std::uint16_t type = load_be16(attrs.data());
    const std::size_t len = load_be16(attrs.data() + 2);
    const std::size_t padded = (len + 3) & ~std::size_t{3};
    attrs = attrs.subspan(4);
    if (padded > attrs.size()) return false;
    if (!fn(Attr{type, attrs.first(len)})) return false;
    attrs = attrs.subspan(padded);
  }
  return true;
}

std::size_t family_addr_len(std::uint8_t family) {
  if (family == 0x01) return 4;
  if (family == 0x02) return 16;
  return 0;
}

IpAddr addr_from(const std::uint8_t* bytes, std::size_t len) {
  if (len == 4) return IpAddr::v4(bytes[0], bytes[1], bytes[2], bytes[3]);
  return IpAddr::from16(bytes);  // unmaps v4-in-v6 (test "no-4in6")
}

// MAPPED-ADDRESS / XOR-MAPPED-ADDRESS value: 0 | family | port | address.
std::optional<IpPort> decode_address(ByteView v, const TxId* xor_txid) {
  if (v.size() < 4) return std::nullopt;
  const std::size_t len = family_addr_len(v[1]);
  if (len == 0 || v.size() - 4 < len) return std::nullopt;
  std::uint16_t port = load_be16(v.data() + 2);
  std::array<std::uint8_t, 16> addr{};
  std::memcpy(addr.data(), v.data() + 4, len);
  if (xor_txid != nullptr) {
    port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
    std::array<std::uint8_t, 16> pad{};
    store_be32(pad.data(), kMagicCookie);
    std::memcpy(pad.data() + 4, xor_txid->data(), kTxIdLen);
    for (std::size_t i = 0; i < len; ++i) addr[i] ^= pad[i];
  }
  return IpPort{addr_from(addr.data(), len), port};
}

}  // namespace

TxId new_txid() {
  TxId t;
  randombytes_buf(t.data(), t.size());
  return t;
}

std::uint32_t crc32_ieee(ByteView bytes) {
  boost::crc_32_type crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

std::uint32_t fingerprint(ByteView bytes) { return crc32_ieee(bytes) ^ kFingerprintXor; }

BindingRequest binding_request(const TxId& txid) {
  BindingRequest r{};
  store_be16(r.data(), kBindingRequest);
  store_be16(r.data() + 2, kRequestLen - kHeaderLen);
  store_be32(r.data() + 4, kMagicCookie);
  std::memcpy(r.data() + 8, txid.data(), kTxIdLen);
  // Fixed attribute order: the XDP DERP STUN server reads SOFTWARE at byte 20.
  store_be16(r.data() + 20, kAttrSoftware);
  store_be16(r.data() + 22, kSoftware.size());
  std::memcpy(r.data() + 24, kSoftware.data(), kSoftware.size());
  store_be16(r.data() + 32, kAttrFingerprint);
  store_be16(r.data() + 34, 4);
  store_be32(r.data() + 36, fingerprint(ByteView(r.data(), 32)));
  return r;
}

bool is_stun(ByteView p) noexcept {
  return p.size() >= kHeaderLen && (p[0] & 0xc0) == 0 && load_be32(p.data() + 4) == kMagicCookie;
}

bool looks_like_binding(ByteView p) noexcept { return is_stun(p) && p[1] == 0x01; }

bool txid_matches(ByteView p, const TxId& txid) noexcept {
  return p.size() >= kHeaderLen && std::memcmp(p.data() + 8, txid.data(), kTxIdLen) == 0;
}

Result<BindingResponse> parse_binding_response(ByteView p) {
  if (!is_stun(p)) return make_error("stun: not a STUN packet");
  BindingResponse out;
  std::memcpy(out.txid.data(), p.data() + 8, kTxIdLen);
  if (load_be16(p.data()) != kBindingSuccess)
    return make_error("stun: not a binding success response");
  const std::size_t attrs_len = load_be16(p.data() + 2);
  ByteView attrs = p.subspan(kHeaderLen);
  if (attrs_len > attrs.size()) return make_error("stun: declared length past end of packet");
  attrs = attrs.first(attrs_len);  // trailing bytes are ignored, as Go does

  std::optional<IpPort> xor_mapped;
  std::optional<IpPort> mapped;
  const bool walked = for_each_attr(attrs, [&](const Attr& a) {
    if (a.type == kAttrXorMappedAddress || a.type == kAttrXorMappedAddressAlt) {
      auto ep = decode_address(a.value, &out.txid);
      if (!ep) return false;
      xor_mapped = ep;  // the last one wins (Go)
    } else if (a.type == kAttrMappedAddress) {
      auto ep = decode_address(a.value, nullptr);
      if (!ep) return false;
      mapped = ep;
    }
    return true;
  });
  if (!walked) return make_error("stun: malformed attributes");
  if (xor_mapped)
    out.mapped = *xor_mapped;
  else if (mapped)
    out.mapped = *mapped;
  else
    return make_error("stun: no mapped address attribute");
  return out;
}

}  // namespace tw::stun
