#include "broker/egress_policy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace tw::broker {
namespace {

std::string node_ref(std::int64_t region_id, const std::string& name) {
  return "DERP node \"" + name + "\" of region " + std::to_string(region_id);
}

// Why `ip` must not be a dial or STUN destination, or empty if it may be. Loopback
// is only for test maps (a map entry must not turn the broker into a way to reach
// local services); private addresses are fine (self-hosted relays on a LAN).
std::string unusable_reason(const IpAddr& ip, bool insecure_for_tests) {
  if (!ip.is_v4()) return "is not IPv4";
  if (ip.is_unspecified()) return "is unspecified";
  if (ip.is_multicast()) return "is multicast";
  if (ip.is_broadcast()) return "is broadcast";
  if (ip.is_loopback() && !insecure_for_tests) return "is loopback (only allowed with InsecureForTests)";
  return {};
}

}  // namespace

EgressPolicy::EgressPolicy(EgressOptions options, MetricsRegistry& metrics)
    : options_(options),
      refused_(metrics.counter("egress_refused_total",
                               "DERP dials and STUN destinations refused by the broker's egress policy")) {}

void EgressPolicy::set_derp_map(DerpMap map) { map_ = std::move(map); }

Error EgressPolicy::refuse(const std::string& reason) {
  refused_.inc();
  spdlog::warn("egress refused: {}", reason);
  return make_error(reason);
}

Result<DerpDialTarget> EgressPolicy::decide_derp_dial(std::int64_t region_id, const std::string& node_name) {
  if (map_.region(region_id) == nullptr) {
    return refuse("DERP region " + std::to_string(region_id) + " is not in the DERP map");
  }
  const DerpNode* node = map_.node(region_id, node_name);
  const std::string who = node_ref(region_id, node_name);
  if (node == nullptr) return refuse(who + " is not in the DERP map");
  if (node->stun_only) return refuse(who + " is STUN-only");
  if (node->insecure_for_tests && !options_.insecure_for_tests) {
    return refuse(
        who +
        " is marked InsecureForTests, and the config does not opt in (derp_insecure_for_tests)");
  }
  if (node->derp_port < 1 || node->derp_port > 65535) {
    return refuse(who + " has no usable DERP port (" + std::to_string(node->derp_port) + ")");
  }
  DerpDialTarget t;
  t.region_id = region_id;
  t.node_name = node_name;
  t.port = static_cast<std::uint16_t>(node->derp_port);
  t.tls_server_name = node->cert_name.empty() ? node->host_name : node->cert_name;
  t.insecure_for_tests = node->insecure_for_tests;
  if (node->ipv4) {
    if (auto why = unusable_reason(*node->ipv4, node->insecure_for_tests); !why.empty()) {
      return refuse(who + ": IPv4 " + node->ipv4->to_string() + " " + why);
    }
    t.address = IpPort{*node->ipv4, t.port};
    return t;
  }
  if (node->ipv4_disabled) return refuse(who + " has IPv4 disabled (\"none\") and DERP is dialled over IPv4 only");
  if (!options_.derp_dns) return refuse(who + " has no fixed IPv4 and derp_dns is off");
  if (node->host_name.empty()) return refuse(who + " has neither a fixed IPv4 nor a host name");
  t.hostname = node->host_name;
  return t;
}

Status EgressPolicy::check_resolved(const DerpDialTarget& target, const IpAddr& resolved) {
  const std::string who = node_ref(target.region_id, target.node_name);
  if (target.hostname.empty()) return refuse(who + " has a fixed IPv4; nothing may be resolved for it");
  if (auto why = unusable_reason(resolved, target.insecure_for_tests); !why.empty()) {
    return refuse(who + ": " + target.hostname + " resolved to " + resolved.to_string() + ", which " + why);
  }
  return ok_status();
}

std::vector<IpPort> EgressPolicy::stun_servers() const {
  std::vector<IpPort> out;
  for (const auto& [id, region] : map_.regions) {
    for (const auto& node : region.nodes) {
      auto server = node.stun_v4();
      if (!server || server->port == 0) continue;
      if (!unusable_reason(server->ip, node.insecure_for_tests && options_.insecure_for_tests)
               .empty())
        continue;
      out.push_back(*server);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool EgressPolicy::allow_stun_destination(const IpPort& destination) {
  const auto servers = stun_servers();
  if (std::binary_search(servers.begin(), servers.end(), destination)) return true;
  refuse("STUN to " + destination.to_string() + ", which is not a fixed IPv4 STUN server of the DERP map");
  return false;
}

}  // namespace tw::broker
