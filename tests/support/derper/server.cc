#include "tests/support/derper/server.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "netproc/derp/http_upgrade.h"
#include "tests/support/derper/conn.h"
#include "tests/support/derper/stun_responder.h"

namespace tw::derper {
namespace {

using derp::FrameType;

constexpr std::uint64_t kListenTag = 0;
constexpr std::uint64_t kStunTag = ~std::uint64_t{0};

void log_line(const std::string& s) {
  std::fprintf(stdout, "%s\n", s.c_str());
  std::fflush(stdout);
}

Bytes frame_bytes(FrameType type, ByteView payload) {
  Bytes out;
  derp::append_frame(out, type, payload);
  return out;
}

// Tailscale: 60 s + up to 5 s; shorter test intervals keep the same 1/12 proportion.
Duration keepalive_jitter(Duration keepalive) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(keepalive).count() / 12;
  return std::chrono::milliseconds(ms > 0 ? randombytes_uniform(static_cast<std::uint32_t>(ms)) : 0);
}

Result<int> bound_socket(const IpPort& at, int type, std::uint16_t* port_out) {
  sockaddr_storage ss{};
  socklen_t len = at.to_sockaddr(&ss, at.ip.is_v6());
  int fd = ::socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      (type == SOCK_STREAM && ::listen(fd, 128) != 0)) {
    std::string e = std::strerror(errno);
    ::close(fd);
    return make_error("bind " + at.to_string() + ": " + e);
  }
  len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  auto bound = IpPort::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  *port_out = bound ? bound->port : 0;
  return fd;
}

}  // namespace

DerpServer::DerpServer(ServerConfig cfg) : cfg_(std::move(cfg)), pub_(cfg_.key.public_key()) {}

DerpServer::~DerpServer() {
  conns_.clear();
  for (int fd : {listen_fd_, stun_fd_, epfd_})
    if (fd >= 0) ::close(fd);
}

Result<std::unique_ptr<DerpServer>> DerpServer::create(ServerConfig cfg) {
  std::unique_ptr<DerpServer> s(new DerpServer(std::move(cfg)));
  if (!s->cfg_.plain_http) {
    auto ctx = derp::make_server_ctx(s->cfg_.tls_cert, s->cfg_.tls_key);
    if (!ctx) return make_error(ctx.error());
    s->tls_ = std::move(*ctx);
  }
  if (auto st = s->open_sockets(); !st) return make_error(st.error());
  return s;
}

Status DerpServer::open_sockets() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return make_error(std::string("epoll_create1: ") + std::strerror(errno));
  auto lfd = bound_socket(cfg_.listen, SOCK_STREAM, &port_);
  if (!lfd) return make_error(lfd.error());
  listen_fd_ = *lfd;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  if (cfg_.stun_port >= 0) {
    IpPort at = cfg_.listen;
    at.port = static_cast<std::uint16_t>(cfg_.stun_port);
    auto sfd = bound_socket(at, SOCK_DGRAM, &stun_port_);
    if (!sfd) return make_error(sfd.error());
    stun_fd_ = *sfd;
    ev.data.u64 = kStunTag;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, stun_fd_, &ev);
  }
  return ok_status();
}

void DerpServer::run(const volatile bool* stop) {
  epoll_event events[64];
  while (!*stop) {
    int n = epoll_wait(epfd_, events, 64, rerun_.empty() ? 250 : 0);
    TimePoint now = Clock::now();
    for (int i = 0; i < n; ++i) {
      std::uint64_t tag = events[i].data.u64;
      if (tag == kListenTag) {
        accept_all(now);
      } else if (tag == kStunTag) {
        serve_stun();
      } else if (auto it = conns_.find(tag); it != conns_.end()) {
        on_conn_event(*it->second, now);
      }
    }
    std::vector<std::uint64_t> rerun;
    rerun.swap(rerun_);
    for (std::uint64_t id : rerun)
      if (auto it = conns_.find(id); it != conns_.end()) on_conn_event(*it->second, now);
    timers(now);
    reap();
  }
}

void DerpServer::accept_all(TimePoint now) {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    (void)derp::make_nonblocking(fd);
    derp::set_tcp_nodelay(fd);
    auto c = std::make_unique<Conn>();
    c->id = next_id_++;
    c->accepted = now;
    if (cfg_.plain_http) {
      c->stream = std::make_unique<derp::PlainStream>(fd);
    } else {
      auto tls = derp::TlsStream::server(tls_.get(), fd);
      if (!tls) {
        ::close(fd);
        continue;
      }
      c->stream = std::move(*tls);
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = c->id;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
    Conn& ref = *c;
    conns_.emplace(c->id, std::move(c));
    on_conn_event(ref, now);
  }
}

