#include "dataproc/runtime.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace tw::dataproc {

Runtime::Runtime(boost::asio::io_context& io, RuntimeFds fds)
    : io_(io),
      broker_(io, std::move(fds.broker_control), ipc::LinkKind::kBrokerDataproc, ipc::Role::kDataproc, &metrics_),
      peer_(io, std::move(fds.peer_control), ipc::LinkKind::kNetprocDataproc, ipc::Role::kDataproc, &metrics_),
      from_net_(fds.rings->ring(ipc::Direction::kNetToData)),
      to_net_(fds.rings->ring(ipc::Direction::kDataToNet), fds.doorbell_data_to_net.get()),
      to_net_bell_(std::move(fds.doorbell_data_to_net)),
      reader_bell_(std::move(fds.doorbell_net_to_data)),
      timer_(io),
      ring_full_drops_(metrics_.counter("dataproc_ring_full_drops_total",
                                        "Datagrams dropped because the data->net ring was full")),
      seal_refused_(metrics_.counter("dataproc_seal_refused_total", "ClientInfo seal requests refused")) {}

void Runtime::start(std::function<void(int)> on_exit) {
  on_exit_ = std::move(on_exit);
  broker_.start([this](ipc::ReceivedMessage m) { on_broker_message(std::move(m)); },
                [this](const std::string& why) {
                  spdlog::info("broker link closed ({}): exiting", why);
                  on_exit_(0);
                });
  peer_.start([this](ipc::ReceivedMessage m) { on_peer_message(std::move(m)); },
              [](const std::string& why) { spdlog::warn("netproc link closed: {}", why); });
  reader_ = std::make_unique<ipc::RingReader>(
      io_, from_net_, std::move(reader_bell_), 65536, ipc::RingReader::Options{},
      [this](const ipc::PacketBatch& b) { on_ring_batch(b); });
  reader_->start();
}

void Runtime::on_broker_message(ipc::ReceivedMessage m) {
  std::visit(
      [&](auto& msg) {
        using M = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<M, ipc::DataprocSetup>) {
          device_.set_private_key(msg.node_private);
          have_key_ = true;
          (void)broker_.send(ipc::Ready{});
        } else if constexpr (std::is_same_v<M, ipc::DataprocNetmap>) {
          auto full = assembler_.add(std::move(msg));
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
        } else if constexpr (std::is_same_v<M, ipc::TunFd>) {
          if (m.fds.empty()) return;
          tun_ = std::make_unique<TunIo>(io_, std::move(m.fds[0]), msg.mtu, metrics_);
          tun_->start([this](ByteView p) { on_tun_packet(p); }, [this] { flush(); });
        } else if constexpr (std::is_same_v<M, ipc::StatusRequest>) {
          ipc::StatusReply r;
          r.request_id = msg.request_id;
          r.body = msg.topic == "metrics" ? metrics_text() : status_json();
          (void)broker_.send(r);
        } else if constexpr (std::is_same_v<M, ipc::Shutdown>) {
          spdlog::info("shutdown: {}", msg.reason);
          on_exit_(0);
        } else if constexpr (std::is_same_v<M, ipc::RingReset>) {
          from_net_.resync();
          to_net_.resync();
        }
      },
      m.message);
}

void Runtime::on_peer_message(ipc::ReceivedMessage m) {
  auto* req = std::get_if<ipc::SealClientInfoRequest>(&m.message);
  if (req == nullptr) return;  // the catalogue admits nothing else from netproc
  ipc::SealClientInfoReply reply;
  reply.request_id = req->request_id;
  auto sealed = !have_key_                                     ? Result<Bytes>(make_error("no key yet"))
                : !seal_bucket_.take(TokenBucket::Clock::now()) ? Result<Bytes>(make_error("rate-limited"))
                                                                : device_.seal_derp_client_info(req->server_key,
                                                                                                req->client_info_json);
  if (sealed) {
    reply.sealed = std::move(*sealed);
  } else {
    seal_refused_.inc();
    spdlog::warn("refused to seal a ClientInfo: {}", sealed.error());
  }
  (void)peer_.send(reply);
}

void Runtime::on_ring_batch(const ipc::PacketBatch& batch) {
  const TimePoint now = Clock::now();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    device_.on_datagram(batch.peer_id(i), batch.data(i), now, out_);
  }
  flush();
}

void Runtime::on_tun_packet(ByteView packet) { device_.on_tun_packet(packet, Clock::now(), out_); }

void Runtime::flush() {
  if (tun_) {
    for (std::size_t i = 0; i < out_.to_tun.size(); ++i) tun_->write(out_.to_tun.bytes(i));
  }
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

std::string Runtime::metrics_text() const {
  const auto& c = device_.counters();
  std::string out = metrics_.prometheus_text();
  auto line = [&out](const char* name, std::uint64_t v) {
    out += std::string("# TYPE tailwarden_wg_") + name + " counter\ntailwarden_wg_" + name + " " +
           std::to_string(v) + "\n";
  };
  line("handshake_initiations_sent_total", c.handshake_initiations_sent);
  line("handshake_responses_sent_total", c.handshake_responses_sent);
  line("handshake_initiations_received_total", c.handshake_initiations_received);
  line("handshake_responses_received_total", c.handshake_responses_received);
  line("handshakes_failed_total", c.handshakes_failed);
  line("handshake_timeouts_total", c.handshake_timeouts);
  line("replayed_initiations_total", c.replayed_initiations);
  line("invalid_mac1_total", c.invalid_mac1);
  line("cookie_replies_sent_total", c.cookie_replies_sent);
  line("invalid_messages_total", c.invalid_messages);
  line("unknown_index_total", c.unknown_index);
  line("unknown_index_initiations_total", c.unknown_index_initiations);
  line("decryption_failures_total", c.decryption_failures);
  line("replays_total", c.replays);
  line("allowedips_drops_total", c.allowedips_drops);
  line("no_route_total", c.no_route);
  line("ring_from_net_oversize_total", from_net_.stats().dropped_oversize);
  line("ring_from_net_bad_index_total", from_net_.stats().bad_index);
  return out;
}

}  // namespace tw::dataproc
