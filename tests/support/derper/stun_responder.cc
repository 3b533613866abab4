#include "tests/support/derper/stun_responder.h"

#include <algorithm>
#include <string_view>

namespace tw::derper {

Result<stun::TxId> parse_binding_request(ByteView packet) {
  if (!stun::is_stun(packet)) return make_error("stun: not STUN");
  if (load_be16(packet.data()) != stun::kBindingRequest) return make_error("stun: not a binding request");
  std::size_t attrs_len = load_be16(packet.data() + 2);
  if (stun::kHeaderLen + attrs_len > packet.size()) return make_error("stun: truncated");
  ByteView attrs = packet.subspan(stun::kHeaderLen, attrs_len);
  bool software_ok = false;
  bool fingerprint_last = false;
  std::size_t pos = 0;
  while (pos < attrs.size()) {
    if (attrs.size() - pos < 4) return make_error("stun: truncated attribute header");
    std::uint16_t type = load_be16(attrs.data() + pos);
    std::size_t len = load_be16(attrs.data() + pos + 2);
    std::size_t padded = (len + 3) & ~std::size_t{3};
    if (attrs.size() - pos - 4 < padded) return make_error("stun: truncated attribute");
    ByteView value = attrs.subspan(pos + 4, len);
    fingerprint_last = false;
    if (type == stun::kAttrSoftware) {
      software_ok = std::string_view(reinterpret_cast<const char*>(value.data()), value.size()) == "tailnode";
    } else if (type == stun::kAttrFingerprint) {
      if (len != 4) return make_error("stun: bad FINGERPRINT length");
      std::uint32_t want = stun::fingerprint(packet.first(stun::kHeaderLen + pos));
      if (load_be32(value.data()) != want) return make_error("stun: FINGERPRINT mismatch");
      fingerprint_last = true;
    }
    pos += 4 + padded;
  }
  if (!software_ok) return make_error("stun: no SOFTWARE tailnode");
  if (!fingerprint_last) return make_error("stun: FINGERPRINT missing or not last");
  stun::TxId txid{};
  std::copy_n(packet.begin() + 8, stun::kTxIdLen, txid.begin());
  return txid;
}

Bytes binding_response(const stun::TxId& txid, const IpPort& mapped) {
  bool v4 = mapped.ip.is_v4();
  std::size_t addr_len = v4 ? 4 : 16;
  Bytes out(stun::kHeaderLen + 8 + addr_len);
  store_be16(out.data(), stun::kBindingSuccess);
  store_be16(out.data() + 2, static_cast<std::uint16_t>(8 + addr_len));
  store_be32(out.data() + 4, stun::kMagicCookie);
  std::copy(txid.begin(), txid.end(), out.begin() + 8);
  std::uint8_t* a = out.data() + stun::kHeaderLen;
  store_be16(a, stun::kAttrXorMappedAddress);
  store_be16(a + 2, static_cast<std::uint16_t>(4 + addr_len));
  a[4] = 0;
  a[5] = v4 ? 1 : 2;
  store_be16(a + 6, static_cast<std::uint16_t>(mapped.port ^ 0x2112u));
  // The XOR pad is cookie || TxID, which is exactly bytes 4..20 of the header.
  const std::uint8_t* src = mapped.ip.raw().data();
  for (std::size_t i = 0; i < addr_len; ++i) a[8 + i] = src[i] ^ out[4 + i];
  return out;
}

}  // namespace tw::derper
