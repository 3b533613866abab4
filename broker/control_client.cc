#include "broker/control_client.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "broker/spawn.h"
#include "common/child_fds.h"
#include "ipc/control_socket.h"

namespace tw::broker {

namespace asio = boost::asio;

ControlClient::ControlClient(asio::io_context& io, ControlClientConfig config,
                             MetricsRegistry& metrics, NetmapHandler on_netmap)
    : io_(io),
      config_(std::move(config)),
      on_netmap_(std::move(on_netmap)),
      restart_timer_(io),
      map_updates_(
          metrics.counter("control_map_updates_total", "Netmaps received from the control server")),
      dials_(
          metrics.counter("control_dials_total", "TCP connections dialled to the control server")),
      dial_failures_(
          metrics.counter("control_dial_failures_total", "Failed dials to the control server")),
      restarts_(metrics.counter("control_client_restarts_total",
                                "ctlproc restarts after its link closed")) {
  status_.url = config_.url;
}

ControlClient::~ControlClient() { stop(); }

void ControlClient::start() { spawn(); }

void ControlClient::stop() {
  stopped_ = true;
  restart_timer_.cancel();
  if (link_) {
    boost::system::error_code ec;
    link_->close(ec);
    link_.reset();
  }
  if (status_.pid > 0) {
    ::kill(status_.pid, SIGKILL);
    ::waitpid(status_.pid, nullptr, 0);  // the daemon's SIGCHLD loop may have reaped it
    status_.pid = -1;
  }
}

void ControlClient::spawn() {
  if (stopped_) return;
  auto pair = ipc::make_control_pair();
  if (!pair) {
    on_link_closed("control socketpair: " + pair.error());
    return;
  }
  ChildSpec spec;
  spec.path = config_.binary;
  spec.args = config_.child_args;
  spec.env = config_.child_env;
  spec.fds = {{child_fd::kBrokerControl, pair->second.get()}};
  spec.new_netns = config_.new_netns;
  expected_fds_ = ExpectedFds{};
  if (struct stat sb{}; ::fstat(pair->second.get(), &sb) == 0)
    expected_fds_.inodes.insert(sb.st_ino);
  auto pid = spawn_child(spec);
  if (!pid) {
    on_link_closed("spawning ctlproc: " + pid.error());
    return;
  }
  status_.pid = *pid;
  pair->second.reset();
  if (auto st = ipc::set_nonblocking(pair->first.get()); !st) {
    on_link_closed(st.error());
    return;
  }
  link_ = std::make_unique<asio::posix::stream_descriptor>(io_, pair->first.release());
  ctl::CtlSetup setup;
  setup.machine_private = config_.machine_private;
  setup.node_public = config_.node_public;
  setup.disco_public = config_.disco_public;
  setup.control_key = config_.control_key;
  setup.authority = config_.authority;
  setup.auth_key = config_.auth_key;
  setup.hostname = config_.hostname;
  setup.routable_ips = config_.routable_ips;
  setup.home_derp = home_derp_;
  setup.endpoints = endpoints_;
  assembler_ = ctl::NetmapAssembler();
  spdlog::info("control: ctlproc started (pid {}) for {}", *pid, config_.url);
  if (!send(setup)) return;
  wait_link();
}

bool ControlClient::send(const ctl::ToCtlproc& m, int fd) {
  if (!link_) return false;
  Bytes d = ctl::encode_link(m);
  std::vector<int> fds;
  if (fd >= 0) fds.push_back(fd);
  auto r = ipc::send_datagram(link_->native_handle(), d, fds);
  if (!r || *r != ipc::SendOutcome::kSent) {
    on_link_closed(r ? "ctlproc link full" : r.error());
    return false;
  }
  return true;
}

void ControlClient::wait_link() {
  if (!link_) return;
  link_->async_wait(asio::posix::stream_descriptor::wait_read,
                    [this](boost::system::error_code ec) {
                      if (ec == asio::error::operation_aborted || stopped_) return;
                      if (ec) {
                        on_link_closed(ec.message());
                        return;
                      }
                      on_link_readable();
                    });
}

void ControlClient::on_link_readable() {
  for (;;) {
    if (!link_) return;
    ipc::ReceivedDatagram d;
    auto r = ipc::receive_datagram(link_->native_handle(), ctl::kMaxLinkDatagram, d);
    if (!r) return on_link_closed(r.error());
    if (*r == ipc::ReceiveOutcome::kPeerClosed) return on_link_closed("ctlproc closed its link");
    if (*r == ipc::ReceiveOutcome::kWouldBlock) break;
    auto m = ctl::decode_to_broker(d.bytes, d.fds.size());
    if (!m) return on_link_closed(m.error());  // a hostile child: drop and restart it
    if (auto* dr = std::get_if<ctl::CtlDialRequest>(&*m)) {
      dial(dr->purpose);
    } else if (auto* part = std::get_if<ctl::CtlNetmapPart>(&*m)) {
      auto text = assembler_.add(*part);
      if (!text) return on_link_closed(text.error());
      if (text->has_value()) {
        map_updates_.inc();
        on_netmap_(**text);
      }
    } else if (auto* s = std::get_if<ctl::CtlStatus>(&*m)) {
      status_.state = s->state;
      status_.auth_url = s->auth_url;
      status_.error = s->error;
      status_.user = s->user;
      status_.maps = s->maps;
      status_.reconnects = s->reconnects;
      status_.bytes_in = s->bytes_in;
      status_.bytes_out = s->bytes_out;
      if (s->key_expired && !status_.key_expired)
        spdlog::warn("control: this node's key expired ({}): log in again", s->key_expiry);
      status_.key_expiry = s->key_expiry;
      status_.key_expired = s->key_expired;
      status_.expired_peers = s->expired_peers;
      if (!s->auth_url.empty()) spdlog::warn("control: login required: visit {}", s->auth_url);
      if (!s->error.empty()) spdlog::warn("control: {} ({})", s->state, s->error);
    }
  }
  wait_link();
}

void ControlClient::on_link_closed(const std::string& why) {
  if (stopped_) return;
  spdlog::warn("control: ctlproc link: {}; restarting it in {} ms", why, restart_backoff_.count());
  if (link_) {
    boost::system::error_code ec;
    link_->close(ec);
    link_.reset();
  }
  if (status_.pid > 0) {
    ::kill(status_.pid, SIGKILL);
    status_.pid = -1;  // reaped by the daemon's SIGCHLD loop (or by stop())
  }
  status_.state = "restarting";
  status_.error = why;
  restarts_.inc();
  restart_timer_.expires_after(restart_backoff_);
  restart_backoff_ = std::min(restart_backoff_ * 2, std::chrono::milliseconds(30000));
  restart_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopped_) spawn();
  });
}

