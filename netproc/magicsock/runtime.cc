#include "netproc/magicsock/runtime.h"

#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

#include "common/netmap.h"
#include "netproc/disco/datagram_kind.h"
#include "netproc/magicsock/constants.h"

namespace tw::magicsock {

namespace {
constexpr Duration kTimerPeriod = std::chrono::milliseconds(250);
constexpr int kBurstsPerTurn = 16;
constexpr auto kRxHoldFallback = std::chrono::milliseconds(1);

const TimeSource& system_time() {
  static const SystemTimeSource s;
  return s;
}
}  // namespace

RuntimeCounters::RuntimeCounters(MetricsRegistry& r)
    : wg_rx(r.counter("wg_rx_udp_total", "WireGuard datagrams received over UDP")),
      wg_rx_unattributed(r.counter("wg_rx_unattributed_total",
                                   "WireGuard datagrams from an unknown source, left to dataproc")),
      wg_rx_ring_full(
          r.counter("wg_rx_ring_full_total", "Received datagrams dropped: net->data ring full")),
      wg_rx_held_back(r.counter("udp_rx_held_back_total",
                                "Times UDP receives waited for room in the net->data ring")),
      wg_rx_derp(r.counter("wg_rx_derp_total", "WireGuard datagrams received over DERP")),
      wg_rx_derp_unknown(
          r.counter("wg_rx_derp_unknown_total", "DERP datagrams from an unknown node key")),
      wg_tx_udp(r.counter("wg_tx_udp_total", "WireGuard datagrams sent over UDP")),
      wg_tx_derp(r.counter("wg_tx_derp_total", "WireGuard datagrams sent over DERP")),
      wg_tx_derp_failed(
          r.counter("wg_tx_derp_failed_total", "DERP sends with no region to carry them")),
      wg_tx_unknown_peer(
          r.counter("wg_tx_unknown_peer_total", "Outbound datagrams for an unknown peer id")),
      disco_rx_not_member(
          r.counter("disco_rx_not_member_total", "Disco from a key not in the netmap")),
      disco_rx_open_failed(
          r.counter("disco_rx_open_failed_total", "Disco boxes that did not open")),
      disco_rx_bad_message(
          r.counter("disco_rx_bad_message_total", "Disco messages that did not parse")),
      disco_rx_unknown_type(r.counter("disco_rx_unknown_type_total",
                                      "Disco messages of a type we do not implement (Tailscale's "
                                      "peer-relay types 4-9 and others), dropped without a reply")),
      disco_rx_cmm_over_udp(
          r.counter("disco_rx_cmm_over_udp_total", "Call-me-maybe over UDP (refused)")),
      disco_rx_relayed_pong_ignored(
          r.counter("disco_rx_relayed_pong_ignored_total",
                    "Pongs over DERP that answer no operator ping: never trusted for a UDP path")),
      disco_tx(r.counter("disco_tx_total", "Disco messages sent")),
      stun_rx_bad(r.counter("stun_rx_bad_total", "STUN responses that did not parse")),
      rx_unknown_kind(
          r.counter("udp_rx_unknown_kind_total", "Datagrams neither STUN, disco nor WireGuard")),
      operator_pings(r.counter("operator_pings_total", "Operator pings requested")),
      operator_ping_timeouts(
          r.counter("operator_ping_timeouts_total", "Operator pings that timed out")) {}

Runtime::Runtime(boost::asio::io_context& io, RuntimeConfig cfg, MetricsRegistry& metrics,
                 DerpRelay* derp, RuntimeHooks hooks, RandomSource& rng)
    : io_(io),
      cfg_(std::move(cfg)),
      time_(cfg_.time != nullptr ? *cfg_.time : system_time()),
      metrics_(metrics),
      derp_(derp),
      hooks_(std::move(hooks)),
      rng_(rng),
      m_(metrics),
      udp_c_(metrics),
      c_(metrics),
      self_disco_(cfg_.disco_private.public_key()),
      table_(CandidatePolicy{cfg_.enable_ipv6, cfg_.allow_lan_endpoints}, m_, rng),
      reflexive_(m_, cfg_.enable_ipv6),
      stun_(m_, rng),
      advertiser_(m_),
      gate_(metrics),
      timer_(io),
      udp_retry_(io),
      alive_(std::make_shared<bool>(true)) {
  rx_wg_.reserve(kRxMaxDatagrams);
  rx_got_.resize(kRxMaxDatagrams);
  rx_copied_.resize(kRxMaxDatagrams);
  gate_.enable(static_cast<bool>(hooks_.register_candidates));
  advertiser_.subscribe([this](const std::vector<SelfEndpoint>& set) {
    if (!hooks_.endpoints_changed) return;
    std::vector<IpPort> eps;
    for (const auto& e : set) eps.push_back(e.addr);
    hooks_.endpoints_changed(eps);
  });
}

Runtime::~Runtime() {
  stop();
  *alive_ = false;
}

void Runtime::start() {
  if (running_) return;
  running_ = true;
  const TimePoint now = clock_now();
  stun_.start(now);
  next_pinger_ = now;
  tick(now);
  arm_timer();
}

void Runtime::stop() {
  running_ = false;
  timer_.cancel();
  // Nobody waits forever: pending operator pings are answered now (no waiter leak).
  auto pending = std::move(op_pings_);
  op_pings_.clear();
  for (auto& p : pending) p->reply(R"({"timeout":true})");
}

void Runtime::arm_timer() {
  timer_.expires_after(kTimerPeriod);
  timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive || !running_) return;
    tick(clock_now());
    arm_timer();
  });
}

