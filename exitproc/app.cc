#include "exitproc/app.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

// After <netinet/in.h>: the kernel header defers to glibc only in this order.
#include <linux/netfilter_ipv4.h>  // SO_ORIGINAL_DST

#include "ipc/control_socket.h"

namespace tw::exitproc {
namespace {

constexpr std::uint64_t kTokLink = 1, kTokListener = 2, kTokDns = 3, kTokUdp = 4;
constexpr std::uint64_t kFirstFlowId = 8;
constexpr int kAcceptsPerWake = 64;
constexpr int kDatagramsPerWake = 64;
constexpr std::size_t kMaxLinkQueue = 65536;
constexpr auto kTickEvery = std::chrono::milliseconds(100);
constexpr std::size_t kReadChunk = 4096;

std::uint64_t flow_token(std::uint64_t id, bool proxy) { return (id << 1) | (proxy ? 1 : 0); }

void reset_close(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

// Destinations no proxy flow may ask for: they would reach the proxy host itself or
// nothing routable (a peer must not use the exit to probe the proxy's loopback).
bool unroutable(const std::array<std::uint8_t, 4>& a) {
  return a[0] == 0 || a[0] == 127 || (a[0] == 169 && a[1] == 254) || a[0] >= 224;
}

}  // namespace

void App::Buffer::compact() {
  if (start == end) {
    start = end = 0;
  } else if (start > 0 && end == kRelayBufferBytes) {
    std::memmove(data.get(), data.get() + start, end - start);
    end -= start;
    start = 0;
  }
}

App::App(int link_fd, const TimeSource& clock, AppOptions opts)
    : link_(link_fd), clock_(clock), opts_(opts) {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) {
    spdlog::error("epoll_create1: {}", errno_text(errno));
    running_ = false;
    exit_code_ = 1;
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTokLink;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, link_, &ev) != 0) {
    spdlog::error("epoll_ctl(link): {}", errno_text(errno));
    running_ = false;
    exit_code_ = 1;
  }
  next_id_ = kFirstFlowId;
  last_tick_ = clock_.now();
}

App::~App() {
  for (auto& [id, f] : flows_) {
    if (f.client >= 0) ::close(f.client);
    if (f.proxy >= 0) ::close(f.proxy);
  }
  for (int fd : {listener_, udp_, epoll_})
    if (fd >= 0) ::close(fd);
}

int App::run() {
  while (poll_once(static_cast<int>(kTickEvery.count()))) {
  }
  return exit_code_;
}

bool App::poll_once(int timeout_ms) {
  if (!running_) return false;
  epoll_event evs[128];
  const int n = ::epoll_wait(epoll_, evs, 128, timeout_ms);
  if (n < 0 && errno != EINTR) {
    spdlog::error("epoll_wait: {}", errno_text(errno));
    running_ = false;
    exit_code_ = 1;
    return false;
  }
  for (int i = 0; i < n && running_; ++i) {
    const std::uint64_t tok = evs[i].data.u64;
    const std::uint32_t e = evs[i].events;
    if (tok == kTokLink) {
      if (e & EPOLLOUT) on_link_writable();
      if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_link();
    } else if (tok == kTokListener) {
      on_accept();
    } else if (tok == kTokDns) {
      dns_.read_queries(kDatagramsPerWake,
                        [this](DnsQuery&& q) { return start_dns(std::move(q)); });
    } else if (tok == kTokUdp) {
      on_udp_sink();
    } else {
      on_flow_event(tok >> 1, (tok & 1) != 0, e);
    }
  }
  if (clock_.now() - last_tick_ >= kTickEvery) tick();
  return running_;
}

// ---- the broker link ----

