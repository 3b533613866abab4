// Noise IK initiator and the ts2021 record layer. The responder below is test code
// built from the same primitives (libsodium, OpenSSL BLAKE2s) following the Noise
// spec step by step; the interop proof is tests/integration/ctlproc against Go.
#include "ctlproc/noise.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>

#include "dataproc/wireguard/crypto.h"

namespace tw::ctl {
namespace {

struct Responder {
  KeyBytes s_priv;
  wg::Hash h{}, ck{};
  wg::SymKey k{};
  KeyBytes re{};
  KeyBytes initiator_static{};

  void mix(ByteView d) { h = wg::blake2s({ByteView(h), d}); }
  void mix_key(const KeyBytes& priv, const KeyBytes& pub) {
    std::uint8_t dh[32];
    ASSERT_TRUE(wg::x25519(dh, priv.data(), pub.data()));
    wg::Hash a, b;
    wg::kdf2(a, b, ck, ByteView(dh, 32));
    ck = a;
    k = b;
  }
  // Returns the 51-byte response and the transport keys (send = server->client).
  std::pair<Bytes, TransportKeys> respond(const std::array<std::uint8_t, kInitiationLen>& init) {
    const std::string name = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
    h = wg::blake2s({ByteView(reinterpret_cast<const std::uint8_t*>(name.data()), name.size())});
    ck = h;
    const std::uint16_t version = load_be16(&init[0]);
    const std::string prologue = noise_prologue(version);
    mix(ByteView(reinterpret_cast<const std::uint8_t*>(prologue.data()), prologue.size()));
    const KeyBytes s_pub = x25519_base(s_priv);
    mix(s_pub);
    std::memcpy(re.data(), &init[5], 32);
    mix(re);
    mix_key(s_priv, re);
    std::uint8_t plain[32];
    EXPECT_TRUE(wg::aead_open(plain, k, 0, ByteView(&init[37], 48), h));
    std::memcpy(initiator_static.data(), plain, 32);
    mix(ByteView(&init[37], 48));
    mix_key(s_priv, initiator_static);
    std::uint8_t empty[1];
    EXPECT_TRUE(wg::aead_open(empty, k, 0, ByteView(&init[85], 16), h));
    mix(ByteView(&init[85], 16));
    // <- e, ee, se
    const KeyBytes e_priv = random_clamped_private();
    const KeyBytes e_pub = x25519_base(e_priv);
    Bytes resp(kResponseLen);
    resp[0] = kMsgResponse;
    store_be16(&resp[1], 48);
    std::memcpy(&resp[3], e_pub.data(), 32);
    mix(e_pub);
    mix_key(e_priv, re);
    mix_key(e_priv, initiator_static);
    wg::aead_seal(&resp[35], k, 0, ByteView(), h);
    mix(ByteView(&resp[35], 16));
    wg::Hash k1, k2;
    wg::kdf2(k1, k2, ck, ByteView());
    TransportKeys keys;
    keys.send = k2;
    keys.recv = k1;
    keys.handshake_hash = h;
    return {resp, keys};
  }
};

class NoiseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto_init();
    wg::wg_crypto_init();
  }
};

TEST_F(NoiseTest, InitiationLayout) {
  const KeyBytes machine = random_clamped_private();
  const KeyBytes control = x25519_base(random_clamped_private());
  const KeyBytes eph = random_clamped_private();
  Initiator ini(machine, control, 116, eph);
  auto msg = ini.initiation();
  ASSERT_TRUE(msg.ok());
  EXPECT_EQ(load_be16(&(*msg)[0]), 116);
  EXPECT_EQ((*msg)[2], kMsgInitiation);
  EXPECT_EQ(load_be16(&(*msg)[3]), 96);
  const KeyBytes eph_pub = x25519_base(eph);
  EXPECT_EQ(0, std::memcmp(&(*msg)[5], eph_pub.data(), 32));
  EXPECT_EQ(noise_prologue(142), "Tailscale Control Protocol v142");
}