void Runtime::adopt_udp(ipc::UniqueFd fd) {
  const TimePoint now = clock_now();
  const bool rebind = udp_ != nullptr || udp_gen_ > 0;
  release_udp();
  udp_ = std::make_unique<UdpIo>(std::move(fd), udp_c_, cfg_.rx_buffer_bytes);
  udp_wait_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, udp_->fd());
  ++udp_gen_;
  if (rebind) {
    // Old mappings and trust are meaningless on a new socket; candidates stay.
    table_.rebind(now);
    reflexive_.clear();
    stun_.on_rebind(now);
    stun_sent_.clear();
    derp_latency_.clear_measurements();
    spdlog::info("magicsock: rebound to a new socket (port {})", udp_->local_port());
  }
  next_pinger_ = now;
  arm_udp();
  if (running_) tick(now);
}

void Runtime::release_udp() {
  if (udp_wait_) {
    boost::system::error_code ignored;
    udp_wait_->cancel(ignored);
    (void)udp_wait_->release();  // UdpIo owns the fd
    udp_wait_.reset();
  }
  if (udp_) {
    drop_pending();  // views into the old socket's receive buffers
    udp_->close();
    udp_.reset();
  }
}

void Runtime::arm_udp() {
  if (!udp_wait_) return;
  udp_wait_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [this, gen = udp_gen_, alive = alive_](boost::system::error_code ec) {
                          if (!*alive || gen != udp_gen_ || !udp_) return;
                          if (ec) {
                            if (ec == boost::asio::error::operation_aborted) return;
                            spdlog::error("underlay: waiting on the socket failed: {}",
                                          ec.message());
                            if (hooks_.udp_failed) hooks_.udp_failed(ec.message());
                            return;
                          }
                          on_udp_readable();
                        });
}

void Runtime::on_udp_readable() {
  drain_udp();
  if (!rx_held_back()) return arm_udp();
  // Held back for ring room: dataproc's room bell wakes us (resume_rx). The socket
  // is not watched meanwhile; this slow timer bounds the wait should no bell come,
  // and counts towards kMaxRxHolds. Armed once, not per hold: every arming is a
  // timerfd_settime.
  if (udp_retry_armed_) return;
  udp_retry_armed_ = true;
  udp_retry_.expires_after(kRxHoldFallback);
  udp_retry_.async_wait([this, gen = udp_gen_, alive = alive_](boost::system::error_code ec) {
    if (ec || !*alive) return;
    udp_retry_armed_ = false;
    if (gen != udp_gen_ || !udp_ || !rx_held_back()) return;
    on_udp_readable();
  });
}

void Runtime::resume_rx() {
  if (!udp_ || !rx_held_back()) return;
  // Only once the ring has the room asked for: a retry that would hold again
  // counts towards kMaxRxHolds without progress.
  if (hooks_.rx_ring != nullptr && !hooks_.rx_ring->has_room(rx_wanted())) return;
  on_udp_readable();
}

