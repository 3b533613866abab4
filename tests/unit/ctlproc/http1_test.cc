#include "ctlproc/http1.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>

namespace tw::ctl {
namespace {

ByteView bv(const std::string& s) {
  return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

const std::string kKey = "mkey:9f512dea1cb0688378c1f4e7023a7073fcab79cde61f3db6fcfd1138bf98cc71";

TEST(Http1Test, KeyRequestAndResponse) {
  EXPECT_EQ(key_request("198.18.0.1:8080", 116)
                .rfind("GET /key?v=116 HTTP/1.1\r\nHost: 198.18.0.1:8080\r\n", 0),
            0u);
  const std::string body =
      R"({"legacyPublicKey":"mkey:0000000000000000000000000000000000000000000000000000000000000000","publicKey":")" +
      kKey + R"(","extra":1})";
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body;
  auto k = parse_key_response(bv(resp), false);
  ASSERT_TRUE(k.ok()) << k.error();
  ASSERT_TRUE(k->has_value());
  EXPECT_EQ((*k)->to_string(), kKey);
  // Incomplete body: wait; at EOF: error.
  auto part = parse_key_response(bv(resp.substr(0, resp.size() - 3)), false);
  ASSERT_TRUE(part.ok());
  EXPECT_FALSE(part->has_value());
  EXPECT_FALSE(parse_key_response(bv(resp.substr(0, resp.size() - 3)), true).ok());
}

TEST(Http1Test, KeyResponseErrors) {
  auto err = [](const std::string& resp) {
    auto k = parse_key_response(bv(resp), true);
    return k.ok() ? std::string("ok") : k.error();
  };
  EXPECT_NE(err("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").find("HTTP 404"),
            std::string::npos);
  EXPECT_NE(err("HTTP/1.1 200 OK\r\n\r\n9f512dea").find("not JSON"), std::string::npos);
  EXPECT_NE(err("HTTP/1.1 200 "
                "OK\r\n\r\n{\"publicKey\":\"mkey:"
                "0000000000000000000000000000000000000000000000000000000000000000\"}")
                .find("zero"),
            std::string::npos);
  EXPECT_NE(err("HTTP/1.1 200 "
                "OK\r\n\r\n{\"publicKey\":\"nodekey:"
                "9f512dea1cb0688378c1f4e7023a7073fcab79cde61f3db6fcfd1138bf98cc71\"}")
                .find("publicKey"),
            std::string::npos);
  EXPECT_NE(err("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").find("chunked"),
            std::string::npos);
  EXPECT_NE(err("HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\n").find("64 KiB"),
            std::string::npos);
}

TEST(Http1Test, UpgradeRequestCarriesTheWholeInitiationInBase64) {
  std::array<std::uint8_t, kInitiationLen> init{};
  for (std::size_t i = 0; i < init.size(); ++i) init[i] = static_cast<std::uint8_t>(i * 7);
  const std::string req = upgrade_request("ctl.example:80", init);
  EXPECT_EQ(req.rfind("POST /ts2021 HTTP/1.1\r\nHost: ctl.example:80\r\n", 0), 0u);
  EXPECT_NE(req.find("\r\nUpgrade: tailscale-control-protocol\r\n"), std::string::npos);
  EXPECT_NE(req.find("\r\nConnection: upgrade\r\n"), std::string::npos);
  const std::string tag = "X-Tailscale-Handshake: ";
  auto p = req.find(tag);
  ASSERT_NE(p, std::string::npos);
  const std::string b64 = req.substr(p + tag.size(), req.find("\r\n", p) - p - tag.size());
  EXPECT_EQ(b64.size(), 136u);
  std::uint8_t back[kInitiationLen + 8];
  std::size_t n = 0;
  ASSERT_EQ(0, sodium_base642bin(back, sizeof back, b64.data(), b64.size(), nullptr, &n, nullptr,
                                 sodium_base64_VARIANT_ORIGINAL));
  ASSERT_EQ(n, kInitiationLen);
  EXPECT_EQ(0, std::memcmp(back, init.data(), n));
}

TEST(Http1Test, UpgradeReplyKeepsTheBytesAfterTheHeader) {
  const std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: tailscale-control-protocol\r\nConnection: "
      "upgrade\r\n\r\n";
  auto r = parse_upgrade_reply(bv(head + "\x02\x00\x30rest"));
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->length, head.size());
  auto partial = parse_upgrade_reply(bv(head.substr(0, 20)));
  ASSERT_TRUE(partial.ok());
  EXPECT_FALSE(partial->has_value());
  // The Upgrade value is compared exactly, as Tailscale's client does.
  auto wrong =
      parse_upgrade_reply(bv("HTTP/1.1 101 x\r\nUpgrade: Tailscale-Control-Protocol\r\n\r\n"));
  EXPECT_FALSE(wrong.ok());
  auto refused = parse_upgrade_reply(bv("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("HTTP 400"), std::string::npos);
}

}  // namespace
}  // namespace tw::ctl
