// The broker's network duties besides the initial bind: rebinding the underlay
// socket (on request and on link change), dialling DERP for netproc under the
// egress policy, and reloading the netmap when its file changes.
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/atomic_file.h"
#include "broker/daemon.h"

namespace tw::broker {

namespace asio = boost::asio;

constexpr std::size_t kMaxNetmapFileBytes = std::size_t{16} * 1024 * 1024;

constexpr std::size_t kMaxQueuedRebinds = 64;

void Daemon::rebind(std::function<void(Status)> done) {
  if (rebind_running_) {
    if (rebind_waiters_.size() >= kMaxQueuedRebinds)
      return done(make_error("too many rebinds queued"));
    rebind_waiters_.push_back(std::move(done));
    return;
  }
  rebind_running_ = true;
  rebind_now([this, done = std::move(done)](Status st) {
    rebind_running_ = false;
    done(std::move(st));
    if (rebind_waiters_.empty()) return;
    auto waiters = std::move(rebind_waiters_);
    rebind_waiters_.clear();
    rebind([waiters = std::move(waiters)](const Status& again) {
      for (const auto& w : waiters) w(again);
    });
  });
}

void Daemon::rebind_now(const std::function<void(Status)>& done) {
  rebinds_.inc();
  const bool pinned = config_.listen_port != 0 && udp_ && udp_->port == config_.listen_port;
  auto bind_and_hand_over = [this, done](bool released) {
    auto sock = bind_underlay({config_.listen_port, config_.enable_ipv6});
    if (!sock) {
      if (!released) {
        spdlog::warn("rebind: {}; keeping the old socket", sock.error());
        send_udp_socket();  // netproc keeps using the same socket
        return done(Error{sock.error()});
      }
      spdlog::error("rebind: {}; running inert (DERP only)", sock.error());
      udp_.reset();
      rebuild_allowlist();
      return done(Error{sock.error()});
    }
    for (const auto& w : sock->warnings) spdlog::warn("rebind: {}", w);
    udp_ = std::move(*sock);
    ++rebind_generation_;
    spdlog::info("rebind: underlay now {}:{}", udp_->v6 ? "[::]" : "0.0.0.0", udp_->port);
    rebuild_allowlist();  // the new port, and sources for the routes now in force
    send_udp_socket();
    done(ok_status());
  };
  if (!pinned) return bind_and_hand_over(false);
  // Keeping a pinned port: netproc lets go of the socket first, then the broker
  // closes its copy, so the port is free to bind again (docs/direct-underlay.md#the-socket).
  child_call(
      ipc::Role::kNetproc, [](std::uint32_t id) { return ipc::AnyMessage(ipc::ReleaseUdp{id}); },
      [this, bind_and_hand_over](const std::optional<std::string>& r) {
        if (!r) spdlog::warn("rebind: netproc did not confirm releasing the socket");
        udp_.reset();
        bind_and_hand_over(true);
      });
}

void Daemon::on_derp_dial_request(const ipc::DerpDialRequest& req) {
  // A child may not make the broker dial faster than a token bucket allows, nor
  // twice at once to one region (the repeat is dropped: the dial in flight answers).
  if (derp_dials_in_flight_.count(req.region_id) != 0) {
    derp_dials_throttled_.inc();
    return;
  }
  const bool allowed = derp_dial_bucket_.take(TokenBucket::Clock::now());
  auto target = allowed ? egress_.decide_derp_dial(req.region_id, req.node_name)
                        : Result<DerpDialTarget>(make_error("DERP dials rate-limited"));
  if (!allowed) derp_dials_throttled_.inc();
  auto reply_failed = [this, req](const std::string& reason) {
    derp_dials_in_flight_.erase(req.region_id);
    if (auto* n = child(ipc::Role::kNetproc)) {
      ipc::DerpDialFailed f;
      f.region_id = req.region_id;
      f.node_name = req.node_name;
      f.reason = reason.substr(0, ipc::kMaxReasonBytes);
      (void)n->link->send(f);
    }
  };
  if (!target) return reply_failed(target.error());
  derp_dials_in_flight_.insert(req.region_id);
  if (!target->address) {
    // derp_dns is on and the node has no fixed IPv4: resolve, then re-check.
    auto resolver = std::make_shared<asio::ip::tcp::resolver>(io_);
    resolver->async_resolve(
        asio::ip::tcp::v4(), target->hostname, std::to_string(target->port),
        [this, resolver, t = *target, req, reply_failed](boost::system::error_code ec,
                                                          asio::ip::tcp::resolver::results_type res) mutable {
          if (ec || res.empty()) return reply_failed("resolve " + t.hostname + ": " + ec.message());
          auto ip = IpAddr::parse(res.begin()->endpoint().address().to_string());
          if (!ip || !egress_.check_resolved(t, *ip)) return reply_failed("resolved address refused by policy");
          t.address = IpPort{*ip, t.port};
          on_derp_dial_request_resolved(t, req);
        });
    return;
  }
  on_derp_dial_request_resolved(*target, req);
}

void Daemon::on_derp_dial_request_resolved(const DerpDialTarget& target, const ipc::DerpDialRequest& req) {
  auto sock = std::make_shared<asio::ip::tcp::socket>(io_);
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(1500));
  asio::ip::tcp::endpoint ep(asio::ip::make_address(target.address->ip.to_string()), target.address->port);
  timer->async_wait([sock](boost::system::error_code ec) {
    if (!ec) {
      boost::system::error_code ignored;
      sock->close(ignored);
    }
  });
  sock->async_connect(ep, [this, sock, timer, req, target](boost::system::error_code ec) {
    timer->cancel();
    derp_dials_in_flight_.erase(req.region_id);
    auto* n = child(ipc::Role::kNetproc);
    if (n == nullptr) return;
    if (ec) {
      ipc::DerpDialFailed f;
      f.region_id = req.region_id;
      f.node_name = req.node_name;
      f.reason = "connect " + target.address->to_string() + ": " + ec.message();
      (void)n->link->send(f);
      return;
    }
    boost::system::error_code nodelay_ec;
    sock->set_option(asio::ip::tcp::no_delay(true), nodelay_ec);  // netproc may not setsockopt
    ipc::DerpConn m;
    m.region_id = req.region_id;
    m.node_name = req.node_name;
    const int fd = sock->native_handle();
    struct stat sb {};
    if (::fstat(fd, &sb) == 0) {
      n->expected_fds.inodes.insert(sb.st_ino);
      n->expected_fds.inet_inodes.insert(sb.st_ino);
    }
    if (auto st = n->link->send(m, std::span<const int>(&fd, 1)); !st) {
      spdlog::warn("derp: handing the connection to netproc: {}", st.error());
    }
    spdlog::info("derp: connected region {} node {} at {}", req.region_id, req.node_name,
                 target.address->to_string());
    // The send duplicated the fd; the broker's copy closes with `sock`.
  });
}