namespace {
// Holding back at most this many times in a row (a bell that finds no room, or the
// fallback timer: about 5 ms): a dataproc that stopped consuming must not stop
// disco and STUN from being read.
constexpr int kMaxRxHolds = 5;
}  // namespace

namespace {

bool is_wireguard(disco::DatagramKind k) {
  return k == disco::DatagramKind::kWireGuardInitiation || k == disco::DatagramKind::kWireGuardResponse ||
         k == disco::DatagramKind::kWireGuardCookie || k == disco::DatagramKind::kWireGuardData;
}

}  // namespace

// Receive path, per burst (kBurstsPerTurn bursts at most, then back to the loop):
//   place_burst      point the burst at free net->data ring slots
//   receive_placed   one recvmmsg, straight into them; coalesced (UDP_GRO) messages
//                    split into their datagrams, one per slot where they line up
//   fill_in_place    WireGuard that sits whole in a slot: attribute, publish there
//   (else) private   everything else is copied into private memory first
//   publish_in_place commit the filled slots (unfilled ones before them are skipped)
//   on_udp_datagram  demux the copies: STUN, disco, WireGuard via deliver_pending
// Arrival order of WireGuard is kept: the copies go to the ring after the slots are
// published, so once one WireGuard datagram had to be copied, the ones after it are
// copied too rather than overtaking it in their slots.
void Runtime::drain_udp() {
  if (!udp_) return;
  RxPlacement places[kUdpBurst];  // by slot index (RxSegment::slot)
  for (int turn = 0; turn < kBurstsPerTurn; ++turn) {
    // Backpressure: datagrams wait in the socket buffer (and the ones already read
    // in private memory) while dataproc catches up, rather than being dropped at a
    // full ring.
    if (!rx_room()) {
      if (rx_holds_ < kMaxRxHolds) {
        ++rx_holds_;
        c_.wg_rx_held_back.inc();
        break;
      }
      // Waited long enough: drop what is held (counted) and read on.
      drop_pending();
      rx_holds_ = 0;
    } else {
      rx_holds_ = 0;
    }
    InPlaceBurst burst;
    burst.reserved = place_burst(places);
    const int n = udp_->receive_placed(std::span(places, burst.reserved), rx_got_);
    if (n < 0) break;  // EAGAIN; the reservation lapses with the next one
    std::size_t copies = 0;
    bool wg_copied = false;
    for (int k = 0; k < n; ++k) {
      RxDatagram& d = rx_got_[static_cast<std::size_t>(k)];
      if (!wg_copied && fill_in_place(d, burst)) continue;
      const MutableByteView data(to_private(d.seg), d.seg.length);
      wg_copied = wg_copied || is_wireguard(disco::classify_datagram(data));
      rx_copied_[copies++] = CopiedDatagram{d.src, data};
    }
    // Publish before demuxing the copies: their WireGuard goes to the ring by push,
    // which must not write over the reserved slots.
    publish_in_place(burst);
    if (copies != 0) {
      const TimePoint now = clock_now();
      for (std::size_t j = 0; j < copies; ++j)
        on_udp_datagram(rx_copied_[j].src, rx_copied_[j].data, now);
      if (!rx_wg_.empty()) c_.wg_rx.inc(rx_wg_.size());
      // What the ring cannot take now stays pending, and nothing more is received
      // until it is delivered: the views die with the next receive.
      if (!rx_room()) {
        ++rx_holds_;
        c_.wg_rx_held_back.inc();
        break;
      }
    }
    // A short burst emptied the socket: epoll says when more arrives, so no
    // recvmmsg is spent just to learn EAGAIN. A receive error (n == 0) reads on.
    if (n > 0 && !udp_->last_burst_full()) break;
  }
  udp_->flush();
}

std::size_t Runtime::place_burst(std::span<RxPlacement, kUdpBurst> places) {
  ipc::RingProducer* const ring = hooks_.rx_ring;
  const std::size_t reserved = ring != nullptr ? ring->reserve(kUdpBurst) : 0;
  for (std::size_t i = 0; i < reserved; ++i) {
    const ipc::SlotArea a = ring->area(i);
    places[i] = RxPlacement{{a.head, a.rest}, {a.head_len, a.rest_len}};
  }
  return reserved;
}