void DerpServer::serve_stun() {
  std::uint8_t buf[1500];
  for (;;) {
    sockaddr_storage from{};
    socklen_t flen = sizeof from;
    ssize_t n = ::recvfrom(stun_fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) return;
    auto txid = parse_binding_request(ByteView(buf, static_cast<std::size_t>(n)));
    auto peer = IpPort::from_sockaddr(reinterpret_cast<sockaddr*>(&from), flen);
    if (!txid || !peer) continue;  // Tailscale's server ignores anything else silently
    Bytes resp = binding_response(*txid, *peer);
    ::sendto(stun_fd_, resp.data(), resp.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
  }
}

void DerpServer::on_conn_event(Conn& c, TimePoint now) {
  if (c.state == Conn::State::kClosing) return;
  read_conn(c, now);
  if (c.state != Conn::State::kClosing) pump(c, now);
  pump_receivers(now);
}

void DerpServer::read_conn(Conn& c, TimePoint now) {
  std::uint8_t http_chunk[4096];
  for (int rounds = 0; rounds < 64 && c.state != Conn::State::kClosing; ++rounds) {
    // Frames are read straight into the frame reader and handled in place.
    const bool framed = c.state != Conn::State::kHttp && c.state != Conn::State::kResponding;
    MutableByteView into = framed ? c.reader.space(kReadChunk) : MutableByteView(http_chunk);
    derp::IoResult r = c.stream->read(into);
    if (r.kind == derp::IoResult::kWantRead || r.kind == derp::IoResult::kWantWrite) return;
    if (r.kind != derp::IoResult::kDone) {
      close_conn(c.id, r.kind == derp::IoResult::kClosed ? "closed by client" : r.error);
      return;
    }
    if (c.state == Conn::State::kResponding) continue;  // request bodies are ignored
    if (c.state == Conn::State::kHttp) {
      consume_http(c, into.first(r.n));
      continue;
    }
    c.reader.commit(r.n);
    handle_frames(c, now);
  }
  // Still readable after 64 rounds: come back on the next loop so others get a turn.
  if (c.state != Conn::State::kClosing) rerun_.push_back(c.id);
}

void DerpServer::handle_frames(Conn& c, TimePoint now) {
  while (c.state != Conn::State::kClosing) {
    auto f = c.reader.next_view();
    if (!f) return close_conn(c.id, f.error());
    if (!*f) return;
    handle_frame(c, **f, now);
  }
}

void DerpServer::consume_http(Conn& c, ByteView bytes) {
  c.http_in.insert(c.http_in.end(), bytes.begin(), bytes.end());
  auto req = derp::parse_upgrade_request(c.http_in);
  if (!req) {
    close_conn(c.id, req.error());
    return;
  }
  if (!*req) return;
  const auto& rq = **req;
  auto respond = [&](int code, const std::string& reason, const std::string& body) {
    std::string r = derp::simple_response(code, reason, body);
    c.ctrl.emplace_back(r.begin(), r.end());
    c.state = Conn::State::kResponding;
  };
  if (rq.path == "/derp/probe" || rq.path == "/derp/latency-check") return respond(200, "OK", "");
  if (rq.path != "/derp" || rq.method != "GET") return respond(404, "Not Found", "not found\n");
  if (!rq.wants_derp()) return respond(426, "Upgrade Required", "DERP requires connection upgrade");
  if (!rq.fast_start()) {
    std::string r = derp::switching_protocols_response(pub_.hex());
    c.ctrl.emplace_back(r.begin(), r.end());
  }
  c.ctrl.push_back(frame_bytes(FrameType::kServerKey, derp::server_key_payload(pub_)));
  c.state = Conn::State::kClientInfo;
  c.reader.feed(ByteView(c.http_in).subspan(rq.length));  // fast start: ClientInfo may follow
  c.http_in.clear();
  handle_frames(c, Clock::now());
}

void DerpServer::handle_frame(Conn& c, const derp::FrameView& f, TimePoint now) {
  if (c.state == Conn::State::kClientInfo) {
    if (f.type != static_cast<std::uint8_t>(FrameType::kClientInfo))
      return close_conn(c.id, "expected ClientInfo");
    return handle_client_info(c, f, now);
  }
  switch (static_cast<FrameType>(f.type)) {
    case FrameType::kSendPacket: return handle_send(c, f, now);
    case FrameType::kNotePreferred: {
      auto pref = derp::parse_note_preferred(f.payload);
      if (!pref) return close_conn(c.id, pref.error());
      log_line(std::string(*pref ? "preferred " : "not-preferred ") + c.key.to_string());
      return;
    }
    case FrameType::kPing: {
      auto p = derp::parse_ping(f.payload, 1000);
      if (!p) return close_conn(c.id, p.error());
      if (!c.pending_pong) c.pending_pong = *p;  // extra pings are dropped
      return;
    }
    case FrameType::kPong: {
      auto p = derp::parse_ping(f.payload);
      if (p && c.ping_outstanding && *p == *c.ping_outstanding) {
        c.ping_outstanding.reset();
        log_line("pong " + c.key.to_string());
      }
      return;
    }
    default: return;  // unknown and mesh-only frames are skipped
  }
}

void DerpServer::handle_client_info(Conn& c, const derp::FrameView& f, TimePoint now) {
  auto ci = derp::parse_client_info(f.payload);
  if (!ci) return close_conn(c.id, ci.error());
  if (ci->sealed.size() < derp::kNonceLen + crypto_box_MACBYTES) return close_conn(c.id, "short ClientInfo box");
  const std::uint8_t* nonce = ci->sealed.data();
  ByteView box = ci->sealed.subspan(derp::kNonceLen);
  Bytes json(box.size() - crypto_box_MACBYTES);
  if (crypto_box_open_easy(json.data(), box.data(), box.size(), nonce, ci->key.data(), cfg_.key.data()) != 0)
    return close_conn(c.id, "ClientInfo box does not open");
  if (auto fields = derp::parse_client_info_json(json); !fields) return close_conn(c.id, fields.error());
  c.key = ci->key;
  c.state = Conn::State::kReady;
  c.last_send = now;  // newest connection for a key becomes the active one
  c.next_keepalive = now + cfg_.keepalive + keepalive_jitter(cfg_.keepalive);
  c.next_ping = now + cfg_.ping_interval;
  c.not_here_refill = now;
  by_key_[c.key].push_back(c.id);

  std::string info = derp::server_info_json();
  Bytes sealed(derp::kNonceLen + crypto_box_MACBYTES + info.size());
  randombytes_buf(sealed.data(), derp::kNonceLen);
  if (crypto_box_easy(sealed.data() + derp::kNonceLen, reinterpret_cast<const std::uint8_t*>(info.data()),
                      info.size(), sealed.data(), c.key.data(), cfg_.key.data()) != 0)
    return close_conn(c.id, "cannot seal ServerInfo");
  c.ctrl.push_back(frame_bytes(FrameType::kServerInfo, sealed));
  log_line("connected " + c.key.to_string());
}

Conn* DerpServer::active_for(const NodePublic& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return nullptr;
  Conn* best = nullptr;
  for (std::uint64_t id : it->second) {
    auto c = conns_.find(id);
    if (c == conns_.end() || c->second->state != Conn::State::kReady) continue;
    if (!best || c->second->last_send >= best->last_send) best = c->second.get();
  }
  return best;
}

void DerpServer::handle_send(Conn& c, const derp::FrameView& f, TimePoint now) {
  auto sp = derp::parse_send_packet(f.payload);
  if (!sp) return close_conn(c.id, sp.error());
  c.last_send = now;
  if (Conn* to = active_for(sp->dst)) return deliver(c, *to, sp->packet, now);
  if (!derp::looks_like_disco(sp->packet)) return;  // silently dropped, as Tailscale
  double elapsed = std::chrono::duration<double>(now - c.not_here_refill).count();
  c.not_here_tokens = std::min(3.0, c.not_here_tokens + elapsed);
  c.not_here_refill = now;
  if (c.not_here_tokens < 1.0) return;
  c.not_here_tokens -= 1.0;
  queue_ctrl(c, FrameType::kPeerGone, derp::peer_gone_payload(sp->dst, derp::PeerGoneReason::kNotHere));
}

// The receiver is written to once the sender's read batch is handled (pump_receivers),
// so the packets of one batch share TLS records. Its queue only overflows when its
// socket cannot take more: a full queue is first pushed towards the socket.
void DerpServer::deliver(Conn& from, Conn& to, ByteView packet, TimePoint now) {
  const bool disco = derp::looks_like_disco(packet);
  auto* q = disco ? &to.disco : &to.data;
  if (q->size() >= cfg_.queue_depth) pump(to, now);
  if (to.state == Conn::State::kClosing) return;
  if (q->size() >= cfg_.queue_depth) {
    recycle(std::move(q->front()));  // drop from the head: the newest packet is the most useful
    q->pop_front();
    ++to.queue_drops;
  }
  Bytes frame = spare_frame();
  derp::append_keyed_frame(frame, FrameType::kRecvPacket, from.key, packet);
  q->push_back(std::move(frame));
  to.received_from.insert(from.key);
  if (!to.awaiting_pump) {
    to.awaiting_pump = true;
    awaiting_pump_.push_back(to.id);
  }
}

void DerpServer::pump_receivers(TimePoint now) {
  std::vector<std::uint64_t> ids;
  ids.swap(awaiting_pump_);
  for (std::uint64_t id : ids) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    it->second->awaiting_pump = false;
    pump(*it->second, now);
  }
  ids.clear();
  if (awaiting_pump_.empty()) awaiting_pump_.swap(ids);  // keep the capacity
}

