#include "netproc/magicsock/derp_latency.h"

#include <algorithm>
#include <tuple>

#include "netproc/magicsock/stun_prober.h"

namespace tw::magicsock {

void DerpLatencyTable::set_map(const DerpMap& map) {
  std::vector<Node> old = std::move(nodes_);
  nodes_.clear();
  regions_.clear();
  for (const auto& [id, r] : map.regions) {
    const auto rid = static_cast<std::uint32_t>(id);
    regions_.push_back({rid, r.region_code.empty() ? std::to_string(id) : r.region_code, r.region_name});
    for (const auto& n : r.nodes) {
      Node node{rid, n.name, n.stun_v4(), std::nullopt, {}, {}};
      if (node.stun && !usable_stun_server(*node.stun)) node.stun.reset();
      auto same = std::find_if(old.begin(), old.end(), [&](const Node& o) {
        return o.region == node.region && o.name == node.name && o.stun == node.stun;
      });
      if (same != old.end()) node = *same;
      nodes_.push_back(std::move(node));
    }
  }
}

void DerpLatencyTable::on_stun_rtt(const IpPort& server, Duration rtt, TimePoint now) {
  for (auto& n : nodes_) {
    if (n.stun != server) continue;
    n.min = n.latest ? std::min(n.min, rtt) : rtt;
    n.latest = rtt;
    n.at = now;
  }
}

void DerpLatencyTable::clear_measurements() {
  for (auto& n : nodes_) n.latest.reset();
}

std::vector<DerpRegionLatency> DerpLatencyTable::report(TimePoint now) const {
  std::vector<DerpRegionLatency> out;
  for (const auto& r : regions_) {
    DerpRegionLatency l;
    l.region = r.id;
    l.code = r.code;
    l.name = r.name;
    const Node* freshest = nullptr;
    for (const auto& n : nodes_) {
      if (n.region != r.id || !n.stun) continue;
      if (l.stun == DerpRegionLatency::Stun::kNoStun) l.stun = DerpRegionLatency::Stun::kNoReply;
      if (!n.latest) continue;
      l.min = freshest == nullptr ? n.min : std::min(l.min, n.min);
      if (freshest == nullptr || n.at > freshest->at) freshest = &n;
    }
    if (freshest != nullptr) {
      l.stun = DerpRegionLatency::Stun::kMeasured;
      l.latest = *freshest->latest;
      l.age = now - freshest->at;
      l.node = freshest->name;
      l.server = *freshest->stun;
    }
    out.push_back(std::move(l));
  }
  std::stable_sort(out.begin(), out.end(), [](const DerpRegionLatency& a, const DerpRegionLatency& b) {
    const bool am = a.stun == DerpRegionLatency::Stun::kMeasured;
    const bool bm = b.stun == DerpRegionLatency::Stun::kMeasured;
    return std::tuple(a.stun, am ? a.latest : Duration{}, a.region) <
           std::tuple(b.stun, bm ? b.latest : Duration{}, b.region);
  });
  return out;
}

}  // namespace tw::magicsock
