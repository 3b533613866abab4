// tailwardend's daemon: owns the config, keys, netmap, the one underlay UDP socket,
// the TUN device and the admin socket; spawns netproc and dataproc, feeds them, and
// supervises them (docs/design.md sections 1, 3 and 7).
#pragma once

#include <sys/types.h>

#include <boost/asio.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>  // before Asio
#include <vector>

#include "broker/admin_server.h"
#include "broker/audit.h"
#include "broker/config.h"
#include "broker/control_client.h"
#include "broker/egress_allowlist.h"
#include "broker/egress_policy.h"
#include "broker/exit_node.h"
#include "broker/netmap_state.h"
#include "broker/tun.h"
#include "broker/underlay_socket.h"
#include "common/keyfile.h"
#include "common/metrics.h"
#include "common/throttle.h"
#include "ipc/control_link.h"

namespace tw::broker {

// One running child (netproc or dataproc) as the broker sees it.
struct ChildHandle {
  ipc::Role role;
  pid_t pid = -1;
  std::unique_ptr<ipc::ControlLink> link;
  bool ready = false;
  ExpectedFds expected_fds;  // what `audit` accepts in its fd table
};

class Daemon {
 public:
  Daemon(BrokerConfig config, NodeKeys keys);
  ~Daemon();

  // Loads the netmap, binds the socket, creates TUN, starts the admin socket and the
  // children. An error here means nothing was left running.
  Status start();
  // Runs until SIGTERM/SIGINT; returns the process exit code.
  int run();

 private:
  void wait_signal();
  // children.cc
  void spawn_children();
  void on_child_message(ipc::Role role, ipc::ReceivedMessage msg);
  void on_child_closed(ipc::Role role, const std::string& reason);
  void on_sigchld();
  void schedule_restart(const std::string& why);
  void kill_children();
  void send_setup();
  void send_netmap_to_children();
  // Drops dataproc's WireGuard sessions with `restarted` peers (new disco key).
  void reset_dataproc_sessions(const std::vector<NodePublic>& restarted);
  void send_udp_socket();
  void maybe_ready();
  ChildHandle* child(ipc::Role role);
  std::string child_binary(const char* name) const;

  // rebind and DERP dialling (network.cc)
  // Serialised: a rebind asked for while one runs waits for it, and every request
  // that queued meanwhile shares one more rebind after it (never two at once: the
  // second would find the pinned port still held and drop to inert mode).
  void rebind(std::function<void(Status)> done);
  void rebind_now(const std::function<void(Status)>& done);
  void on_derp_dial_request(const ipc::DerpDialRequest& req);
  void on_derp_dial_request_resolved(const DerpDialTarget& target, const ipc::DerpDialRequest& req);
  void start_link_monitor();
  void wait_link_event();
  void wait_netmap_event();
  void apply_netmap_file(const std::string& path, std::function<void(Status)> done);
  void apply_netmap_text(const std::string& text, const std::string& origin, std::function<void(Status)> done);
  void start_netmap_watch();

  // the kernel egress allowlist of the underlay socket (egress.cc)
  Status install_allowlist();
  void rebuild_allowlist();
  std::vector<AllowElement> allowlist_elements();
  void on_register_candidates(const ipc::RegisterCandidates& req);
  void update_kernel_drop_counter();
  // The netmap's routed prefixes the TUN may carry (plan_tun_routes).
  std::vector<IpPrefix> planned_tun_routes();
  // control.cc: the control plane client (ctlproc), when control_url is set
  Status start_control();
  void forward_endpoints_to_control();
  // Our home DERP region: the netmap's (self.home_derp) if its DERP map has it; with
  // control and none set, the lowest region of the map (what we tell control); else 0.
  std::uint32_t home_region() const;
  // exit.cc: the privacy-proxy exit node, when [exit] is set
  Status start_exit_namespace();
  void start_exit();
  void send_exit_tun();
  nlohmann::json exit_status_json() const;
  std::string exit_metrics_text() const;
  void exit_audit_rows(std::vector<AuditRow>& rows) const;