void App::on_link() {
  for (int i = 0; i < 64 && running_; ++i) {
    ipc::ReceivedDatagram d;
    auto r = ipc::receive_datagram(link_, kMaxLinkDatagram, d);
    if (!r) {
      spdlog::error("broker link: {}", r.error());
      running_ = false;
      exit_code_ = 1;
      return;
    }
    if (*r == ipc::ReceiveOutcome::kWouldBlock) return;
    if (*r == ipc::ReceiveOutcome::kPeerClosed) {
      spdlog::info("broker link closed; exiting");
      running_ = false;
      return;
    }
    auto m = decode_to_exitproc(d.bytes, d.fds.size());
    if (!m) {
      spdlog::error("broker link: {}", m.error());
      running_ = false;
      exit_code_ = 1;
      return;
    }
    if (auto* s = std::get_if<ExitSetup>(&*m)) {
      std::vector<int> fds;
      for (auto& fd : d.fds) fds.push_back(fd.release());
      handle(std::move(*s), std::move(fds));
    } else if (auto* c = std::get_if<ProxyConn>(&*m)) {
      on_proxy_conn(c->flow, d.fds[0].release());
    } else if (auto* f = std::get_if<ProxyDialFailed>(&*m)) {
      on_dial_failed(f->flow, f->reason);
    } else {
      stats_.flows_open = tcp_flows_;
      send_link(ToBroker(stats_));
    }
  }
}

void App::send_link(const ToBroker& m) {
  Bytes d = encode_link(m);
  if (link_out_.empty()) {
    auto r = ipc::send_datagram(link_, d, {});
    if (!r) {
      spdlog::error("broker link: send: {}", r.error());
      running_ = false;
      exit_code_ = 1;
      return;
    }
    if (*r == ipc::SendOutcome::kSent) return;
  }
  if (link_out_.size() >= kMaxLinkQueue) {
    // The broker stopped reading: the flow waiting for this dial times out and is reset.
    spdlog::warn("broker link: send queue full, message dropped");
    return;
  }
  link_out_.push_back(std::move(d));
  if (!link_out_armed_) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = kTokLink;
    (void)::epoll_ctl(epoll_, EPOLL_CTL_MOD, link_, &ev);
    link_out_armed_ = true;
  }
}

void App::on_link_writable() {
  while (!link_out_.empty()) {
    auto r = ipc::send_datagram(link_, link_out_.front(), {});
    if (!r) {
      spdlog::error("broker link: send: {}", r.error());
      running_ = false;
      exit_code_ = 1;
      return;
    }
    if (*r == ipc::SendOutcome::kWouldBlock) return;
    link_out_.pop_front();
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTokLink;
  (void)::epoll_ctl(epoll_, EPOLL_CTL_MOD, link_, &ev);
  link_out_armed_ = false;
}

void App::handle(ExitSetup&& s, std::vector<int> fds) {
  if (setup_done_) {
    for (int fd : fds) ::close(fd);
    spdlog::error("broker link: a second ExitSetup");
    running_ = false;
    exit_code_ = 1;
    return;
  }
  // Check the three fds are what the broker promised: a listening TCP socket and two
  // UDP sockets.
  auto sock_is = [](int fd, int type, bool listening) {
    int v = 0;
    socklen_t l = sizeof v;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) != 0 || v != type) return false;
    l = sizeof v;
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) != 0 || v != AF_INET) return false;
    if (listening) {
      l = sizeof v;
      if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) != 0 || v != 1) return false;
    }
    return true;
  };
  if (!sock_is(fds[0], SOCK_STREAM, true) || !sock_is(fds[1], SOCK_DGRAM, false) ||
      !sock_is(fds[2], SOCK_DGRAM, false)) {
    for (int fd : fds) ::close(fd);
    spdlog::error("broker link: ExitSetup fds are not [tcp listener, udp, udp] of AF_INET");
    running_ = false;
    exit_code_ = 1;
    return;
  }
  setup_ = std::move(s);
  setup_done_ = true;
  // Two fds per TCP flow, one per DNS query, a few for the link, listeners and epoll.
  constexpr std::size_t kFixedFds = 32;
  auto& lim = setup_.limits;
  const std::size_t budget = opts_.fd_budget > kFixedFds ? opts_.fd_budget - kFixedFds : 0;
  if (std::size_t{lim.max_dns_queries} > budget / 4)
    lim.max_dns_queries = static_cast<std::uint32_t>(std::max<std::size_t>(1, budget / 4));
  const std::size_t flow_fds = (budget - lim.max_dns_queries) / 2;
  if (lim.max_flows > flow_fds) {
    spdlog::warn("exit: max_flows {} needs more fds than RLIMIT_NOFILE allows; using {}",
                 lim.max_flows, flow_fds);
    lim.max_flows = static_cast<std::uint32_t>(std::max<std::size_t>(1, flow_fds));
    lim.max_flows_per_source = std::min(lim.max_flows_per_source, lim.max_flows);
  }
  listener_ = fds[0];
  dns_.attach(fds[1], lim.max_dns_queries);
  udp_ = fds[2];
  const std::pair<int, std::uint64_t> regs[] = {
      {listener_, kTokListener}, {dns_.fd(), kTokDns}, {udp_, kTokUdp}};
  for (auto [fd, tok] : regs) {
    (void)ipc::set_nonblocking(fd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tok;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      spdlog::error("epoll_ctl: {}", errno_text(errno));
      running_ = false;
      exit_code_ = 1;
      return;
    }
  }
  spdlog::info("exit set up: {} proxy, auth {}, limits {} flows / {} per source",
               setup_.kind == ProxyKind::kSocks5 ? "socks5" : "http-connect",
               setup_.username.empty() ? "none" : "username/password", setup_.limits.max_flows,
               setup_.limits.max_flows_per_source);
}

