// STUN codec: the request Tailscale's STUN servers require, and response parsing
// with Go's rules.
#include "netproc/stun/stun.h"

#include <gtest/gtest.h>

#include <string>

#include "common/keys.h"

namespace tw::stun {
namespace {

Bytes hex(std::string_view h) {
  auto b = from_hex(h);
  EXPECT_TRUE(b.has_value()) << h;
  return b.value_or(Bytes{});
}

// libsodium picks its fastest implementations in sodium_init().
[[maybe_unused]] const bool kSodiumReady = (crypto_init(), true);

TxId txid_of_hex(std::string_view h) { return *from_hex_fixed<kTxIdLen>(h); }

const TxId kTx01to0c = txid_of_hex("0102030405060708090a0b0c");

// A binding success with the given attribute bytes.
Bytes response_with(const TxId& txid, const Bytes& attrs) {
  Bytes b(kHeaderLen);
  store_be16(b.data(), kBindingSuccess);
  store_be16(b.data() + 2, static_cast<std::uint16_t>(attrs.size()));
  store_be32(b.data() + 4, kMagicCookie);
  std::copy(txid.begin(), txid.end(), b.begin() + 8);
  b.insert(b.end(), attrs.begin(), attrs.end());
  return b;
}

// An XOR-MAPPED-ADDRESS style attribute for an IPv4 or IPv6 address.
Bytes xor_attr(std::uint16_t type, const TxId& txid, const IpPort& ep) {
  const bool v6 = ep.ip.is_v6();
  Bytes a(4 + 4 + (v6 ? 16 : 4));
  store_be16(a.data(), type);
  store_be16(a.data() + 2, static_cast<std::uint16_t>(a.size() - 4));
  a[5] = v6 ? 2 : 1;
  store_be16(a.data() + 6, ep.port ^ 0x2112);
  std::array<std::uint8_t, 16> pad{};
  store_be32(pad.data(), kMagicCookie);
  std::copy(txid.begin(), txid.end(), pad.begin() + 4);
  for (std::size_t i = 0; i < (v6 ? 16u : 4u); ++i) a[8 + i] = ep.ip.raw()[i] ^ pad[i];
  return a;
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

IpPort ep(std::string_view s) { return *IpPort::parse(s); }

TEST(StunRequest, MatchesTheSpecVectorByteForByte) {
  EXPECT_EQ(to_hex(binding_request(kTx01to0c)),
            "000100142112a4420102030405060708090a0b0c802200087461696c6e6f646580280004b32c370f");
}

TEST(StunRequest, LayoutHasSoftwareAtByte20AndFingerprintOverFirst32Bytes) {
  const TxId tx = new_txid();
  const auto r = binding_request(tx);
  ASSERT_EQ(r.size(), 40u);
  EXPECT_EQ(load_be16(r.data()), 0x0001);
  EXPECT_EQ(load_be16(r.data() + 2), 20);
  EXPECT_EQ(load_be32(r.data() + 4), 0x2112a442u);
  EXPECT_TRUE(std::equal(tx.begin(), tx.end(), r.begin() + 8));
  EXPECT_EQ(load_be16(r.data() + 20), 0x8022);
  EXPECT_EQ(std::string(r.begin() + 24, r.begin() + 32), "tailnode");
  EXPECT_EQ(load_be16(r.data() + 32), 0x8028);
  EXPECT_EQ(load_be16(r.data() + 34), 4);
  EXPECT_EQ(load_be32(r.data() + 36), crc32_ieee(ByteView(r.data(), 32)) ^ 0x5354554eu);
}

TEST(StunRequest, FreshTxIdsDiffer) { EXPECT_NE(new_txid(), new_txid()); }

TEST(StunCrc, CanonicalCheckValues) {
  const std::string s = "123456789";
  EXPECT_EQ(crc32_ieee(ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size())),
            0xcbf43926u);
  EXPECT_EQ(crc32_ieee(ByteView{}), 0u);
}

TEST(StunIs, GoTestIsVectors) {
  const Bytes cookie = hex("2112a442");
  EXPECT_FALSE(is_stun(Bytes{}));
  EXPECT_FALSE(is_stun(Bytes(20, 0)));  // no cookie
  Bytes b19 = cat(cat(Bytes(4, 0), cookie), Bytes(11, 0));
  EXPECT_FALSE(is_stun(b19));
  Bytes b20 = cat(cat(Bytes(4, 0), cookie), Bytes(12, 0));
  EXPECT_TRUE(is_stun(b20));
  EXPECT_TRUE(is_stun(cat(b20, Bytes{'f', 'o', 'o'})));
  Bytes top = b20;
  top[0] = 0xf0;
  EXPECT_FALSE(is_stun(top));
  top[0] = 0x40;
  EXPECT_FALSE(is_stun(top));
  top[0] = 0x20;
  EXPECT_TRUE(is_stun(top));
}

TEST(StunParse, GoogleVectorDecodes) {
  auto r = parse_binding_response(
      hex("0101000c2112a4422360b11e3ec68ffa93e08007002000080001c7866957856f"));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(to_hex(r->txid), "2360b11e3ec68ffa93e08007");
  EXPECT_EQ(r->mapped.to_string(), "72.69.33.45:59028");
}

TEST(StunParse, PionVectorIgnoresTrailingBytesPastDeclaredLength) {
  auto r = parse_binding_response(
      hex("010100242112a442ebc2d36ef471217c4f3e308e8022000a656e64706f696e7465720000002000080001"
          "ce665e12a44380280004b699bb02010100242112a442"));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(to_hex(r->txid), "ebc2d36ef471217c4f3e308e");
  EXPECT_EQ(r->mapped.to_string(), "127.0.0.1:61300");
}

TEST(StunParse, OneByteSoftwareWithPaddingIsSkipped) {
  auto r = parse_binding_response(
      hex("010100142112a442ebc2d36ef471217c4f3e308e8022000161000000002000080001ce665e12a443"));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->mapped.to_string(), "127.0.0.1:61300");
}

TEST(StunParse, Rfc5769StyleVectorDecodesTo192_0_2_1) {
  // family 1, xport a147, xaddr e112a643
  auto r = parse_binding_response(response_with(kTx01to0c, hex("002000080001a147e112a643")));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->mapped.to_string(), "192.0.2.1:32853");
}

