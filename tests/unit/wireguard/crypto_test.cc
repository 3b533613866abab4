// Known answers for the primitives WireGuard is built from, so a provider or
// parameter mistake fails here and not only as an interop failure.
#include "dataproc/wireguard/crypto.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

#include "common/keys.h"
#include "dataproc/wireguard/messages.h"
#include "dataproc/wireguard/tai64n.h"

namespace tw::wg {
namespace {

ByteView str(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

class Crypto : public ::testing::Test {
 protected:
  void SetUp() override { wg_crypto_init(); }
};

TEST_F(Crypto, Blake2sMatchesRfc7693Vectors) {
  EXPECT_EQ(to_hex(blake2s({})), "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9");
  EXPECT_EQ(to_hex(blake2s({str("abc")})),
            "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
  // Split input hashes the same as joined input.
  EXPECT_EQ(blake2s({str("a"), str("bc")}), blake2s({str("abc")}));
}

TEST_F(Crypto, NoiseConstructionHashIsWireGuardsInitialChainKey) {
  EXPECT_EQ(to_hex(blake2s({str("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s")})),
            "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
}

TEST_F(Crypto, KeyedBlake2sWith16ByteOutputMatchesReference) {
  Bytes key32(32), key16(16);
  for (int i = 0; i < 32; ++i) key32[i] = static_cast<std::uint8_t>(i);
  for (int i = 0; i < 16; ++i) key16[i] = static_cast<std::uint8_t>(i);
  // Computed with Python's hashlib.blake2s(data, key=..., digest_size=16).
  EXPECT_EQ(to_hex(blake2s_mac(key32, str("hello wireguard"))), "d7ced850c9c0917a705fad04539c3a01");
  EXPECT_EQ(to_hex(blake2s_mac(key16, str("hello wireguard"))), "f79336d9851d215e27a23c66eae32bed");
}

TEST_F(Crypto, HmacBlake2sMatchesReferenceAndTheHmacConstruction) {
  EXPECT_EQ(to_hex(hmac_blake2s(str("key"), {str("The quick brown fox")})),
            "8717096fc5e7ac53d11d990acd4380c9ddd7bd8da5d8b5bc29855e6c98a866a4");
  // HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)) with BLAKE2s's 64-byte block.
  Bytes k(64, 0), ipad(64), opad(64);
  const std::string key = "a 32 byte chaining key.........!";
  for (std::size_t i = 0; i < key.size(); ++i) k[i] = static_cast<std::uint8_t>(key[i]);
  for (int i = 0; i < 64; ++i) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  const Hash inner = blake2s({ipad, str("message")});
  EXPECT_EQ(hmac_blake2s(str(key), {str("message")}), blake2s({opad, inner}));
}

TEST_F(Crypto, KdfIsHkdfOverHmacBlake2s) {
  Hash ck{};
  ck.fill(7);
  Hash t1, t2, t3;
  kdf3(t1, t2, t3, ck, str("input"));
  const Hash prk = hmac_blake2s(ck, {str("input")});
  const std::uint8_t one = 1, two = 2, three = 3;
  EXPECT_EQ(t1, hmac_blake2s(prk, {ByteView(&one, 1)}));
  EXPECT_EQ(t2, hmac_blake2s(prk, {t1, ByteView(&two, 1)}));
  EXPECT_EQ(t3, hmac_blake2s(prk, {t2, ByteView(&three, 1)}));
  Hash u1, u2;
  kdf2(u1, u2, ck, str("input"));
  EXPECT_EQ(u1, t1);
  EXPECT_EQ(u2, t2);
}

TEST_F(Crypto, X25519RejectsAllZeroSharedSecret) {
  const KeyBytes priv = NodePrivate::generate().bytes();
  std::uint8_t zero_point[32] = {};
  std::uint8_t out[32];
  EXPECT_FALSE(x25519(out, priv.data(), zero_point));
  const KeyBytes other = x25519_base(NodePrivate::generate().bytes());
  EXPECT_TRUE(x25519(out, priv.data(), other.data()));
}

TEST_F(Crypto, AeadNonceIsFourZeroBytesThenLittleEndianCounter) {
  SymKey key{};
  key.fill(3);
  const std::uint64_t counter = 0x0102030405060708ULL;
  const std::string msg = "packet";
  Bytes ours(msg.size() + 16), reference(msg.size() + 16);
  aead_seal(ours.data(), key, counter, str(msg), {});
  const std::uint8_t nonce[12] = {0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1};
  crypto_aead_chacha20poly1305_ietf_encrypt(reference.data(), nullptr,
                                            reinterpret_cast<const std::uint8_t*>(msg.data()),
                                            msg.size(), nullptr, 0, nullptr, nonce, key.data());
  EXPECT_EQ(ours, reference);
  Bytes plain(msg.size());
  EXPECT_TRUE(aead_open(plain.data(), key, counter, ours, {}));
  EXPECT_FALSE(aead_open(plain.data(), key, counter + 1, ours, {}));
}

// aead_seal/aead_open are OpenSSL's; libsodium is the independent reference here:
// every size a WireGuard packet or handshake field has, with and without associated
// data, in place (out == in), and a forgery leaves no plaintext behind.
TEST_F(Crypto, AeadAgreesWithLibsodiumInPlaceWithAssociatedDataAndRefusesForgeries) {
  SymKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i * 13 + 1);
  const Bytes ad(32, 0x5A);
  for (std::size_t len : {0u, 1u, 16u, 32u, 63u, 64u, 65u, 1280u, 1420u, 9000u}) {
    for (bool with_ad : {false, true}) {
      const ByteView a = with_ad ? ByteView(ad) : ByteView();
      Bytes plain(len);
      for (std::size_t i = 0; i < len; ++i) plain[i] = static_cast<std::uint8_t>(i ^ len);
      const std::uint64_t counter = 1000 + len;
      Bytes buf(len + 16);
      std::copy(plain.begin(), plain.end(), buf.begin());
      aead_seal(buf.data(), key, counter, ByteView(buf.data(), len), a);  // in place
      Bytes reference(len + 16);
      std::uint8_t nonce[12] = {};
      for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (8 * i));
      crypto_aead_chacha20poly1305_ietf_encrypt(reference.data(), nullptr, plain.data(), len,
                                                a.data(), a.size(), nullptr, nonce, key.data());
      ASSERT_EQ(buf, reference) << len << " " << with_ad;
      Bytes forged = buf;
      forged[len / 2] ^= 1;
      Bytes out(len, 0xCC);
      EXPECT_FALSE(aead_open(out.data(), key, counter, forged, a)) << len;
      EXPECT_EQ(out, Bytes(len, 0)) << "no unauthenticated plaintext is left";
      if (with_ad) {
        EXPECT_FALSE(aead_open(out.data(), key, counter, buf, {})) << len;
      }
      ASSERT_TRUE(aead_open(buf.data(), key, counter, buf, a)) << len;  // in place
      EXPECT_EQ(Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(len)), plain);
    }
  }
  // Keys alternating from call to call (the contexts re-key only on a change).
  SymKey other = key;
  other[0] ^= 0x80;
  const Bytes p(100, 0x33);
  for (int round = 0; round < 4; ++round) {
    const SymKey& k = round % 2 == 0 ? key : other;
    Bytes c(p.size() + 16), reference(p.size() + 16), back(p.size());
    aead_seal(c.data(), k, 7, p, {});
    const std::uint8_t nonce[12] = {0, 0, 0, 0, 7};
    crypto_aead_chacha20poly1305_ietf_encrypt(reference.data(), nullptr, p.data(), p.size(),
                                              nullptr, 0, nullptr, nonce, k.data());
    EXPECT_EQ(c, reference) << round;
    EXPECT_TRUE(aead_open(back.data(), k, 7, c, {})) << round;
    EXPECT_FALSE(aead_open(back.data(), round % 2 == 0 ? other : key, 7, c, {})) << round;
    EXPECT_TRUE(aead_open(back.data(), k, 7, c, {})) << round;
  }
}

// aead_seal_padded (the transport send path) against libsodium sealing the plaintext
// with its zero padding appended: every padding a packet can get (0..15) plus
// longer runs than the internal zero block, into a separate buffer and in place,
// and aead_open gives back the plaintext followed by zeros.
TEST_F(Crypto, AeadSealPaddedAgreesWithLibsodiumOverPlaintextAndZeros) {
  SymKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i * 7 + 5);
  for (std::size_t len : {0u, 1u, 15u, 16u, 63u, 64u, 65u, 1279u, 1404u, 1420u}) {
    for (std::size_t pad : {0u, 1u, 3u, 8u, 15u, 64u, 200u}) {
      Bytes plain(len);
      for (std::size_t i = 0; i < len; ++i) plain[i] = static_cast<std::uint8_t>(i * 31 + len);
      Bytes padded = plain;
      padded.resize(len + pad, 0);
      const std::uint64_t counter = (len << 8) + pad;
      std::uint8_t nonce[12] = {};
      for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(counter >> (8 * i));
      Bytes reference(len + pad + 16);
      crypto_aead_chacha20poly1305_ietf_encrypt(reference.data(), nullptr, padded.data(),
                                                padded.size(), nullptr, 0, nullptr, nonce,
                                                key.data());
      Bytes out(len + pad + 16, 0xEE);
      aead_seal_padded(out.data(), key, counter, plain, pad);
      ASSERT_EQ(out, reference) << len << " " << pad;
      Bytes in_place(len + pad + 16, 0xEE);
      std::copy(plain.begin(), plain.end(), in_place.begin());
      aead_seal_padded(in_place.data(), key, counter, ByteView(in_place.data(), len), pad);
      ASSERT_EQ(in_place, reference) << len << " " << pad << " in place";
      Bytes back(len + pad, 0xCC);
      ASSERT_TRUE(aead_open(back.data(), key, counter, out, {})) << len << " " << pad;
      EXPECT_EQ(back, padded);
    }
  }
}

TEST_F(Crypto, XaeadRoundTripsAndBindsAssociatedData) {
  SymKey key{};
  key.fill(9);
  std::uint8_t nonce[24] = {1};
  Bytes c(16 + 16), p(16, 0x42), back(16);
  xaead_seal(c.data(), key, nonce, p, str("ad"));
  EXPECT_TRUE(xaead_open(back.data(), key, nonce, c, str("ad")));
  EXPECT_EQ(back, p);
  EXPECT_FALSE(xaead_open(back.data(), key, nonce, c, str("AD")));
}

TEST(Tai64n, EncodesSecondsPlusTwoToTheSixtyTwoBigEndian) {
  const auto t = WallClock::time_point{} + std::chrono::seconds(1) + std::chrono::milliseconds(500);
  const Tai64n ts = tai64n_from(t);
  EXPECT_EQ(to_hex(ts), "4000000000000001" "1d000000");  // 500 ms rounded down to 2^24 ns
  const Tai64n later = tai64n_from(t + std::chrono::milliseconds(20));
  EXPECT_TRUE(tai64n_after(later, ts));
  EXPECT_FALSE(tai64n_after(ts, ts));
  EXPECT_FALSE(tai64n_after(ts, later));
}

TEST(Messages, ClassifiesByTypeAndExactSize) {
  Bytes m(148, 0);
  m[0] = 1;
  EXPECT_EQ(classify_message(m), MessageType::kInitiation);
  m.push_back(0);
  EXPECT_EQ(classify_message(m), std::nullopt);
  Bytes r(92, 0);
  r[0] = 2;
  EXPECT_EQ(classify_message(r), MessageType::kResponse);
  r[1] = 1;  // reserved bytes must be zero
  EXPECT_EQ(classify_message(r), std::nullopt);
  Bytes c(64, 0);
  c[0] = 3;
  EXPECT_EQ(classify_message(c), MessageType::kCookieReply);
  Bytes t(31, 0);
  t[0] = 4;
  EXPECT_EQ(classify_message(t), std::nullopt);
  t.push_back(0);
  EXPECT_EQ(classify_message(t), MessageType::kTransport);
}

}  // namespace
}  // namespace tw::wg