Bytes DerpServer::spare_frame() {
  if (spare_.empty()) return Bytes{};
  Bytes b = std::move(spare_.back());
  spare_.pop_back();
  b.clear();
  return b;
}

void DerpServer::recycle(Bytes&& frame) {
  // Typical packets only: a rare 64 KiB frame is not worth keeping around.
  if (spare_.size() < kSpareFrames && frame.capacity() <= kSpareFrameCapacity) spare_.push_back(std::move(frame));
}

void DerpServer::queue_ctrl(Conn& c, FrameType type, ByteView payload) {
  c.ctrl.push_back(frame_bytes(type, payload));
}

bool DerpServer::refill(Conn& c) {
  c.out.clear();
  c.out_pos = 0;
  if (c.pending_pong) {
    derp::append_frame(c.out, FrameType::kPong, *c.pending_pong);
    c.pending_pong.reset();
  }
  for (auto* q : {&c.ctrl, &c.disco, &c.data}) {
    while (!q->empty() && c.out.size() < kWriteBatch) {
      c.out.insert(c.out.end(), q->front().begin(), q->front().end());
      recycle(std::move(q->front()));
      q->pop_front();
    }
  }
  return !c.out.empty();
}

void DerpServer::pump(Conn& c, TimePoint now) {
  if (c.state == Conn::State::kClosing || c.state == Conn::State::kHttp) return;
  for (;;) {
    if (c.out_pos >= c.out.size() && !refill(c)) break;
    derp::IoResult r = c.stream->write(ByteView(c.out).subspan(c.out_pos));
    if (r.kind == derp::IoResult::kDone) {
      c.out_pos += r.n;
      c.write_blocked_since.reset();
      continue;
    }
    if (r.kind == derp::IoResult::kWantWrite || r.kind == derp::IoResult::kWantRead) {
      if (!c.write_blocked_since) c.write_blocked_since = now;
      return;
    }
    return close_conn(c.id, r.error.empty() ? "peer closed" : r.error);
  }
  c.write_blocked_since.reset();
  if (c.state == Conn::State::kResponding) close_conn(c.id, "plain HTTP response sent");
}

