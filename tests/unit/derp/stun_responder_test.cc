#include "tests/support/derper/stun_responder.h"

#include <gtest/gtest.h>

namespace tw::derper {
namespace {

stun::TxId txid_1_to_12() {
  stun::TxId t{};
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::uint8_t>(i + 1);
  return t;
}

TEST(DerperStun, AnswersTailscaleBindingRequestVector) {
  Bytes req = *from_hex("000100142112a4420102030405060708090a0b0c802200087461696c6e6f646580280004b32c370f");
  auto t = parse_binding_request(req);
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(*t, txid_1_to_12());
}

TEST(DerperStun, IgnoresRequestsWithoutTailnodeOrWithBadFingerprint) {
  auto req = stun::binding_request(txid_1_to_12());
  Bytes bad_sw(req.begin(), req.end());
  bad_sw[24] = 'T';
  EXPECT_FALSE(parse_binding_request(bad_sw).ok());
  Bytes bad_fp(req.begin(), req.end());
  bad_fp[39] ^= 1;
  EXPECT_FALSE(parse_binding_request(bad_fp).ok());
  Bytes no_fp(req.begin(), req.begin() + 32);
  store_be16(no_fp.data() + 2, 12);
  EXPECT_FALSE(parse_binding_request(no_fp).ok());
}

TEST(DerperStun, ResponseDecodesToTheSenderAddress) {
  IpPort from{IpAddr::v4(198, 18, 0, 7), 41641};
  Bytes resp = binding_response(txid_1_to_12(), from);
  EXPECT_EQ(resp.size(), 32u);
  auto parsed = stun::parse_binding_response(resp);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed->mapped, from);
  EXPECT_EQ(parsed->txid, txid_1_to_12());
}

}  // namespace
}  // namespace tw::derper