// ---- accepting flows ----

void App::on_accept() {
  for (int i = 0; i < kAcceptsPerWake; ++i) {
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    const int fd = ::accept4(listener_, reinterpret_cast<sockaddr*>(&peer), &plen,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (!would_block(errno) && errno != ECONNABORTED && errno != EINTR)
        spdlog::warn("accept: {}", errno_text(errno));
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of fds or memory (the limits should keep us from here): stop polling the
        // listener, or level-triggered epoll would spin; the backlog waits until a
        // flow closes.
        epoll_event ev{};
        ev.events = 0;
        ev.data.u64 = kTokListener;
        (void)::epoll_ctl(epoll_, EPOLL_CTL_MOD, listener_, &ev);
        listener_paused_ = true;
        return;
      }
      if (would_block(errno)) return;
      continue;
    }
    const std::uint32_t src = ntohl(peer.sin_addr.s_addr);
    if (tcp_flows_ >= setup_.limits.max_flows) {
      ++stats_.refusals[static_cast<std::size_t>(Refusal::kLimitTotal)];
      reset_close(fd);
      continue;
    }
    if (auto ps = per_source_.find(src);
        ps != per_source_.end() && ps->second.flows >= setup_.limits.max_flows_per_source) {
      ++stats_.refusals[static_cast<std::size_t>(Refusal::kLimitPerSource)];
      reset_close(fd);
      continue;
    }
    sockaddr_in dst{};
    socklen_t dlen = sizeof dst;
    std::optional<std::array<std::uint8_t, 4>> ip;
    std::uint16_t port = 0;
    if (::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen) == 0 && dst.sin_family == AF_INET) {
      std::array<std::uint8_t, 4> a{};
      std::memcpy(a.data(), &dst.sin_addr.s_addr, 4);
      ip = a;
      port = ntohs(dst.sin_port);
    } else if (opts_.test_fixed_destination && opts_.test_fixed_destination->ip.is_v4()) {
      std::array<std::uint8_t, 4> a{};
      std::memcpy(a.data(), opts_.test_fixed_destination->ip.raw().data(), 4);
      ip = a;
      port = opts_.test_fixed_destination->port;
    }
    if (!ip || port == 0 || unroutable(*ip)) {
      ++stats_.refusals[static_cast<std::size_t>(Refusal::kNoDestination)];
      reset_close(fd);
      continue;
    }
    auto hs = make_handshake(setup_.kind, ConnectTarget{ip, "", port},
                             Credentials{setup_.username, setup_.password});
    if (!hs) {
      ++stats_.refusals[static_cast<std::size_t>(Refusal::kNoDestination)];
      reset_close(fd);
      continue;
    }
    const std::uint64_t id = next_id_++;
    Flow& f = flows_[id];
    f.id = id;
    f.client = fd;
    f.source = src;
    f.target = ConnectTarget{ip, "", port};
    f.hs = std::move(*hs);
    f.phase = Phase::kDialing;
    f.last_activity = clock_.now();
    f.deadline = f.last_activity + std::chrono::milliseconds(setup_.limits.handshake_timeout_ms);
    ++tcp_flows_;
    Source& source = per_source_[src];
    ++source.flows;
    ++stats_.flows_total;
    epoll_event ev{};
    ev.events = 0;  // only errors until the proxy handshake is done
    ev.data.u64 = flow_token(id, false);
    (void)::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
    // Dial now if this source has a share left and nobody of it waits before us.
    if (source.waiting.empty() && source.dials.take(f.last_activity)) {
      send_link(ToBroker(DialProxy{id}));
    } else {
      f.waiting = true;
      source.waiting.push_back(id);
      ++dial_waits_;
      update_interest(f);  // a client that gives up while waiting is dropped
    }
  }
}

