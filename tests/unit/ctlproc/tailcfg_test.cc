// tailcfg JSON: the requests we build, and MapResponses applied in Tailscale's order
// (full replace, removed, changed, patch) into our netmap model, which must pass the
// netmap-file parser unchanged.
#include "ctlproc/tailcfg.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ctlproc/netmap_json.h"

namespace tw::ctl {
namespace {

using nlohmann::json;

std::string hexkey(int seed) {
  std::string s;
  for (int i = 0; i < 32; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", (seed * 37 + i * 11 + 1) & 0xff);
    s += b;
  }
  return s;
}
std::string nodekey(int seed) { return "nodekey:" + hexkey(seed); }
std::string discokey(int seed) { return "discokey:" + hexkey(seed + 1000); }

json node(int id, const std::string& name) {
  return {{"ID", id},
          {"Name", name + ".tail.example."},
          {"Key", nodekey(id)},
          {"DiscoKey", discokey(id)},
          {"Addresses", {"100.64.0." + std::to_string(id) + "/32"}},
          {"AllowedIPs", {"100.64.0." + std::to_string(id) + "/32"}},
          {"Endpoints", {"198.18.0." + std::to_string(id) + ":41641"}},
          {"HomeDERP", 1},
          {"MachineAuthorized", true},
          {"UnknownFutureField", {{"x", 1}}}};
}

json derp_map() {
  return {{"Regions",
           {{"1",
             {{"RegionID", 1},
              {"RegionCode", "test"},
              {"RegionName", "Test"},
              {"NewRegionField", true},
              {"Nodes",
               {{{"Name", "t1"},
                 {"RegionID", 1},
                 {"HostName", "198.18.0.1"},
                 {"IPv4", "198.18.0.1"},
                 {"IPv6", "none"},
                 {"STUNPort", 3478},
                 {"DERPPort", 443},
                 {"InsecureForTests", true},
                 {"NewNodeField", "x"}}}}}}}},
          {"HomeParams", {{"RegionScore", nullptr}}}};
}

json full_map(std::vector<json> peers) {
  return {{"Node", node(1, "self")},  {"DERPMap", derp_map()},
          {"Peers", peers},           {"PacketFilter", json::array()},
          {"Domain", "tail.example"}, {"ControlTime", "2026-12-04T18:00:00Z"}};
}

MapResponse parse(const json& j) {
  auto m = parse_map_response(j.dump());
  EXPECT_TRUE(m.ok()) << m.error();
  return m.ok() ? *m : MapResponse{};
}

Netmap netmap_of(const MapState& s, ConvertStats* st = nullptr) {
  auto nm = s.to_netmap(st);
  EXPECT_TRUE(nm.ok()) << nm.error();
  // What the broker does: the same parser as `netmap apply`.
  auto again = parse_netmap(netmap_to_json(*nm), "control");
  EXPECT_TRUE(again.ok()) << again.error();
  return again.ok() ? *again : Netmap{};
}

TEST(TailcfgTest, RegisterRequestOmitsExpiryAndZeroFields) {
  RegisterParams p;
  p.node_key = *NodePublic::parse(nodekey(1));
  p.hostinfo.hostname = "tw";
  json j = json::parse(register_request_json(p));
  EXPECT_EQ(j["Version"], kCapabilityVersion);
  EXPECT_EQ(j["NodeKey"], nodekey(1));
  EXPECT_FALSE(j.contains("Expiry"));
  EXPECT_FALSE(j.contains("Auth"));
  EXPECT_FALSE(j.contains("Followup"));
  EXPECT_EQ(j["Hostinfo"]["Hostname"], "tw");
  EXPECT_EQ(j["Hostinfo"]["OS"], "linux");
  p.auth_key = "tskey-abc";
  j = json::parse(register_request_json(p));
  EXPECT_EQ(j["Auth"]["AuthKey"], "tskey-abc");
}

TEST(TailcfgTest, CapabilityVersionStaysInTheSafeBand) {
  // Headscale refuses < 113; >= 121 makes tailscaled offer peer-relay disco to us.
  EXPECT_GE(kCapabilityVersion, 113);
  EXPECT_LT(kCapabilityVersion, 121);
}

TEST(TailcfgTest, LiteUpdateCarriesEndpointsTypesDiscoAndHomeRegion) {
  MapRequestParams p;
  p.node_key = *NodePublic::parse(nodekey(1));
  p.disco_key = *DiscoPublic::parse(discokey(1));
  p.stream = false;
  p.omit_peers = true;
  p.endpoints = {{*IpPort::parse("198.18.0.5:41641"), EndpointType::kLocal},
                 {*IpPort::parse("[2001:db8::1]:41641"), EndpointType::kStun}};
  p.hostinfo.preferred_derp = 3;
  json j = json::parse(map_request_json(p));
  EXPECT_EQ(j["Stream"], false);
  EXPECT_EQ(j["OmitPeers"], true);
  EXPECT_EQ(j["KeepAlive"], true);
  EXPECT_EQ(j["Compress"], "zstd");
  EXPECT_EQ(j["DiscoKey"], discokey(1));
  EXPECT_EQ(j["Endpoints"], json({"198.18.0.5:41641", "[2001:db8::1]:41641"}));
  EXPECT_EQ(j["EndpointTypes"], json({1, 2}));
  EXPECT_EQ(j["Hostinfo"]["NetInfo"]["PreferredDERP"], 3);
  // A zero disco key is omitted, never sent as "".
  p.disco_key = DiscoPublic{};
  EXPECT_FALSE(json::parse(map_request_json(p)).contains("DiscoKey"));
}

TEST(TailcfgTest, HostinfoOffersRoutableIpsForAnExitNode) {
  MapRequestParams p;
  p.node_key = *NodePublic::parse(nodekey(1));
  EXPECT_FALSE(json::parse(map_request_json(p))["Hostinfo"].contains("RoutableIPs"));
  p.hostinfo.routable_ips = {*IpPrefix::parse("0.0.0.0/0"), *IpPrefix::parse("::/0")};
  EXPECT_EQ(json::parse(map_request_json(p))["Hostinfo"]["RoutableIPs"],
            json({"0.0.0.0/0", "::/0"}));
}

TEST(TailcfgTest, PacketFilterBaseAndNamedChunksInTailscalesOrder) {
  const json allow22 = json::parse(
      R"([{"SrcIPs":["100.64.0.2"],"DstPorts":[{"IP":"100.64.0.1","Ports":{"First":22,"Last":22}}]}])");
  const json allow80 = json::parse(
      R"([{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":80,"Last":80}}],"IPProto":[6]}])");
  MapState s;
  json first = full_map({node(2, "alpha")});
  first["PacketFilter"] = allow22;
  ASSERT_TRUE(s.apply(parse(first)).ok());
  Netmap nm = netmap_of(s);
  ASSERT_TRUE(nm.packet_filter);
  ASSERT_EQ(nm.packet_filter->rules.size(), 1u);
  EXPECT_EQ(nm.packet_filter->rules[0].dsts[0].first, 22);
  // A delta without PacketFilter keeps it; a named chunk is added after "base".
  ASSERT_TRUE(s.apply(parse({{"PacketFilters", {{"zz", allow80}}}})).ok());
  nm = netmap_of(s);
  ASSERT_EQ(nm.packet_filter->rules.size(), 2u);
  EXPECT_EQ(nm.packet_filter->rules[1].dsts[0].first, 80);
  // null deletes a chunk; "*": null clears all, then the rest of the map applies.
  ASSERT_TRUE(s.apply(parse({{"PacketFilters", {{"zz", nullptr}}}})).ok());
  EXPECT_EQ(netmap_of(s).packet_filter->rules.size(), 1u);
  ASSERT_TRUE(s.apply(parse({{"PacketFilters", {{"*", nullptr}, {"a", allow80}}}})).ok());
  nm = netmap_of(s);
  ASSERT_EQ(nm.packet_filter->rules.size(), 1u);
  EXPECT_EQ(nm.packet_filter->rules[0].dsts[0].first, 80);
  // An empty PacketFilter is a filter that allows nothing, not "no filter".
  MapState empty;
  ASSERT_TRUE(empty.apply(parse(full_map({node(2, "alpha")}))).ok());
  nm = netmap_of(empty);
  ASSERT_TRUE(nm.packet_filter);
  EXPECT_TRUE(nm.packet_filter->rules.empty());
  // A malformed rule refuses the message, naming the field.
  auto bad = parse_map_response(R"({"PacketFilter":[{"SrcIPs":["not-an-ip"]}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("PacketFilter[0].SrcIPs[0]"), std::string::npos) << bad.error();
}

