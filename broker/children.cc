// Spawning and supervising netproc and dataproc. The two are one unit: if either
// dies, both are restarted with fresh rings and control channels, the same UDP
// socket and the current netmap (docs/design.md#7-failure-posture: while netproc is down nothing is
// sent, because only netproc ever writes to the socket).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "broker/daemon.h"
#include "broker/spawn.h"
#include "common/child_fds.h"
#include "common/overloaded.h"
#include "ipc/control_socket.h"
#include "ipc/doorbell.h"
#include "ipc/netmap_parts.h"
#include "ipc/ring_memory.h"

namespace tw::broker {
namespace {

ino_t inode_of(int fd) {
  struct stat sb {};
  return ::fstat(fd, &sb) == 0 ? sb.st_ino : 0;
}

std::vector<std::string> child_env() {
  std::vector<std::string> env;
  // Sanitizer builds read their options from the environment; nothing else passes.
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"}) {
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  }
  return env;
}

std::string exit_text(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

}  // namespace

std::string Daemon::child_binary(const char* name) const {
  if (const char* dir = std::getenv("TW_LIBEXEC_DIR")) return std::string(dir) + "/" + name;
  char exe[PATH_MAX] = {};
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  std::string dir = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string("/usr/sbin/x");
  dir = dir.substr(0, dir.rfind('/'));
  for (const std::string& candidate : {dir + "/" + name, dir + "/../lib/tailwarden/" + name}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return dir + "/" + name;
}

ChildHandle* Daemon::child(ipc::Role role) {
  auto it = children_.find(role);
  return it == children_.end() ? nullptr : &it->second;
}

void Daemon::spawn_children() {
  if (stopping_) return;
  auto fail = [this](const std::string& why) {
    spdlog::error("broker: cannot start children: {}", why);
    schedule_restart(why);
  };
  auto rings = ipc::RingMemory::create(ipc::RingGeometry{});
  if (!rings) return fail("rings: " + rings.error());
  auto bell_nd = ipc::make_doorbell();
  auto bell_dn = ipc::make_doorbell();
  if (!bell_nd || !bell_dn) return fail("doorbells");
  auto bn = ipc::make_control_pair();
  auto bd = ipc::make_control_pair();
  auto nd = ipc::make_control_pair();
  if (!bn || !bd || !nd) return fail("control socketpairs");

  struct Plan {
    ipc::Role role;
    const char* binary;
    int control;
    int peer;
    const ChildAccount& account;  // each child under its own uid
  };
  const Plan plans[] = {
      {ipc::Role::kNetproc, "tailwarden-netproc", bn->second.get(), nd->first.get(),
       config_.account(ChildRole::kNetproc)},
      {ipc::Role::kDataproc, "tailwarden-dataproc", bd->second.get(), nd->second.get(),
       config_.account(ChildRole::kDataproc)},
  };
  children_started_ = std::chrono::steady_clock::now();
  for (const Plan& plan : plans) {
    ChildSpec spec;
    spec.path = child_binary(plan.binary);
    spec.args = {"--uid",       std::to_string(plan.account.uid),
                 "--gid",       std::to_string(plan.account.gid),
                 "--sandbox",   std::string(to_string(config_.sandbox_mode)),
                 "--log-level", std::string(to_string(config_.log_level))};
    spec.env = child_env();
    spec.fds = {{child_fd::kBrokerControl, plan.control},
                {child_fd::kPeerControl, plan.peer},
                {child_fd::kRingMemory, rings->fd()},
                {child_fd::kDoorbellNetToData, bell_nd->get()},
                {child_fd::kDoorbellDataToNet, bell_dn->get()}};
    auto pid = spawn_child(spec);
    if (!pid) {
      kill_children();
      return fail(pid.error());
    }
    ChildHandle h;
    h.role = plan.role;
    h.pid = *pid;
    for (auto [target, source] : spec.fds) {
      (void)target;
      h.expected_fds.inodes.insert(inode_of(source));
    }
    children_[plan.role] = std::move(h);
  }
  // The broker keeps only its own control ends; the children hold the rest.
  children_[ipc::Role::kNetproc].link = std::make_unique<ipc::ControlLink>(
      io_, std::move(bn->first), ipc::LinkKind::kBrokerNetproc, ipc::Role::kBroker, &metrics_);
  children_[ipc::Role::kDataproc].link = std::make_unique<ipc::ControlLink>(
      io_, std::move(bd->first), ipc::LinkKind::kBrokerDataproc, ipc::Role::kBroker, &metrics_);
  for (auto role : {ipc::Role::kNetproc, ipc::Role::kDataproc}) {
    const pid_t pid = children_[role].pid;
    children_[role].link->start(
        [this, role, pid](ipc::ReceivedMessage m) {
          if (auto* c = child(role); c && c->pid == pid) on_child_message(role, std::move(m));
        },
        [this, role, pid](const std::string& reason) {
          if (auto* c = child(role); c && c->pid == pid) on_child_closed(role, reason);
        });
  }
  send_setup();
}

void Daemon::send_setup() {
  ipc::NetprocSetup ns;
  ns.generation = netmap_.generation();
  ns.disco_private = keys_.disco;
  ns.node_public = keys_.node.public_key();
  ns.listen_port = udp_ ? udp_->port : 0;
  ns.home_derp = home_region();
  ns.flags = (config_.enable_ipv6 ? ipc::NetprocSetup::kFlagIpv6 : 0) |
             (config_.allow_lan_endpoints ? ipc::NetprocSetup::kFlagAllowLanEndpoints : 0) |
             (config_.advertise_lan_endpoints ? ipc::NetprocSetup::kFlagAdvertiseLanEndpoints : 0) |
             (allowlist_ ? ipc::NetprocSetup::kFlagEgressAllowlist : 0);
  ipc::DataprocSetup ds;
  ds.node_private = keys_.node;  // the node private key goes to dataproc only
  auto* n = child(ipc::Role::kNetproc);
  auto* d = child(ipc::Role::kDataproc);
  if (auto st = n->link->send(ns); !st) spdlog::error("broker: netproc setup: {}", st.error());
  if (auto st = d->link->send(ds); !st) spdlog::error("broker: dataproc setup: {}", st.error());
  send_netmap_to_children();
  send_udp_socket();
  if (tun_) {
    ipc::TunFd t;
    t.mtu = config_.tun.mtu;
    const int fd = tun_->fd.get();
    d->expected_fds.inodes.insert(inode_of(fd));
    if (auto st = d->link->send(t, std::span<const int>(&fd, 1)); !st) {
      spdlog::error("broker: tun fd: {}", st.error());
    }
  }
  send_exit_tun();
}

void Daemon::send_netmap_to_children() {
  auto* n = child(ipc::Role::kNetproc);
  auto* d = child(ipc::Role::kDataproc);
  if (n == nullptr || d == nullptr) return;
  if (auto restarted = netmap_.take_restarted(); !restarted.empty())
    reset_dataproc_sessions(restarted);
  auto np = ipc::split_netproc_netmap(netmap_.generation(), netmap_.netproc_peers(),
                                      netmap_.derp_map_json(), home_region());
  auto dp = ipc::split_dataproc_netmap(netmap_.generation(), netmap_.dataproc_peers());
  if (!np || !dp) {
    spdlog::error("broker: netmap does not fit the control channel: {}", !np ? np.error() : dp.error());
    return;
  }
  for (const auto& part : *np) (void)n->link->send(part);
  // Our own addresses first: dataproc routes the rest to the exit (or drops them).
  (void)d->link->send(ipc::SelfAddresses{netmap_.netmap().self.addresses});
  for (const auto& part : *dp) (void)d->link->send(part);
  ipc::DataprocFilter f;
  f.generation = netmap_.generation();
  f.enabled = netmap_.netmap().packet_filter.has_value();
  if (f.enabled) f.filter = *netmap_.netmap().packet_filter;
  if (auto st = d->link->send(f); !st) spdlog::error("broker: packet filter: {}", st.error());
}

// A peer with a new disco key restarted, so its WireGuard session is gone on its side.
// As Tailscale does, drop ours at once rather than wait ~15 s for the keepalive and
// rekey timeouts: dataproc gets this generation without those peers (it removes them,
// session keys and all), then the full netmap of the next generation re-adds them.
void Daemon::reset_dataproc_sessions(const std::vector<NodePublic>& restarted) {
  auto* d = child(ipc::Role::kDataproc);
  if (d == nullptr) return;
  std::vector<ipc::DataprocPeer> kept;
  for (auto& p : netmap_.dataproc_peers()) {
    if (std::find(restarted.begin(), restarted.end(), p.node_key) == restarted.end())
      kept.push_back(std::move(p));
  }
  auto dp = ipc::split_dataproc_netmap(netmap_.generation(), std::move(kept));
  if (!dp) {
    spdlog::error("broker: netmap does not fit the control channel: {}", dp.error());
    return;
  }
  for (const auto& part : *dp) (void)d->link->send(part);
  netmap_.advance_generation();
  spdlog::info("netmap: {} peer(s) restarted (new disco key): WireGuard sessions reset",
               restarted.size());
}

void Daemon::send_udp_socket() {
  auto* n = child(ipc::Role::kNetproc);
  if (n == nullptr || !udp_) return;
  ipc::UdpSocket m;
  m.rebind_generation = rebind_generation_;
  const int fd = udp_->fd.get();
  n->expected_fds.inodes.insert(inode_of(fd));
  n->expected_fds.inet_inodes.insert(inode_of(fd));
  if (auto st = n->link->send(m, std::span<const int>(&fd, 1)); !st) {
    spdlog::error("broker: handing the UDP socket to netproc: {}", st.error());
  }
}

void Daemon::on_child_message(ipc::Role role, ipc::ReceivedMessage msg) {
  // Nothing a child sends may take the broker down (docs/design.md: failure posture): every handler
  // reads type-checked values; anything that still throws is a refused message.
  try {
    std::visit(Overloaded{
                   [&](ipc::Ready&) {
                     children_[role].ready = true;
                     maybe_ready();
                   },
                   [&](ipc::StatusReply& m) {
                     auto it = pending_.find(m.request_id);
                     if (it == pending_.end() || it->second.role != role) {
                       // A late answer to a request that timed out is harmless; an id
                       // this child was never asked (another child's, or made up) is not.
                       if (it == pending_.end() &&
                           std::find(expired_ids_.begin(), expired_ids_.end(), m.request_id) !=
                               expired_ids_.end()) {
                         return;
                       }
                       return child_violation(role, "StatusReply for request id " +
                                                        std::to_string(m.request_id) +
                                                        " it was not asked");
                     }
                     auto done = std::move(it->second.done);
                     pending_.erase(it);
                     done(std::move(m.body));
                   },
                   [&](ipc::DerpDialRequest& m) { on_derp_dial_request(m); },
                   [&](ipc::RegisterCandidates& m) { on_register_candidates(m); },
                   [&](ipc::EndpointsUpdate& m) { on_endpoints_update(std::move(m.endpoints)); },
                   // The catalogue lets none of these reach the broker; if one does, the
                   // link is not what it claims: drop it (the children are restarted).
                   on_any_of<ipc::NetprocSetup, ipc::NetprocNetmap, ipc::UdpSocket, ipc::DerpConn,
                             ipc::DerpDialFailed, ipc::Shutdown, ipc::RingReset, ipc::StatusRequest,
                             ipc::DataprocSetup, ipc::DataprocNetmap, ipc::TunFd,
                             ipc::SealClientInfoRequest, ipc::SealClientInfoReply,
                             ipc::CandidatesVerdict, ipc::OperatorPing, ipc::ReleaseUdp,
                             ipc::SelfAddresses, ipc::ExitTunFd, ipc::DataprocFilter>([&] {
                     if (auto* c = child(role); c && c->link)
                       c->link->close("message not for the broker");
                   }),
               },
               msg.message);
  } catch (const std::exception& e) {
    child_violation(role, std::string("message refused: ") + e.what());
  }
}

void Daemon::child_violation(ipc::Role role, const std::string& what) {
  child_violations_.inc();
  spdlog::error("broker: protocol violation by {}: {}; restarting the children",
                ipc::role_name(role), what);
  schedule_restart(std::string(ipc::role_name(role)) + " protocol violation");
}

void Daemon::on_child_closed(ipc::Role role, const std::string& reason) {
  if (stopping_ || restarting_) return;
  spdlog::warn("broker: control link to {} closed: {}", ipc::role_name(role), reason);
  schedule_restart(std::string(ipc::role_name(role)) + " link closed");
}

void Daemon::on_sigchld() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    for (auto& [role, c] : children_) {
      if (c.pid == pid) {
        c.pid = -1;
        if (!stopping_ && !restarting_) {
          spdlog::warn("broker: {} (pid {}) {}", ipc::role_name(role), pid, exit_text(status));
          schedule_restart(std::string(ipc::role_name(role)) + " " + exit_text(status));
        }
      }
    }
  }
}

