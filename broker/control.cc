// The daemon's control-plane wiring: with control_url set it starts the ControlClient
// (ctlproc) and applies the netmaps it delivers exactly like a netmap file reload; the
// netmap file stays the map in force until the first one arrives, and whenever
// control is unreachable the last map keeps forwarding (docs/design.md#7-failure-posture).
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "broker/daemon.h"

namespace tw::broker {
namespace {

Result<std::string> read_auth_key(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot read the auth key file");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
    return make_error(path + ": auth key file must not be readable by group or others (chmod 600)");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string key = ss.str();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.front()))) key.erase(0, 1);
  if (key.empty() || key.size() > 1024) return make_error(path + ": empty or oversized auth key");
  for (char c : key) {
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f)
      return make_error(path + ": control byte in the auth key");
  }
  return key;
}

}  // namespace

Status Daemon::start_control() {
  if (config_.control_url.empty()) return ok_status();
  if (!keys_.machine) {
    return make_error(config_.key_file +
                      ": no machine_private key, which control_url needs "
                      "(add one: `tailwarden keygen` prints a key file with it)");
  }
  ControlClientConfig c;
  c.binary = child_binary("tailwarden-ctlproc");
  c.child_args = {"--uid",       std::to_string(config_.account(ChildRole::kCtlproc).uid),
                  "--gid",       std::to_string(config_.account(ChildRole::kCtlproc).gid),
                  "--sandbox",   std::string(to_string(config_.sandbox_mode)),
                  "--log-level", std::string(to_string(config_.log_level))};
  c.address = *config_.control_address;
  c.authority = config_.control_authority;
  c.url = config_.control_url;
  c.machine_private = keys_.machine->bytes();
  if (!config_.control_key.empty())
    c.control_key = MachinePublic::parse(config_.control_key)->bytes();
  c.node_public = keys_.node.public_key();
  c.disco_public = keys_.disco.public_key();
  if (!config_.auth_key_file.empty()) {
    auto k = read_auth_key(config_.auth_key_file);
    if (!k) return make_error(k.error());
    c.auth_key = *k;
  }
  // An exit node ([exit]) offers the default routes; advertise_exit_node offers them
  // without one (the routes are the admin's to approve).
  if (config_.advertise_exit_node || config_.exit) {
    c.routable_ips = {*IpPrefix::parse("0.0.0.0/0"), *IpPrefix::parse("::/0")};
  }
  c.hostname = config_.hostname;
  if (c.hostname.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) c.hostname = host;
  }
  control_ =
      std::make_unique<ControlClient>(io_, std::move(c), metrics_, [this](const std::string& text) {
        apply_netmap_text(text, "control", [](const Status& st) {
          if (!st) {
            spdlog::error("control: netmap refused, previous netmap stays in force: {}",
                          st.error());
          }
        });
      });
  control_->start();
  return ok_status();
}

std::uint32_t Daemon::home_region() const {
  const Netmap& nm = netmap_.netmap();
  if (nm.self.home_derp > 0 && nm.derp_map.region(nm.self.home_derp) != nullptr)
    return static_cast<std::uint32_t>(nm.self.home_derp);
  if (control_ && !nm.derp_map.regions.empty())
    return static_cast<std::uint32_t>(nm.derp_map.regions.begin()->first);
  return 0;
}

// netproc reports plain addresses; control wants a type per endpoint. Private and
// link-local addresses are local interface addresses, the rest were learned by STUN.
void Daemon::forward_endpoints_to_control() {
  if (!control_) return;
  std::vector<ctl::Endpoint> eps;
  for (const auto& e : endpoints_) {
    const bool local = e.ip.is_private() || e.ip.is_link_local_unicast() || e.ip.is_loopback();
    eps.push_back({e, local ? ctl::EndpointType::kLocal : ctl::EndpointType::kStun});
  }
  control_->update_endpoints(std::move(eps), home_region());
}

}  // namespace tw::broker