TEST(TailcfgTest, RegisterResponses) {
  auto ok = parse_register_response(
      R"({"User":{"DisplayName":"u"},"Login":{"LoginName":"u@x"},"MachineAuthorized":true,"New":1})");
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->registered());
  EXPECT_EQ(ok->user, "u@x");
  auto url = parse_register_response(R"({"AuthURL":"http://ctl/auth/123"})");
  ASSERT_TRUE(url.ok());
  EXPECT_FALSE(url->registered());
  EXPECT_EQ(url->auth_url, "http://ctl/auth/123");
  auto bad = parse_register_response(R"({"Error":"invalid authkey"})");
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad->registered());
  auto type = parse_register_response(R"({"AuthURL":5})");
  ASSERT_FALSE(type.ok());
  EXPECT_NE(type.error().find("AuthURL"), std::string::npos);
  EXPECT_FALSE(parse_register_response("[").ok());
}

TEST(TailcfgTest, FullMapBecomesANetmapThatTheFileParserAccepts) {
  MapState s;
  ASSERT_TRUE(s.apply(parse(full_map({node(2, "alpha"), node(3, "beta")}))).ok());
  Netmap nm = netmap_of(s);
  EXPECT_EQ(nm.self.name, "self-1");
  EXPECT_EQ(nm.self.node_key.to_string(), nodekey(1));
  EXPECT_EQ(nm.self.home_derp, 1);
  ASSERT_EQ(nm.peers.size(), 2u);
  EXPECT_EQ(nm.peers[0].name, "alpha-2");
  EXPECT_EQ(nm.peers[0].endpoints[0].to_string(), "198.18.0.2:41641");
  EXPECT_EQ(nm.peers[1].disco_key->to_string(), discokey(3));
  ASSERT_NE(nm.derp_map.region(1), nullptr);
  EXPECT_TRUE(nm.derp_map.region(1)->nodes[0].insecure_for_tests);
  EXPECT_EQ(s.domain(), "tail.example");
}

