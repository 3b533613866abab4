#include "ipc/netmap_parts.h"

namespace tw::ipc {
namespace {

// Leaves room for the fixed fields of a part.
constexpr std::size_t kPartBudget = kMaxBodyBytes - 64;

std::size_t wire_size(const NetprocPeer& p) {
  return 4 + 32 + 32 + 4 + p.endpoints.size() * 19 + 4 + 4 + p.name.size();
}
std::size_t wire_size(const DataprocPeer& p) { return 4 + 32 + 4 + p.allowed_ips.size() * 18; }

// Packs peers greedily; the first part also carries `first_extra` bytes.
template <typename Msg, typename Peer>
Result<std::vector<Msg>> pack(std::uint64_t generation, std::vector<Peer> peers,
                              std::size_t first_extra) {
  std::vector<Msg> parts(1);
  std::size_t used = first_extra;
  for (auto& p : peers) {
    std::size_t sz = wire_size(p);
    if (sz > kPartBudget) return make_error("one peer does not fit in a netmap part");
    if (used + sz > kPartBudget || parts.back().peers.size() == kMaxPeersPerPart) {
      parts.emplace_back();
      used = 0;
    }
    used += sz;
    parts.back().peers.push_back(std::move(p));
  }
  if (parts.size() > kMaxNetmapParts) return make_error("netmap needs too many parts");
  for (std::size_t i = 0; i < parts.size(); ++i) {
    parts[i].generation = generation;
    parts[i].part = static_cast<std::uint16_t>(i);
    parts[i].parts = static_cast<std::uint16_t>(parts.size());
  }
  return parts;
}

}  // namespace

Result<std::vector<NetprocNetmap>> split_netproc_netmap(std::uint64_t generation,
                                                        std::vector<NetprocPeer> peers,
                                                        std::string derp_map_json,
                                                        std::uint32_t home_derp) {
  if (derp_map_json.size() > kMaxDerpMapBytes) return make_error("DERP map JSON too large");
  if (peers.size() > kMaxNetmapPeers) return make_error("netmap has too many peers");
  auto parts = pack<NetprocNetmap>(generation, std::move(peers), derp_map_json.size());
  if (!parts) return parts;
  parts->front().derp_map_json = std::move(derp_map_json);
  for (auto& p : *parts) p.home_derp = home_derp;
  return parts;
}

Result<std::vector<DataprocNetmap>> split_dataproc_netmap(std::uint64_t generation,
                                                          std::vector<DataprocPeer> peers) {
  if (peers.size() > kMaxNetmapPeers) return make_error("netmap has too many peers");
  return pack<DataprocNetmap>(generation, std::move(peers), 0);
}

}  // namespace tw::ipc
