#include "common/netmap.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/netmap_diff.h"

namespace tw {
namespace {

using nlohmann::json;

class NetmapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto_init();
    self_key_ = NodePrivate::generate().public_key();
    b_node_ = NodePrivate::generate().public_key();
    b_disco_ = DiscoPrivate::generate().public_key();
    c_node_ = NodePrivate::generate().public_key();
    doc_ = json{
        {"self", {{"name", "a"}, {"node_key", self_key_.to_string()}, {"addresses", {"100.64.0.1/32"}},
                  {"home_derp", 900}}},
        {"peers",
         {{{"name", "b"},
           {"node_key", b_node_.to_string()},
           {"disco_key", b_disco_.to_string()},
           {"addresses", {"100.64.0.2/32"}},
           {"endpoints", {"198.18.1.2:41641"}},
           {"home_derp", 900}},
          {{"name", "wg"},
           {"node_key", c_node_.to_string()},
           {"wireguard_only", true},
           {"addresses", {"100.64.0.3/32"}},
           {"allowed_ips", {"100.64.0.3/32", "0.0.0.0/0"}},
           {"endpoints", {"198.18.2.2:51820"}}}}},
        {"derp_map",
         json::parse(R"({"Regions":{"900":{"RegionID":900,"RegionCode":"lab","RegionName":"Lab",
           "Nodes":[{"Name":"900a","RegionID":900,"HostName":"derp.lab","IPv4":"198.18.0.10",
           "IPv6":"none","STUNPort":3478,"DERPPort":3340,"InsecureForTests":true}]}}})")}};
  }
  Result<Netmap> parse() { return parse_netmap(doc_.dump(), "nm.json"); }
  void expect_error(const std::string& fragment) {
    auto r = parse();
    ASSERT_FALSE(r.ok()) << "accepted a bad netmap; expected: " << fragment;
    EXPECT_NE(r.error().find(fragment), std::string::npos) << r.error();
  }

  NodePublic self_key_, b_node_, c_node_;
  DiscoPublic b_disco_;
  json doc_;
};

TEST_F(NetmapTest, ValidNetmapParsesEveryField) {
  auto r = parse();
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->self.node_key, self_key_);
  ASSERT_EQ(r->peers.size(), 2u);
  const auto& b = r->peers[0];
  EXPECT_EQ(b.name, "b");
  EXPECT_EQ(*b.disco_key, b_disco_);
  EXPECT_EQ(b.endpoints.at(0).to_string(), "198.18.1.2:41641");
  EXPECT_EQ(b.allowed_ips.at(0).to_string(), "100.64.0.2/32") << "allowed_ips default to addresses";
  EXPECT_TRUE(r->peers[1].wireguard_only);
  EXPECT_FALSE(r->peers[1].disco_key);
  const DerpNode* n = r->derp_map.node(900, "900a");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->stun_v4()->to_string(), "198.18.0.10:3478");
  EXPECT_TRUE(n->ipv6_disabled);
  EXPECT_EQ(n->derp_port, 3340);
  EXPECT_TRUE(n->insecure_for_tests);
  EXPECT_EQ(r->derp_map.region(900)->region_code, "lab");
}

TEST_F(NetmapTest, TailscaleDerpMapDefaultsApply) {
  doc_["derp_map"]["Regions"]["900"]["Nodes"][0].erase("STUNPort");
  doc_["derp_map"]["Regions"]["900"]["Nodes"][0].erase("DERPPort");
  auto r = parse();
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->derp_map.node(900, "900a")->stun_port, 3478);
  EXPECT_EQ(r->derp_map.node(900, "900a")->derp_port, 443);
  doc_["derp_map"]["Regions"]["900"]["Nodes"][0]["STUNPort"] = -1;
  r = parse();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->derp_map.node(900, "900a")->stun_v4()) << "STUNPort -1 disables STUN";
}

TEST_F(NetmapTest, ErrorsNamePeerAndField) {
  doc_["peers"][0]["endpoints"][0] = "198.18.1.2";
  expect_error("nm.json: peers[0] (\"b\").endpoints[0]: not a usable ip:port");
}

TEST_F(NetmapTest, UnknownFieldIsRefused) {
  doc_["peers"][0]["colour"] = "blue";
  expect_error("peers[0]: unknown field \"colour\"");
}

