// JSON form of disco messages used by `tailwarden debug disco-*`.
#include "netproc/disco/message_json.h"

#include <gtest/gtest.h>

namespace tw::disco {
namespace {

const TxId kTxId = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

TEST(DiscoJson, PingPrintsKeysInTheIssueOrder) {
  EXPECT_EQ(
      message_to_json(Ping{kTxId, std::nullopt, 3, 0}).dump(),
      R"({"type":"ping","version":0,"txid":"0102030405060708090a0b0c","node_key":null,"padding":3})");
}

TEST(DiscoJson, PongPrintsSrcAsIpPort) {
  EXPECT_EQ(
      message_to_json(Pong{kTxId, IpPort::parse("2.3.4.5:1234").value(), 0}).dump(),
      R"({"type":"pong","version":0,"txid":"0102030405060708090a0b0c","src":"2.3.4.5:1234"})");
}

TEST(DiscoJson, CallMeMaybePrintsIpv6Bracketed) {
  CallMeMaybe c;
  c.endpoints.push_back(IpPort::parse("[2001:db8::1]:443").value());
  EXPECT_EQ(message_to_json(c).dump(),
            R"({"type":"call_me_maybe","version":0,"endpoints":["[2001:db8::1]:443"]})");
}

TEST(DiscoJson, UnknownPrintsCode) {
  EXPECT_EQ(message_to_json(UnknownMessage{9, 0}).dump(), R"({"type":"unknown","code":9})");
}

TEST(DiscoJson, EveryMessageRoundTripsThroughJson) {
  KeyBytes k{};
  k[0] = 0xab;
  CallMeMaybe c;
  c.endpoints.push_back(IpPort::parse("198.51.100.1:41641").value());
  for (const Message& m :
       {Message{Ping{kTxId, NodePublic(k), 5, 1}}, Message{Pong{kTxId, IpPort{}, 0}}, Message{c},
        Message{UnknownMessage{4, 0}}}) {
    if (std::holds_alternative<Pong>(m)) continue;  // an invalid src has no text form
    auto back = message_from_json(nlohmann::json::parse(message_to_json(m).dump()));
    ASSERT_TRUE(back.ok()) << back.error();
    EXPECT_EQ(*back, m);
  }
}

TEST(DiscoJson, BadInputsGiveErrorsNotExceptions) {
  for (const char* text :
       {R"([])", R"({"type":"ping"})", R"({"type":"ping","txid":"01"})",
        R"({"type":"ping","txid":"0102030405060708090a0b0c","node_key":"discokey:00"})",
        R"({"type":"pong","txid":"0102030405060708090a0b0c","src":"1.2.3.4"})",
        R"({"type":"call_me_maybe","endpoints":["0.0.0.0:1"]})",
        R"({"type":"call_me_maybe","endpoints":"x"})", R"({"type":"ping","version":256})",
        R"({"type":"nope"})",
        R"({"type":"ping","txid":"0102030405060708090a0b0c","padding":-1})"}) {
    EXPECT_FALSE(message_from_json(nlohmann::json::parse(text)).ok()) << text;
  }
}

TEST(DiscoJson, CallMeMaybeOver16EndpointsIsRefused) {
  nlohmann::json j{{"type", "call_me_maybe"}, {"endpoints", nlohmann::json::array()}};
  for (int i = 1; i <= 17; ++i) j["endpoints"].push_back("10.0.0." + std::to_string(i) + ":1");
  EXPECT_FALSE(message_from_json(j).ok());
  j["endpoints"].erase(16);
  EXPECT_TRUE(message_from_json(j).ok());
}

}  // namespace
}  // namespace tw::disco
