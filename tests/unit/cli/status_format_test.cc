#include <gtest/gtest.h>

#include "cli/status_format.h"

namespace tw::cli {
namespace {

using nlohmann::json;

TEST(StatusFormatTest, DirectRelayedAndIdlePeersReadAtAGlance) {
  json s = json::parse(R"({"ok":true,
    "self":{"name":"a","address":"100.64.0.1","endpoints":["198.18.0.2:41641"],"home_derp":"lab","inert":false},
    "peers":[
      {"name":"b","address":"100.64.0.2","path":"direct","endpoint":"198.18.0.3:41641","latency_ms":0.42,
       "last_handshake_unix":1000,"rx_bytes":2048,"tx_bytes":10},
      {"name":"c","address":"100.64.0.3","path":"derp","derp_region":"lab","latency_ms":31.0},
      {"name":"d","address":"100.64.0.4","path":"none"}]})");
  std::string out = format_status(s, 1030);
  EXPECT_NE(out.find("# endpoints: 198.18.0.2:41641"), std::string::npos) << out;
  EXPECT_NE(out.find("# home DERP: lab"), std::string::npos) << out;
  EXPECT_EQ(out.find("INERT"), std::string::npos);
  EXPECT_NE(out.find("direct 198.18.0.3:41641"), std::string::npos) << out;
  EXPECT_NE(out.find("0.4ms"), std::string::npos) << out;
  EXPECT_NE(out.find("30s ago"), std::string::npos) << out;
  EXPECT_NE(out.find("2.0KiB/10B"), std::string::npos) << out;
  EXPECT_NE(out.find("relay \"lab\""), std::string::npos) << out;
  EXPECT_NE(out.find("31ms"), std::string::npos) << out;
  EXPECT_NE(out.find("no path"), std::string::npos) << out;
}

TEST(StatusFormatTest, FailoverAndExpiredTrustShowBothRoutes) {
  json s = json::parse(R"({"ok":true,"self":{"name":"a"},
    "peers":[
      {"name":"b","address":"100.64.0.2","path":"direct","endpoint":"198.18.0.3:41641",
       "state":"failing_over","route":"udp+derp"},
      {"name":"c","address":"100.64.0.3","path":"derp","derp_region":"lab","endpoint":"198.18.0.4:41641",
       "state":"expired","route":"udp+derp"},
      {"name":"d","address":"100.64.0.4","path":"derp","derp_region":"lab","state":"probing","route":"derp"},
      {"name":"e","address":"100.64.0.5","path":"direct","endpoint":"198.18.0.5:41641",
       "state":"trusted","route":"udp"}]})");
  const std::string out = format_status(s, 0);
  EXPECT_NE(out.find("direct 198.18.0.3:41641 (failing over: UDP+DERP)"), std::string::npos) << out;
  EXPECT_NE(out.find("relay \"lab\" (trust expired: UDP+DERP)"), std::string::npos) << out;
  EXPECT_NE(out.find("relay \"lab\" (probing)"), std::string::npos) << out;
  EXPECT_NE(out.find("direct 198.18.0.5:41641"), std::string::npos) << out;
  EXPECT_EQ(out.find("198.18.0.5:41641 ("), std::string::npos) << out;  // trusted: nothing to add
}

TEST(StatusFormatTest, InertModeIsShownInTheHeader) {
  json s = {{"self", {{"name", "a"}, {"inert", true}}}, {"peers", json::array()}};
  EXPECT_NE(format_status(s, 0).find("INERT"), std::string::npos);
}

TEST(StatusFormatTest, PongLinesMatchTailscaleFeel) {
  EXPECT_EQ(format_pong({{"peer", "b"}, {"address", "100.64.0.2"}, {"via", "direct"},
                         {"endpoint", "198.18.1.2:41641"}, {"latency_ms", 0.4}}),
            "pong from b (100.64.0.2) via 198.18.1.2:41641 in 0.4ms");
  EXPECT_EQ(format_pong({{"peer", "b"}, {"address", "100.64.0.2"}, {"via", "derp"}, {"derp_region", "lab"},
                         {"latency_ms", 3.0}}),
            "pong from b (100.64.0.2) via DERP(lab) in 3.0ms");
  EXPECT_EQ(format_pong({{"peer", "b"}, {"address", "100.64.0.2"}, {"timeout", true}}),
            "timeout waiting for pong from b (100.64.0.2)");
}

TEST(StatusFormatTest, NetcheckReportsHardNat) {
  json r = {{"stun", {{{"server", "198.18.0.1:3478"}, {"mapped", "198.18.0.2:1024"}, {"latency_ms", 1.0}}}},
            {"endpoints", {"198.18.0.2:1024"}},
            {"mapping_varies_by_dest_ip", true},
            {"derp", {{{"region", "lab"}, {"latency_ms", 2.0}}}}};
  std::string out = format_netcheck(r);
  EXPECT_NE(out.find("hard NAT"), std::string::npos) << out;
  EXPECT_NE(out.find("198.18.0.1:3478: 198.18.0.2:1024"), std::string::npos) << out;
}

TEST(StatusFormatTest, NetcheckListsDerpRegionsWithLatencyNodeAndState) {
  json r = json::parse(R"({"stun":[],"endpoints":[],"derp":[
    {"region_id":1,"region":"fra","region_name":"Frankfurt","stun":"measured","latency_ms":12.3,
     "min_latency_ms":8.04,"age_ms":3200,"node":"1b","stun_server":"198.18.1.2:3478","home":true,"connected":true},
    {"region_id":2,"region":"nyc","region_name":"New York","stun":"measured","latency_ms":31.0,
     "min_latency_ms":31.0,"age_ms":0,"node":"2a","stun_server":"198.18.2.1:3478","home":false,"connected":false},
    {"region_id":4,"region":"syd","region_name":"","stun":"no_reply","home":false,"connected":false},
    {"region_id":3,"region":"relay","region_name":"Relay only","stun":"no_stun","home":false,"connected":true}]})");
  const std::string out = format_netcheck(r);
  EXPECT_NE(out.find("\t* Nearest DERP: Frankfurt\n"), std::string::npos) << out;
  const auto fra = out.find("\t\t- fra: 12ms (Frankfurt) via 1b, min 8.0ms, 3s ago [home, connected]\n");
  const auto nyc = out.find("\t\t- nyc: 31ms (New York) via 2a, min 31ms, 0s ago\n");
  const auto syd = out.find("\t\t- syd: no STUN reply\n");
  const auto relay = out.find("\t\t- relay: no STUN endpoint (Relay only) [connected]\n");
  ASSERT_NE(fra, std::string::npos) << out;
  ASSERT_NE(nyc, std::string::npos) << out;
  ASSERT_NE(syd, std::string::npos) << out;
  ASSERT_NE(relay, std::string::npos) << out;
  EXPECT_LT(fra, nyc);
  EXPECT_LT(nyc, syd);
  EXPECT_LT(syd, relay);
}

TEST(StatusFormatTest, HumanUnits) {
  EXPECT_EQ(human_bytes(0), "0B");
  EXPECT_EQ(human_bytes(1536), "1.5KiB");
  EXPECT_EQ(human_ago(59), "59s ago");
  EXPECT_EQ(human_ago(3600), "1h ago");
}

}  // namespace
}  // namespace tw::cli
