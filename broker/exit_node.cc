#include "broker/exit_node.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "ipc/control_socket.h"

namespace tw::broker {

namespace asio = boost::asio;

namespace {
ino_t inode_of(int fd) {
  struct stat sb {};
  return ::fstat(fd, &sb) == 0 ? sb.st_ino : 0;
}
}  // namespace

ExitNode::ExitNode(asio::io_context& io, ExitNodeConfig config, MetricsRegistry& metrics)
    : io_(io),
      config_(std::move(config)),
      refresh_timer_(io),
      dial_bucket_(config_.dial_rate, config_.dial_burst),
      dials_(metrics.counter("exit_proxy_dials_total",
                             "TCP connections dialled to the exit's upstream proxy")),
      dial_failures_(
          metrics.counter("exit_proxy_dial_failures_total", "Failed dials to the upstream proxy")),
      dials_refused_(
          metrics.counter("exit_proxy_dials_refused_total",
                          "DialProxy requests refused: rate limit or too many in flight")),
      violations_(
          metrics.counter("exit_link_violations_total",
                          "exitproc messages refused as protocol violations (exitproc restarted)")),
      // An exitproc that ran for a while before it failed starts the backoff over.
      child_(io,
             ChildLaunch{config_.binary, config_.child_args, config_.child_env, config_.new_netns},
             SupervisorOptions{"exit", "exitproc", std::chrono::milliseconds(500),
                               std::chrono::seconds(10)},
             status_, expected_fds_,
             metrics.counter("exit_restarts_total", "exitproc restarts after its link closed"),
             ChildSupervisor::Hooks{[this](pid_t pid) { on_spawned(pid); },
                                    [this] { on_link_readable(); },
                                    [this] {
                                      drop_link_state();
                                      finish_refreshes();
                                    }}) {}

ExitNode::~ExitNode() {
  try {
    stop();
  } catch (...) {  // nothing may escape a destructor; stop() only closes and kills
  }
}

Status ExitNode::create_namespace() {
  auto ns = create_exit_namespace(config_.mtu, ExitPorts{});
  if (!ns) return make_error(ns.error());
  ns_ = std::move(*ns);
  spdlog::info("exit: namespace ready ({} up, listeners on :{} :{} :{}), proxy {}", ns_->tun_name,
               exitproc::kExitTcpPort, exitproc::kExitDnsPort, exitproc::kExitUdpPort,
               config_.exit.proxy_url);
  return ok_status();
}

void ExitNode::start() {
  if (ns_) child_.start();  // no namespace, no exitproc
}

void ExitNode::stop() {
  refresh_timer_.cancel();
  child_.stop();
}

void ExitNode::drop_link_state() {
  outbox_.clear();
  write_wait_armed_ = false;
  read_paused_ = false;
}

void ExitNode::on_spawned(pid_t pid) {
  status_.state = "running";
  status_.error.clear();
  drop_link_state();
  const int setup_fds[exitproc::kSetupFds] = {ns_->tcp_listener.get(), ns_->dns_socket.get(),
                                              ns_->udp_socket.get()};
  for (int fd : setup_fds) {
    expected_fds_.inodes.insert(inode_of(fd));
    expected_fds_.inet_inodes.insert(inode_of(fd));
  }
  exitproc::ExitSetup setup;
  setup.kind = config_.exit.proxy_kind == ProxyKind::kSocks5 ? exitproc::ProxyKind::kSocks5
                                                             : exitproc::ProxyKind::kHttpConnect;
  setup.proxy_host = config_.exit.proxy.to_string();
  if (config_.credentials) {
    setup.username = config_.credentials->username;
    setup.password = config_.credentials->password;
  }
  const auto& r = config_.exit.dns_resolver.raw();
  setup.dns_resolver = {r[0], r[1], r[2], r[3]};
  spdlog::info("exit: exitproc started (pid {}), proxy {}", pid, config_.exit.proxy_url);
  (void)send(setup, std::span<const int>(setup_fds, exitproc::kSetupFds));
  std::fill(setup.password.begin(), setup.password.end(), '\0');
}

bool ExitNode::send(const exitproc::ToExitproc& m, std::span<const int> fds) {
  if (!child_.link()) return false;
  Bytes d = exitproc::encode_link(m);
  if (outbox_.empty()) {
    auto r = ipc::send_datagram(child_.link_fd(), d, fds);
    if (!r) {
      std::fill(d.begin(), d.end(), 0);  // ExitSetup carries the proxy password
      on_link_closed(r.error(), false);
      return false;
    }
    if (*r == ipc::SendOutcome::kSent) {
      std::fill(d.begin(), d.end(), 0);
      return true;
    }
  }
  if (outbox_.size() >= kMaxOutbox) {
    // A child that does not read its link is not one we keep.
    on_link_closed("exitproc stopped reading its link", true);
    return false;
  }
  Outgoing o{std::move(d), {}};
  for (int fd : fds) o.fds.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  outbox_.push_back(std::move(o));
  wait_writable();
  return true;
}

void ExitNode::wait_writable() {
  if (!child_.link() || write_wait_armed_) return;
  write_wait_armed_ = true;
  child_.link()->async_wait(asio::posix::stream_descriptor::wait_write,
                            [this, gen = child_.generation()](boost::system::error_code ec) {
                              if (gen != child_.generation()) return;
                              write_wait_armed_ = false;
                              if (ec == asio::error::operation_aborted || child_.stopped()) return;
                              if (ec) return on_link_closed(ec.message(), false);
                              flush_outbox();
                            });
}

void ExitNode::flush_outbox() {
  while (child_.link() && !outbox_.empty()) {
    Outgoing& o = outbox_.front();
    std::vector<int> raw;
    for (const auto& fd : o.fds) raw.push_back(fd.get());
    auto r = ipc::send_datagram(child_.link_fd(), o.datagram, raw);
    if (!r) return on_link_closed(r.error(), false);
    if (*r != ipc::SendOutcome::kSent) return wait_writable();
    std::fill(o.datagram.begin(), o.datagram.end(), 0);
    outbox_.pop_front();
  }
  // Drained: reading resumes.
  if (child_.link() && !read_paused_) return;
  read_paused_ = false;
  on_link_readable();
}

void ExitNode::on_link_readable() {
  // At most a burst per wake-up, so a flooding exitproc cannot starve the broker.
  for (int i = 0; i < 256; ++i) {
    if (!child_.link()) return;
    if (!outbox_.empty()) {
      read_paused_ = true;  // flush_outbox resumes reading
      return;
    }
    ipc::ReceivedDatagram d;
    auto r = ipc::receive_datagram(child_.link_fd(), exitproc::kMaxLinkDatagram, d);
    if (!r) return on_link_closed(r.error(), true);
    if (*r == ipc::ReceiveOutcome::kPeerClosed)
      return on_link_closed("exitproc closed its link", false);
    if (*r == ipc::ReceiveOutcome::kWouldBlock) return child_.wait_link();
    auto m = exitproc::decode_to_broker(d.bytes, d.fds.size());
    if (!m) return on_link_closed(m.error(), true);  // a hostile child: drop and restart it
    if (auto* dp = std::get_if<exitproc::DialProxy>(&*m)) {
      on_dial(dp->flow);
    } else if (auto* s = std::get_if<exitproc::ExitStats>(&*m)) {
      // Shown in status and logs: printable ASCII only, whatever exitproc sent.
      for (char& c : s->last_proxy_error) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
      }
      status_.stats = std::move(*s);
      finish_refreshes();
    }
  }
  // More to read: yield to the event loop, then continue.
  asio::post(io_, [this, gen = child_.generation()] {
    if (child_.link() && gen == child_.generation()) on_link_readable();
  });
}