TEST(StunParse, RoundTripOfMatchingTxIdReturnsAddr) {
  const TxId tx = new_txid();
  const Bytes resp = response_with(tx, xor_attr(0x0020, tx, ep("203.0.113.9:41641")));
  EXPECT_TRUE(txid_matches(resp, tx));
  auto r = parse_binding_response(resp);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->txid, tx);
  EXPECT_EQ(r->mapped, ep("203.0.113.9:41641"));
}

TEST(StunParse, MismatchedTxIdIsDetectedByTheMatchHelper) {
  const TxId tx = new_txid();
  TxId other = tx;
  other[0] ^= 1;
  const Bytes resp = response_with(tx, xor_attr(0x0020, tx, ep("203.0.113.9:41641")));
  EXPECT_FALSE(txid_matches(resp, other));
  EXPECT_FALSE(txid_matches(Bytes(12, 0), other));
}

// Unlike the reference implementation: the codec returns IPv6, the
// IPv4-only policy belongs to the caller.
TEST(StunParse, Ipv6FamilyIsReturnedByTheCodecPolicyIsTheCallers) {
  const IpPort v6 = ep("[2001:db8::1]:443");
  auto r = parse_binding_response(response_with(kTx01to0c, xor_attr(0x0020, kTx01to0c, v6)));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->mapped, v6);
  auto alt = parse_binding_response(response_with(kTx01to0c, xor_attr(0x8020, kTx01to0c, v6)));
  ASSERT_TRUE(alt.ok());
  EXPECT_EQ(alt->mapped, v6);
}

TEST(StunParse, V4MappedIpv6AddressIsUnmapped) {
  const IpPort mapped{IpAddr::parse("::ffff:1.2.3.4").value(), 99};
  // Build family 2 with the 16 v4-mapped bytes, as a server on a v6 socket sends.
  Bytes a(24);
  store_be16(a.data(), 0x0020);
  store_be16(a.data() + 2, 20);
  a[5] = 2;
  store_be16(a.data() + 6, 99 ^ 0x2112);
  std::array<std::uint8_t, 16> pad{};
  store_be32(pad.data(), kMagicCookie);
  std::copy(kTx01to0c.begin(), kTx01to0c.end(), pad.begin() + 4);
  const auto raw = mapped.ip.to16();
  for (int i = 0; i < 16; ++i) a[8 + i] = raw[i] ^ pad[i];
  auto r = parse_binding_response(response_with(kTx01to0c, a));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->mapped.ip.is_v4());
  EXPECT_EQ(r->mapped.to_string(), "1.2.3.4:99");
}

TEST(StunParse, TruncatedHeaderIsRejected) {
  EXPECT_FALSE(parse_binding_response(Bytes(12, 0)).ok());
}

TEST(StunParse, WrongCookieIsRejected) {
  Bytes resp = response_with(kTx01to0c, xor_attr(0x0020, kTx01to0c, ep("1.2.3.4:5")));
  resp[4] ^= 0xff;
  EXPECT_FALSE(parse_binding_response(resp).ok());
  EXPECT_FALSE(is_stun(resp));
}

TEST(StunParse, AttributeLengthFFFFIsRejected) {
  EXPECT_FALSE(parse_binding_response(response_with(kTx01to0c, hex("0020ffff00010000"))).ok());
}

