// The JSON of the control protocol (Tailscale's tailcfg names): register and map
// requests we build, register and map responses we parse, and the map state that
// applies full maps and deltas in Tailscale's order and yields our netmap model.
//
// Parsing ignores unknown fields (servers add fields all the time) but checks the type
// of every field we use; an error names the path, e.g. "Peers[3].Key: ...".
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ipaddr.h"
#include "common/keys.h"
#include "common/netmap.h"
#include "common/packet_filter.h"
#include "common/result.h"

namespace tw::ctl {

// The capability version we claim: at least Headscale's floor (113), below the
// relay-capable threshold (121) so peers do not offer peer-relay disco to us.
constexpr int kCapabilityVersion = 116;

struct Hostinfo {
  std::string hostname;
  std::string os = "linux";
  std::string ipn_version;
  std::int64_t preferred_derp = 0;
  std::vector<IpPrefix> routable_ips;  // RoutableIPs: routes we offer (exit: /0s)
};

// Endpoint types as in tailcfg.EndpointType.
enum class EndpointType : int {
  kLocal = 1,
  kStun = 2,
  kPortmapped = 3,
  kStun4LocalPort = 4,
  kExplicit = 5
};

struct Endpoint {
  IpPort addr;
  EndpointType type = EndpointType::kLocal;
};

struct RegisterParams {
  int version = kCapabilityVersion;
  NodePublic node_key;
  std::string auth_key;  // empty: none
  std::string followup;  // the AuthURL being waited on
  Hostinfo hostinfo;
  bool ephemeral = false;
};
std::string register_request_json(const RegisterParams& p);

struct RegisterResponse {
  std::string user;  // Login.LoginName or User.DisplayName, for display
  bool node_key_expired = false;
  bool machine_authorized = false;
  std::string auth_url;
  std::string error;
  bool registered() const { return error.empty() && auth_url.empty() && !node_key_expired; }
};
Result<RegisterResponse> parse_register_response(std::string_view text);

struct MapRequestParams {
  int version = kCapabilityVersion;
  NodePublic node_key;
  std::optional<DiscoPublic> disco_key;
  bool stream = true;
  bool omit_peers = false;
  bool compress = true;  // "zstd"
  std::vector<Endpoint> endpoints;
  Hostinfo hostinfo;
};
std::string map_request_json(const MapRequestParams& p);

// A tailcfg.Node, reduced to what the data plane and the operator need.
struct ControlNode {
  std::int64_t id = 0;
  std::string name;      // Name (FQDN) or ComputedName
  std::string hostname;  // Hostinfo.Hostname
  NodePublic key;
  std::optional<DiscoPublic> disco_key;  // nullopt: absent or zero
  std::vector<IpPrefix> addresses;
  std::optional<std::vector<IpPrefix>> allowed_ips;  // nullopt: absent (= addresses)
  std::vector<IpPort> endpoints;
  std::int64_t home_derp = 0;
  bool wireguard_only = false;
  bool expired = false;
  bool machine_authorized = false;
  std::string key_expiry;             // RFC 3339 text, empty if none
  std::size_t dropped_endpoints = 0;  // unparsable endpoint strings (zoned, garbage)
};

// tailcfg.PeerChange: a patch of one peer by NodeID.
struct PeerPatch {
  std::int64_t node_id = 0;
  std::optional<std::int64_t> derp_region;
  std::optional<std::vector<IpPort>> endpoints;
  std::optional<NodePublic> key;
  std::optional<DiscoPublic> disco_key;
  std::optional<std::string> key_expiry;
};

struct MapResponse {
  bool keep_alive = false;
  std::optional<ControlNode> node;
  std::optional<DerpMap> derp_map;
  std::vector<ControlNode> peers;  // non-empty: the complete list
  std::vector<std::int64_t> peers_removed;
  std::vector<ControlNode> peers_changed;
  std::vector<PeerPatch> peers_changed_patch;
  bool has_packet_filter = false;
  std::optional<PacketFilter> packet_filter;  // PacketFilter: the "base" chunk
  // PacketFilters: named chunks; nullopt value deletes the chunk, "*" (null) clears all.
  std::map<std::string, std::optional<PacketFilter>> packet_filters;
  std::string domain;
};
Result<MapResponse> parse_map_response(std::string_view text);

using SystemTime = std::chrono::system_clock::time_point;

// RFC 3339 as Go writes time.Time ("2026-12-04T18:00:00Z", fractional seconds and
// numeric offsets too); nullopt if it is not that.
std::optional<SystemTime> parse_rfc3339(const std::string& s);

struct ConvertStats {
  std::size_t skipped_no_disco = 0;
  std::size_t skipped_expired = 0;
  std::size_t skipped_invalid = 0;  // duplicate keys, uncovered addresses, ...
};

// The netmap as control sees it: applies MapResponses in order.
class MapState {
 public:
  // Applies one message. KeepAlive messages change nothing. The first non-keepalive
  // message must carry Node.
  Status apply(const MapResponse& m);
  bool has_self() const { return self_.has_value(); }
  const ControlNode* self() const { return self_ ? &*self_ : nullptr; }
  const std::map<std::int64_t, ControlNode>& peers() const { return peers_; }
  const DerpMap& derp_map() const { return derp_map_; }
  const std::string& domain() const { return domain_; }
  // The concatenation of the named filter chunks in key order (Tailscale's order);
  // empty until control sends one, which drops everything peers start.
  PacketFilter packet_filter() const;
  std::uint64_t updates() const { return updates_; }

  // Our netmap model: peers with a zero disco key (unless WireGuard-only), expired
  // (Expired, or KeyExpiry before `now`) are skipped; names are "<host>-<ID>", unique
  // and at most 64 characters.
  Result<Netmap> to_netmap(ConvertStats* stats = nullptr,
                           SystemTime now = std::chrono::system_clock::now()) const;
  // The earliest peer KeyExpiry after `now`: when the netmap must be made again.
  std::optional<SystemTime> next_key_expiry(SystemTime now) const;
  // Whether our own node key has expired (Expired, or KeyExpiry before `now`).
  bool self_key_expired(SystemTime now) const;

 private:
  std::optional<ControlNode> self_;
  std::map<std::int64_t, ControlNode> peers_;
  DerpMap derp_map_;
  std::map<std::string, PacketFilter> filters_;
  std::string domain_;
  std::uint64_t updates_ = 0;
};

// A DNS-label-like display name for a node: first label of Name, else Hostinfo
// hostname, else "node"; then "-<ID>".
std::string netmap_name(const ControlNode& n);

}  // namespace tw::ctl
