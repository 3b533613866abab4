#include "dataproc/runtime.h"

#include <spdlog/spdlog.h>

#include <iterator>
#include <nlohmann/json.hpp>

#include "common/child_fds.h"
#include "common/overloaded.h"

namespace tw::dataproc {

Runtime::Runtime(boost::asio::io_context& io, RuntimeFds fds)
    : io_(io),
      broker_(io, std::move(fds.broker_control), ipc::LinkKind::kBrokerDataproc,
              ipc::Role::kDataproc, &metrics_),
      peer_(io, std::move(fds.peer_control), ipc::LinkKind::kNetprocDataproc, ipc::Role::kDataproc,
            &metrics_),
      from_net_(fds.rings->ring(ipc::Direction::kNetToData)),
      to_net_(fds.rings->ring(ipc::Direction::kDataToNet), fds.doorbell_data_to_net.get()),
      to_net_bell_(std::move(fds.doorbell_data_to_net)),
      reader_bell_(std::move(fds.doorbell_net_to_data)),
      timer_(io),
      filter_drop_no_rule_(
          metrics_.counter("dataproc_filter_drop_no_rule_total",
                           "Packets from peers dropped: no packet filter rule allows them")),
      filter_drop_invalid_(metrics_.counter(
          "dataproc_filter_drop_invalid_total",
          "Packets from peers dropped by the packet filter: not a parsable IP packet")),
      filter_drop_multicast_(metrics_.counter(
          "dataproc_filter_drop_multicast_total",
          "Packets from peers dropped by the packet filter: multicast or link-local destination")),
      ring_full_drops_(metrics_.counter("dataproc_ring_full_drops_total",
                                        "Datagrams dropped because the data->net ring was full")),
      seal_refused_(
          metrics_.counter("dataproc_seal_refused_total", "ClientInfo seal requests refused")),
      off_tailnet_dropped_(
          metrics_.counter("dataproc_off_tailnet_dropped_total",
                           "Decrypted packets to a destination outside the tailnet, "
                           "dropped because this node is not an exit node")) {
  static constexpr const char* kNames[kExitClasses] = {"tcp", "udp", "icmp", "ipv6", "other"};
  for (int i = 0; i < kExitClasses; ++i) {
    exit_rx_[i] = &metrics_.counter(
        std::string("exit_rx_") + kNames[i] + "_packets_total",
        std::string("Decrypted ") + kNames[i] + " packets sent into the exit namespace");
  }
}

void Runtime::start(std::function<void(int)> on_exit) {
  on_exit_ = std::move(on_exit);
  broker_.start([this](ipc::ReceivedMessage m) { on_broker_message(std::move(m)); },
                [this](const std::string& why) {
                  spdlog::info("broker link closed ({}): exiting", why);
                  on_exit_(0);
                });
  peer_.start([this](ipc::ReceivedMessage m) { on_peer_message(std::move(m)); },
              [this](const std::string& why) {
                // The seal service lives on this link; a violation on it means one of the
                // two children is lying: stop, so that the broker restarts both
                // (docs/design.md#4-ipc).
                spdlog::error("netproc link closed ({}); exiting so both children restart", why);
                on_exit_(kExitPeerLinkLost);
              });
  reader_ = std::make_unique<ipc::RingReader>(
      io_, from_net_, std::move(reader_bell_), 65536, ipc::RingReader::Options{},
      [this](const ipc::PacketBatch& b) { on_ring_batch(b); });
  // netproc's room bell for the data->net ring rings our doorbell: held-back TUN
  // reads go on. Ours for the net->data ring rings netproc's.
  from_net_.set_room_bell(to_net_bell_.get());
  reader_->set_on_wake([this] { resume_tun_reads(); });
  reader_->start();
}

// A TSO read becomes up to ~60 datagrams at the usual MTUs: read only while the
// ring has room for two of them; otherwise ask netproc to ring when it has.
bool Runtime::room_for_tun_reads() {
  return to_net_.has_room(kTunReadRoom) || to_net_.want_room(kTunReadRoom);
}

// Held-back TUN reads go on once the ring has that room (TunIo::resume does nothing
// for a device that is not held back).
void Runtime::resume_tun_reads() {
  if (!to_net_.has_room(kTunReadRoom)) return;
  if (tun_) tun_->resume();
  if (exit_tun_) exit_tun_->resume();
}

void Runtime::on_broker_message(ipc::ReceivedMessage m) {
  std::visit(
      Overloaded{
          [&](ipc::DataprocSetup& msg) {
            device_.set_private_key(msg.node_private);
            have_key_ = true;
            (void)broker_.send(ipc::Ready{});
          },
          [&](ipc::DataprocNetmap& msg) { on_netmap(std::move(msg)); },
          [&](ipc::DataprocFilter& msg) { on_filter(std::move(msg)); },
          [&](ipc::TunFd& msg) {
            if (m.fds.empty()) return;
            tun_ = std::make_unique<TunIo>(io_, std::move(m.fds[0]), msg.mtu, metrics_);
            tun_->start([this](ByteView p) { on_tun_packet(p); }, [this] { flush(); },
                        [this] { return room_for_tun_reads(); });
          },
          [&](ipc::SelfAddresses& msg) {
            self_addresses_ = std::move(msg.addresses);
            have_self_addresses_ = true;
          },
          [&](ipc::ExitTunFd& msg) {
            if (m.fds.empty()) return;
            exit_tun_ =
                std::make_unique<TunIo>(io_, std::move(m.fds[0]), msg.mtu, metrics_, "exit_tun");
            exit_tun_->start([this](ByteView p) { on_tun_packet(p); }, [this] { flush(); },
                             [this] { return room_for_tun_reads(); });
          },
          [&](ipc::StatusRequest& msg) {
            ipc::StatusReply r;
            r.request_id = msg.request_id;
            r.body = msg.topic == "metrics" ? metrics_text() : status_json();
            (void)broker_.send(r);
          },
          [&](ipc::Shutdown& msg) {
            spdlog::info("shutdown: {}", msg.reason);
            on_exit_(0);
          },
          [&](ipc::RingReset&) {
            from_net_.resync();
            to_net_.resync();
            resume_tun_reads();
          },
          // The catalogue lets none of these through from the broker: a link that
          // carries one is not what it claims, so it is closed (and we exit).
          on_any_of<ipc::NetprocSetup, ipc::NetprocNetmap, ipc::UdpSocket, ipc::DerpConn,
                    ipc::DerpDialFailed, ipc::StatusReply, ipc::Ready, ipc::DerpDialRequest,
                    ipc::EndpointsUpdate, ipc::SealClientInfoRequest, ipc::SealClientInfoReply,
                    ipc::RegisterCandidates, ipc::CandidatesVerdict, ipc::OperatorPing,
                    ipc::ReleaseUdp>([&] { broker_.close("message not for dataproc"); }),
      },
      m.message);
}

void Runtime::on_netmap(ipc::DataprocNetmap part) {
  auto full = assembler_.add(std::move(part));
  if (!full) {
    spdlog::error("netmap from broker: {}", full.error());
    broker_.close("bad netmap parts");
    return;
  }
  if (!*full) return;
  std::vector<wg::PeerConfig> peers;
  known_peer_ids_.clear();
  for (auto& p : (*full)->peers) {
    known_peer_ids_.push_back(p.peer_id);
    peers.push_back(wg::PeerConfig{p.peer_id, p.node_key, p.allowed_ips, {}});
  }
  device_.set_peers(peers);
  spdlog::info("netmap generation {}: {} peers", (*full)->generation, peers.size());
  arm_timer();
}

void Runtime::on_filter(ipc::DataprocFilter msg) {
  std::size_t rules = msg.filter.rules.size();
  if (msg.enabled) {
    filter_ = std::move(msg.filter);
  } else {
    filter_.reset();
  }
  spdlog::info("packet filter for generation {}: {}", msg.generation,
               msg.enabled ? std::to_string(rules) + " rules" : std::string("none"));
}

bool Runtime::filter_allows(ByteView packet, TimePoint now) {
  if (!filter_) return true;
  switch (filter_inbound(*filter_, packet, &flows_, now)) {
    case FilterVerdict::kAccept:
      return true;
    case FilterVerdict::kDropNoRule:
      filter_drop_no_rule_.inc();
      return false;
    case FilterVerdict::kDropInvalid:
      filter_drop_invalid_.inc();
      return false;
    case FilterVerdict::kDropMulticast:
      filter_drop_multicast_.inc();
      return false;
  }
  return false;
}

// netproc may ask for one thing only: a ClientInfo sealed with the node key.
void Runtime::on_peer_message(ipc::ReceivedMessage m) {
  std::visit(
      Overloaded{
          [&](ipc::SealClientInfoRequest& req) { on_seal_request(req); },
          on_any_of<ipc::NetprocSetup, ipc::NetprocNetmap, ipc::UdpSocket, ipc::DerpConn,
                    ipc::DerpDialFailed, ipc::Shutdown, ipc::RingReset, ipc::StatusRequest,
                    ipc::StatusReply, ipc::Ready, ipc::DerpDialRequest, ipc::EndpointsUpdate,
                    ipc::DataprocSetup, ipc::DataprocNetmap, ipc::TunFd, ipc::SealClientInfoReply,
                    ipc::RegisterCandidates, ipc::CandidatesVerdict, ipc::OperatorPing,
                    ipc::ReleaseUdp, ipc::SelfAddresses, ipc::ExitTunFd, ipc::DataprocFilter>(
              [&] { peer_.close("message not for dataproc"); }),
      },
      m.message);
}

void Runtime::on_seal_request(const ipc::SealClientInfoRequest& req) {
  ipc::SealClientInfoReply reply;
  reply.request_id = req.request_id;
  auto sealed = !have_key_ ? Result<Bytes>(make_error("no key yet"))
                : !seal_bucket_.take(TokenBucket::Clock::now())
                    ? Result<Bytes>(make_error("rate-limited"))
                    : device_.seal_derp_client_info(req.server_key, req.client_info_json);
  if (sealed) {
    reply.sealed = std::move(*sealed);
  } else {
    seal_refused_.inc();
    spdlog::warn("refused to seal a ClientInfo: {}", sealed.error());
  }
  (void)peer_.send(reply);
}

// The packet path, in the order of runtime.h's header: outbound, inbound, flush.
void Runtime::on_tun_packet(ByteView packet) {
  const TimePoint now = Clock::now();
  if (filter_) flows_.note_outbound(packet, now);  // lets the replies of our UDP flows in
  device_.on_tun_packet(packet, now, out_);
  // One TSO read becomes dozens of datagrams: hand them over a ring burst at a time
  // rather than after the whole TUN burst, so the ring never has to hold it all.
  if (out_.to_network.size() >= ipc::kMaxBurst) flush();
}

void Runtime::on_ring_batch(const ipc::PacketBatch& batch) {
  const TimePoint now = Clock::now();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    device_.on_datagram(batch.peer_id(i), batch.data(i), now, out_);
  }
  flush();
  // While this reader is busy it does not wait on the doorbell, so a room bell would
  // only be seen when it next sleeps: look at the ring here too.
  resume_tun_reads();
}