TEST_F(NetmapTest, MissingDiscoKeyIsRefusedUnlessWireguardOnly) {
  doc_["peers"][0].erase("disco_key");
  expect_error("missing field \"disco_key\"");
}

TEST_F(NetmapTest, WireguardOnlyPeerWithDiscoKeyIsRefused) {
  doc_["peers"][1]["disco_key"] = b_disco_.to_string();
  expect_error("a wireguard_only peer has no disco key");
}

TEST_F(NetmapTest, DuplicateKeysAreRefused) {
  doc_["peers"][1]["node_key"] = b_node_.to_string();
  expect_error("duplicate node key");
}

TEST_F(NetmapTest, PeerClaimingSelfNodeKeyIsRefused) {
  doc_["peers"][0]["node_key"] = self_key_.to_string();
  expect_error("duplicate node key");
}

TEST_F(NetmapTest, HomeDerpMustBeInDerpMap) {
  doc_["peers"][0]["home_derp"] = 901;
  expect_error("peers[0] (\"b\").home_derp: region 901 is not in derp_map");
}

TEST_F(NetmapTest, BadDerpAddressesAreRefused) {
  doc_["derp_map"]["Regions"]["900"]["Nodes"][0]["IPv4"] = "::1";
  expect_error("derp_map.Regions[\"900\"].Nodes[0].IPv4: not an IPv4 address");
}

TEST_F(NetmapTest, RegionCountIsCapped) {
  for (int id = 1; id <= static_cast<int>(kMaxDerpRegions); ++id) {
    doc_["derp_map"]["Regions"][std::to_string(id)] = {{"RegionID", id}};
  }
  expect_error("derp_map.Regions: more than 256 regions");
  doc_["derp_map"]["Regions"].erase("1");
  auto r = parse();
  EXPECT_TRUE(r.ok()) << r.error();
}

TEST_F(NetmapTest, RegionKeyMustMatchRegionId) {
  doc_["derp_map"]["Regions"]["900"]["RegionID"] = 901;
  expect_error("RegionID: does not match its key");
}

TEST_F(NetmapTest, PrefixWithHostBitsIsRefused) {
  doc_["peers"][0]["addresses"][0] = "100.64.0.2/24";
  expect_error("addresses[0]: not a prefix");
}

TEST_F(NetmapTest, AllowedIpsMustCoverAddresses) {
  doc_["peers"][0]["allowed_ips"] = {"100.64.9.0/24"};
  expect_error("allowed_ips: does not cover address 100.64.0.2/32");
}

TEST_F(NetmapTest, WrongTypesAreRefusedPrecisely) {
  doc_["peers"][0]["home_derp"] = "900";
  expect_error("home_derp: expected an integer");
}

TEST_F(NetmapTest, PeersWithANewDiscoKeyAreTheRestartedOnes) {
  auto before = parse();
  ASSERT_TRUE(before) << before.error();
  EXPECT_TRUE(peers_with_new_disco_key(*before, *before).empty());
  // b restarts (new disco key) and changes endpoints; wg (no disco key) stays.
  doc_["peers"][0]["disco_key"] = DiscoPrivate::generate().public_key().to_string();
  doc_["peers"][0]["endpoints"] = {"198.18.1.2:41642"};
  auto after = parse();
  ASSERT_TRUE(after) << after.error();
  EXPECT_EQ(peers_with_new_disco_key(*before, *after), std::vector<NodePublic>{b_node_});
  // An endpoint change alone, a new peer or a removed one is not a restart.
  doc_["peers"][0]["endpoints"] = {"198.18.1.2:41643"};
  const NodePublic d_node = NodePrivate::generate().public_key();
  doc_["peers"].push_back({{"name", "d"},
                           {"node_key", d_node.to_string()},
                           {"disco_key", DiscoPrivate::generate().public_key().to_string()},
                           {"addresses", {"100.64.0.4/32"}}});
  auto later = parse();
  ASSERT_TRUE(later) << later.error();
  EXPECT_TRUE(peers_with_new_disco_key(*after, *later).empty());
  EXPECT_TRUE(peers_with_new_disco_key(*later, *before).size() == 1u)
      << "b's disco key differs again";
}

TEST_F(NetmapTest, NotJsonIsRefused) {
  auto r = parse_netmap("{\"self\":", "nm.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace tw