void App::release_waiting(TimePoint now) {
  for (auto it = per_source_.begin(); it != per_source_.end();) {
    Source& s = it->second;
    while (!s.waiting.empty() && s.dials.take(now)) {
      const std::uint64_t id = s.waiting.front();
      s.waiting.pop_front();
      auto f = flows_.find(id);
      if (f == flows_.end()) continue;  // cannot happen: close_flow dequeues
      f->second.waiting = false;
      update_interest(f->second);
      send_link(ToBroker(DialProxy{id}));
    }
    if (s.flows == 0 && s.dials.full(now)) {
      it = per_source_.erase(it);
    } else {
      ++it;
    }
  }
}

void App::on_udp_sink() {
  std::uint8_t buf[2048];
  for (int i = 0; i < kDatagramsPerWake; ++i) {
    const ssize_t n = ::recvfrom(udp_, buf, sizeof buf, MSG_DONTWAIT, nullptr, nullptr);
    if (n < 0) return;
    ++stats_.udp_dropped;
  }
}

bool App::start_dns(DnsQuery&& q) {
  auto hs = make_handshake(setup_.kind, ConnectTarget{setup_.dns_resolver, "", kDnsPort},
                           Credentials{setup_.username, setup_.password});
  if (!hs) return false;
  const std::uint64_t id = next_id_++;
  Flow& f = flows_[id];
  f.id = id;
  f.dns = true;
  f.dns_query = std::move(q);
  f.hs = std::move(*hs);
  f.phase = Phase::kDialing;
  f.last_activity = clock_.now();
  f.deadline = f.last_activity + std::chrono::milliseconds(setup_.limits.dns_timeout_ms);
  send_link(ToBroker(DialProxy{id}));
  return true;
}

// ---- proxy connections ----

void App::on_proxy_conn(std::uint64_t id, int fd) {
  auto it = flows_.find(id);
  if (it == flows_.end() || it->second.phase != Phase::kDialing || it->second.waiting) {
    ::close(fd);  // the flow timed out or was reset meanwhile (or was never dialed)
    return;
  }
  Flow& f = it->second;
  int type = 0;
  socklen_t tl = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM) {
    ::close(fd);
    spdlog::warn("flow {}: the broker passed a proxy fd that is not a stream socket", id);
    note_proxy_error(Refusal::kDialFailed, "broker passed a non-stream fd");
    if (f.dns) return finish_dns(f, false);
    return refuse(f, Refusal::kDialFailed, "non-stream fd");
  }
  (void)ipc::set_nonblocking(fd);
  f.proxy = fd;
  f.phase = Phase::kHandshake;
  f.pending = f.hs->take_output();
  f.pending_off = 0;
  if (!take_buffers(f)) {
    // Cannot happen while flows are bounded by max_flows; treated as a limit.
    if (f.dns) return finish_dns(f, false);
    return refuse(f, Refusal::kLimitTotal, "buffer pool exhausted");
  }
  epoll_event ev{};
  ev.events = 0;
  ev.data.u64 = flow_token(id, true);
  (void)::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  pump(f);
}

