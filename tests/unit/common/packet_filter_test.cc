#include "common/packet_filter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tw {
namespace {

using nlohmann::json;

PacketFilter parse_ok(const std::string& text) {
  auto f = parse_filter_rules(json::parse(text), "PacketFilter");
  EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error());
  return f.ok() ? *f : PacketFilter{};
}

IpPrefix pfx(const char* s) { return *IpPrefix::parse(s); }

// An IPv4 packet: proto, src, dst, ports and TCP flags as given.
Bytes v4_packet(std::uint8_t proto, const char* src, const char* dst, std::uint16_t sport,
                std::uint16_t dport, std::uint8_t tcp_flags = 0x02) {
  const std::size_t l4 = proto == 6 ? 20 : 8;
  Bytes p(20 + l4, 0);
  p[0] = 0x45;
  p[2] = static_cast<std::uint8_t>(p.size() >> 8);
  p[3] = static_cast<std::uint8_t>(p.size());
  p[8] = 64;
  p[9] = proto;
  const auto s = IpAddr::parse(src)->raw();
  const auto d = IpAddr::parse(dst)->raw();
  std::copy(s.begin(), s.begin() + 4, p.begin() + 12);
  std::copy(d.begin(), d.begin() + 4, p.begin() + 16);
  if (proto == 1) {
    p[20] = static_cast<std::uint8_t>(sport);  // ICMP type in sport
  } else {
    p[20] = static_cast<std::uint8_t>(sport >> 8);
    p[21] = static_cast<std::uint8_t>(sport);
    p[22] = static_cast<std::uint8_t>(dport >> 8);
    p[23] = static_cast<std::uint8_t>(dport);
    if (proto == 6) p[33] = tcp_flags;
  }
  return p;
}

const auto kNow = FlowTable::Clock::now();

TEST(PacketFilterParse, TailscaleSetsBecomePrefixes) {
  auto f =
      parse_ok(R"([{"SrcIPs":["*","100.64.0.2","100.64.0.0/10","100.64.0.1-100.64.0.6","cap:x"],
                         "DstPorts":[{"IP":"100.64.0.1","Ports":{"First":22,"Last":23}}]}])");
  ASSERT_EQ(f.rules.size(), 1u);
  const auto& r = f.rules[0];
  EXPECT_EQ(r.protos, (std::vector<std::uint8_t>{6, 17, 1, 58}));  // the default set
  // "*" is both families; the range 1..6 is 1/32, 2/31, 4/31, 6/32.
  EXPECT_EQ(r.srcs,
            (std::vector<IpPrefix>{pfx("0.0.0.0/0"), pfx("::/0"), pfx("100.64.0.2/32"),
                                   pfx("100.64.0.0/10"), pfx("100.64.0.1/32"), pfx("100.64.0.2/31"),
                                   pfx("100.64.0.4/31"), pfx("100.64.0.6/32")}));
  ASSERT_EQ(r.dsts.size(), 1u);
  EXPECT_EQ(r.dsts[0], (FilterDst{pfx("100.64.0.1/32"), 22, 23}));
}

TEST(PacketFilterParse, RoundTripsThroughItsCanonicalJson) {
  auto f = parse_ok(
      R"([{"SrcIPs":["fd7a::1-fd7a::ff"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[6,300,-1]},
                        {"SrcIPs":["*"],"CapGrant":[{"Dsts":["0.0.0.0/0"],"Caps":["x"]}]}])");
  ASSERT_EQ(f.rules.size(), 1u);  // the grants-only rule is not a packet rule
  EXPECT_EQ(f.rules[0].protos, std::vector<std::uint8_t>{6});  // out-of-range numbers ignored
  auto again = parse_filter_rules(filter_rules_json(f), "again");
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(*again, f);
}