void Runtime::flush() {
  const TimePoint now = Clock::now();
  // GRO for the main TUN: consecutive segments of one TCP flow go to the kernel as
  // one write (the coalescer keeps the order within a flow).
  auto write = [this](ByteView frame, std::size_t packets) { tun_->write_frame(frame, packets); };
  for (std::size_t i = 0; i < out_.to_tun.size(); ++i) {
    const ByteView p = out_.to_tun.bytes(i);
    // The tailnet's ACLs first, whatever the destination (ours or the exit's).
    if (!filter_allows(p, now)) continue;
    if (!have_self_addresses_ || to_self(p)) {
      if (!tun_) continue;
      if (!coalescer_.add(p)) {
        coalescer_.finish(write);
        (void)coalescer_.add(p);
      }
    } else if (exit_tun_) {
      exit_rx_[classify(p)]->inc();
      exit_tun_->write(p);
    } else {
      off_tailnet_dropped_.inc();
    }
  }
  if (tun_) coalescer_.finish(write);
  std::size_t n = out_.to_network.size();
  std::size_t done = 0;
  ipc::OutPacket burst[ipc::kMaxBurst];
  while (done < n) {
    std::size_t k = std::min(n - done, ipc::kMaxBurst);
    for (std::size_t j = 0; j < k; ++j) {
      burst[j] = ipc::OutPacket{out_.to_network.peer(done + j), out_.to_network.bytes(done + j)};
    }
    std::size_t pushed = to_net_.push(std::span<const ipc::OutPacket>(burst, k));
    if (pushed < k) ring_full_drops_.inc(k - pushed);
    done += k;
  }
  out_.clear();
  arm_timer();
}

