// Disco plaintext codec: Go's golden vectors and the reference implementation's lax
// parse scenarios.
#include "netproc/disco/message.h"

#include <gtest/gtest.h>

#include <vector>

namespace tw::disco {
namespace {

Bytes hex(std::string_view h) { return from_hex(h).value(); }

const TxId kTxId = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

IpPort ep(std::string_view s) { return IpPort::parse(s).value(); }

template <typename T>
T parse_as(const Bytes& pt) {
  auto m = parse_message(pt);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error());
  EXPECT_TRUE(m.ok() && std::holds_alternative<T>(*m));
  return m.ok() && std::holds_alternative<T>(*m) ? std::get<T>(*m) : T{};
}

Bytes plaintext(std::uint8_t type, std::uint8_t version, const Bytes& body) {
  Bytes b(2 + body.size());
  b[0] = type;
  b[1] = version;
  std::copy(body.begin(), body.end(), b.begin() + 2);
  return b;
}

Bytes endpoints_body(const std::vector<IpPort>& eps) {
  Bytes b(eps.size() * kEndpointLen);
  for (std::size_t i = 0; i < eps.size(); ++i) encode_endpoint(eps[i], b.data() + i * 18);
  return b;
}

std::vector<IpPort> numbered_endpoints(int n) {
  std::vector<IpPort> v;
  for (int i = 0; i < n; ++i) {
    v.push_back(IpPort{
        IpAddr::v4(198, 18, static_cast<std::uint8_t>(i / 256), static_cast<std::uint8_t>(i % 256)),
        static_cast<std::uint16_t>(1000 + i)});
  }
  return v;
}

NodePublic key_k() {
  KeyBytes k{};
  k[1] = 1;
  k[2] = 2;
  k[30] = 0x1e;
  k[31] = 0x1f;
  return NodePublic(k);
}

TEST(DiscoGolden, PingWithTxIdOnly) {
  const Ping p{kTxId, std::nullopt, 0, 0};
  EXPECT_EQ(to_hex(encode(p)),
            "0100"
            "0102030405060708090a0b0c");
  EXPECT_EQ(parse_as<Ping>(encode(p)), p);
}

TEST(DiscoGolden, PingWithPaddingThreeAndNoKey) {
  const Ping p{kTxId, std::nullopt, 3, 0};
  EXPECT_EQ(to_hex(encode(p)),
            "0100"
            "0102030405060708090a0b0c"
            "000000");
  EXPECT_EQ(parse_as<Ping>(encode(p)), p);
}

TEST(DiscoGolden, PongFrom2_3_4_5Port1234) {
  const Pong p{kTxId, ep("2.3.4.5:1234"), 0};
  EXPECT_EQ(to_hex(encode(p)),
            "0200"
            "0102030405060708090a0b0c"
            "00000000000000000000ffff02030405"
            "04d2");
  EXPECT_EQ(parse_as<Pong>(encode(p)), p);
}

TEST(DiscoGolden, CallMeMaybeWithNoEndpoints) {
  EXPECT_EQ(to_hex(encode(CallMeMaybe{})), "0300");
  EXPECT_TRUE(parse_as<CallMeMaybe>(hex("0300")).endpoints.empty());
}

TEST(DiscoPing, WithNodeKeyIs44ByteBodyAndRoundTrips) {
  const Ping p{kTxId, key_k(), 0, 0};
  const Bytes b = encode(p);
  EXPECT_EQ(b.size(), 2 + kPingLen);
  EXPECT_EQ(parse_as<Ping>(b), p);
}

TEST(DiscoPing, Pre116KeylessPingParsesWithNoNodeKey) {
  const Ping p = parse_as<Ping>(plaintext(1, 0, Bytes(12, 7)));
  EXPECT_FALSE(p.node_key.has_value());
  EXPECT_EQ(p.padding, 0u);
}

TEST(DiscoPing, OneByteShortOfNodeKeyParsesAsNoKeyWithPadding) {
  const Ping p = parse_as<Ping>(plaintext(1, 0, Bytes(43, 7)));
  EXPECT_FALSE(p.node_key.has_value());
  EXPECT_EQ(p.padding, 31u);
}

TEST(DiscoPing, NodeKeyWithTrailingPaddingParsesWithKey) {
  Bytes body(51, 0);
  std::copy(kTxId.begin(), kTxId.end(), body.begin());
  const NodePublic key = key_k();
  std::copy(key.bytes().begin(), key.bytes().end(), body.begin() + 12);
  const Ping p = parse_as<Ping>(plaintext(1, 0, body));
  ASSERT_TRUE(p.node_key.has_value());
  EXPECT_EQ(*p.node_key, key_k());
  EXPECT_EQ(p.padding, 7u);
  EXPECT_EQ(p.txid, kTxId);
}

TEST(DiscoPing, BodyShorterThanTxIdIsMalformed) {
  EXPECT_FALSE(parse_message(plaintext(1, 0, Bytes(11, 0))).ok());
}

TEST(DiscoPing, FutureVersionStillParsesWithKeyAndTxId) {
  Ping p{kTxId, key_k(), 0, 1};
  const Ping got = parse_as<Ping>(encode(p));
  EXPECT_EQ(got.version, 1);
  EXPECT_EQ(got.node_key, key_k());
  EXPECT_EQ(got.txid, kTxId);
}

// Go's documented quirk: a zero key followed by >= 32 padding bytes reads as a key.
TEST(DiscoPing, ZeroKeylessPaddingOf32ReadsBackAsZeroKey) {
  const Ping got = parse_as<Ping>(encode(Ping{kTxId, std::nullopt, 40, 0}));
  ASSERT_TRUE(got.node_key.has_value());
  EXPECT_TRUE(got.node_key->is_zero());
  EXPECT_EQ(got.padding, 8u);
}

TEST(DiscoPong, OverLengthPongIsAcceptedFromIts30BytePrefix) {
  Bytes b = encode(Pong{kTxId, ep("203.0.113.7:41641"), 0});
  b.insert(b.end(), 7, 0xab);
  EXPECT_EQ(parse_as<Pong>(b).src, ep("203.0.113.7:41641"));
}

TEST(DiscoPong, TruncatedPongIsRejectedNotReadShort) {
  EXPECT_FALSE(parse_message(plaintext(2, 0, Bytes(29, 0))).ok());
}

TEST(DiscoPong, FutureVersionStillParses) {
  EXPECT_EQ(parse_as<Pong>(encode(Pong{kTxId, ep("1.2.3.4:5"), 2})).src, ep("1.2.3.4:5"));
}

TEST(DiscoPong, Ipv6UnspecifiedSrcRoundTrips) {
  const Pong p{kTxId, ep("[::]:1"), 0};
  EXPECT_EQ(parse_as<Pong>(encode(p)), p);
}

TEST(DiscoCallMeMaybe, TwoIpv4EndpointsRoundTripInOrder) {
  const auto eps = std::vector<IpPort>{ep("198.51.100.1:41641"), ep("203.0.113.2:1")};
  const CallMeMaybe c = make_call_me_maybe(eps);
  const CallMeMaybe got = parse_as<CallMeMaybe>(encode(c));
  ASSERT_EQ(got.endpoints.size(), 2u);
  EXPECT_EQ(got.endpoints[0], eps[0]);
  EXPECT_EQ(got.endpoints[1], eps[1]);
}

TEST(DiscoCallMeMaybe, InboundKeepsExactlyTheFirst16Of66InOrder) {
  const auto eps = numbered_endpoints(66);
  const CallMeMaybe got = parse_as<CallMeMaybe>(plaintext(3, 0, endpoints_body(eps)));
  ASSERT_EQ(got.endpoints.size(), 16u);
  for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(got.endpoints[i], eps[i]);
}

TEST(DiscoCallMeMaybe, InboundDropsExactlyThe17thEndpoint) {
  const auto eps = numbered_endpoints(17);
  const CallMeMaybe got = parse_as<CallMeMaybe>(plaintext(3, 0, endpoints_body(eps)));
  ASSERT_EQ(got.endpoints.size(), 16u);
  EXPECT_EQ(got.endpoints.back(), eps[15]);
  for (const auto& e : got.endpoints) EXPECT_NE(e, eps[16]);
}

TEST(DiscoCallMeMaybe, InboundAtCapIsUnchanged) {
  const auto eps = numbered_endpoints(16);
  const CallMeMaybe got = parse_as<CallMeMaybe>(plaintext(3, 0, endpoints_body(eps)));
  EXPECT_EQ(std::vector<IpPort>(got.endpoints.begin(), got.endpoints.end()), eps);
}

// Lax, whole chunks, as the reference; Go would give an empty list here. Go never
// sends a partial chunk, so being lax costs nothing in interop.
TEST(DiscoCallMeMaybe, TrailingPartialEndpointKeepsTheWholeOnes) {
  Bytes body = endpoints_body({ep("1.1.1.1:1"), ep("2.2.2.2:2")});
  body.insert(body.end(), 5, 0xee);
  EXPECT_EQ(parse_as<CallMeMaybe>(plaintext(3, 0, body)).endpoints.size(), 2u);
}

TEST(DiscoCallMeMaybe, ShortBodiesYieldEmptyNotError) {
  for (std::size_t n : {0u, 5u, 17u}) {
    EXPECT_TRUE(parse_as<CallMeMaybe>(plaintext(3, 0, Bytes(n, 1))).endpoints.empty()) << n;
  }
}

TEST(DiscoCallMeMaybe, FutureVersionOpensEmpty) {
  const Bytes body = endpoints_body({ep("1.1.1.1:1")});
  EXPECT_TRUE(parse_as<CallMeMaybe>(plaintext(3, 1, body)).endpoints.empty());
  EXPECT_EQ(parse_as<CallMeMaybe>(plaintext(3, 0, body)).endpoints.size(), 1u);
}

TEST(DiscoCallMeMaybe, ThreeIpv6EndpointsRoundTrip) {
  const std::vector<IpPort> eps{ep("[2001:db8::1]:443"), ep("[2001:db8::2]:1"),
                                ep("[fe80::1]:41641")};
  const CallMeMaybe got = parse_as<CallMeMaybe>(encode(make_call_me_maybe(eps)));
  EXPECT_EQ(std::vector<IpPort>(got.endpoints.begin(), got.endpoints.end()), eps);
}

TEST(DiscoCallMeMaybe, SendBuilderCapsAt16AndNeverCarriesUnspecified) {
  std::vector<IpPort> eps{ep("0.0.0.0:41641"), ep("[::]:41641"), IpPort{}};
  const auto numbered = numbered_endpoints(20);
  eps.insert(eps.end(), numbered.begin(), numbered.end());
  const CallMeMaybe c = make_call_me_maybe(eps);
  ASSERT_EQ(c.endpoints.size(), 16u);
  EXPECT_EQ(c.endpoints.front(), numbered[0]);
  EXPECT_EQ(c.endpoints.back(), numbered[15]);
  EXPECT_EQ(encode(c).size(), 2 + 16 * kEndpointLen);
}

TEST(DiscoCallMeMaybe, EncoderSkipsUnspecifiedEvenIfPresent) {
  CallMeMaybe c;
  c.endpoints.push_back(ep("0.0.0.0:1"));
  c.endpoints.push_back(ep("1.2.3.4:5"));
  EXPECT_EQ(to_hex(encode(c)),
            "0300"
            "00000000000000000000ffff01020304"
            "0005");
}

TEST(DiscoEndpoint, Ipv4RoundTripsThroughBytesBigEndian) {
  std::array<std::uint8_t, 18> b{};
  encode_endpoint(ep("203.0.113.7:41641"), b.data());
  EXPECT_EQ(to_hex(b), "00000000000000000000ffffcb007107a2a9");
  EXPECT_EQ(decode_endpoint(b.data()), ep("203.0.113.7:41641"));
}

TEST(DiscoEndpoint, Ipv6RoundTripsThroughBytes) {
  std::array<std::uint8_t, 18> b{};
  encode_endpoint(ep("[2001:db8::1]:443"), b.data());
  EXPECT_EQ(to_hex(b), "20010db800000000000000000000000101bb");
  EXPECT_EQ(decode_endpoint(b.data()), ep("[2001:db8::1]:443"));
}

TEST(DiscoTypes, TypeGuardKeepsEachBodyToItsOwnParser) {
  const Bytes pong = encode(Pong{kTxId, ep("1.2.3.4:5"), 0});
  EXPECT_TRUE(std::holds_alternative<Pong>(*parse_message(pong)));
  Bytes as_cmm = pong;
  as_cmm[0] = 3;  // same bytes, CallMeMaybe type: never read as a Pong
  EXPECT_TRUE(std::holds_alternative<CallMeMaybe>(*parse_message(as_cmm)));
}

TEST(DiscoTypes, RelayAndUnnamedTypesParseAsUnknownWithTheirCode) {
  for (int code : {0, 4, 5, 6, 7, 8, 9, 10, 0x54, 255}) {
    auto m = parse_message(plaintext(static_cast<std::uint8_t>(code), 0, Bytes(72, 0)));
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE(std::holds_alternative<UnknownMessage>(*m)) << code;
    EXPECT_EQ(std::get<UnknownMessage>(*m).code, code);
  }
}

TEST(DiscoTypes, FewerThanTwoBytesIsAnError) {
  EXPECT_FALSE(parse_message(Bytes{}).ok());
  EXPECT_FALSE(parse_message(Bytes{1}).ok());
}

TEST(DiscoEncode, TooSmallBufferWritesNothing) {
  std::array<std::uint8_t, 10> small{};
  EXPECT_EQ(encode(Message{Ping{kTxId, std::nullopt, 0, 0}}, small), 0u);
  EXPECT_EQ(small, (std::array<std::uint8_t, 10>{}));
}

}  // namespace
}  // namespace tw::disco