// Only a datagram at the start of a slot's dense part counts: it is looked at only to
// learn its kind, and dataproc is the first to parse it (after copying it out of
// the ring).
bool Runtime::fill_in_place(const RxDatagram& d, InPlaceBurst& b) {
  if (d.seg.slot == kNoSlot || d.seg.slot >= b.reserved ||
      !is_wireguard(disco::classify_datagram(ByteView(d.seg.data, d.seg.length)))) {
    return false;
  }
  // Attribution cannot change within a burst: nothing before publish_in_place
  // touches the table.
  if (b.last_src == nullptr || !(*b.last_src == d.src)) {
    b.last_id = attribute_wireguard(d.src);
    b.last_src = &d.src;
  }
  b.unattributed += b.last_id == 0;
  hooks_.rx_ring->fill(d.seg.slot, b.last_id, d.seg.length);
  b.commit = std::max<std::size_t>(b.commit, d.seg.slot + 1);
  ++b.filled;
  return true;
}

void Runtime::publish_in_place(const InPlaceBurst& b) {
  if (hooks_.rx_ring != nullptr) hooks_.rx_ring->commit(b.commit);
  if (b.filled != 0) c_.wg_rx.inc(b.filled);
  // dataproc attributes these by receiver index, or drops them.
  if (b.unattributed != 0) c_.wg_rx_unattributed.inc(b.unattributed);
}

std::uint32_t Runtime::attribute_wireguard(const IpPort& src) const {
  if (auto t = table_.attribute(src)) return broker_of_[*t];
  if (auto w = wg_only_attr_.find(src); w != wg_only_attr_.end()) return w->second;
  return 0;
}

void Runtime::on_udp_datagram(const IpPort& src, MutableByteView data, TimePoint now) {
  switch (disco::classify_datagram(data)) {
    case disco::DatagramKind::kStun:
      return on_stun(src, data, now);
    case disco::DatagramKind::kDisco:
      return on_udp_disco(src, data, now);
    case disco::DatagramKind::kWireGuardInitiation:
    case disco::DatagramKind::kWireGuardResponse:
    case disco::DatagramKind::kWireGuardCookie:
    case disco::DatagramKind::kWireGuardData:
      break;
    case disco::DatagramKind::kUnknown:
      c_.rx_unknown_kind.inc();
      return;
  }
  const std::uint32_t id = attribute_wireguard(src);
  if (id == 0) c_.wg_rx_unattributed.inc();  // dataproc attributes it by receiver index, or drops it
  rx_wg_.push_back({id, data});
}

// Free net->data slots receiving waits for: room for the pending copies (at most
// half the ring at a time), else for a burst.
std::size_t Runtime::rx_wanted() const {
  const std::size_t half = hooks_.rx_ring->capacity() / 2;
  return std::min(rx_wg_.empty() ? kUdpBurst : rx_wg_.size(), half);
}

// True when the pending copies are delivered and the ring has room for a burst;
// otherwise asks dataproc (want_room) to ring when it has.
bool Runtime::rx_room() {
  ipc::RingProducer* const ring = hooks_.rx_ring;
  while (!deliver_pending()) {
    if (ring == nullptr || !ring->want_room(rx_wanted())) return false;
  }
  return ring == nullptr || ring->has_room(rx_wanted()) || ring->want_room(rx_wanted());
}

bool Runtime::deliver_pending() {
  if (rx_wg_.empty()) return true;
  if (!hooks_.deliver) {
    drop_pending();
    return true;
  }
  const std::size_t taken = std::min(hooks_.deliver(rx_wg_), rx_wg_.size());
  rx_wg_.erase(rx_wg_.begin(), rx_wg_.begin() + static_cast<std::ptrdiff_t>(taken));
  if (taken != 0) rx_holds_ = 0;  // dataproc is consuming: the hold limit starts again
  return rx_wg_.empty();
}

void Runtime::drop_pending() {
  if (!rx_wg_.empty()) c_.wg_rx_ring_full.inc(rx_wg_.size());
  rx_wg_.clear();
}