void App::on_dial_failed(std::uint64_t id, const std::string& reason) {
  auto it = flows_.find(id);
  if (it == flows_.end() || it->second.phase != Phase::kDialing || it->second.waiting) return;
  note_proxy_error(Refusal::kDialFailed, reason);
  if (it->second.dns) return finish_dns(it->second, false);
  refuse(it->second, Refusal::kDialFailed, reason);
}

void App::note_proxy_error(Refusal why, const std::string& detail) {
  stats_.proxy_ok = false;
  stats_.last_proxy_error = std::string(refusal_name(why)) + ": " + detail.substr(0, 200);
}

bool App::take_buffers(Flow& f) {
  const std::size_t need = f.dns ? 1 : 2;
  // Flows are bounded (max_flows TCP + max_dns_queries DNS), so is the pool.
  const std::size_t cap =
      2 * static_cast<std::size_t>(setup_.limits.max_flows) + setup_.limits.max_dns_queries;
  Buffer* bufs[2] = {&f.down, &f.up};
  for (std::size_t i = 0; i < need; ++i) {
    if (!pool_.empty()) {
      bufs[i]->data = std::move(pool_.back());
      pool_.pop_back();
    } else if (pool_allocated_ < cap) {
      bufs[i]->data = std::make_unique<std::uint8_t[]>(kRelayBufferBytes);
      ++pool_allocated_;
    } else {
      return false;
    }
    bufs[i]->start = bufs[i]->end = 0;
  }
  return true;
}

void App::give_buffers(Flow& f) {
  for (Buffer* b : {&f.up, &f.down}) {
    if (!b->data) continue;
    // Keep a bounded free list; return the rest to the allocator.
    if (pool_.size() < 64) {
      pool_.push_back(std::move(b->data));
    } else {
      b->data.reset();
      --pool_allocated_;
    }
  }
}

// ---- flow I/O ----

