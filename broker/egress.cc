// The daemon's side of the kernel egress allowlist (broker/egress_allowlist.h):
// installed before the children start, rebuilt when the netmap or the socket
// changes, extended by the candidates netproc registers.
#include <spdlog/spdlog.h>

#include "broker/daemon.h"

namespace tw::broker {

Status Daemon::install_allowlist() {
  if (config_.egress_allowlist == EgressAllowlistMode::kUnenforced) {
    spdlog::warn(
        "egress allowlist: unenforced (egress_allowlist = \"unenforced\"): only netproc's own code "
        "limits where the underlay socket sends");
    return ok_status();
  }
  auto installed = NftAllowlist::install(udp_ ? udp_->port : 0, allowlist_elements());
  if (!installed) {
    return make_error(
        "egress allowlist: " + installed.error() +
        " (the broker does not start without it; egress_allowlist = \"unenforced\" runs without "
        "kernel enforcement, see docs/deploy.md)");
  }
  allowlist_ = std::move(*installed);
  spdlog::info("egress allowlist: nftables table inet {} in force", allowlist_->table());
  return ok_status();
}

std::vector<AllowElement> Daemon::allowlist_elements() {
  std::vector<AllowElement> out;
  std::set<IpPort> seen;
  auto add = [&](const IpPort& dst, std::optional<std::chrono::seconds> lifetime) {
    if (dst.port == 0 || never_an_underlay_destination(dst.ip, config_.enable_ipv6)) return;
    if (!seen.insert(dst).second) return;
    auto route = route_for(dst);  // also refuses the host's own addresses
    if (!route) return;
    out.push_back({dst, route->src, route->oif, lifetime});
  };
  std::set<std::uint32_t> disco_peers;
  for (const auto& p : netmap_.netmap().peers) {
    for (const auto& e : p.endpoints) {
      if (!config_.allow_lan_endpoints && (e.ip.is_private() || e.ip.is_link_local_unicast()))
        continue;
      add(e, std::nullopt);
    }
    if (!p.wireguard_only) disco_peers.insert(netmap_.peer_id(p.node_key));
  }
  candidates_.set_peers(disco_peers);
  for (const auto& s : egress_.stun_servers()) add(s, std::nullopt);
  for (const auto& [addr, left] : candidates_.live(CandidateRegistry::Clock::now()))
    add(addr, left);
  return out;
}

void Daemon::rebuild_allowlist() {
  if (!allowlist_) {
    (void)allowlist_elements();  // keeps the registry's peer set current
    return;
  }
  update_kernel_drop_counter();
  if (auto st = allowlist_->rebuild(udp_ ? udp_->port : 0, allowlist_elements()); !st) {
    // The previous table stays in force (the batch is atomic): fail closed.
    spdlog::error("egress allowlist: rebuild failed, previous allowlist stays: {}", st.error());
  }
}

std::vector<IpPrefix> Daemon::planned_tun_routes() {
  std::vector<IpAddr> underlay;
  for (const auto& [id, region] : netmap_.netmap().derp_map.regions) {
    for (const auto& node : region.nodes) {
      if (node.ipv4) underlay.push_back(*node.ipv4);
      if (auto s = node.stun_v4()) underlay.push_back(s->ip);
    }
  }
  for (const auto& p : netmap_.netmap().peers) {
    for (const auto& e : p.endpoints) underlay.push_back(e.ip);
  }
  const auto prefixes = netmap_.routed_prefixes();
  auto plan = plan_tun_routes(prefixes, underlay);
  for (const auto& p : plan.skipped) {
    spdlog::warn(
        "tun: not routing {}: it covers a DERP, STUN or peer endpoint address of this node",
        p.to_string());
  }
  return plan.routes;
}

void Daemon::on_register_candidates(const ipc::RegisterCandidates& req) {
  ipc::CandidatesVerdict v;
  v.request_id = req.request_id;
  v.peer_id = req.peer_id;
  v.lifetime_seconds = static_cast<std::uint32_t>(candidates_.lifetime().count());
  std::vector<AllowElement> admitted;
  const auto now = CandidateRegistry::Clock::now();
  for (const auto& c : req.candidates) {
    auto verdict = candidates_.admit(req.peer_id, c, config_.enable_ipv6, now);
    std::optional<RouteChoice> route;
    if (verdict == CandidateRegistry::Verdict::kAccepted) route = route_for(c);
    if (!route) {
      candidates_refused_.inc();
      spdlog::debug(
          "egress allowlist: candidate {} of peer {} refused: {}", c.to_string(), req.peer_id,
          verdict == CandidateRegistry::Verdict::kAccepted ? "no route, or one of our own addresses"
                                                           : to_string(verdict));
      v.refused.push_back(c);
      continue;
    }
    admitted.push_back({c, route->src, route->oif, candidates_.lifetime()});
    v.approved.push_back(c);
  }
  if (allowlist_ && !admitted.empty()) {
    if (auto st = allowlist_->add(admitted); !st) {
      spdlog::warn("egress allowlist: {}", st.error());
      candidates_refused_.inc(admitted.size());
      v.refused.insert(v.refused.end(), v.approved.begin(), v.approved.end());
      v.approved.clear();
    }
  }
  candidates_accepted_.inc(v.approved.size());
  if (auto* n = child(ipc::Role::kNetproc); n != nullptr && n->link) (void)n->link->send(v);
}

void Daemon::update_kernel_drop_counter() {
  if (!allowlist_) return;
  const std::uint64_t now = allowlist_->dropped_packets();
  if (now > kernel_dropped_seen_) kernel_dropped_.inc(now - kernel_dropped_seen_);
  kernel_dropped_seen_ = std::max(kernel_dropped_seen_, now);
}

}  // namespace tw::broker
