// Runs the built `tailwarden debug …` tools on the spec vectors and checks the exact
// one-line output and exit codes of the `tailwarden debug` interface.
#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "common/bytes.h"
#include "common/keys.h"

namespace {

struct ToolRun {
  int code = -1;
  std::string out;  // stdout, or stderr when err_only
};

ToolRun run(const std::string& args, bool err_only = false) {
  const std::string cmd = std::string(TW_TAILWARDEN_BIN) + " debug " + args +
                          (err_only ? " 2>&1 1>/dev/null" : " 2>/dev/null");
  ToolRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

void expect_line(const std::string& args, const std::string& line) {
  const ToolRun r = run(args);
  EXPECT_EQ(r.code, 0) << args;
  EXPECT_EQ(r.out, line + "\n") << args;
}

void expect_failure(const std::string& args) {
  const ToolRun r = run(args, /*err_only=*/true);
  EXPECT_EQ(r.code, 1) << args;
  ASSERT_FALSE(r.out.empty()) << args;
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one line on stderr: " << r.out;
  EXPECT_EQ(run(args).out, "") << "nothing on stdout: " << args;
}

TEST(DebugDiscoParse, GoldenVectorsPrintTheIssueJson) {
  expect_line(
      "disco-parse 01000102030405060708090a0b0c",
      R"({"type":"ping","version":0,"txid":"0102030405060708090a0b0c","node_key":null,"padding":0})");
  expect_line(
      "disco-parse 01000102030405060708090a0b0c000000",
      R"({"type":"ping","version":0,"txid":"0102030405060708090a0b0c","node_key":null,"padding":3})");
  expect_line(
      "disco-parse 02000102030405060708090a0b0c00000000000000000000ffff0203040504d2",
      R"({"type":"pong","version":0,"txid":"0102030405060708090a0b0c","src":"2.3.4.5:1234"})");
  expect_line("disco-parse 0300", R"({"type":"call_me_maybe","version":0,"endpoints":[]})");
  expect_line("disco-parse 0700", R"({"type":"unknown","code":7})");
}

TEST(DebugDiscoParse, PingWithNodeKeyAndIpv6EndpointsPrint) {
  const std::string key(64, 'a');
  expect_line(
      "disco-parse 01000102030405060708090a0b0c" + key,
      R"({"type":"ping","version":0,"txid":"0102030405060708090a0b0c","node_key":"nodekey:)" + key +
          R"(","padding":0})");
  expect_line("disco-parse 030020010db800000000000000000000000101bb",
              R"({"type":"call_me_maybe","version":0,"endpoints":["[2001:db8::1]:443"]})");
}

TEST(DebugDiscoParse, MalformedInputFailsWithOneLineError) {
  expect_failure("disco-parse 01");
  expect_failure("disco-parse 0100010203");                   // ping body < 12
  expect_failure("disco-parse 0200" + std::string(58, '0'));  // pong body 29 bytes
  expect_failure("disco-parse zz");
}

TEST(DebugDiscoMarshal, IsTheInverseOfParse) {
  expect_line(
      R"(disco-marshal '{"type":"pong","version":0,"txid":"0102030405060708090a0b0c","src":"2.3.4.5:1234"}')",
      "02000102030405060708090a0b0c00000000000000000000ffff0203040504d2");
  expect_line(R"(disco-marshal '{"type":"ping","txid":"0102030405060708090a0b0c","padding":3}')",
              "01000102030405060708090a0b0c000000");
  expect_line(R"(disco-marshal '{"type":"call_me_maybe","endpoints":[]}')", "0300");
  expect_failure(R"(disco-marshal '{"type":"pong"}')");
  expect_failure("disco-marshal '{not json'");
}

TEST(DebugStun, RequestVectorAndResponseVectors) {
  expect_line("stun-request --txid 0102030405060708090a0b0c",
              "000100142112a4420102030405060708090a0b0c802200087461696c6e6f646580280004b32c370f");
  expect_line("stun-parse 0101000c2112a4422360b11e3ec68ffa93e08007002000080001c7866957856f",
              R"({"txid":"2360b11e3ec68ffa93e08007","addr":"72.69.33.45:59028"})");
  expect_line(
      "stun-parse 010100242112a442ebc2d36ef471217c4f3e308e8022000a656e64706f696e7465720000"
      "002000080001ce665e12a44380280004b699bb02010100242112a442",
      R"({"txid":"ebc2d36ef471217c4f3e308e","addr":"127.0.0.1:61300"})");
  expect_line(
      "stun-parse 010100142112a442ebc2d36ef471217c4f3e308e8022000161000000002000080001ce665e12a443",
      R"({"txid":"ebc2d36ef471217c4f3e308e","addr":"127.0.0.1:61300"})");
  expect_failure("stun-request --txid 0102");
  expect_failure("stun-parse 0101000c2112a442");
}