void App::on_flow_event(std::uint64_t id, bool proxy_side, std::uint32_t events) {
  auto it = flows_.find(id);
  if (it == flows_.end()) return;
  Flow& f = it->second;
  if (!proxy_side && (f.phase == Phase::kDialing || f.phase == Phase::kHandshake) &&
      (events & (EPOLLERR | EPOLLHUP))) {
    // The client went away before its tunnel existed.
    return close_flow(f, true, true);
  }
  if (!proxy_side && f.waiting && (events & EPOLLRDHUP)) {
    // A client that closed without sending anything while its flow waited for its
    // member's dial share has given up (a flooder's sockets): drop it, undialed. One
    // that sent data first keeps its half-close and is dialed in turn.
    char b;
    if (::recv(f.client, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) return close_flow(f, true, true);
    f.waiting_hup = true;
    return update_interest(f);
  }
  pump(f);
  // A hang-up on an fd we no longer read or write would wake us forever.
  it = flows_.find(id);
  if (it == flows_.end()) return;
  if ((events & (EPOLLERR | EPOLLHUP)) &&
      (proxy_side ? it->second.proxy_mask : it->second.client_mask) == 0) {
    Flow& g = it->second;
    if (g.phase == Phase::kRelay && !proxy_side) return close_flow(g, true, true);
    if (g.phase == Phase::kRelay) {
      note_proxy_error(Refusal::kProxyClosed, "proxy connection hung up");
      return refuse(g, Refusal::kProxyClosed, "hang-up");
    }
    if (g.dns) return finish_dns(g, false);
    return refuse(g, Refusal::kProxyHandshake, "hang-up");
  }
}

void App::pump(Flow& f) {
  if (f.phase == Phase::kHandshake) return pump_handshake(f);
  if (f.phase == Phase::kRelay) return pump_relay(f);
  if (f.phase == Phase::kDnsQuery || f.phase == Phase::kDnsAnswer) return pump_dns(f);
  update_interest(f);
}

void App::pump_handshake(Flow& f) {
  for (;;) {
    // Write what the handshake wants sent.
    while (f.pending_off < f.pending.size()) {
      const ssize_t n = ::send(f.proxy, f.pending.data() + f.pending_off,
                               f.pending.size() - f.pending_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (would_block(errno)) return update_interest(f);
        const std::string why = "send: " + errno_text(errno);
        note_proxy_error(Refusal::kProxyHandshake, why);
        if (f.dns) return finish_dns(f, false);
        return refuse(f, Refusal::kProxyHandshake, why);
      }
      f.pending_off += static_cast<std::size_t>(n);
    }
    // Read the reply into the handshake; whatever follows it is tunnel data.
    std::uint8_t buf[kReadChunk];
    const std::size_t room = f.dns ? kReadChunk : std::min(kReadChunk, f.down.space());
    const ssize_t n = ::recv(f.proxy, buf, room, MSG_DONTWAIT);
    if (n < 0 && would_block(errno)) return update_interest(f);
    if (n < 0) {
      const std::string why = "recv: " + errno_text(errno);
      note_proxy_error(Refusal::kProxyHandshake, why);
      if (f.dns) return finish_dns(f, false);
      return refuse(f, Refusal::kProxyHandshake, why);
    }
    if (n == 0) {
      f.hs->on_eof();
    } else {
      const std::size_t used = f.hs->feed(ByteView(buf, static_cast<std::size_t>(n)));
      if (f.hs->state() == HandshakeState::kDone && used < static_cast<std::size_t>(n)) {
        if (f.dns) {
          // A resolver cannot speak before it got the query.
          f.hs->on_eof();
        } else {
          std::memcpy(f.down.data.get() + f.down.end, buf + used,
                      static_cast<std::size_t>(n) - used);
          f.down.end += static_cast<std::size_t>(n) - used;
          stats_.bytes_down += static_cast<std::uint64_t>(n) - used;
        }
      }
    }
    if (f.hs->state() == HandshakeState::kFailed) {
      const auto& fl = f.hs->failure();
      note_proxy_error(fl.kind, fl.detail);
      if (f.dns) return finish_dns(f, false);
      return refuse(f, fl.kind, fl.detail);
    }
    if (f.hs->state() == HandshakeState::kDone) {
      stats_.proxy_ok = true;
      ++stats_.handshakes_ok;
      f.hs.reset();
      f.pending.clear();
      f.pending_off = 0;
      f.last_activity = clock_.now();
      if (f.dns) {
        f.phase = Phase::kDnsQuery;
        f.pending = frame_dns_query(f.dns_query.query);
        return pump_dns(f);
      }
      f.phase = Phase::kRelay;
      return pump_relay(f);
    }
    Bytes more = f.hs->take_output();
    if (!more.empty()) {
      f.pending = std::move(more);
      f.pending_off = 0;
    }
  }
}

void App::pump_relay(Flow& f) {
  bool progress = true;
  while (progress) {
    progress = false;
    // client -> proxy
    if (!f.client_eof && f.up.space() > 0) {
      const ssize_t n = ::recv(f.client, f.up.data.get() + f.up.end, f.up.space(), MSG_DONTWAIT);
      if (n > 0) {
        f.up.end += static_cast<std::size_t>(n);
        stats_.bytes_up += static_cast<std::uint64_t>(n);
        progress = true;
      } else if (n == 0) {
        f.client_eof = true;
        progress = true;
      } else if (!would_block(errno)) {
        return close_flow(f, true, true);  // the client reset: so does the proxy side
      }
    }
    if (f.up.size() > 0) {
      const ssize_t n =
          ::send(f.proxy, f.up.data.get() + f.up.start, f.up.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        f.up.start += static_cast<std::size_t>(n);
        f.up.compact();
        progress = true;
      } else if (n < 0 && !would_block(errno)) {
        const std::string why = "send: " + errno_text(errno);
        note_proxy_error(Refusal::kProxyClosed, why);
        return refuse(f, Refusal::kProxyClosed, why);
      }
    }
    if (f.client_eof && f.up.size() == 0 && !f.up_shut) {
      (void)::shutdown(f.proxy, SHUT_WR);
      f.up_shut = true;
    }
    // proxy -> client
    if (!f.proxy_eof && f.down.space() > 0) {
      const ssize_t n =
          ::recv(f.proxy, f.down.data.get() + f.down.end, f.down.space(), MSG_DONTWAIT);
      if (n > 0) {
        f.down.end += static_cast<std::size_t>(n);
        stats_.bytes_down += static_cast<std::uint64_t>(n);
        progress = true;
      } else if (n == 0) {
        f.proxy_eof = true;
        progress = true;
      } else if (!would_block(errno)) {
        const std::string why = "recv: " + errno_text(errno);
        note_proxy_error(Refusal::kProxyClosed, why);
        return refuse(f, Refusal::kProxyClosed, why);
      }
    }
    if (f.down.size() > 0) {
      const ssize_t n = ::send(f.client, f.down.data.get() + f.down.start, f.down.size(),
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        f.down.start += static_cast<std::size_t>(n);
        f.down.compact();
        progress = true;
      } else if (n < 0 && !would_block(errno)) {
        return close_flow(f, true, true);
      }
    }
    if (f.proxy_eof && f.down.size() == 0 && !f.down_shut) {
      (void)::shutdown(f.client, SHUT_WR);
      f.down_shut = true;
    }
    if (progress) f.last_activity = clock_.now();
  }
  if (f.up_shut && f.down_shut) return close_flow(f, false, false);
  update_interest(f);
}

void App::pump_dns(Flow& f) {
  if (f.phase == Phase::kDnsQuery) {
    while (f.pending_off < f.pending.size()) {
      const ssize_t n = ::send(f.proxy, f.pending.data() + f.pending_off,
                               f.pending.size() - f.pending_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (would_block(errno)) return update_interest(f);
        return finish_dns(f, false);
      }
      f.pending_off += static_cast<std::size_t>(n);
    }
    f.phase = Phase::kDnsAnswer;
  }
  // The answer: 2-byte length, then that many bytes (at most 65535, buffer-bounded).
  for (;;) {
    const std::size_t want =
        framed_dns_answer_size(ByteView(f.down.data.get() + f.down.start, f.down.size()));
    if (want > kRelayBufferBytes) return finish_dns(f, false);
    if (f.down.size() >= want) break;
    const ssize_t n =
        ::recv(f.proxy, f.down.data.get() + f.down.end, want - f.down.size(), MSG_DONTWAIT);
    if (n < 0 && would_block(errno)) return update_interest(f);
    if (n <= 0) return finish_dns(f, false);
    f.down.end += static_cast<std::size_t>(n);
  }
  finish_dns(f, true);
}

void App::finish_dns(Flow& f, bool ok) {
  std::optional<ByteView> answer;
  if (ok) answer = ByteView(f.down.data.get() + f.down.start, f.down.size());
  dns_.finish(f.dns_query, answer);
  close_flow(f, false, false);
}

void App::update_interest(Flow& f) {
  std::uint32_t cm = 0, pm = 0;
  switch (f.phase) {
    case Phase::kDialing:
      if (f.waiting && !f.waiting_hup) cm = EPOLLRDHUP;
      break;
    case Phase::kHandshake:
      pm = EPOLLIN | (f.pending_off < f.pending.size() ? EPOLLOUT : 0u);
      break;
    case Phase::kRelay:
      if (!f.client_eof && f.up.space() > 0) cm |= EPOLLIN;
      if (f.down.size() > 0) cm |= EPOLLOUT;
      if (!f.proxy_eof && f.down.space() > 0) pm |= EPOLLIN;
      if (f.up.size() > 0) pm |= EPOLLOUT;
      break;
    case Phase::kDnsQuery:
      pm = EPOLLOUT;
      break;
    case Phase::kDnsAnswer:
      pm = EPOLLIN;
      break;
  }
  if (f.client >= 0 && cm != f.client_mask) {
    epoll_event ev{};
    ev.events = cm;
    ev.data.u64 = flow_token(f.id, false);
    (void)::epoll_ctl(epoll_, EPOLL_CTL_MOD, f.client, &ev);
    f.client_mask = cm;
  }
  if (f.proxy >= 0 && pm != f.proxy_mask) {
    epoll_event ev{};
    ev.events = pm;
    ev.data.u64 = flow_token(f.id, true);
    (void)::epoll_ctl(epoll_, EPOLL_CTL_MOD, f.proxy, &ev);
    f.proxy_mask = pm;
  }
}

void App::refuse(Flow& f, Refusal why, const std::string& detail) {
  ++stats_.refusals[static_cast<std::size_t>(why)];
  spdlog::debug("flow {} to {}: reset: {}: {}", f.id, f.target.authority(), refusal_name(why),
                detail);
  close_flow(f, true, true);
}

void App::close_flow(Flow& f, bool reset_client, bool reset_proxy) {
  if (f.client >= 0) {
    (void)::epoll_ctl(epoll_, EPOLL_CTL_DEL, f.client, nullptr);
    if (reset_client) {
      reset_close(f.client);
    } else {
      ::close(f.client);
    }
  }
  if (f.proxy >= 0) {
    (void)::epoll_ctl(epoll_, EPOLL_CTL_DEL, f.proxy, nullptr);
    if (reset_proxy) {
      reset_close(f.proxy);
    } else {
      ::close(f.proxy);
    }
  }
  give_buffers(f);
  if (!f.dns) {
    --tcp_flows_;
    auto it = per_source_.find(f.source);
    if (it != per_source_.end()) {
      --it->second.flows;
      // A flow closed while waiting for its dial share is never dialed.
      if (f.waiting) std::erase(it->second.waiting, f.id);
    }
  }
  flows_.erase(f.id);
  if (listener_paused_) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTokListener;
    (void)::epoll_ctl(epoll_, EPOLL_CTL_MOD, listener_, &ev);
    listener_paused_ = false;
  }
}