TEST(TailcfgTest, FirstMapMustCarryNodeAndNullsMeanUnchanged) {
  MapState s;
  auto st = s.apply(parse({{"Peers", {node(2, "a")}}}));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().find("lacks Node"), std::string::npos);
  ASSERT_TRUE(s.apply(parse(full_map({node(2, "a")}))).ok());
  // Node and DERPMap absent (or null): unchanged.
  ASSERT_TRUE(s.apply(parse({{"Node", nullptr}, {"PeersChanged", {node(3, "b")}}})).ok());
  Netmap nm = netmap_of(s);
  EXPECT_EQ(nm.self.name, "self-1");
  EXPECT_NE(nm.derp_map.region(1), nullptr);
  EXPECT_EQ(nm.peers.size(), 2u);
}

TEST(TailcfgTest, FullPeersReplaceEverythingAndIgnoreDeltasInTheSameMessage) {
  MapState s;
  ASSERT_TRUE(s.apply(parse(full_map({node(2, "a"), node(3, "b")}))).ok());
  json m = {{"Peers", {node(4, "c")}}, {"PeersRemoved", {4}}, {"PeersChanged", {node(5, "d")}}};
  ASSERT_TRUE(s.apply(parse(m)).ok());
  Netmap nm = netmap_of(s);
  ASSERT_EQ(nm.peers.size(), 1u);
  EXPECT_EQ(nm.peers[0].name, "c-4");
}

