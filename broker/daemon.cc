#include "broker/daemon.h"

#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#ifdef TW_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace tw::broker {

Daemon::Daemon(BrokerConfig config, NodeKeys keys)
    : config_(std::move(config)),
      keys_(std::move(keys)),
      signals_(io_, SIGTERM, SIGINT, SIGCHLD),
      restart_timer_(io_),
      egress_(EgressOptions{config_.derp_dns, config_.derp_insecure_for_tests}, metrics_),
      link_debounce_(io_),
      endpoints_timer_(io_),
      child_restarts_(metrics_.counter("child_restarts_total", "Children restarted after exiting")),
      netmap_rejected_(metrics_.counter("netmap_rejected_total", "Netmaps refused by validation")),
      rebinds_(metrics_.counter("rebinds_total", "Underlay socket rebinds")),
      endpoints_file_failures_(metrics_.counter("endpoints_file_write_failures_total",
                                                "Failed rewrites of the endpoints file")),
      child_violations_(metrics_.counter(
          "child_protocol_violations_total",
          "Child messages refused as protocol violations (the children are restarted)")),
      derp_dials_throttled_(
          metrics_.counter("derp_dials_throttled_total",
                           "DERP dial requests refused by the rate limit or already in flight")),
      endpoints_coalesced_(
          metrics_.counter("endpoints_updates_coalesced_total",
                           "Endpoint updates from netproc folded into a later one (at most 1/s)")),
      candidates_accepted_(metrics_.counter(
          "egress_candidates_registered_total",
          "Learned candidates netproc registered that the kernel allowlist admitted")),
      candidates_refused_(metrics_.counter(
          "egress_candidates_refused_total",
          "Candidate registrations refused (not pingable, cap, rate, unknown peer)")),
      kernel_dropped_(metrics_.counter(
          "egress_kernel_dropped_total",
          "Datagrams from the underlay socket the kernel dropped: destination not approved")) {
  signals_.add(SIGHUP);
  // Both private keys live here for the broker's lifetime: never swapped out (and
  // never in a core: the process is non-dumpable, see main.cc); wiped on exit.
  if (sodium_mlock(&keys_, sizeof keys_) != 0) spdlog::warn("broker: cannot mlock the key memory");
}

Daemon::~Daemon() {
  if (control_) control_->stop();
  if (exit_) exit_->stop();
  kill_children();
  allowlist_.reset();                    // deletes the table
  sodium_munlock(&keys_, sizeof keys_);  // wipes, then unlocks
}

Status Daemon::start() {
  // The same path as every later reload: read, validate, check our key, set the
  // egress policy. It answers synchronously.
  Status loaded = make_error("netmap: not loaded");
  if (config_.netmap_file.empty()) {
    // With control and no file: ourselves only, no address, until control's map.
    nlohmann::json self = {{"name", "self"}, {"node_key", keys_.node.public_key().to_string()}};
    apply_netmap_text(nlohmann::json{{"self", self}, {"peers", nlohmann::json::array()}}.dump(),
                      "initial netmap", [&loaded](Status st) { loaded = std::move(st); });
  } else {
    apply_netmap_file(config_.netmap_file, [&loaded](Status st) { loaded = std::move(st); });
  }
  if (!loaded) return loaded;

  auto sock = bind_underlay({config_.listen_port, config_.enable_ipv6});
  if (sock) {
    for (const auto& w : sock->warnings) spdlog::warn("underlay: {}", w);
    udp_ = std::move(*sock);
    spdlog::info("underlay: bound {}:{}", udp_->v6 ? "[::]" : "0.0.0.0", udp_->port);
  } else {
    spdlog::error("underlay: {}; running inert (DERP only)", sock.error());
  }
  // Before any child exists, so netproc never holds the socket without it.
  if (auto st = install_allowlist(); !st) return st;

  if (config_.tun.enabled) {
    auto tun = create_tun({config_.tun.name, config_.tun.mtu, netmap_.netmap().self.addresses});
    if (!tun) return make_error("tun: " + tun.error());
    tun_ = std::move(*tun);
    tun_addr_ = tun_ipv4(netmap_.netmap().self.addresses);
    if (auto st = sync_tun_routes(tun_->name, planned_tun_routes(), &tun_routes_); !st) {
      return make_error("tun: " + st.error());
    }
    spdlog::info("tun: {} up, mtu {}, TSO/checksum offload {}", tun_->name, config_.tun.mtu,
                 tun_->offload ? "on" : "off");
  }

  // The exit namespace before the children: dataproc gets tw-exit with its setup.
  if (auto st = start_exit_namespace(); !st) return st;

  std::optional<gid_t> group;
  if (config_.admin_group) group = config_.admin_group->gid;
  ::mkdir(config_.state_dir.c_str(), 0700);
  admin_ = std::make_unique<AdminServer>(
      io_, config_.admin_socket, group,
      [this](const AdminRequest& req, std::shared_ptr<AdminResponder> r) { on_admin(req, std::move(r)); },
      metrics_);
  if (auto st = admin_->start(); !st) return st;
  // A file left by an earlier run would advertise stale endpoints: start empty.
  write_endpoints_file();

  wait_signal();
  start_link_monitor();
  start_netmap_watch();
  spawn_children();
  start_exit();
  return start_control();
}

void Daemon::wait_signal() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGCHLD) {
      on_sigchld();
    } else if (sig == SIGHUP) {
      if (!config_.netmap_file.empty()) {
        apply_netmap_file(config_.netmap_file, [](const Status& st) {
          if (!st) spdlog::error("netmap reload refused: {}", st.error());
        });
      }
    } else {
      spdlog::info("broker: signal {}, stopping", sig);
      stopping_ = true;
      if (control_) control_->stop();
      if (exit_) exit_->stop();
      kill_children();
      io_.stop();
      return;
    }
    wait_signal();
  });
}

int Daemon::run() {
  io_.run();
  return exit_code_;
}

void Daemon::maybe_ready() {
  for (auto& [role, c] : children_) {
    if (!c.ready) return;
  }
  if (children_.size() != 2) return;
  restarts_in_a_row_ = 0;
  spdlog::info("broker: netproc (pid {}) and dataproc (pid {}) sandboxed and ready",
               children_[ipc::Role::kNetproc].pid, children_[ipc::Role::kDataproc].pid);
  if (!notified_ready_) {
    notified_ready_ = true;
#ifdef TW_HAVE_SYSTEMD
    sd_notify(0, "READY=1");
#endif
  }
}

}  // namespace tw::broker