void Daemon::start_link_monitor() {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    spdlog::warn("link monitor: netlink unavailable; rebind only on request");
    return;
  }
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    spdlog::warn("link monitor: cannot subscribe; rebind only on request");
    return;
  }
  netlink_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
  wait_link_event();
}

void Daemon::wait_link_event() {
  netlink_->async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;
    // Only changes on interfaces other than our own TUN matter: the TUN's address
    // and link events are ours, not a change of the underlay.
    bool relevant = false;
    ssize_t n;
    while ((n = ::recv(netlink_->native_handle(), netlink_buf_.data(), netlink_buf_.size(), MSG_DONTWAIT)) > 0) {
      const int tun_index = tun_ ? static_cast<int>(if_nametoindex(tun_->name.c_str())) : 0;
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(netlink_buf_.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        int index = 0;
        if (h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == RTM_DELLINK) {
          index = static_cast<const ifinfomsg*>(NLMSG_DATA(h))->ifi_index;
        } else if (h->nlmsg_type == RTM_NEWADDR || h->nlmsg_type == RTM_DELADDR) {
          const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
          // IPv6 addresses (link-local ones appear after every link up) do not
          // concern an IPv4-only underlay.
          if (ifa->ifa_family == AF_INET6 && !config_.enable_ipv6) continue;
          index = static_cast<int>(ifa->ifa_index);
        } else {
          continue;
        }
        if (index != tun_index) relevant = true;
      }
    }
    if (!relevant) return wait_link_event();
    // Events come in bursts (address removed, added, link up): fold them into one
    // rebind a second after the first.
    if (link_debounce_.expiry() <= std::chrono::steady_clock::now()) {
      link_debounce_.expires_after(std::chrono::seconds(1));
      link_debounce_.async_wait([this](boost::system::error_code e) {
        if (e || stopping_) return;
        spdlog::info("link change: rebinding the underlay socket");
        rebind([](Status st) {
          if (!st) spdlog::warn("link change rebind: {}", st.error());
        });
      });
    }
    wait_link_event();
  });
}