// The packet was checked by the WireGuard receive path (a whole IPv4 or IPv6 header,
// source within the peer's AllowedIPs), so the destination bytes are there.
bool Runtime::to_self(ByteView p) const {
  std::optional<IpAddr> dst;
  if (p.size() >= 20 && (p[0] >> 4) == 4) {
    dst = IpAddr::v4(p[16], p[17], p[18], p[19]);
  } else if (p.size() >= 40 && (p[0] >> 4) == 6) {
    dst = IpAddr::from16(p.data() + 24);
  }
  if (!dst) return true;  // not IP: the main TUN drops it as before
  for (const auto& a : self_addresses_) {
    if (a.contains(*dst)) return true;
  }
  return false;
}

Runtime::ExitClass Runtime::classify(ByteView p) const {
  if ((p[0] >> 4) == 6) return kExitIpv6;
  switch (p[9]) {
    case 6:
      return kExitTcp;
    case 17:
      return kExitUdp;
    case 1:
      return kExitIcmp;
    default:
      return kExitOther;
  }
}

void Runtime::arm_timer() {
  auto next = device_.next_deadline();
  if (!next || (timer_at_ && *timer_at_ <= *next && *timer_at_ > Clock::now())) return;
  timer_at_ = *next;
  timer_.expires_at(*next);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    timer_at_.reset();
    device_.on_timer(Clock::now(), out_);
    flush();
  });
}