void Runtime::on_derp_packet(const NodePublic& src, std::uint32_t region, ByteView packet) {
  const TimePoint now = clock_now();
  if (disco::looks_like_disco(packet)) {
    on_relayed_disco(src, region, packet, now);
    if (udp_) udp_->flush();
    return;
  }
  auto t = table_.by_node(src);
  if (!t) {
    c_.wg_rx_derp_unknown.inc();
    return;
  }
  c_.wg_rx_derp.inc();
  const ipc::OutPacket p{broker_of_[*t], packet};
  if (!hooks_.deliver || hooks_.deliver(std::span<const ipc::OutPacket>(&p, 1)) == 0) c_.wg_rx_ring_full.inc();
}

void Runtime::on_derp_peer_not_here(const NodePublic& peer) {
  table_.on_relay_not_here(peer, clock_now());
}

std::optional<PeerId> Runtime::table_id(std::uint32_t peer_id) const {
  auto it = table_of_.find(peer_id);
  if (it == table_of_.end()) return std::nullopt;
  return it->second;
}

void Runtime::set_peers(std::span<const RuntimePeer> peers) {
  const TimePoint now = clock_now();
  std::vector<NetmapPeer> nm;
  nm.reserve(peers.size());
  wg_only_.clear();
  wg_only_attr_.clear();
  for (const auto& p : peers) {
    if (p.disco.is_zero()) {
      // wireguard_only: straight to its netmap endpoint, never disco or DERP.
      for (const auto& e : p.endpoints) {
        if (!is_acceptable_netmap_endpoint(e, CandidatePolicy{cfg_.enable_ipv6, cfg_.allow_lan_endpoints})) continue;
        wg_only_.emplace(p.id, e);
        wg_only_attr_.emplace(e, p.id);
        break;
      }
      continue;
    }
    NetmapPeer n;
    n.node = p.node;
    n.disco = p.disco;
    n.endpoints = p.endpoints;
    if (p.home_derp != 0 && p.home_derp <= 0xffff) n.derp_region = static_cast<std::uint16_t>(p.home_derp);
    nm.push_back(std::move(n));
  }
  table_.apply_netmap(nm, now);
  std::vector<IpPort> netmap_eps;
  for (const auto& p : peers)
    netmap_eps.insert(netmap_eps.end(), p.endpoints.begin(), p.endpoints.end());
  gate_.set_netmap_endpoints(netmap_eps);
  table_of_.clear();
  for (const auto& p : peers) {
    if (p.disco.is_zero()) continue;
    auto t = table_.by_node(p.node);
    if (!t) continue;
    if (broker_of_.size() <= *t) broker_of_.resize(*t + 1, 0);
    broker_of_[*t] = p.id;
    table_of_[p.id] = *t;
  }
  // An operator ping whose peer left (its table id may be reused) ends now.
  for (std::size_t i = 0; i < op_pings_.size();) {
    auto t = table_id(op_pings_[i]->peer_id);
    if (t && *t == op_pings_[i]->table_id) {
      ++i;
      continue;
    }
    auto reply = std::move(op_pings_[i]->reply);
    op_pings_.erase(op_pings_.begin() + static_cast<std::ptrdiff_t>(i));
    reply(R"({"timeout":true})");
  }
  for (auto it = keys_.begin(); it != keys_.end();) {
    it = table_.member(it->first) ? std::next(it) : keys_.erase(it);
  }
}

void Runtime::set_stun_servers(std::span<const IpPort> servers) {
  stun_.set_servers(servers, clock_now());
  gate_.set_stun_servers(servers);
  stun_results_.clear();
  if (running_) tick(clock_now());
}

Status Runtime::apply_netmap(const ipc::NetprocNetmap& nm) {
  if (!nm.derp_map_json.empty()) {
    auto dm = parse_derp_map(nm.derp_map_json, "netmap DERP map");
    if (!dm) return make_error(dm.error());
    derp_latency_.set_map(*dm);
    std::vector<IpPort> servers;
    region_codes_.clear();
    for (const auto& [id, region] : dm->regions) {
      region_codes_[static_cast<std::uint32_t>(id)] = region.region_code;
      for (const auto& node : region.nodes) {
        if (auto s = node.stun_v4()) servers.push_back(*s);
      }
    }
    if (servers != stun_.servers()) set_stun_servers(servers);
  }
  std::vector<RuntimePeer> peers;
  peers.reserve(nm.peers.size());
  for (const auto& p : nm.peers) {
    peers.push_back({p.peer_id, p.node_key, p.disco_key, p.endpoints, p.home_derp});
  }
  set_peers(peers);
  return ok_status();
}