void ExitNode::on_link_closed(const std::string& why, bool violation) {
  if (child_.stopped()) return;
  if (violation) violations_.inc();
  child_.link_failed(why);
}

void ExitNode::dial_failed(std::uint64_t flow, const std::string& why) {
  (void)send(exitproc::ProxyDialFailed{flow, why.substr(0, exitproc::kMaxLinkText)});
}

// The egress rule for exit flows: the one configured proxy address (IPv4:port, fixed
// in the config; exitproc names no destination at all), rate-limited, bounded in flight.
void ExitNode::on_dial(std::uint64_t flow) {
  if (dials_in_flight_ >= config_.max_dials_in_flight) {
    dials_refused_.inc();
    return dial_failed(flow, "refused: too many proxy dials in flight");
  }
  if (!dial_bucket_.take(TokenBucket::Clock::now())) {
    dials_refused_.inc();
    return dial_failed(flow, "refused: proxy dial rate limit");
  }
  dials_.inc();
  ++dials_in_flight_;
  auto sock = std::make_shared<asio::ip::tcp::socket>(io_);
  auto timer = std::make_shared<asio::steady_timer>(io_, config_.dial_timeout);
  const IpPort& proxy = config_.exit.proxy;
  const auto& b = proxy.ip.raw();
  const asio::ip::tcp::endpoint ep(
      asio::ip::address_v4(asio::ip::address_v4::bytes_type{b[0], b[1], b[2], b[3]}), proxy.port);
  timer->async_wait([sock](boost::system::error_code ec) {
    if (!ec) {
      boost::system::error_code ignored;
      sock->close(ignored);
    }
  });
  sock->async_connect(ep, [this, sock, timer, flow,
                           gen = child_.generation()](boost::system::error_code ec) {
    timer->cancel();
    --dials_in_flight_;
    if (child_.stopped() || !child_.link() || gen != child_.generation())
      return;  // for an exitproc that is gone
    if (ec) {
      dial_failures_.inc();
      return dial_failed(flow, "connect " + config_.exit.proxy.to_string() + ": " + ec.message());
    }
    boost::system::error_code ignored;
    sock->set_option(asio::ip::tcp::no_delay(true), ignored);
    const int fd = sock->native_handle();
    const ino_t ino = inode_of(fd);
    expected_fds_.inodes.insert(ino);
    expected_fds_.inet_inodes.insert(ino);
    (void)send(exitproc::ProxyConn{flow}, std::span<const int>(&fd, 1));
    // The send duplicated the fd; the broker's copy closes with `sock`.
  });
}

void ExitNode::refresh(std::function<void()> done) {
  if (!child_.link()) return done();
  refresh_waiters_.push_back(std::move(done));
  if (refresh_waiters_.size() > 1) return;  // one request answers them all
  if (!send(exitproc::StatsRequest{})) return;
  refresh_timer_.expires_after(std::chrono::seconds(1));
  refresh_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) finish_refreshes();
  });
}

void ExitNode::finish_refreshes() {
  refresh_timer_.cancel();
  auto waiters = std::move(refresh_waiters_);
  refresh_waiters_.clear();
  for (auto& w : waiters) w();
}

ExitIsolation ExitNode::inspect() const {
  if (!ns_) {
    ExitIsolation iso;
    iso.problems.push_back("no exit namespace");
    return iso;
  }
  return inspect_exit_namespace(ns_->netns.get());
}

Result<ExitKernelCounters> ExitNode::kernel_counters() const {
  if (!ns_) return make_error("no exit namespace");
  return read_exit_counters(ns_->netns.get());
}

}  // namespace tw::broker
