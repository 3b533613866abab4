#include "netproc/derp/http_upgrade.h"

#include <gtest/gtest.h>

namespace tw::derp {
namespace {

Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

TEST(DerpHttpUpgrade, SwitchingProtocolsIsAcceptedAndFrameBytesAfterItAreKept) {
  std::string resp = switching_protocols_response(std::string(64, 'a')) + std::string("\x01\x00", 2);
  auto r = parse_upgrade_response(text(resp));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->status, 101);
  EXPECT_EQ((*r)->headers.at("derp-public-key"), std::string(64, 'a'));
  EXPECT_EQ((*r)->length, resp.size() - 2);
}

TEST(DerpHttpUpgrade, PartialResponseWaitsForMore) {
  auto r = parse_upgrade_response(text("HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n"));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST(DerpHttpUpgrade, AnyStatusOtherThan101IsAnError) {
  EXPECT_FALSE(parse_upgrade_response(text("HTTP/1.1 426 Upgrade Required\r\n\r\n")).ok());
  EXPECT_FALSE(parse_upgrade_response(text("HTTP/1.1 200 OK\r\n\r\n")).ok());
  EXPECT_FALSE(parse_upgrade_response(text("SSH-2.0-OpenSSH\r\n\r\n")).ok());
  EXPECT_FALSE(parse_upgrade_response(text("HTTP/1.1 1O1 x\r\n\r\n")).ok());
}

TEST(DerpHttpUpgrade, HeaderBlockWithoutEndIsRejectedAtTheBound) {
  Bytes junk(kMaxHttpHeaderBytes, 'a');
  EXPECT_FALSE(parse_upgrade_response(junk).ok());
}

TEST(DerpHttpUpgrade, ControlBytesAndNamelessHeadersAreRejected) {
  EXPECT_FALSE(parse_upgrade_response(text("HTTP/1.1 101 x\r\nA: b\x01\r\n\r\n")).ok());
  EXPECT_FALSE(parse_upgrade_response(text("HTTP/1.1 101 x\r\n: b\r\n\r\n")).ok());
}

TEST(DerpHttpUpgrade, ServerSeesUpgradeCaseInsensitivelyAndFastStart) {
  auto r = parse_upgrade_request(text("GET /derp HTTP/1.1\r\nHost: x\r\nupgrade: DeRp\r\nDerp-Fast-Start: 1\r\n\r\n"));
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->method, "GET");
  EXPECT_EQ((*r)->path, "/derp");
  EXPECT_TRUE((*r)->wants_derp());
  EXPECT_TRUE((*r)->fast_start());
  auto plain = parse_upgrade_request(text(upgrade_request("derp.example")));
  ASSERT_TRUE(plain.ok() && plain->has_value());
  EXPECT_TRUE((*plain)->wants_derp());
  EXPECT_FALSE((*plain)->fast_start());
  EXPECT_EQ((*plain)->headers.at("host"), "derp.example");
}

}  // namespace
}  // namespace tw::derp