void Daemon::kill_children() {
  for (auto& [role, c] : children_) {
    if (c.link) c.link->close("stopping child");
    if (c.pid > 0) {
      ::kill(c.pid, SIGKILL);
      int status;
      ::waitpid(c.pid, &status, 0);
      c.pid = -1;
    }
  }
  // Requests in flight will never be answered now.
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) p.done(std::nullopt);
}

void Daemon::schedule_restart(const std::string& why) {
  if (stopping_ || restarting_ || restart_timer_.expiry() > std::chrono::steady_clock::now()) return;
  restarting_ = true;
  kill_children();
  // The links' handlers may still be on the call stack: destroy them from the loop.
  auto old = std::make_shared<std::map<ipc::Role, ChildHandle>>(std::move(children_));
  children_.clear();
  boost::asio::post(io_, [old] {});
  restarting_ = false;
  // First restart fast (well within 1 s); repeated crashes back off to 10 s.
  auto delay = std::chrono::milliseconds(100);
  for (int i = 0; i < restarts_in_a_row_ && delay < std::chrono::seconds(10); ++i) delay *= 2;
  delay = std::min<std::chrono::milliseconds>(delay, std::chrono::seconds(10));
  ++restarts_in_a_row_;
  child_restarts_.inc();
  spdlog::warn("broker: restarting children in {} ms ({})", delay.count(), why);
  restart_timer_.expires_after(delay);
  restart_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) spawn_children();
  });
}

}  // namespace tw::broker
