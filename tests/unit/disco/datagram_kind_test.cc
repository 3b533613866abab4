// Underlay socket demux (docs/direct-underlay.md#per-datagram-robustness).
#include "netproc/disco/datagram_kind.h"

#include <gtest/gtest.h>

#include "netproc/disco/box.h"
#include "netproc/stun/stun.h"

namespace tw::disco {
namespace {

Bytes wireguard(std::uint32_t type, std::size_t len) {
  Bytes b(len, 0xcc);
  store_le32(b.data(), type);
  return b;
}

Bytes disco_header(std::size_t len) {
  Bytes b(len, 0);
  std::copy(kMagic.begin(), kMagic.end(), b.begin());
  return b;
}

Bytes stun_response() {
  auto r = from_hex("0101000c2112a4422360b11e3ec68ffa93e08007002000080001c7866957856f");
  return *r;
}

TEST(DatagramKind, StunBindingResponseIsStun) {
  EXPECT_EQ(classify_datagram(stun_response()), DatagramKind::kStun);
}

// Go's rule is stun.Is and method Binding (b[1] == 1): a stray binding request is
// kept away from WireGuard too.
TEST(DatagramKind, StunBindingRequestIsStunAsInGo) {
  const auto req = stun::binding_request(stun::new_txid());
  EXPECT_EQ(classify_datagram(req), DatagramKind::kStun);
}

TEST(DatagramKind, StunWithOtherMethodIsNotStun) {
  Bytes b = stun_response();
  b[1] = 0x02;
  EXPECT_EQ(classify_datagram(b), DatagramKind::kUnknown);
}

TEST(DatagramKind, DiscoNeedsTheFull62ByteHeaderAndMagic) {
  EXPECT_EQ(classify_datagram(disco_header(62)), DatagramKind::kDisco);
  EXPECT_EQ(classify_datagram(disco_header(124)), DatagramKind::kDisco);
  EXPECT_EQ(classify_datagram(disco_header(61)), DatagramKind::kUnknown);
}

TEST(DatagramKind, FlippingMagicByte0BreaksDiscoClassification) {
  Bytes b = disco_header(124);
  b[0] ^= 0x01;
  EXPECT_NE(classify_datagram(b), DatagramKind::kDisco);
}

TEST(DatagramKind, WireGuardInitiationIsExactly148Bytes) {
  EXPECT_EQ(classify_datagram(wireguard(1, 148)), DatagramKind::kWireGuardInitiation);
  EXPECT_EQ(classify_datagram(wireguard(1, 147)), DatagramKind::kUnknown);
  EXPECT_EQ(classify_datagram(wireguard(1, 149)), DatagramKind::kUnknown);
}

TEST(DatagramKind, WireGuardResponseIsExactly92Bytes) {
  EXPECT_EQ(classify_datagram(wireguard(2, 92)), DatagramKind::kWireGuardResponse);
  EXPECT_EQ(classify_datagram(wireguard(2, 93)), DatagramKind::kUnknown);
}

TEST(DatagramKind, WireGuardCookieIsExactly64Bytes) {
  EXPECT_EQ(classify_datagram(wireguard(3, 64)), DatagramKind::kWireGuardCookie);
  EXPECT_EQ(classify_datagram(wireguard(3, 63)), DatagramKind::kUnknown);
}

TEST(DatagramKind, WireGuardDataIsAtLeast32Bytes) {
  EXPECT_EQ(classify_datagram(wireguard(4, 32)), DatagramKind::kWireGuardData);
  EXPECT_EQ(classify_datagram(wireguard(4, 1500)), DatagramKind::kWireGuardData);
  EXPECT_EQ(classify_datagram(wireguard(4, 31)), DatagramKind::kUnknown);
}

TEST(DatagramKind, WireGuardLookingBytesAreNotDisco) {
  EXPECT_NE(classify_datagram(wireguard(4, 200)), DatagramKind::kDisco);
}

TEST(DatagramKind, NonZeroHighTypeBytesAreUnknown) {
  EXPECT_EQ(classify_datagram(wireguard(0x0104, 148)), DatagramKind::kUnknown);
  EXPECT_EQ(classify_datagram(wireguard(5, 148)), DatagramKind::kUnknown);
  EXPECT_EQ(classify_datagram(wireguard(0, 148)), DatagramKind::kUnknown);
}

TEST(DatagramKind, TinyAndEmptyDatagramsAreUnknown) {
  EXPECT_EQ(classify_datagram(Bytes{}), DatagramKind::kUnknown);
  EXPECT_EQ(classify_datagram(Bytes{4, 0, 0}), DatagramKind::kUnknown);
}

TEST(DatagramKind, NamesAreTheDebugToolWords) {
  EXPECT_EQ(to_string(DatagramKind::kStun), "stun");
  EXPECT_EQ(to_string(DatagramKind::kDisco), "disco");
  EXPECT_EQ(to_string(DatagramKind::kWireGuardInitiation), "wireguard-initiation");
  EXPECT_EQ(to_string(DatagramKind::kWireGuardResponse), "wireguard-response");
  EXPECT_EQ(to_string(DatagramKind::kWireGuardCookie), "wireguard-cookie");
  EXPECT_EQ(to_string(DatagramKind::kWireGuardData), "wireguard-data");
  EXPECT_EQ(to_string(DatagramKind::kUnknown), "unknown");
}

}  // namespace
}  // namespace tw::disco
