#include "ctlproc/netmap_json.h"

#include <nlohmann/json.hpp>

namespace tw::ctl {
namespace {

using nlohmann::json;

json prefixes(const std::vector<IpPrefix>& v) {
  json a = json::array();
  for (const auto& p : v) a.push_back(p.to_string());
  return a;
}

json derp_map_json(const DerpMap& m) {
  json regions = json::object();
  for (const auto& [id, r] : m.regions) {
    json nodes = json::array();
    for (const auto& n : r.nodes) {
      json j = {{"Name", n.name},
                {"RegionID", n.region_id},
                {"HostName", n.host_name},
                {"STUNPort", n.stun_port},
                {"DERPPort", n.derp_port}};
      if (!n.cert_name.empty()) j["CertName"] = n.cert_name;
      if (n.ipv4_disabled) {
        j["IPv4"] = "none";
      } else if (n.ipv4) {
        j["IPv4"] = n.ipv4->to_string();
      }
      if (n.ipv6_disabled) {
        j["IPv6"] = "none";
      } else if (n.ipv6) {
        j["IPv6"] = n.ipv6->to_string();
      }
      if (n.stun_only) j["STUNOnly"] = true;
      if (n.insecure_for_tests) j["InsecureForTests"] = true;
      if (n.can_port80) j["CanPort80"] = true;
      if (n.stun_test_ip) j["STUNTestIP"] = n.stun_test_ip->to_string();
      nodes.push_back(std::move(j));
    }
    json rj = {{"RegionID", id},
               {"RegionCode", r.region_code},
               {"RegionName", r.region_name},
               {"Nodes", std::move(nodes)}};
    if (r.avoid) rj["Avoid"] = true;
    if (r.no_measure_no_home) rj["NoMeasureNoHome"] = true;
    regions[std::to_string(id)] = std::move(rj);
  }
  json out = {{"Regions", std::move(regions)}};
  if (m.omit_default_regions) out["omitDefaultRegions"] = true;
  return out;
}

}  // namespace

std::string netmap_to_json(const Netmap& nm) {
  json self = {{"name", nm.self.name},
               {"node_key", nm.self.node_key.to_string()},
               {"addresses", prefixes(nm.self.addresses)},
               {"home_derp", nm.self.home_derp}};
  json peers = json::array();
  for (const auto& p : nm.peers) {
    json j = {{"name", p.name},
              {"node_key", p.node_key.to_string()},
              {"addresses", prefixes(p.addresses)},
              {"allowed_ips", prefixes(p.allowed_ips)},
              {"home_derp", p.home_derp}};
    if (p.disco_key) j["disco_key"] = p.disco_key->to_string();
    if (p.wireguard_only) j["wireguard_only"] = true;
    json eps = json::array();
    for (const auto& e : p.endpoints) eps.push_back(e.to_string());
    j["endpoints"] = std::move(eps);
    peers.push_back(std::move(j));
  }
  json out = {{"self", std::move(self)},
              {"peers", std::move(peers)},
              {"derp_map", derp_map_json(nm.derp_map)}};
  if (nm.packet_filter) out["packet_filter"] = filter_rules_json(*nm.packet_filter);
  return out.dump();
}

}  // namespace tw::ctl