TEST(DebugClassify, EveryKind) {
  expect_line("classify 0101000c2112a4422360b11e3ec68ffa93e08007002000080001c7866957856f", "stun");
  expect_line("classify 5453f09f92ac" + std::string(112, '0'), "disco");
  expect_line("classify 01000000" + std::string(288, '0'), "wireguard-initiation");
  expect_line("classify 02000000" + std::string(176, '0'), "wireguard-response");
  expect_line("classify 03000000" + std::string(120, '0'), "wireguard-cookie");
  expect_line("classify 04000000" + std::string(56, '0'), "wireguard-data");
  expect_line("classify 00", "unknown");
  expect_failure("classify 0");
}

class DebugDiscoBox : public ::testing::Test {
 protected:
  void SetUp() override { tw::crypto_init(); }
  // Go's known-answer keys: sender 11…11, recipient 22…22.
  tw::DiscoPrivate sender{[] {
    tw::KeyBytes k;
    k.fill(0x11);
    return k;
  }()};
  tw::DiscoPrivate recipient{[] {
    tw::KeyBytes k;
    k.fill(0x22);
    return k;
  }()};
  std::string nonce = "000102030405060708090a0b0c0d0e0f1011121314151617";
};

TEST_F(DebugDiscoBox, SealIsNaclBoxOfThePlaintextBehindTheHeader) {
  const std::array<std::uint8_t, 2> pt = {0x03, 0x00};
  std::array<std::uint8_t, 18> box{};
  auto n = tw::from_hex_fixed<24>(nonce).value();
  ASSERT_EQ(crypto_box_easy(box.data(), pt.data(), pt.size(), n.data(),
                            recipient.public_key().data(), sender.data()),
            0);
  expect_line("disco-seal --key " + tw::to_hex(sender.bytes()) + " --to " +
                  recipient.public_key().hex() + " --nonce " + nonce +
                  R"( '{"type":"call_me_maybe"}')",
              "5453f09f92ac" + sender.public_key().hex() + nonce + tw::to_hex(box));
}

TEST_F(DebugDiscoBox, SealThenOpenGivesSenderNonceAndMessage) {
  const ToolRun sealed =
      run("disco-seal --key " + tw::to_hex(sender.bytes()) + " --to " +
          recipient.public_key().hex() + " --nonce " + nonce +
          R"( '{"type":"pong","txid":"0102030405060708090a0b0c","src":"[2001:db8::1]:443"}')");
  ASSERT_EQ(sealed.code, 0);
  const std::string packet = sealed.out.substr(0, sealed.out.size() - 1);
  expect_line(
      "disco-open --key " + tw::to_hex(recipient.bytes()) + " " + packet,
      R"({"sender":")" + sender.public_key().to_string() + R"(","nonce":")" + nonce +
          R"(","message":{"type":"pong","version":0,"txid":"0102030405060708090a0b0c","src":"[2001:db8::1]:443"}})");
  // The wrong key and a flipped byte both fail cleanly.
  expect_failure("disco-open --key " + tw::to_hex(sender.bytes()) + " " + packet);
  std::string tampered = packet;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  expect_failure("disco-open --key " + tw::to_hex(recipient.bytes()) + " " + tampered);
  expect_failure("disco-open --key " + tw::to_hex(recipient.bytes()) + " 5453f09f92ac");
}

TEST_F(DebugDiscoBox, BadKeyOrNonceArgumentsFail) {
  expect_failure("disco-seal --key 11 --to " + recipient.public_key().hex() + " --nonce " + nonce +
                 R"( '{"type":"call_me_maybe"}')");
  expect_failure("disco-seal --key " + tw::to_hex(sender.bytes()) + " --to " +
                 recipient.public_key().hex() + " --nonce 00 " + R"('{"type":"call_me_maybe"}')");
}

}  // namespace