TEST(PacketFilterParse, MalformedRulesAreRefusedWithThePath) {
  for (const char* bad : {R"({"SrcIPs":[]})", R"([{"SrcIPs":"*"}])", R"([{"SrcIPs":[1]}])",
                          R"([{"SrcIPs":["100.64.0.1/10"],"DstPorts":[]}])",  // host bits
                          R"([{"SrcIPs":["*"],"DstPorts":[{"IP":"nope"}]}])",
                          R"([{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":70000}}]}])",
                          R"([{"SrcIPs":["*"],"SrcBits":[32]}])",
                          R"([{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Bits":32}]}])",
                          R"([{"SrcIPs":["100.64.0.9-100.64.0.1"]}])"}) {
    auto f = parse_filter_rules(json::parse(bad), "PacketFilter");
    EXPECT_FALSE(f.ok()) << bad;
    if (!f.ok()) {
      EXPECT_EQ(f.error().rfind("PacketFilter", 0), 0u) << f.error();
    }
  }
}

TEST(PacketFilterParse, BoundsAreEnforced) {
  json rules = json::array();
  for (std::size_t i = 0; i <= kMaxFilterRules; ++i) rules.push_back(json::object());
  EXPECT_FALSE(parse_filter_rules(rules, "p").ok());
  // A range spanning the whole IPv6 space minus one address is ~128 prefixes: fine;
  // a source list beyond the prefix budget is not.
  EXPECT_TRUE(
      parse_filter_rules(
          json::parse(
              R"([{"SrcIPs":["::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"],"DstPorts":[{"IP":"*"}]}])"),
          "p")
          .ok());
  json big = json::array();
  json srcs = json::array();
  for (std::size_t i = 0; i <= kMaxFilterPrefixes; ++i)
    srcs.push_back("100.64." + std::to_string(i / 256) + "." + std::to_string(i % 256));
  big.push_back({{"SrcIPs", srcs}, {"DstPorts", json::array({{{"IP", "*"}}})}});
  EXPECT_FALSE(parse_filter_rules(big, "p").ok());
}

TEST(PacketFilterVerdict, TcpSynNeedsARuleLaterSegmentsPass) {
  auto f = parse_ok(
      R"([{"SrcIPs":["100.64.0.2"],"DstPorts":[{"IP":"100.64.0.1","Ports":{"First":22,"Last":22}}],"IPProto":[6]}])");
  EXPECT_EQ(filter_inbound(f, v4_packet(6, "100.64.0.2", "100.64.0.1", 40000, 22), nullptr, kNow),
            FilterVerdict::kAccept);
  EXPECT_EQ(filter_inbound(f, v4_packet(6, "100.64.0.2", "100.64.0.1", 40000, 23), nullptr, kNow),
            FilterVerdict::kDropNoRule);
  EXPECT_EQ(filter_inbound(f, v4_packet(6, "100.64.0.3", "100.64.0.1", 40000, 22), nullptr, kNow),
            FilterVerdict::kDropNoRule);
  // SYN-ACK and ACK: replies to connections we opened.
  EXPECT_EQ(
      filter_inbound(f, v4_packet(6, "100.64.0.3", "100.64.0.1", 80, 40000, 0x12), nullptr, kNow),
      FilterVerdict::kAccept);
  EXPECT_EQ(
      filter_inbound(f, v4_packet(6, "100.64.0.3", "100.64.0.1", 80, 40000, 0x10), nullptr, kNow),
      FilterVerdict::kAccept);
  // UDP is not in this rule's protocols.
  EXPECT_EQ(filter_inbound(f, v4_packet(17, "100.64.0.2", "100.64.0.1", 40000, 22), nullptr, kNow),
            FilterVerdict::kDropNoRule);
}

TEST(PacketFilterVerdict, UdpRepliesToOurFlowsPass) {
  PacketFilter none;  // an empty filter: nothing a peer starts is allowed
  FlowTable flows;
  const Bytes reply = v4_packet(17, "100.64.0.2", "100.64.0.1", 53, 5000);
  EXPECT_EQ(filter_inbound(none, reply, &flows, kNow), FilterVerdict::kDropNoRule);
  flows.note_outbound(v4_packet(17, "100.64.0.1", "100.64.0.2", 5000, 53), kNow);
  EXPECT_EQ(filter_inbound(none, reply, &flows, kNow), FilterVerdict::kAccept);
  EXPECT_EQ(filter_inbound(none, reply, &flows, kNow + std::chrono::minutes(3)),
            FilterVerdict::kDropNoRule);  // idle flows expire
  EXPECT_EQ(filter_inbound(none, v4_packet(17, "100.64.0.2", "100.64.0.1", 54, 5000), &flows, kNow),
            FilterVerdict::kDropNoRule);  // another port is another flow
}