TEST(StunParse, BindingRequestTypeIsNotASuccessResponse) {
  Bytes resp = response_with(kTx01to0c, xor_attr(0x0020, kTx01to0c, ep("1.2.3.4:5")));
  store_be16(resp.data(), 0x0001);
  EXPECT_FALSE(parse_binding_response(resp).ok());
}

TEST(StunParse, DeclaredLengthPastEndIsRejected) {
  Bytes resp = response_with(kTx01to0c, xor_attr(0x0020, kTx01to0c, ep("1.2.3.4:5")));
  store_be16(resp.data() + 2, static_cast<std::uint16_t>(resp.size() - 20 + 4));
  EXPECT_FALSE(parse_binding_response(resp).ok());
}

TEST(StunParse, EveryTruncationOfAValidResponseIsRejected) {
  Bytes resp = response_with(
      kTx01to0c, cat(hex("8022000161000000"), xor_attr(0x0020, kTx01to0c, ep("1.2.3.4:5"))));
  ASSERT_TRUE(parse_binding_response(resp).ok());
  for (std::size_t n = 0; n < resp.size(); ++n) {
    EXPECT_FALSE(parse_binding_response(ByteView(resp.data(), n)).ok()) << "length " << n;
  }
}

TEST(StunParse, AttributeHeaderCutShortInsideDeclaredLengthIsRejected) {
  // declared length covers 2 bytes: not a whole attribute header.
  EXPECT_FALSE(parse_binding_response(response_with(kTx01to0c, hex("0020"))).ok());
}

TEST(StunParse, UnknownAttributeIsSkippedAndWalkContinues) {
  const Bytes unknown =
      hex("7777000561626364650000"
          "00");  // 5-byte value padded to 8
  auto r = parse_binding_response(
      response_with(kTx01to0c, cat(unknown, xor_attr(0x0020, kTx01to0c, ep("9.8.7.6:5")))));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->mapped.to_string(), "9.8.7.6:5");
}

TEST(StunParse, OnlyAnUnknownAttributeIsRejected) {
  EXPECT_FALSE(parse_binding_response(response_with(kTx01to0c, hex("7777000400000000"))).ok());
}

TEST(StunParse, AltXorMappedTypeIsAccepted) {
  auto r = parse_binding_response(
      response_with(kTx01to0c, xor_attr(0x8020, kTx01to0c, ep("192.0.2.7:3478"))));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mapped.to_string(), "192.0.2.7:3478");
}

TEST(StunParse, AltXorMappedShortValueIsRejected) {
  EXPECT_FALSE(parse_binding_response(response_with(kTx01to0c, hex("8020000400010000"))).ok());
}

TEST(StunParse, UnknownFamilyIsRejected) {
  Bytes a = xor_attr(0x0020, kTx01to0c, ep("1.2.3.4:5"));
  a[5] = 3;
  EXPECT_FALSE(parse_binding_response(response_with(kTx01to0c, a)).ok());
}

// Go and the reference implementation ("first in wire order") disagree; we follow Go.
TEST(StunParse, BothXorMappedTypesLastInWireOrderWinsAsInGo) {
  auto r = parse_binding_response(
      response_with(kTx01to0c, cat(xor_attr(0x0020, kTx01to0c, ep("1.1.1.1:1")),
                                   xor_attr(0x8020, kTx01to0c, ep("2.2.2.2:2")))));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mapped.to_string(), "2.2.2.2:2");
}

TEST(StunParse, MappedAddressIsTheFallbackWithoutXorMapped) {
  auto r = parse_binding_response(response_with(kTx01to0c, hex("000100080001162e0a000001")));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->mapped.to_string(), "10.0.0.1:5678");
}

TEST(StunParse, XorMappedBeatsMappedWhicheverComesFirst) {
  const Bytes mapped = hex("000100080001162e0a000001");
  const Bytes xored = xor_attr(0x0020, kTx01to0c, ep("1.2.3.4:5"));
  for (const auto& attrs : {cat(mapped, xored), cat(xored, mapped)}) {
    auto r = parse_binding_response(response_with(kTx01to0c, attrs));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->mapped.to_string(), "1.2.3.4:5");
  }
}

TEST(StunDemux, LooksLikeBindingForResponsesButNotForDisco) {
  const Bytes resp = response_with(kTx01to0c, xor_attr(0x0020, kTx01to0c, ep("1.2.3.4:5")));
  EXPECT_TRUE(looks_like_binding(resp));
  Bytes wrong_method = resp;
  wrong_method[1] = 0x02;
  EXPECT_FALSE(looks_like_binding(wrong_method));
  EXPECT_FALSE(looks_like_binding(ByteView(resp.data(), 19)));
  Bytes disco = resp;
  disco[0] = 0x54;
  EXPECT_FALSE(looks_like_binding(disco));
}

}  // namespace
}  // namespace tw::stun