TEST(TailcfgTest, RemovedThenChangedThenPatched) {
  MapState s;
  ASSERT_TRUE(s.apply(parse(full_map({node(2, "a"), node(3, "b")}))).ok());
  json changed = node(3, "b2");
  changed["Endpoints"] = {"198.18.9.9:1"};
  json m = {
      {"PeersRemoved", {2}},
      {"PeersChanged", {changed, node(6, "f")}},
      {"PeersChangedPatch",
       {{{"NodeID", 3}, {"Endpoints", {"198.18.7.7:7", "[fe80::1%eth0]:7"}}, {"DERPRegion", 1}},
        {{"NodeID", 6}, {"DiscoKey", discokey(66)}},
        {{"NodeID", 99}, {"DERPRegion", 1}}}}};
  ASSERT_TRUE(s.apply(parse(m)).ok());
  Netmap nm = netmap_of(s);
  ASSERT_EQ(nm.peers.size(), 2u);
  EXPECT_EQ(nm.peer_by_name("a-2"), nullptr);
  const NetmapPeer* b = nm.peer_by_name("b2-3");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->endpoints.size(), 1u) << "patched endpoints replace; the zoned one is dropped";
  EXPECT_EQ(b->endpoints[0].to_string(), "198.18.7.7:7");
  const NetmapPeer* f = nm.peer_by_name("f-6");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->disco_key->to_string(), discokey(66));
}

TEST(TailcfgTest, AbsentAllowedIpsMeansAddressesAndLegacyDerpField) {
  json p = node(2, "a");
  p.erase("AllowedIPs");
  p.erase("HomeDERP");
  p["DERP"] = "127.3.3.40:1";
  MapState s;
  ASSERT_TRUE(s.apply(parse(full_map({p}))).ok());
  Netmap nm = netmap_of(s);
  ASSERT_EQ(nm.peers.size(), 1u);
  ASSERT_EQ(nm.peers[0].allowed_ips.size(), 1u);
  EXPECT_EQ(nm.peers[0].allowed_ips[0].to_string(), "100.64.0.2/32");
  EXPECT_EQ(nm.peers[0].home_derp, 1);
}

TEST(TailcfgTest, ZeroDiscoAndExpiredPeersAreSkippedNamesStayUniqueAndBounded) {
  json zero = node(2, "a");
  zero["DiscoKey"] = "discokey:" + std::string(64, '0');
  json nodisco = node(3, "b");
  nodisco.erase("DiscoKey");
  json expired = node(4, "c");
  expired["Expired"] = true;
  json twin1 = node(5, "same");
  json twin2 = node(6, "same");
  json longname = node(7, std::string(200, 'L'));
  json unknown_region = node(8, "r");
  unknown_region["HomeDERP"] = 77;
  MapState s;
  ASSERT_TRUE(
      s.apply(parse(full_map({zero, nodisco, expired, twin1, twin2, longname, unknown_region})))
          .ok());
  ConvertStats st;
  Netmap nm = netmap_of(s, &st);
  EXPECT_EQ(st.skipped_no_disco, 2u);
  EXPECT_EQ(st.skipped_expired, 1u);
  ASSERT_EQ(nm.peers.size(), 4u);
  EXPECT_NE(nm.peer_by_name("same-5"), nullptr);
  EXPECT_NE(nm.peer_by_name("same-6"), nullptr);
  for (const auto& p : nm.peers) EXPECT_LE(p.name.size(), 64u);
  EXPECT_EQ(nm.peer_by_name("r-8")->home_derp, 0) << "a region not in the DERP map is dropped";
}

