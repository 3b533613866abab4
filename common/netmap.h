// The netmap: who we are, who our peers are, and the DERP map (docs/design.md). It comes
// from outside (a controller writes the file), so parsing is strict and every error
// names the peer and field: a bad netmap is refused and the running one stays.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ipaddr.h"
#include "common/keys.h"
#include "common/packet_filter.h"
#include "common/result.h"

namespace tw {

struct DerpNode {
  std::string name;
  std::int64_t region_id = 0;
  std::string host_name;
  std::string cert_name;
  std::optional<IpAddr> ipv4;  // nullopt: absent or "none"
  std::optional<IpAddr> ipv6;
  bool ipv4_disabled = false;  // "none"
  bool ipv6_disabled = false;
  int stun_port = 3478;  // -1 disables STUN on this node
  int derp_port = 443;
  bool stun_only = false;
  bool insecure_for_tests = false;
  bool can_port80 = false;
  std::optional<IpAddr> stun_test_ip;

  // The fixed IPv4 STUN server address of this node, if it has one (no DNS).
  std::optional<IpPort> stun_v4() const;
};

struct DerpRegion {
  std::int64_t region_id = 0;
  std::string region_code;
  std::string region_name;
  bool no_measure_no_home = false;
  bool avoid = false;
  std::vector<DerpNode> nodes;
};

// Most regions a DERP map may hold (the parser refuses more).
constexpr std::size_t kMaxDerpRegions = 256;

struct DerpMap {
  std::map<std::int64_t, DerpRegion> regions;
  bool omit_default_regions = false;

  const DerpRegion* region(std::int64_t id) const;
  const DerpNode* node(std::int64_t region_id, const std::string& name) const;
};

struct NetmapSelf {
  std::string name;
  NodePublic node_key;
  std::vector<IpPrefix> addresses;
  std::int64_t home_derp = 0;
};

struct NetmapPeer {
  std::string name;
  NodePublic node_key;
  std::optional<DiscoPublic> disco_key;  // absent only for wireguard_only peers
  std::vector<IpPrefix> addresses;
  std::vector<IpPrefix> allowed_ips;  // addresses plus routes
  std::vector<IpPort> endpoints;
  std::int64_t home_derp = 0;  // 0: none
  bool wireguard_only = false;
};

struct Netmap {
  NetmapSelf self;
  std::vector<NetmapPeer> peers;
  DerpMap derp_map;
  // The tailnet's ACLs for traffic from peers ("packet_filter", tailcfg.FilterRule
  // JSON); nullopt: none (everything a peer sends is delivered).
  std::optional<PacketFilter> packet_filter;

  const NetmapPeer* peer_by_name(const std::string& name) const;
  const NetmapPeer* peer_by_node_key(const NodePublic& key) const;
};

// Upper bounds that keep a hostile or broken controller from exhausting memory.
constexpr std::size_t kMaxNetmapPeers = 65536;
constexpr std::size_t kMaxEndpointsPerPeer = 64;
constexpr std::size_t kMaxPrefixesPerPeer = 1024;
constexpr std::size_t kMaxNetmapBytes = 64 * 1024 * 1024;

// Parses netmap JSON text; `origin` names the file in errors.
Result<Netmap> parse_netmap(const std::string& text, const std::string& origin);
// Parses a DERPMap in Tailscale's JSON field names.
Result<DerpMap> parse_derp_map(const std::string& text, const std::string& origin);
Result<Netmap> load_netmap_file(const std::string& path);

}  // namespace tw