bool Runtime::derp_send(PeerId id, ByteView packet) {
  if (derp_ == nullptr) return false;
  const auto& info = table_.info(id);
  return derp_->send(info.node, info.derp_region.value_or(0), packet);
}

void Runtime::send_wireguard(std::uint32_t peer_id, ByteView datagram) {
  if (auto w = wg_only_.find(peer_id); w != wg_only_.end()) {
    if (udp_) {
      udp_->queue(w->second, datagram);
      c_.wg_tx_udp.inc();
    }
    return;
  }
  auto t = table_id(peer_id);
  if (!t) {
    c_.wg_tx_unknown_peer.inc();
    return;
  }
  const TimePoint now = clock_now();
  ping_scratch_.clear();
  const bool have_eps = have_endpoints();
  auto plan = table_.route(*t, now, derp_available(), have_eps, ping_scratch_);
  if (!ping_scratch_.empty()) send_pings(ping_scratch_);
  if (plan.route.start_discovery && spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug(
        "disco: send to peer {} found no trusted path: discovery ({} pings), {}{}", *t,
        ping_scratch_.size(), plan.route.has_derp() ? "via derp" : "no derp",
        plan.send_call_me_maybe ? ", call-me-maybe" : (have_eps ? "" : ", no endpoints yet"));
  }
  if (plan.send_call_me_maybe) send_call_me_maybe(*t);
  if (plan.route.has_udp() && udp_ && egress_clear(peer_id, plan.route.udp, datagram, false, now)) {
    udp_->queue(plan.route.udp, datagram);
    c_.wg_tx_udp.inc();
  }
  if (plan.route.has_derp()) {
    if (derp_send(*t, datagram)) {
      c_.wg_tx_derp.inc();
    } else {
      c_.wg_tx_derp_failed.inc();
    }
  }
}

bool Runtime::egress_clear(std::uint32_t peer_id, const IpPort& to, ByteView datagram,
                           bool holdable, TimePoint now) {
  gate_requests_.clear();
  const auto d = gate_.check(peer_id, to, now, gate_requests_);
  for (const auto& [peer, addr] : gate_requests_) {
    if (hooks_.register_candidates) hooks_.register_candidates(peer, {addr});
  }
  if (d == EgressGate::Decision::kHold && holdable) gate_.hold(to, datagram, now);
  return d == EgressGate::Decision::kSend;
}

void Runtime::on_candidates_verdict(const ipc::CandidatesVerdict& v) {
  const TimePoint now = clock_now();
  auto go = gate_.on_verdict(v.approved, v.refused, std::chrono::seconds(v.lifetime_seconds), now);
  if (!udp_) return;
  for (const auto& [to, bytes] : go) udp_->queue(to, ByteView(bytes.data(), bytes.size()));
  flush();
}

void Runtime::flush() {
  if (udp_) udp_->flush();
}

PathKind Runtime::path_of(std::uint32_t peer_id) {
  if (wg_only_.count(peer_id) != 0) return PathKind::kDirect;
  auto t = table_id(peer_id);
  if (!t) return PathKind::kNone;
  return table_.status(*t, clock_now(), derp_available()).path;
}

void Runtime::prompt_pinger(TimePoint now) {
  if (prompt_posted_ || now - last_prompt_ < std::chrono::milliseconds(100)) return;
  last_prompt_ = now;
  prompt_posted_ = true;
  boost::asio::post(io_, [this, alive = alive_] {
    if (!*alive) return;
    prompt_posted_ = false;
    next_pinger_ = clock_now();
    tick(next_pinger_);
  });
}

void Runtime::tick(TimePoint now) {
  expire_operator_pings(now);
  gate_.expire(now);
  if (now >= next_pinger_) {
    ping_scratch_.clear();
    table_.pinger_tick(now, ping_scratch_);
    send_pings(ping_scratch_);
    next_pinger_ = now + kPingerTick;
  }
  cmm_scratch_.clear();
  table_.call_me_maybe_tick(now, have_endpoints(), cmm_scratch_);
  for (PeerId id : cmm_scratch_) send_call_me_maybe(id);
  run_stun(now);
  refresh_endpoints(now);
  flush();
}

}  // namespace tw::magicsock