TEST(TailcfgTest, Rfc3339AsGoWritesIt) {
  auto t = parse_rfc3339("2026-12-04T18:00:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1796407200);
  EXPECT_EQ(parse_rfc3339("2026-12-04T18:00:00.123456789Z"), t);
  EXPECT_EQ(parse_rfc3339("2026-12-04T19:30:00+01:30"), t);
  EXPECT_EQ(parse_rfc3339("2026-12-04T16:00:00-02:00"), t);
  for (const char* bad :
       {"", "2026-12-04", "2026-12-04T18:00:00", "2026-12-04T18:00:00ZZ", "2026-12-04T18:00:00.Z",
        "2026-13-04T18:00:00Z", "x026-12-04T18:00:00Z"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  }
}

TEST(TailcfgTest, PeersWhoseKeyExpiredLeaveTheNetmapAtTheirExpiry) {
  using std::chrono::hours;
  const SystemTime now = *parse_rfc3339("2026-12-04T18:00:00Z");
  json past = node(2, "past");
  past["KeyExpiry"] = "2026-12-04T17:59:59Z";
  json soon = node(3, "soon");
  soon["KeyExpiry"] = "2026-12-04T19:00:00Z";
  json never = node(4, "never");
  never["KeyExpiry"] = "0001-01-01T00:00:00Z";  // Go's zero time: no expiry
  json self = node(1, "self");
  self["KeyExpiry"] = "2026-12-04T20:00:00Z";
  json m = full_map({past, soon, never});
  m["Node"] = self;
  MapState s;
  ASSERT_TRUE(s.apply(parse(m)).ok());
  ConvertStats st;
  auto nm = s.to_netmap(&st, now);
  ASSERT_TRUE(nm.ok());
  EXPECT_EQ(st.skipped_expired, 1u);
  EXPECT_EQ(nm->peer_by_name("past-2"), nullptr);
  EXPECT_NE(nm->peer_by_name("soon-3"), nullptr);
  EXPECT_NE(nm->peer_by_name("never-4"), nullptr);
  EXPECT_EQ(s.next_key_expiry(now), parse_rfc3339("2026-12-04T19:00:00Z"));
  ConvertStats later;
  ASSERT_TRUE(s.to_netmap(&later, now + hours(1)).ok());
  EXPECT_EQ(later.skipped_expired, 2u);
  EXPECT_FALSE(s.next_key_expiry(now + hours(1)));
  EXPECT_FALSE(s.self_key_expired(now));
  EXPECT_TRUE(s.self_key_expired(now + hours(2)));
}

TEST(TailcfgTest, KeepAliveChangesNothing) {
  MapState s;
  ASSERT_TRUE(s.apply(parse(full_map({node(2, "a")}))).ok());
  auto ka = parse_map_response(R"({"KeepAlive":true,"Peers":"ignored"})");
  ASSERT_TRUE(ka.ok());
  EXPECT_TRUE(ka->keep_alive);
  ASSERT_TRUE(s.apply(*ka).ok());
  EXPECT_EQ(s.updates(), 1u);
}

TEST(TailcfgTest, BadInputNamesThePath) {
  auto err = [](const json& j) {
    auto m = parse_map_response(j.dump());
    return m.ok() ? std::string("ok") : m.error();
  };
  json bad_key = node(2, "a");
  bad_key["Key"] = "nodekey:zz";
  EXPECT_NE(err({{"Peers", {node(3, "b"), bad_key}}}).find("Peers[1].Key"), std::string::npos);
  json bad_addr = node(2, "a");
  bad_addr["Addresses"] = {"100.64.0.1/33"};
  EXPECT_NE(err({{"PeersChanged", {bad_addr}}}).find("PeersChanged[0].Addresses[0]"),
            std::string::npos);
  EXPECT_NE(err({{"PeersRemoved", {"x"}}}).find("PeersRemoved[0]"), std::string::npos);
  EXPECT_NE(err({{"PeersChangedPatch", {{{"NodeID", 1}, {"Endpoints", 5}}}}})
                .find("PeersChangedPatch[0].Endpoints"),
            std::string::npos);
  EXPECT_NE(err({{"Node", {{"ID", 1}}}}).find("Node.Key"), std::string::npos);
  EXPECT_NE(err({{"DERPMap", {{"Regions", {{"x", {}}}}}}}).find("DERPMap"), std::string::npos);
  EXPECT_NE(err(json::array()).find("expected a JSON object"), std::string::npos);
  EXPECT_NE(parse_map_response("{").error().find("not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace tw::ctl