TEST_F(NoiseTest, HandshakeAgreesWithAResponderAndCarriesTheMachineKey) {
  const KeyBytes machine = random_clamped_private();
  Responder r;
  r.s_priv = random_clamped_private();
  Initiator ini(machine, x25519_base(r.s_priv), 116);
  auto msg = ini.initiation();
  ASSERT_TRUE(msg.ok());
  auto [resp, server_keys] = r.respond(*msg);
  EXPECT_EQ(r.initiator_static, x25519_base(machine));
  auto keys = ini.finish(resp);
  ASSERT_TRUE(keys.ok()) << keys.error();
  EXPECT_EQ(keys->send, server_keys.recv);
  EXPECT_EQ(keys->recv, server_keys.send);
  EXPECT_NE(keys->send, keys->recv);
  EXPECT_EQ(keys->handshake_hash, server_keys.handshake_hash);
}

TEST_F(NoiseTest, TamperedResponseAndErrorMessagesAreRefused) {
  Responder r;
  r.s_priv = random_clamped_private();
  {
    Initiator ini(random_clamped_private(), x25519_base(r.s_priv), 116);
    auto msg = ini.initiation();
    auto [resp, keys] = r.respond(*msg);
    resp[40] ^= 1;
    auto out = ini.finish(resp);
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.error().find("authentication"), std::string::npos) << out.error();
  }
  {
    Initiator ini(random_clamped_private(), x25519_base(r.s_priv), 116);
    ASSERT_TRUE(ini.initiation().ok());
    const std::string text = "unsupported version\x01";
    Bytes err = {kMsgError, 0, static_cast<std::uint8_t>(text.size())};
    err.insert(err.end(), text.begin(), text.end());
    auto out = ini.finish(err);
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.error().find("\"unsupported version?\""), std::string::npos) << out.error();
  }
  {
    Initiator ini(random_clamped_private(), x25519_base(r.s_priv), 116);
    ASSERT_TRUE(ini.initiation().ok());
    Bytes wrong(kResponseLen, 0);
    wrong[0] = 7;
    EXPECT_FALSE(ini.finish(wrong).ok());
  }
  // A low-order control key (all zeros) is refused before anything is sent.
  Initiator bad(random_clamped_private(), KeyBytes{}, 116);
  EXPECT_FALSE(bad.initiation().ok());
}

TEST_F(NoiseTest, RecordNonceIsBigEndian) {
  SymKey32 key;
  randombytes_buf(key.data(), key.size());
  RecordWriter w(key);
  Bytes out;
  const Bytes one = {'a', 'b', 'c'};
  ASSERT_TRUE(w.seal(one, out).ok());
  ASSERT_TRUE(w.seal(one, out).ok());
  ASSERT_EQ(out.size(), 2 * (3 + 3 + 16));
  EXPECT_EQ(out[0], kMsgRecord);
  EXPECT_EQ(load_be16(&out[1]), 19);
  // The second record is counter 1: nonce 00000000 || 00 00 00 00 00 00 00 01.
  std::uint8_t be[12] = {0};
  be[11] = 1;
  std::uint8_t le[12] = {0};
  le[4] = 1;
  std::uint8_t plain[3];
  unsigned long long n = 0;
  const std::uint8_t* second = &out[22 + 3];
  EXPECT_EQ(0, crypto_aead_chacha20poly1305_ietf_decrypt(plain, &n, nullptr, second, 19, nullptr, 0,
                                                         be, key.data()));
  EXPECT_EQ(0, std::memcmp(plain, "abc", 3));
  EXPECT_NE(0, crypto_aead_chacha20poly1305_ietf_decrypt(plain, &n, nullptr, second, 19, nullptr, 0,
                                                         le, key.data()));
}