TEST(PacketFilterVerdict, FlowTableIsBounded) {
  FlowTable flows(4);
  for (std::uint16_t port = 1; port <= 10; ++port) {
    flows.note_outbound(v4_packet(17, "100.64.0.1", "100.64.0.2", port, 53),
                        kNow + std::chrono::seconds(port));
  }
  EXPECT_EQ(flows.size(), 4u);
  PacketFilter none;
  EXPECT_EQ(filter_inbound(none, v4_packet(17, "100.64.0.2", "100.64.0.1", 53, 10), &flows,
                           kNow + std::chrono::seconds(10)),
            FilterVerdict::kAccept);
  EXPECT_EQ(filter_inbound(none, v4_packet(17, "100.64.0.2", "100.64.0.1", 53, 1), &flows,
                           kNow + std::chrono::seconds(10)),
            FilterVerdict::kDropNoRule);  // the oldest was evicted
}

TEST(PacketFilterVerdict, IcmpEchoNeedsAnAddressRuleRepliesPass) {
  auto f = parse_ok(
      R"([{"SrcIPs":["100.64.0.2"],"DstPorts":[{"IP":"100.64.0.1","Ports":{"First":22,"Last":22}}],"IPProto":[6]}])");
  // Tailscale allows ICMP to an address that any port of is open to the source.
  EXPECT_EQ(filter_inbound(f, v4_packet(1, "100.64.0.2", "100.64.0.1", 8, 0), nullptr, kNow),
            FilterVerdict::kAccept);
  EXPECT_EQ(filter_inbound(f, v4_packet(1, "100.64.0.3", "100.64.0.1", 8, 0), nullptr, kNow),
            FilterVerdict::kDropNoRule);
  EXPECT_EQ(filter_inbound(f, v4_packet(1, "100.64.0.3", "100.64.0.1", 0, 0), nullptr, kNow),
            FilterVerdict::kAccept);  // echo reply
}

TEST(PacketFilterVerdict, MalformedMulticastAndFragments) {
  PacketFilter none;
  Bytes p = v4_packet(6, "100.64.0.2", "100.64.0.1", 1, 2);
  EXPECT_EQ(filter_inbound(none, ByteView(p).first(30), nullptr, kNow),
            FilterVerdict::kDropInvalid);
  EXPECT_EQ(filter_inbound(none, Bytes{0x60}, nullptr, kNow), FilterVerdict::kDropInvalid);
  EXPECT_EQ(
      filter_inbound(none, v4_packet(17, "100.64.0.2", "224.0.0.251", 5353, 5353), nullptr, kNow),
      FilterVerdict::kDropMulticast);
  p[6] = 0x00;
  p[7] = 0x10;  // fragment offset 16: not the first fragment
  EXPECT_EQ(filter_inbound(none, p, nullptr, kNow), FilterVerdict::kAccept);
  Bytes tsmp = v4_packet(17, "100.64.0.2", "100.64.0.1", 1, 2);
  tsmp[9] = 99;
  EXPECT_EQ(filter_inbound(none, tsmp, nullptr, kNow), FilterVerdict::kAccept);
}

TEST(PacketFilterVerdict, OtherProtocolsNeedAllPorts) {
  auto some = parse_ok(
      R"([{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":1,"Last":2}}],"IPProto":[47]}])");
  auto all = parse_ok(
      R"([{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}],"IPProto":[47]}])");
  Bytes gre = v4_packet(17, "100.64.0.2", "100.64.0.1", 1, 2);
  gre[9] = 47;
  EXPECT_EQ(filter_inbound(some, gre, nullptr, kNow), FilterVerdict::kDropNoRule);
  EXPECT_EQ(filter_inbound(all, gre, nullptr, kNow), FilterVerdict::kAccept);
}

}  // namespace
}  // namespace tw
