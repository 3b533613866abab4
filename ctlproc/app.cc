#include "ctlproc/app.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ctlproc/netmap_json.h"
#include "ipc/control_socket.h"

namespace tw::ctl {
namespace {

constexpr std::chrono::milliseconds kMaxBackoff{30000};
constexpr std::chrono::seconds kWatchdog{120};  // as tailscaled: no map message for 120 s

}  // namespace

bool App::send(const ToBroker& m) {
  Bytes d = encode_link(m);
  auto r = ipc::send_datagram(link_fd_, d, {});
  if (!r) {
    spdlog::error("broker link: {}", r.error());
    return false;
  }
  if (*r == ipc::SendOutcome::kWouldBlock) {
    // The broker reads promptly; a full link means it is stuck. Wait briefly.
    pollfd p{link_fd_, POLLOUT, 0};
    if (::poll(&p, 1, 2000) <= 0) return false;
    auto again = ipc::send_datagram(link_fd_, d, {});
    return again && *again == ipc::SendOutcome::kSent;
  }
  return true;
}

void App::send_status() {
  CtlStatus s;
  if (session_) {
    s.state = session_state_name(session_->state());
    s.auth_url = session_->auth_url();
    s.user = session_->user();
    s.bytes_in = session_->stats().bytes_in;
    s.bytes_out = session_->stats().bytes_out;
  } else {
    s.state = redial_at_ ? "backing-off" : "connecting";
  }
  s.error = last_error_;
  s.maps = maps_;
  s.reconnects = reconnects_;
  if (session_ && session_->map_state().self() != nullptr) {
    s.key_expiry = session_->map_state().self()->key_expiry;
    s.key_expired = session_->map_state().self_key_expired(std::chrono::system_clock::now());
  }
  s.expired_peers = expired_peers_;
  const std::string key = s.state + "|" + s.auth_url + "|" + s.error + "|" +
                          std::to_string(s.maps) + "|" + s.key_expiry + "|" +
                          (s.key_expired ? "x" : "") + "|" + std::to_string(s.expired_peers);
  if (key == last_status_) return;
  last_status_ = key;
  (void)send(s);
}

void App::request_dial(ConnPurpose p) {
  if (dial_pending_ || conn_fd_ >= 0) return;
  dial_pending_ = true;
  redial_at_.reset();
  (void)send(CtlDialRequest{p});
}

void App::on_setup(CtlSetup s) {
  setup_ = std::move(s);
  key_pinned_ = KeyBytes{} != setup_->control_key;
  request_dial(KeyBytes{} == setup_->control_key ? ConnPurpose::kKeyFetch : ConnPurpose::kSession);
  send_status();
}

void App::on_conn(CtlConn c, int fd) {
  dial_pending_ = false;
  if (conn_fd_ >= 0 || !setup_) {
    ::close(fd);
    return;
  }
  if (auto st = ipc::set_nonblocking(fd); !st) {
    ::close(fd);
    drop_conn(st.error());
    return;
  }
  conn_fd_ = fd;
  conn_purpose_ = c.purpose;
  out_.clear();
  if (c.purpose == ConnPurpose::kKeyFetch) {
    key_buf_.clear();
    const std::string req = key_request(setup_->authority, kCapabilityVersion);
    out_.assign(req.begin(), req.end());
  } else {
    SessionConfig cfg;
    cfg.authority = setup_->authority;
    cfg.machine_private = setup_->machine_private;
    cfg.control_key = MachinePublic(setup_->control_key);
    cfg.node_key = setup_->node_public;
    if (!setup_->disco_public.is_zero()) cfg.disco_key = setup_->disco_public;
    cfg.auth_key = setup_->auth_key;
    cfg.hostinfo.hostname = setup_->hostname;
    cfg.hostinfo.ipn_version = std::string("tailwarden-") + TW_VERSION;
    cfg.hostinfo.preferred_derp = setup_->home_derp;
    cfg.hostinfo.routable_ips = setup_->routable_ips;
    cfg.endpoints = setup_->endpoints;
    session_ = std::make_unique<Session>(std::move(cfg));
    auto first = session_->start();
    if (!first) {
      drop_conn(first.error());
      return;
    }
    out_ = std::move(*first);
    last_message_ = Clock::now();
    last_messages_ = 0;
  }
  (void)flush_out();
  send_status();
}

void App::drop_conn(const std::string& why) {
  if (!why.empty()) {
    last_error_ = why;
    spdlog::warn("control: {}", why);
  }
  if (conn_fd_ >= 0) {
    ::shutdown(conn_fd_, SHUT_RDWR);
    ::close(conn_fd_);
    conn_fd_ = -1;
  }
  if (session_ && session_->state() == SessionState::kMapping) ever_connected_ = true;
  // A fetched key may be stale (the server restarted with a new one): fetch it again.
  if (session_ && !key_pinned_ && setup_) setup_->control_key = KeyBytes{};
  session_.reset();
  out_.clear();
  schedule_redial();
  send_status();
}

void App::schedule_redial() {
  if (!setup_) return;
  redial_at_ = Clock::now() + backoff_;
  spdlog::info("control: reconnecting in {} ms", backoff_.count());
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  ++reconnects_;
}

bool App::flush_out() {
  while (!out_.empty() && conn_fd_ >= 0) {
    const ssize_t n = ::write(conn_fd_, out_.data(), out_.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return true;
      drop_conn(std::string("control connection write: ") + std::strerror(errno));
      return false;
    }
    out_.erase(out_.begin(), out_.begin() + n);
  }
  return true;
}

void App::pump_session() {
  if (!session_) return;
  Bytes more = session_->take_output();
  out_.insert(out_.end(), more.begin(), more.end());
  auto nms = session_->take_netmaps();
  if (!nms.empty()) {
    // Only the newest matters; the broker applies it as one generation.
    send_netmap(nms.back());
    maps_ += nms.size();
    backoff_ = std::chrono::milliseconds(1000);  // a working session resets the backoff
    last_error_.clear();
  }
  if (session_->messages_received() != last_messages_) {
    last_messages_ = session_->messages_received();
    last_message_ = Clock::now();
  }
  if (session_->state() == SessionState::kFailed) {
    drop_conn(session_->error());
    return;
  }
  (void)flush_out();
  send_status();
}

void App::send_netmap(const Netmap& nm) {
  const std::string json = netmap_to_json(nm);
  ++netmap_seq_;
  for (auto& part : split_netmap(netmap_seq_, json)) (void)send(part);
  const auto now = std::chrono::system_clock::now();
  if (session_) {
    expiry_at_ = session_->map_state().next_key_expiry(now);
    ConvertStats st;
    (void)session_->map_state().to_netmap(&st, now);
    expired_peers_ = st.skipped_expired;
  }
}

// A peer whose key expired since the last netmap leaves it now, map or no map.
void App::check_key_expiry() {
  if (!expiry_at_ || !session_ || std::chrono::system_clock::now() < *expiry_at_) return;
  expiry_at_.reset();
  auto nm = session_->map_state().to_netmap();
  if (!nm) return;
  spdlog::info("control: a peer's node key expired: netmap made again without it");
  send_netmap(*nm);
  send_status();
}

void App::handle_conn() {
  std::uint8_t buf[16384];
  for (;;) {
    const ssize_t n = ::read(conn_fd_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      drop_conn(std::string("control connection read: ") + std::strerror(errno));
      return;
    }
    if (conn_purpose_ == ConnPurpose::kKeyFetch) {
      if (n > 0) key_buf_.insert(key_buf_.end(), buf, buf + n);
      if (key_buf_.size() > kMaxKeyResponseBytes + 8192) {
        drop_conn("control key: response too large");
        return;
      }
      auto k = parse_key_response(key_buf_, n == 0);
      if (!k) {
        drop_conn(k.error());
        return;
      }
      if (*k) {
        setup_->control_key = (*k)->bytes();
        spdlog::info("control: server key {}", (*k)->to_string());
        ::close(conn_fd_);
        conn_fd_ = -1;
        request_dial(ConnPurpose::kSession);
        return;
      }
      if (n == 0) return;
      continue;
    }
    if (n == 0) {
      session_->on_eof();
      pump_session();
      return;
    }
    (void)session_->on_bytes(ByteView(buf, static_cast<std::size_t>(n)));
    pump_session();
    if (conn_fd_ < 0) return;
  }
}

bool App::handle_link() {
  for (;;) {
    ipc::ReceivedDatagram d;
    auto r = ipc::receive_datagram(link_fd_, kMaxLinkDatagram, d);
    if (!r) {
      spdlog::error("broker link: {}", r.error());
      return false;
    }
    if (*r == ipc::ReceiveOutcome::kWouldBlock) return true;
    if (*r == ipc::ReceiveOutcome::kPeerClosed) return false;
    auto m = decode_to_ctlproc(d.bytes, d.fds.size());
    if (!m) {
      spdlog::error("broker link: {}", m.error());
      return false;  // a protocol violation ends the process; the broker restarts it
    }
    if (auto* s = std::get_if<CtlSetup>(&*m)) {
      if (setup_) {
        spdlog::error("broker link: second CtlSetup");
        return false;
      }
      on_setup(std::move(*s));
    } else if (!setup_) {
      spdlog::error("broker link: message before CtlSetup");
      return false;
    } else if (auto* c = std::get_if<CtlConn>(&*m)) {
      on_conn(*c, d.fds[0].release());
    } else if (auto* f = std::get_if<CtlDialFailed>(&*m)) {
      dial_pending_ = false;
      last_error_ = "dial: " + f->reason;
      schedule_redial();
      send_status();
    } else if (auto* e = std::get_if<CtlEndpoints>(&*m)) {
      setup_->home_derp = e->home_derp;
      if (!e->disco_public.is_zero()) setup_->disco_public = e->disco_public;
      setup_->endpoints = e->endpoints;
      if (session_) {
        session_->update_endpoints(
            e->endpoints, e->home_derp,
            e->disco_public.is_zero() ? std::nullopt : std::optional<DiscoPublic>(e->disco_public));
        pump_session();
      }
    }
  }
}

int App::run() {
  for (;;) {
    pollfd fds[2];
    nfds_t n = 0;
    fds[n++] = {link_fd_, POLLIN, 0};
    if (conn_fd_ >= 0)
      fds[n++] = {conn_fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
    int timeout = 1000;
    const auto now = Clock::now();
    if (redial_at_) {
      timeout = static_cast<int>(std::max<long>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(*redial_at_ - now).count()));
      timeout = std::min(timeout, 1000);
    }
    const int rc = ::poll(fds, n, timeout);
    if (rc < 0 && errno != EINTR) return 1;
    if (fds[0].revents != 0 && !handle_link()) return 0;
    if (n > 1 && conn_fd_ >= 0 && fds[1].revents != 0) {
      if (fds[1].revents & POLLOUT) (void)flush_out();
      if (conn_fd_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) handle_conn();
    }
    if (redial_at_ && Clock::now() >= *redial_at_ && conn_fd_ < 0 && !dial_pending_) {
      request_dial(KeyBytes{} == setup_->control_key ? ConnPurpose::kKeyFetch
                                                     : ConnPurpose::kSession);
    }
    check_key_expiry();
    if (session_ && session_->state() == SessionState::kMapping &&
        Clock::now() - last_message_ > kWatchdog) {
      drop_conn("map watchdog: no message from control for 120 s");
    }
  }
}

}  // namespace tw::ctl