void Daemon::apply_netmap_file(const std::string& path, std::function<void(Status)> done) {
  // Root opens a path an admin named: bounded, regular files only (atomic_file.h).
  auto text = read_regular_file_bounded(path, kMaxNetmapFileBytes);
  if (!text) {
    netmap_rejected_.inc();
    return done(make_error(text.error()));
  }
  apply_netmap_text(*text, path, std::move(done));
}

// Every netmap, from the file, `netmap apply` or the control server, goes through here.
void Daemon::apply_netmap_text(const std::string& text, const std::string& path, std::function<void(Status)> done) {
  NetmapState next = netmap_;
  if (auto st = next.apply(text, path); !st) {
    netmap_rejected_.inc();
    spdlog::error("netmap: refused, previous netmap stays in force: {}", st.error());
    return done(st);
  }
  if (next.netmap().self.node_key != keys_.node.public_key()) {
    netmap_rejected_.inc();
    return done(make_error(path + ": self.node_key does not match this node's key"));
  }
  netmap_ = std::move(next);
  egress_.set_derp_map(netmap_.netmap().derp_map);
  rebuild_allowlist();  // before the children hear of the new peers
  if (tun_) {
    // Control assigns our addresses (and may change them): the TUN follows the map.
    const auto want = tun_ipv4(netmap_.netmap().self.addresses);
    if (want != tun_addr_) {
      if (auto st = set_tun_address(tun_->name, netmap_.netmap().self.addresses); !st) {
        spdlog::warn("netmap: tun address: {}", st.error());
      } else {
        spdlog::info("tun: {} address {}", tun_->name,
                     want ? want->to_string() + "/32" : "removed");
        tun_addr_ = want;
      }
    }
    if (auto st = sync_tun_routes(tun_->name, planned_tun_routes(), &tun_routes_); !st) {
      spdlog::warn("netmap: routes: {}", st.error());
    }
  }
  send_netmap_to_children();
  // A map that moves our home region (the first one with a DERP map, or control's view
  // of us) is news for control too.
  if (control_ && control_->home_derp() != home_region()) forward_endpoints_to_control();
  spdlog::info("netmap: generation {} applied ({} peers)", netmap_.generation(), netmap_.netmap().peers.size());
  done(ok_status());
}

void Daemon::start_netmap_watch() {
  if (config_.netmap_file.empty()) return;  // the map comes from control only
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return;
  const std::string& path = config_.netmap_file;
  const std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  if (::inotify_add_watch(fd, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    ::close(fd);
    spdlog::warn("netmap: cannot watch {}; reload with SIGHUP or `tailwarden netmap apply`", dir);
    return;
  }
  inotify_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
  wait_netmap_event();
}

void Daemon::wait_netmap_event() {
  inotify_->async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;
    const std::string base = config_.netmap_file.substr(config_.netmap_file.rfind('/') + 1);
    bool ours = false;
    ssize_t n;
    while ((n = ::read(inotify_->native_handle(), inotify_buf_.data(), inotify_buf_.size())) > 0) {
      for (ssize_t off = 0; off < n;) {
        auto* ev = reinterpret_cast<inotify_event*>(inotify_buf_.data() + off);
        if (ev->len > 0 && base == ev->name) ours = true;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
    if (ours && !stopping_) {
      apply_netmap_file(config_.netmap_file, [](Status st) { (void)st; });
    }
    wait_netmap_event();
  });
}

}  // namespace tw::broker
