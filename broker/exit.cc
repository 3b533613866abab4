// The daemon's exit-node wiring (docs/design.md#9-exit-node): with [exit] in the config
// the exit namespace is built before the children start (dataproc gets tw-exit with
// its setup), exitproc is started after them, and status, metrics and audit show it.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/daemon.h"

namespace tw::broker {

Status Daemon::start_exit_namespace() {
  if (!config_.exit) return ok_status();
  ExitNodeConfig c;
  c.binary = child_binary("tailwarden-exitproc");
  c.child_args = {"--uid",       std::to_string(config_.account(ChildRole::kExitproc).uid),
                  "--gid",       std::to_string(config_.account(ChildRole::kExitproc).gid),
                  "--sandbox",   std::string(to_string(config_.sandbox_mode)),
                  "--log-level", std::string(to_string(config_.log_level))};
  c.exit = *config_.exit;
  c.mtu = config_.tun.mtu;
  if (config_.exit->credentials_file) {
    const auto& cf = *config_.exit->credentials_file;
    auto creds = load_proxy_credentials(cf.path);
    if (!creds) {
      return make_error(config_.origin + ":" + std::to_string(cf.line) +
                        ": exit.credentials_file: " + creds.error());
    }
    c.credentials = std::move(*creds);
  }
  exit_ = std::make_unique<ExitNode>(io_, std::move(c), metrics_);
  if (auto st = exit_->create_namespace(); !st) {
    exit_.reset();
    return st;
  }
  return ok_status();
}

void Daemon::start_exit() {
  if (exit_) exit_->start();
}

void Daemon::send_exit_tun() {
  auto* d = child(ipc::Role::kDataproc);
  if (!exit_ || d == nullptr || !d->link) return;
  ipc::ExitTunFd t;
  t.mtu = config_.tun.mtu;
  const int fd = exit_->tun_fd();
  struct stat sb {};
  if (::fstat(fd, &sb) == 0) d->expected_fds.inodes.insert(sb.st_ino);
  if (auto st = d->link->send(t, std::span<const int>(&fd, 1)); !st) {
    spdlog::error("broker: exit tun fd: {}", st.error());
  }
}

}  // namespace tw::broker

namespace tw::broker {

nlohmann::json Daemon::exit_status_json() const {
  const ExitStatusView& s = exit_->status();
  const ExitConfig& c = exit_->config();
  // The URL as configured holds no credentials (the config refuses user@ in it).
  nlohmann::json j = {{"mode", "proxy"},
                      {"proxy", c.proxy_url},
                      {"proxy_kind", std::string(to_string(c.proxy_kind))},
                      {"auth", c.credentials_file ? "username/password" : "none"},
                      {"dns_resolver", c.dns_resolver.to_string()},
                      {"state", s.state},
                      {"pid", s.pid}};
  if (!s.error.empty()) j["error"] = s.error;
  if (s.stats) {
    j["proxy_ok"] = s.stats->proxy_ok;
    j["flows_open"] = s.stats->flows_open;
    j["flows_total"] = s.stats->flows_total;
    j["bytes_up"] = s.stats->bytes_up;
    j["bytes_down"] = s.stats->bytes_down;
    j["dns_queries"] = s.stats->dns_queries;
    if (!s.stats->last_proxy_error.empty()) j["last_proxy_error"] = s.stats->last_proxy_error;
  } else {
    j["proxy_ok"] = false;
  }
  return j;
}

std::string Daemon::exit_metrics_text() const {
  std::string out;
  auto line = [&out](const std::string& name, const char* type, std::uint64_t v,
                     const std::string& labels = "") {
    out += "# TYPE tailwarden_" + name + " " + type + "\ntailwarden_" + name + labels + " " +
           std::to_string(v) + "\n";
  };
  if (const auto& st = exit_->status().stats) {
    line("exit_flows_open", "gauge", st->flows_open);
    line("exit_flows_total", "counter", st->flows_total);
    line("exit_bytes_up_total", "counter", st->bytes_up);
    line("exit_bytes_down_total", "counter", st->bytes_down);
    out += "# TYPE tailwarden_exit_refusals_total counter\n";
    for (std::size_t i = 0; i < exitproc::kRefusalKinds; ++i) {
      out += std::string("tailwarden_exit_refusals_total{reason=\"") +
             exitproc::refusal_name(static_cast<exitproc::Refusal>(i)) + "\"} " +
             std::to_string(st->refusals[i]) + "\n";
    }
    line("exit_dns_queries_total", "counter", st->dns_queries);
    line("exit_dns_ok_total", "counter", st->dns_ok);
    line("exit_dns_failed_total", "counter", st->dns_failed);
    line("exit_dns_invalid_total", "counter", st->dns_invalid);
    line("exit_dns_dropped_total", "counter", st->dns_dropped);
    line("exit_refused_udp_total", "counter", st->udp_dropped);
    line("exit_proxy_handshakes_ok_total", "counter", st->handshakes_ok);
    line("exit_proxy_ok", "gauge", st->proxy_ok ? 1 : 0);
  } else {
    out += "# (exitproc has not reported yet)\n";
  }
  // Refused by the exit namespace's kernel, before exitproc sees anything.
  if (auto k = exit_->kernel_counters()) {
    line("exit_refused_ipv6_total", "counter", k->refused_ipv6);
    line("exit_refused_icmp_total", "counter", k->refused_icmp);
    line("exit_dropped_other_total", "counter", k->dropped_other);
  } else {
    out += "# exit namespace counters unreadable: " + k.error() + "\n";
  }
  return out;
}

void Daemon::exit_audit_rows(std::vector<AuditRow>& rows) const {
  const ExitIsolation iso = exit_->inspect();
  std::string ifs;
  for (const auto& i : iso.interfaces) ifs += (ifs.empty() ? "" : ", ") + i;
  bool only_ifs = !iso.interfaces.empty();
  for (const auto& i : iso.interfaces) only_ifs = only_ifs && (i == "lo" || i == kExitTunName);
  rows.push_back({"broker", "exit namespace has only lo and tw-exit", only_ifs, ifs});
  std::string route_problems;
  for (const auto& p : iso.problems) {
    if (p.find("route") != std::string::npos)
      route_problems += (route_problems.empty() ? "" : "; ") + p;
  }
  std::string routes;
  for (const auto& r : iso.routes) routes += (routes.empty() ? "" : ", ") + r;
  rows.push_back({"broker", "exit namespace routes only into tw-exit",
                  route_problems.empty() && !iso.routes.empty(),
                  route_problems.empty() ? routes : route_problems});
  rows.push_back({"broker", "exit namespace nft refusals and redirects installed",
                  iso.nft_table_present, std::string("table inet ") + kExitTable});
  rows.push_back({"broker", "exit flows dial only the configured proxy", true,
                  exit_->config().proxy.to_string()});
  const pid_t pid = exit_->status().pid;
  if (pid <= 0) {
    rows.push_back({"exitproc", "process running", false, "not running"});
  } else {
    auto more = audit_child("exitproc", pid, ::getpid(), exit_->expected_fds(), true);
    rows.insert(rows.end(), more.begin(), more.end());
  }
}

}  // namespace tw::broker