void App::tick() {
  const TimePoint now = clock_.now();
  last_tick_ = now;
  const auto idle = std::chrono::milliseconds(setup_.limits.idle_timeout_ms);
  std::vector<std::uint64_t> expired;
  for (auto& [id, f] : flows_) {
    const bool setting_up = f.phase == Phase::kDialing || f.phase == Phase::kHandshake || f.dns;
    if (setting_up ? now >= f.deadline : now - f.last_activity >= idle) expired.push_back(id);
  }
  for (std::uint64_t id : expired) {
    auto it = flows_.find(id);
    if (it == flows_.end()) continue;
    Flow& f = it->second;
    if (f.dns) {
      finish_dns(f, false);
    } else if (f.waiting) {
      // Its member's dial share did not reach it in time: the proxy is not to blame.
      refuse(f, Refusal::kLimitPerSource, "timed out waiting for the member's dial share");
    } else if (f.phase == Phase::kRelay) {
      refuse(f, Refusal::kIdle, "idle");
    } else {
      const Refusal why =
          f.phase == Phase::kDialing ? Refusal::kDialFailed : Refusal::kProxyHandshake;
      note_proxy_error(why, "timed out");
      refuse(f, why, "timed out");
    }
  }
  release_waiting(now);
  stats_.flows_open = tcp_flows_;
}

}  // namespace tw::exitproc
