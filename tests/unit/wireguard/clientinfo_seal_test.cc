#include "dataproc/wireguard/clientinfo_seal.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

namespace tw::wg {
namespace {

ByteView str(const std::string& s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

KeyBytes filled(std::uint8_t v) {
  KeyBytes k;
  k.fill(v);
  return k;
}

class ClientInfoSeal : public ::testing::Test {
 protected:
  void SetUp() override { crypto_init(); }
  const KeyBytes client_priv = filled(0x44);
  const KeyBytes server_priv = filled(0x55);
  const NodePublic server{x25519_base(server_priv)};

  // Opens a sealed ClientInfo the way a DERP server does.
  std::string open(const Bytes& sealed) {
    EXPECT_GE(sealed.size(), 32u + 24 + crypto_box_MACBYTES);
    std::string plain(sealed.size() - 56 - crypto_box_MACBYTES, '\0');
    EXPECT_EQ(crypto_box_open_easy(reinterpret_cast<std::uint8_t*>(plain.data()), sealed.data() + 56,
                                   sealed.size() - 56, sealed.data() + 32, sealed.data(),
                                   server_priv.data()),
              0);
    return plain;
  }
};

TEST_F(ClientInfoSeal, SealsTailscaledsClientInfoForTheServer) {
  auto sealed = seal_derp_client_info(client_priv, server, str(R"({"version":2,"CanAckPings":true})"));
  ASSERT_TRUE(sealed.ok()) << sealed.error();
  // Our node public key leads, as in Go's DERP handshake vector.
  EXPECT_EQ(to_hex(ByteView(sealed->data(), 32)),
            "ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b");
  EXPECT_EQ(open(*sealed), R"({"version":2,"CanAckPings":true})");
}

TEST_F(ClientInfoSeal, SealsACanonicalFormNotTheCallersBytes) {
  auto sealed = seal_derp_client_info(
      client_priv, server,
      str(R"( {"AppName":"tw","CanAckPings":false, "version":2,"IsProber":true,)"
          R"("meshKey":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"} )"));
  ASSERT_TRUE(sealed.ok()) << sealed.error();
  EXPECT_EQ(open(*sealed),
            R"({"meshKey":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",)"
            R"("version":2,"CanAckPings":false,"IsProber":true,"AppName":"tw"})");
}

TEST_F(ClientInfoSeal, UsesTheGivenNonceAndFreshNoncesOtherwise) {
  std::uint8_t nonce[24];
  for (int i = 0; i < 24; ++i) nonce[i] = static_cast<std::uint8_t>(i);
  auto a = seal_derp_client_info_with_nonce(client_priv, server, str(R"({"version":2})"), nonce);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(Bytes(a->begin() + 32, a->begin() + 56), Bytes(nonce, nonce + 24));
  auto b = seal_derp_client_info(client_priv, server, str(R"({"version":2})"));
  auto c = seal_derp_client_info(client_priv, server, str(R"({"version":2})"));
  EXPECT_NE(Bytes(b->begin() + 32, b->begin() + 56), Bytes(c->begin() + 32, c->begin() + 56));
}

TEST_F(ClientInfoSeal, RefusesAnythingButAClientInfo) {
  const char* bad[] = {
      "",
      "[]",
      "\"version\"",
      "{\"version\":2",                                  // truncated
      R"({"version":2,"Src":"x"})",                      // unknown field
      R"({"version":"2"})",                              // wrong type
      R"({"version":-1})",
      R"({"version":2.5})",
      R"({"CanAckPings":1})",
      R"({"meshKey":"abc"})",
      R"({"AppName":{"nested":true}})",
      R"({"AppName":"line\nbreak"})",
      R"({"type":"SendPacket","dst":"nodekey:00"})",
  };
  for (const char* j : bad) {
    EXPECT_FALSE(seal_derp_client_info(client_priv, server, str(j)).ok()) << j;
  }
  std::string huge = R"({"AppName":")" + std::string(2000, 'a') + R"("})";
  EXPECT_FALSE(seal_derp_client_info(client_priv, server, str(huge)).ok());
}

TEST_F(ClientInfoSeal, RefusesZeroOrLowOrderServerKeys) {
  EXPECT_FALSE(seal_derp_client_info(client_priv, NodePublic{}, str(R"({"version":2})")).ok());
  KeyBytes low_order{};
  low_order[0] = 1;  // the point of order 1 gives an all-zero shared secret
  EXPECT_FALSE(seal_derp_client_info(client_priv, NodePublic{low_order}, str(R"({"version":2})")).ok());
}

}  // namespace
}  // namespace tw::wg