  // admin.cc
  void on_admin(const AdminRequest& req, std::shared_ptr<AdminResponder> r);
  void child_request(ipc::Role role, const std::string& topic,
                     std::function<void(std::optional<std::string>)> done);
  // Sends the request `make(id)` builds (StatusRequest, OperatorPing, ReleaseUdp) and
  // calls `done` with the StatusReply body carrying that id; nullopt when the child
  // is gone or silent for 7 s.
  void child_call(ipc::Role role, const std::function<ipc::AnyMessage(std::uint32_t)>& make,
                  std::function<void(std::optional<std::string>)> done);
  // A child broke the protocol (docs/design.md: IPC, failure posture): refuse, log, count, restart
  // both.
  void child_violation(ipc::Role role, const std::string& what);
  void admin_status(std::shared_ptr<AdminResponder> r);
  void admin_audit(std::shared_ptr<AdminResponder> r);
  void admin_metrics(std::shared_ptr<AdminResponder> r);
  void admin_ping(const AdminRequest& req, std::shared_ptr<AdminResponder> r);
  void admin_endpoints(const AdminRequest& req, std::shared_ptr<AdminResponder> r);
  // netproc's EndpointsUpdate: published at most once a second (the latest set wins).
  void on_endpoints_update(std::vector<IpPort> endpoints);
  void publish_endpoints();
  // Rewrites config_.endpoints_file (if set) when the set differs from what it holds.
  void write_endpoints_file();

  BrokerConfig config_;
  NodeKeys keys_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer restart_timer_;
  MetricsRegistry metrics_;
  NetmapState netmap_;
  EgressPolicy egress_;
  std::optional<UnderlaySocket> udp_;  // nullopt: inert (DERP-only)
  std::unique_ptr<NftAllowlist> allowlist_;  // null: egress_allowlist = "unenforced"
  CandidateRegistry candidates_;
  std::uint64_t kernel_dropped_seen_ = 0;
  std::uint64_t rebind_generation_ = 0;
  bool rebind_running_ = false;
  std::vector<std::function<void(Status)>> rebind_waiters_;  // queued behind the running one
  std::optional<TunDevice> tun_;
  std::vector<IpPrefix> tun_routes_;
  std::optional<IpAddr> tun_addr_;  // the IPv4 address the TUN has (from self.addresses)
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<ControlClient> control_;
  std::unique_ptr<ExitNode> exit_;
  std::map<ipc::Role, ChildHandle> children_;
  std::uint32_t next_request_id_ = 1;
  struct PendingRequest {
    ipc::Role role;
    std::function<void(std::optional<std::string>)> done;
  };
  std::map<std::uint32_t, PendingRequest> pending_;
  std::deque<std::uint32_t> expired_ids_;  // timed out: a late reply is dropped, not a violation
  std::set<std::uint32_t> derp_dials_in_flight_;  // regions
  TokenBucket derp_dial_bucket_{2.0, 8.0};
  std::vector<IpPort> endpoints_;
  std::vector<std::shared_ptr<AdminResponder>> endpoint_watchers_;
  std::optional<std::string> endpoints_file_content_;  // what the file holds (or is being written)
  std::optional<std::vector<IpPort>> endpoints_pending_;
  bool endpoints_timer_armed_ = false;
  std::chrono::steady_clock::time_point endpoints_published_{};
  bool stopping_ = false;
  bool restarting_ = false;  // inside schedule_restart: ignore the closures it causes
  bool notified_ready_ = false;
  int restarts_in_a_row_ = 0;
  std::chrono::steady_clock::time_point children_started_{};
  int exit_code_ = 0;
  // link-change monitor and netmap file watch (network.cc)
  std::unique_ptr<boost::asio::posix::stream_descriptor> netlink_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> inotify_;
  boost::asio::steady_timer link_debounce_;
  boost::asio::steady_timer endpoints_timer_;
  // Endpoints-file rewrites run here, off the event loop (declared after io_:
  // destroyed, and joined, first).
  boost::asio::thread_pool file_pool_{1};
  alignas(8) std::array<char, 8192> netlink_buf_{};
  alignas(8) std::array<char, 4096> inotify_buf_{};

  Counter& child_restarts_;
  Counter& netmap_rejected_;
  Counter& rebinds_;
  Counter& endpoints_file_failures_;
  Counter& child_violations_;
  Counter& derp_dials_throttled_;
  Counter& endpoints_coalesced_;
  Counter& candidates_accepted_;
  Counter& candidates_refused_;
  Counter& kernel_dropped_;
};

}  // namespace tw::broker
