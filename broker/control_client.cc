#include "broker/control_client.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "ipc/control_socket.h"

namespace tw::broker {

namespace asio = boost::asio;

ControlClient::ControlClient(asio::io_context& io, ControlClientConfig config,
                             MetricsRegistry& metrics, NetmapHandler on_netmap)
    : io_(io),
      config_(std::move(config)),
      on_netmap_(std::move(on_netmap)),
      map_updates_(
          metrics.counter("control_map_updates_total", "Netmaps received from the control server")),
      dials_(
          metrics.counter("control_dials_total", "TCP connections dialled to the control server")),
      dial_failures_(
          metrics.counter("control_dial_failures_total", "Failed dials to the control server")),
      child_(io,
             ChildLaunch{config_.binary, config_.child_args, config_.child_env, config_.new_netns},
             SupervisorOptions{"control", "ctlproc", std::chrono::milliseconds(1000), std::nullopt},
             status_, expected_fds_,
             metrics.counter("control_client_restarts_total",
                             "ctlproc restarts after its link closed"),
             ChildSupervisor::Hooks{[this](pid_t pid) { on_spawned(pid); },
                                    [this] { on_link_readable(); }, nullptr}) {
  status_.url = config_.url;
}

ControlClient::~ControlClient() { stop(); }

void ControlClient::start() { child_.start(); }

void ControlClient::stop() { child_.stop(); }

void ControlClient::on_spawned(pid_t pid) {
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
  spdlog::info("control: ctlproc started (pid {}) for {}", pid, config_.url);
  (void)send(setup);
}

bool ControlClient::send(const ctl::ToCtlproc& m, int fd) {
  if (!child_.link()) return false;
  Bytes d = ctl::encode_link(m);
  std::vector<int> fds;
  if (fd >= 0) fds.push_back(fd);
  auto r = ipc::send_datagram(child_.link_fd(), d, fds);
  if (!r || *r != ipc::SendOutcome::kSent) {
    child_.link_failed(r ? "ctlproc link full" : r.error());
    return false;
  }
  return true;
}

void ControlClient::on_link_readable() {
  for (;;) {
    if (!child_.link()) return;
    ipc::ReceivedDatagram d;
    auto r = ipc::receive_datagram(child_.link_fd(), ctl::kMaxLinkDatagram, d);
    if (!r) return child_.link_failed(r.error());
    if (*r == ipc::ReceiveOutcome::kPeerClosed)
      return child_.link_failed("ctlproc closed its link");
    if (*r == ipc::ReceiveOutcome::kWouldBlock) break;
    auto m = ctl::decode_to_broker(d.bytes, d.fds.size());
    if (!m) return child_.link_failed(m.error());  // a hostile child: drop and restart it
    if (auto* dr = std::get_if<ctl::CtlDialRequest>(&*m)) {
      dial(dr->purpose);
    } else if (auto* part = std::get_if<ctl::CtlNetmapPart>(&*m)) {
      auto text = assembler_.add(*part);
      if (!text) return child_.link_failed(text.error());
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
  child_.wait_link();
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
    if (child_.stopped() || !child_.link()) return;
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
    if (send(ctl::CtlConn{purpose}, fd)) child_.reset_backoff();
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
  if (child_.link()) (void)send(m);
}

}  // namespace tw::broker