TEST_F(NoiseTest, LargeWritesSplitIntoFramesOf4096AndReassembleByteByByte) {
  SymKey32 key;
  randombytes_buf(key.data(), key.size());
  Bytes plain(10000);
  randombytes_buf(plain.data(), plain.size());
  RecordWriter w(key);
  Bytes wire;
  ASSERT_TRUE(w.seal(plain, wire).ok());
  // Frames: 4077 + 4077 + 1846 plaintext.
  std::size_t pos = 0, frames = 0;
  while (pos < wire.size()) {
    const std::size_t len = load_be16(&wire[pos + 1]);
    EXPECT_LE(len + 3, kMaxFrameLen);
    pos += 3 + len;
    ++frames;
  }
  EXPECT_EQ(frames, 3u);
  EXPECT_EQ(load_be16(&wire[1]) + 3u, kMaxFrameLen);
  RecordReader r(key);
  Bytes got;
  for (std::uint8_t b : wire) ASSERT_TRUE(r.feed(ByteView(&b, 1), got).ok());
  EXPECT_EQ(got, plain);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST_F(NoiseTest, ReaderRefusesBadFramesAndStaysFailed) {
  SymKey32 key;
  randombytes_buf(key.data(), key.size());
  auto sealed = [&](std::uint64_t skip) {
    RecordWriter w(key);
    Bytes out;
    for (std::uint64_t i = 0; i <= skip; ++i) {
      out.clear();
      EXPECT_TRUE(w.seal(Bytes{1, 2, 3}, out).ok());
    }
    return out;
  };
  {
    RecordReader r(key);
    Bytes frame = sealed(0);
    frame[0] = kMsgResponse;
    Bytes got;
    auto st = r.feed(frame, got);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().find("unexpected message type 2"), std::string::npos);
    EXPECT_FALSE(r.feed(sealed(0), got).ok()) << "a failed reader must stay failed";
  }
  {
    RecordReader r(key);
    Bytes big = {kMsgRecord, 0x0f, 0xfe};  // 4094 > 4093
    Bytes got;
    auto st = r.feed(big, got);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().find("4093"), std::string::npos);
  }
  {
    RecordReader r(key);
    Bytes frame = sealed(0);
    frame.back() ^= 0x80;
    Bytes got;
    EXPECT_FALSE(r.feed(frame, got).ok());
  }
  {
    // A record sealed with counter 1 does not open as the first record.
    RecordReader r(key);
    Bytes got;
    EXPECT_FALSE(r.feed(sealed(1), got).ok());
  }
  {
    RecordReader r(key);
    Bytes tiny = {kMsgRecord, 0, 5, 1, 2, 3, 4, 5};
    Bytes got;
    EXPECT_FALSE(r.feed(tiny, got).ok());
  }
}

TEST_F(NoiseTest, EarlyPayloadIsStrippedAndOtherBytesPassThrough) {
  const std::string json = R"({"nodeKeyChallenge":"chalpub:00"})";
  Bytes in = {0xff, 0xff, 0xff, 'T', 'S', 0, 0, 0, static_cast<std::uint8_t>(json.size())};
  in.insert(in.end(), json.begin(), json.end());
  const Bytes h2 = {0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100};
  in.insert(in.end(), h2.begin(), h2.end());
  {
    EarlyPayloadFilter f;
    Bytes out;
    for (std::uint8_t b : in) ASSERT_TRUE(f.feed(ByteView(&b, 1), out).ok());
    EXPECT_EQ(out, h2);
    EXPECT_TRUE(f.saw_payload());
    EXPECT_EQ(f.challenge(), "chalpub:00");
  }
  {
    EarlyPayloadFilter f;
    Bytes out;
    ASSERT_TRUE(f.feed(h2, out).ok());
    EXPECT_EQ(out, h2);
    EXPECT_FALSE(f.saw_payload());
  }
  {
    EarlyPayloadFilter f;
    Bytes out;
    Bytes huge = {0xff, 0xff, 0xff, 'T', 'S', 0x7f, 0, 0, 0};
    EXPECT_FALSE(f.feed(huge, out).ok());
  }
  {
    EarlyPayloadFilter f;
    Bytes out;
    Bytes junk = {0xff, 0xff, 0xff, 'T', 'S', 0, 0, 0, 3, 'a', 'b', 'c'};
    EXPECT_FALSE(f.feed(junk, out).ok());
  }
}

}  // namespace
}  // namespace tw::ctl