void DerpServer::timers(TimePoint now) {
  for (auto& [id, cp] : conns_) {
    Conn& c = *cp;
    if (c.state == Conn::State::kClosing) continue;
    if (c.write_blocked_since && now - *c.write_blocked_since > cfg_.write_timeout) {
      close_conn(id, "write timeout");
      continue;
    }
    if (c.state != Conn::State::kReady) {
      if (now - c.accepted > cfg_.handshake_timeout) close_conn(id, "handshake timeout");
      continue;
    }
    if (now >= c.next_keepalive) {
      queue_ctrl(c, FrameType::kKeepAlive, {});
      c.next_keepalive = now + cfg_.keepalive + keepalive_jitter(cfg_.keepalive);
    }
    if (cfg_.ping_interval.count() > 0 && now >= c.next_ping) {
      derp::PingData d{};
      randombytes_buf(d.data(), d.size());
      c.ping_outstanding = d;
      queue_ctrl(c, FrameType::kPing, d);
      c.next_ping = now + cfg_.ping_interval;
    }
    if (c.has_output()) pump(c, now);
  }
}

void DerpServer::close_conn(std::uint64_t id, const std::string& why) {
  auto it = conns_.find(id);
  if (it == conns_.end() || it->second->state == Conn::State::kClosing) return;
  Conn& c = *it->second;
  bool was_ready = c.state == Conn::State::kReady;
  c.state = Conn::State::kClosing;
  doomed_.push_back(id);
  if (!was_ready) return;
  log_line("disconnected " + c.key.to_string() + " (" + why + ")");
  auto& ids = by_key_[c.key];
  std::erase(ids, id);
  if (!ids.empty()) return;  // another connection still holds this key
  by_key_.erase(c.key);
  TimePoint now = Clock::now();
  for (auto& [oid, other] : conns_) {
    if (other->state != Conn::State::kReady || !other->received_from.erase(c.key)) continue;
    queue_ctrl(*other, FrameType::kPeerGone, derp::peer_gone_payload(c.key, derp::PeerGoneReason::kDisconnected));
    pump(*other, now);
  }
}

void DerpServer::reap() {
  for (std::uint64_t id : doomed_) conns_.erase(id);
  doomed_.clear();
}

}  // namespace tw::derper