void ControlClient::dial(ctl::ConnPurpose purpose) {
  // Egress policy for control: the configured address, nothing else, no DNS.
  dials_.inc();
  auto sock = std::make_shared<asio::ip::tcp::socket>(io_);
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::seconds(5));
  asio::ip::tcp::endpoint ep(asio::ip::make_address(config_.address.ip.to_string()),
                             config_.address.port);
  timer->async_wait([sock](boost::system::error_code ec) {
    if (!ec) {
      boost::system::error_code ignored;
      sock->close(ignored);
    }
  });
  sock->async_connect(ep, [this, sock, timer, purpose](boost::system::error_code ec) {
    timer->cancel();
    if (stopped_ || !link_) return;
    if (ec) {
      dial_failures_.inc();
      (void)send(ctl::CtlDialFailed{
          purpose, "connect " + config_.address.to_string() + ": " + ec.message()});
      return;
    }
    boost::system::error_code ignored;
    sock->set_option(asio::ip::tcp::no_delay(true), ignored);
    const int fd = sock->native_handle();
    if (struct stat sb{}; ::fstat(fd, &sb) == 0) {
      expected_fds_.inodes.insert(sb.st_ino);
      expected_fds_.inet_inodes.insert(sb.st_ino);
    }
    if (send(ctl::CtlConn{purpose}, fd)) {
      restart_backoff_ = std::chrono::milliseconds(1000);
    }
    // The send duplicated the fd; the broker's copy closes with `sock`.
  });
}

void ControlClient::update_endpoints(std::vector<ctl::Endpoint> endpoints,
                                     std::uint32_t home_derp) {
  endpoints_ = std::move(endpoints);
  home_derp_ = home_derp;
  ctl::CtlEndpoints m;
  m.home_derp = home_derp;
  m.disco_public = config_.disco_public;
  m.endpoints = endpoints_;
  if (link_) (void)send(m);
}

}  // namespace tw::broker
