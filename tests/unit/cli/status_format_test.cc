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

TEST(StatusFormatTest, HumanUnits) {
  EXPECT_EQ(human_bytes(0), "0B");
  EXPECT_EQ(human_bytes(1536), "1.5KiB");
  EXPECT_EQ(human_ago(59), "59s ago");
  EXPECT_EQ(human_ago(3600), "1h ago");
}

}  // namespace
}  // namespace tw::cli
