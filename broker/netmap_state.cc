#include "broker/netmap_state.h"

#include <nlohmann/json.hpp>

#include "common/netmap_diff.h"

namespace tw::broker {

Status NetmapState::apply(const std::string& text, const std::string& origin) {
  auto parsed = parse_netmap(text, origin);
  if (!parsed) return Error{parsed.error()};
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::string derp_json = j.contains("derp_map") ? j["derp_map"].dump() : std::string("{}");
  if (derp_json.size() > ipc::kMaxDerpMapBytes) return make_error(origin + ": derp_map: larger than 64 KiB");
  restarted_ = peers_with_new_disco_key(netmap_, *parsed);
  netmap_ = std::move(*parsed);
  derp_map_json_ = std::move(derp_json);
  for (const auto& p : netmap_.peers) {
    if (!ids_.contains(p.node_key)) ids_[p.node_key] = next_id_++;
  }
  ++generation_;
  return ok_status();
}

std::uint32_t NetmapState::peer_id(const NodePublic& key) const {
  auto it = ids_.find(key);
  return it == ids_.end() ? 0 : it->second;
}

const NetmapPeer* NetmapState::peer_by_id(std::uint32_t id) const {
  for (const auto& p : netmap_.peers) {
    if (peer_id(p.node_key) == id) return &p;
  }
  return nullptr;
}

const NetmapPeer* NetmapState::find_peer(const std::string& q) const {
  if (const auto* p = netmap_.peer_by_name(q)) return p;
  auto ip = IpAddr::parse(q);
  if (!ip) return nullptr;
  for (const auto& p : netmap_.peers) {
    for (const auto& a : p.addresses) {
      if (a.addr == *ip) return &p;
    }
  }
  return nullptr;
}

std::vector<ipc::NetprocPeer> NetmapState::netproc_peers() const {
  std::vector<ipc::NetprocPeer> out;
  out.reserve(netmap_.peers.size());
  for (const auto& p : netmap_.peers) {
    ipc::NetprocPeer np;
    np.peer_id = peer_id(p.node_key);
    np.node_key = p.node_key;
    // A wireguard_only peer has no disco key: the zero key tells netproc so.
    np.disco_key = p.disco_key.value_or(DiscoPublic());
    np.endpoints.assign(p.endpoints.begin(),
                        p.endpoints.begin() + static_cast<long>(std::min(p.endpoints.size(), ipc::kMaxEndpoints)));
    np.home_derp = static_cast<std::uint32_t>(p.home_derp);
    np.name = p.name;
    out.push_back(std::move(np));
  }
  return out;
}

std::vector<ipc::DataprocPeer> NetmapState::dataproc_peers() const {
  std::vector<ipc::DataprocPeer> out;
  out.reserve(netmap_.peers.size());
  for (const auto& p : netmap_.peers) {
    ipc::DataprocPeer dp;
    dp.peer_id = peer_id(p.node_key);
    dp.node_key = p.node_key;
    dp.allowed_ips = p.allowed_ips;
    out.push_back(std::move(dp));
  }
  return out;
}

std::vector<IpPrefix> NetmapState::routed_prefixes() const {
  std::vector<IpPrefix> out;
  for (const auto& p : netmap_.peers) {
    for (const auto& a : p.allowed_ips) out.push_back(a);
  }
  return out;
}

}  // namespace tw::broker