std::string Runtime::status_json() const {
  nlohmann::json peers = nlohmann::json::array();
  // Peer ids come from the broker's netmap; the device reports counters by id.
  for (std::uint32_t id : known_peer_ids_) {
    const wg::PeerCounters* c = device_.peer_counters(id);
    if (c == nullptr) continue;
    long long hs = 0;
    if (c->last_handshake) {
      hs = std::chrono::duration_cast<std::chrono::seconds>(c->last_handshake->time_since_epoch()).count();
    }
    peers.push_back({{"id", id},
                     {"last_handshake_unix", hs},
                     {"rx_bytes", c->rx_bytes},
                     {"tx_bytes", c->tx_bytes},
                     {"rx_packets", c->rx_packets},
                     {"tx_packets", c->tx_packets}});
  }
  return nlohmann::json{{"peers", peers}}.dump();
}

namespace {

// Every WireGuard device counter, exported as tailwarden_wg_<name>.
struct DeviceCounterExport {
  const char* name;
  std::uint64_t wg::DeviceCounters::*field;
};
constexpr DeviceCounterExport kDeviceCounterExports[] = {
    {"handshake_initiations_sent_total", &wg::DeviceCounters::handshake_initiations_sent},
    {"handshake_responses_sent_total", &wg::DeviceCounters::handshake_responses_sent},
    {"handshake_initiations_received_total", &wg::DeviceCounters::handshake_initiations_received},
    {"handshake_responses_received_total", &wg::DeviceCounters::handshake_responses_received},
    {"handshakes_failed_total", &wg::DeviceCounters::handshakes_failed},
    {"handshake_timeouts_total", &wg::DeviceCounters::handshake_timeouts},
    {"replayed_initiations_total", &wg::DeviceCounters::replayed_initiations},
    {"flooded_initiations_total", &wg::DeviceCounters::flooded_initiations},
    {"invalid_mac1_total", &wg::DeviceCounters::invalid_mac1},
    {"cookie_replies_sent_total", &wg::DeviceCounters::cookie_replies_sent},
    {"cookie_replies_received_total", &wg::DeviceCounters::cookie_replies_received},
    {"invalid_messages_total", &wg::DeviceCounters::invalid_messages},
    {"unknown_index_total", &wg::DeviceCounters::unknown_index},
    {"unknown_index_initiations_total", &wg::DeviceCounters::unknown_index_initiations},
    {"decryption_failures_total", &wg::DeviceCounters::decryption_failures},
    {"expired_sessions_total", &wg::DeviceCounters::expired_sessions},
    {"replays_total", &wg::DeviceCounters::replays},
    {"allowedips_drops_total", &wg::DeviceCounters::allowedips_drops},
    {"invalid_inner_packets_total", &wg::DeviceCounters::invalid_inner_packets},
    {"no_route_total", &wg::DeviceCounters::no_route},
    {"staged_dropped_total", &wg::DeviceCounters::staged_dropped},
};
// A counter added to DeviceCounters without a row here fails to compile.
static_assert(std::size(kDeviceCounterExports) * sizeof(std::uint64_t) ==
                  sizeof(wg::DeviceCounters),
              "export every wg::DeviceCounters field in kDeviceCounterExports");

}  // namespace

std::string Runtime::metrics_text() const {
  const auto& c = device_.counters();
  std::string out = metrics_.prometheus_text();
  auto line = [&out](const char* name, std::uint64_t v) {
    out += std::string("# TYPE tailwarden_wg_") + name + " counter\ntailwarden_wg_" + name + " " +
           std::to_string(v) + "\n";
  };
  for (const auto& e : kDeviceCounterExports) line(e.name, c.*e.field);
  line("ring_from_net_oversize_total", from_net_.stats().dropped_oversize);
  line("tun_gro_merged_packets_total", coalescer_.stats().merged_packets);
  line("tun_gro_bad_checksums_total", coalescer_.stats().bad_checksums);
  line("ring_from_net_bad_index_total", from_net_.stats().bad_index);
  return out;
}

}  // namespace tw::dataproc
