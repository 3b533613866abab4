// The sealed disco datagram: NaCl box known-answer vectors pinned against Go
// and the reference implementation's seal/open scenarios.
#include "netproc/disco/box.h"

#include <gtest/gtest.h>

#include <string>

#include "netproc/disco/datagram_kind.h"

namespace tw::disco {
namespace {

// libsodium picks its fastest implementations in sodium_init().
[[maybe_unused]] const bool kSodiumReady = (crypto_init(), true);

Bytes hex(std::string_view h) { return from_hex(h).value(); }

KeyBytes filled(std::uint8_t v) {
  KeyBytes k;
  k.fill(v);
  return k;
}

KeyBytes from_words(std::uint32_t w) {
  KeyBytes k;
  for (std::size_t i = 0; i < k.size(); i += 4) store_be32(k.data() + i, w);
  return k;
}

struct Kat {
  KeyBytes sender_priv;
  KeyBytes recipient_priv;
  std::string nonce_hex;
  std::string plaintext;
  std::string sealed_hex;  // tag then ciphertext, as Go box.Seal
};

std::vector<Kat> kats() {
  KeyBytes seq1{}, seq2{};
  for (int i = 0; i < 32; ++i) {
    seq1[i] = static_cast<std::uint8_t>(1 + i);
    seq2[i] = static_cast<std::uint8_t>(0x20 + i);
  }
  return {
      {filled(0x11), filled(0x22), "000102030405060708090a0b0c0d0e0f1011121314151617", "",
       "67021af553ef442bf090cb131f43c15a"},
      {seq1, seq2, "fedcba9876543210fedcba9876543210fedcba9876543210", "xyzzy",
       "c3fd88f61be3a3aa81d7e9cd6add0920be9a157b95"},
      {from_words(0xdeadbeef), from_words(0xcafebabe),
       "0000000000000000000000000000000000000000deadbeef", R"({"version":2,"meshSession":true})",
       "d1cbf633e31ab0e376138e0c250bfc1419037c86bc9fd5c5ba83113f8125a1edd1bec2210d75db66004e21"
       "4be16a14b1"},
  };
}

ByteView text_bytes(const std::string& s) {
  return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

TEST(DiscoBoxKat, SealMatchesGoNaclBoxAndOpensGoBytes) {
  for (const auto& v : kats()) {
    const DiscoPrivate sender(v.sender_priv);
    const DiscoPrivate recipient(v.recipient_priv);
    const Nonce nonce = from_hex_fixed<kNonceLen>(v.nonce_hex).value();
    auto seal_key = DiscoSharedKey::derive(sender, recipient.public_key());
    ASSERT_TRUE(seal_key.ok());
    Bytes out(sealed_len(v.plaintext.size()));
    ASSERT_EQ(seal_with_nonce(*seal_key, sender.public_key(), nonce, text_bytes(v.plaintext), out),
              out.size());
    EXPECT_EQ(to_hex(ByteView(out).subspan(kHeaderLen)), v.sealed_hex);

    // Go's bytes behind our header open with the recipient's key.
    Bytes go_packet(out.begin(), out.begin() + kHeaderLen);
    const Bytes go_sealed = hex(v.sealed_hex);
    go_packet.insert(go_packet.end(), go_sealed.begin(), go_sealed.end());
    auto open_key = DiscoSharedKey::derive(recipient, sender.public_key());
    ASSERT_TRUE(open_key.ok());
    Bytes pt(go_sealed.size() - kTagLen);
    auto opened = open(*open_key, go_packet, pt);
    ASSERT_TRUE(opened.ok());
    EXPECT_EQ(std::string(opened.plaintext.begin(), opened.plaintext.end()), v.plaintext);
  }
}

TEST(DiscoBoxKat, DerivedPublicKeysMatchGo) {
  const std::string pub22 = DiscoPrivate(filled(0x22)).public_key().hex();
  EXPECT_EQ(pub22.substr(0, 8), "0faa684e");
  EXPECT_EQ(pub22.substr(58), "570f20");
  const std::string pub_seq2 = DiscoPrivate(kats()[1].recipient_priv).public_key().hex();
  EXPECT_EQ(pub_seq2.substr(0, 8), "358072d6");
  EXPECT_EQ(pub_seq2.substr(58), "166254");
}

struct Pair {
  DiscoPrivate a = DiscoPrivate::generate();
  DiscoPrivate b = DiscoPrivate::generate();
  DiscoSharedKey a_to_b = DiscoSharedKey::derive(a, b.public_key()).value();
  DiscoSharedKey b_from_a = DiscoSharedKey::derive(b, a.public_key()).value();
};

Bytes sealed(const Pair& p, const Message& m) {
  Bytes out(sealed_len(encoded_len(m)));
  EXPECT_EQ(seal_message(p.a_to_b, p.a.public_key(), m, out), out.size());
  return out;
}

Message open_parse(const DiscoSharedKey& k, Bytes packet) {
  auto opened = open_in_place(k, packet);
  EXPECT_TRUE(opened.ok());
  auto m = parse_message(opened.plaintext);
  EXPECT_TRUE(m.ok());
  return m.ok() ? *m : Message{UnknownMessage{}};
}

TEST(DiscoBox, TamperedTagFailsToOpen) {
  Pair p;
  Bytes pkt = sealed(p, Ping{new_txid(), NodePublic{}, 0, 0});
  for (std::size_t i : {kHeaderLen, kHeaderLen + 15, kOverhead, pkt.size() - 1, kHeaderLen - 1}) {
    Bytes t = pkt;
    t[i] ^= 0x01;
    EXPECT_EQ(open_in_place(p.b_from_a, t).status, OpenStatus::kAuthFailed) << i;
  }
}

TEST(DiscoBox, HeaderCarriesMagicSenderAndNonceWithoutCrypto) {
  Pair p;
  const Nonce nonce = from_hex_fixed<kNonceLen>(std::string(48, 'a')).value();
  Bytes out(sealed_len(2));
  ASSERT_GT(seal_message_with_nonce(p.a_to_b, p.a.public_key(), nonce, CallMeMaybe{}, out), 0u);
  EXPECT_EQ(to_hex(ByteView(out).first(6)), "5453f09f92ac");
  auto h = parse_header(out);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->sender, p.a.public_key());
  EXPECT_EQ(h->nonce, nonce);
  EXPECT_EQ(out.size(), 80u);  // smallest valid disco datagram
}

TEST(DiscoBox, PingRoundTripsAndDemuxesAsDisco) {
  Pair p;
  const NodePublic node = NodePrivate::generate().public_key();
  const Ping ping{new_txid(), node, 0, 0};
  const Bytes pkt = sealed(p, ping);
  EXPECT_EQ(pkt.size(), 124u);
  EXPECT_EQ(classify_datagram(pkt), DatagramKind::kDisco);
  EXPECT_EQ(parse_header(pkt)->sender, p.a.public_key());
  const Message m = open_parse(p.b_from_a, pkt);
  ASSERT_TRUE(std::holds_alternative<Ping>(m));
  EXPECT_EQ(std::get<Ping>(m).node_key, node);
  EXPECT_EQ(std::get<Ping>(m).txid, ping.txid);
}

TEST(DiscoBox, PongRoundTripsAndEchoesSrc) {
  Pair p;
  const Pong pong{new_txid(), IpPort::parse("[::]:1").value(), 0};
  const Bytes pkt = sealed(p, pong);
  EXPECT_EQ(pkt.size(), 110u);
  EXPECT_EQ(std::get<Pong>(open_parse(p.b_from_a, pkt)), pong);
}

TEST(DiscoBox, CallMeMaybeRoundTripsThroughSealAndOpen) {
  Pair p;
  const std::vector<IpPort> eps{IpPort::parse("[2001:db8::1]:1").value(),
                                IpPort::parse("[2001:db8::2]:2").value(),
                                IpPort::parse("[2001:db8::3]:3").value()};
  const Bytes pkt = sealed(p, make_call_me_maybe(eps));
  EXPECT_EQ(pkt.size(), 80u + 3 * 18);
  const auto got = std::get<CallMeMaybe>(open_parse(p.b_from_a, pkt)).endpoints;
  EXPECT_EQ(std::vector<IpPort>(got.begin(), got.end()), eps);
}

TEST(DiscoBox, ThirdPartyKeyCannotOpen) {
  Pair p;
  const DiscoPrivate eve = DiscoPrivate::generate();
  auto eve_key = DiscoSharedKey::derive(eve, p.a.public_key()).value();
  Bytes pkt = sealed(p, CallMeMaybe{});
  EXPECT_EQ(open_in_place(eve_key, pkt).status, OpenStatus::kAuthFailed);
}

TEST(DiscoBox, FreshNonceForEveryMessage) {
  Pair p;
  const Bytes x = sealed(p, CallMeMaybe{});
  const Bytes y = sealed(p, CallMeMaybe{});
  EXPECT_NE(parse_header(x)->nonce, parse_header(y)->nonce);
  EXPECT_NE(x, y);
}

TEST(DiscoBox, OpenIntoBufferLeavesPacketUntouched) {
  Pair p;
  const Bytes pkt = sealed(p, Pong{new_txid(), IpPort::parse("1.2.3.4:5").value(), 0});
  const Bytes copy = pkt;
  Bytes pt(pkt.size() - kOverhead);
  ASSERT_TRUE(open(p.b_from_a, pkt, pt).ok());
  EXPECT_EQ(pkt, copy);
  Bytes small(pt.size() - 1);
  EXPECT_EQ(open(p.b_from_a, pkt, small).status, OpenStatus::kBufferTooSmall);
}

TEST(DiscoBox, ShortOrMaglessPacketsAreNotDisco) {
  Pair p;
  Bytes pkt = sealed(p, CallMeMaybe{});
  Bytes short_pkt(pkt.begin(), pkt.begin() + kOverhead - 1);
  EXPECT_EQ(open_in_place(p.b_from_a, short_pkt).status, OpenStatus::kNotDisco);
  Bytes empty;
  EXPECT_EQ(open_in_place(p.b_from_a, empty).status, OpenStatus::kNotDisco);
  pkt[0] ^= 1;
  EXPECT_EQ(open_in_place(p.b_from_a, pkt).status, OpenStatus::kNotDisco);
  EXPECT_FALSE(parse_header(pkt).has_value());
}

TEST(DiscoBox, HeaderAndTagOnlyPacketOpensToEmptyPlaintextThatDoesNotParse) {
  Pair p;
  Bytes pkt(kOverhead);
  ASSERT_EQ(seal(p.a_to_b, p.a.public_key(), ByteView{}, pkt), kOverhead);
  auto opened = open_in_place(p.b_from_a, pkt);
  ASSERT_TRUE(opened.ok());
  EXPECT_TRUE(opened.plaintext.empty());
  EXPECT_FALSE(parse_message(opened.plaintext).ok());
}

TEST(DiscoBox, UnknownTypeOpensAndIsReportedUnknown) {
  Pair p;
  const Message m = open_parse(p.b_from_a, sealed(p, UnknownMessage{7, 0}));
  ASSERT_TRUE(std::holds_alternative<UnknownMessage>(m));
  EXPECT_EQ(std::get<UnknownMessage>(m).code, 7);
}

TEST(DiscoBox, LowOrderPeerKeyIsRefused) {
  EXPECT_FALSE(DiscoSharedKey::derive(DiscoPrivate::generate(), DiscoPublic{}).ok());
}

TEST(DiscoBox, SealIntoTooSmallBufferWritesNothing) {
  Pair p;
  Bytes out(kOverhead + 1);
  EXPECT_EQ(seal_message(p.a_to_b, p.a.public_key(), CallMeMaybe{}, out), 0u);
}

}  // namespace
}  // namespace tw::disco

namespace tw::disco {
namespace {

// X25519 ignores bit 255 of a public key, so a header key with that bit flipped
// opens the same box: peers must be looked up by the exact header bytes (an unknown
// key is dropped before opening), never by "does it open".
TEST(DiscoBox, SenderKeyWithBit255FlippedOpensSoLookupMustUseExactKeyBytes) {
  Pair p;
  Bytes pkt = sealed(p, CallMeMaybe{});
  pkt[kMagic.size() + kKeyLen - 1] ^= 0x80;
  const DiscoPublic claimed = parse_header(pkt)->sender;
  EXPECT_NE(claimed, p.a.public_key());
  auto key = DiscoSharedKey::derive(p.b, claimed).value();
  EXPECT_TRUE(open_in_place(key, pkt).ok());
}

}  // namespace
}  // namespace tw::disco
