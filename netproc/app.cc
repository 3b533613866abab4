#include "netproc/app.h"

#include <spdlog/spdlog.h>

#include "common/child_fds.h"
#include "common/overloaded.h"

namespace tw::netproc {

App::App(boost::asio::io_context& io, AppFds fds)
    : io_(io),
      broker_(io, std::move(fds.broker_control), ipc::LinkKind::kBrokerNetproc, ipc::Role::kNetproc, &metrics_),
      peer_(io, std::move(fds.peer_control), ipc::LinkKind::kNetprocDataproc, ipc::Role::kNetproc, &metrics_),
      to_data_(fds.rings->ring(ipc::Direction::kNetToData), fds.doorbell_net_to_data.get()),
      from_data_(fds.rings->ring(ipc::Direction::kDataToNet)),
      to_data_bell_(std::move(fds.doorbell_net_to_data)),
      reader_bell_(std::move(fds.doorbell_data_to_net)),
      ring_dropped_oversize_(metrics_.counter("ring_net_to_data_oversize_total",
                                              "Datagrams too large for a net->data ring slot")) {
  // TLS contexts read CA files: that must happen now, before the seccomp filter.
  auto ctx = make_derp_contexts();
  if (ctx) {
    derp_contexts_ = std::move(*ctx);
  } else {
    spdlog::error("derp: {}; running without DERP", ctx.error());
  }
}

App::~App() = default;

void App::start(std::function<void(int code)> on_exit) {
  on_exit_ = std::move(on_exit);
  broker_.start([this](ipc::ReceivedMessage m) { on_broker_message(std::move(m)); },
                [this](const std::string& reason) {
                  spdlog::info("broker link closed ({}); exiting", reason);
                  if (runtime_) runtime_->stop();
                  on_exit_(0);
                });
  peer_.start([this](ipc::ReceivedMessage m) { on_peer_message(std::move(m)); },
              [this](const std::string& reason) {
                // Without this link dataproc cannot seal DERP ClientInfo for us, and a
                // violation on it means one of the two is lying: stop, so that the broker
                // restarts both with a fresh link (docs/design.md#4-ipc).
                spdlog::error("dataproc link closed ({}); exiting so both children restart",
                              reason);
                if (runtime_) runtime_->stop();
                on_exit_(kExitPeerLinkLost);
              });
}

void App::on_setup(const ipc::NetprocSetup& s) {
  magicsock::RuntimeConfig cfg;
  cfg.disco_private = s.disco_private;
  cfg.self_node = s.node_public;
  cfg.enable_ipv6 = (s.flags & ipc::NetprocSetup::kFlagIpv6) != 0;
  cfg.allow_lan_endpoints = (s.flags & ipc::NetprocSetup::kFlagAllowLanEndpoints) != 0;
  cfg.advertise_lan_endpoints = (s.flags & ipc::NetprocSetup::kFlagAdvertiseLanEndpoints) != 0;
  magicsock::RuntimeHooks hooks;
  hooks.deliver = [this](std::span<const ipc::OutPacket> p) { return deliver(p); };
  hooks.rx_ring = &to_data_;  // WireGuard from the socket is received straight into the ring
  hooks.udp_failed = [this](const std::string& why) {
    // Not from inside the runtime's own handler: stop it from the loop.
    boost::asio::post(io_, [this, why] {
      spdlog::error("underlay receive loop failed ({}); exiting so the broker restarts us", why);
      if (runtime_) runtime_->stop();
      on_exit_(kExitUnderlayFailed);
    });
  };
  hooks.endpoints_changed = [this](const std::vector<IpPort>& eps) {
    ipc::EndpointsUpdate u;
    u.endpoints.assign(eps.begin(), eps.begin() + static_cast<std::ptrdiff_t>(std::min(eps.size(), ipc::kMaxEndpoints)));
    if (auto st = broker_.send(u); !st) spdlog::warn("endpoints update: {}", st.error());
  };
  if ((s.flags & ipc::NetprocSetup::kFlagEgressAllowlist) != 0) {
    hooks.register_candidates = [this](std::uint32_t peer_id,
                                       const std::vector<IpPort>& candidates) {
      ipc::RegisterCandidates r;
      r.request_id = next_register_id_++;
      r.peer_id = peer_id;
      r.candidates.assign(
          candidates.begin(),
          candidates.begin() + static_cast<std::ptrdiff_t>(
                                   std::min(candidates.size(), ipc::kMaxRegisterCandidates)));
      if (auto st = broker_.send(r); !st) spdlog::warn("candidate registration: {}", st.error());
    };
  }
  home_derp_ = s.home_derp;
  derp_ = std::make_unique<DerpLink>(io_, s.node_public, broker_, peer_, std::move(derp_contexts_), metrics_);
  runtime_ = std::make_unique<magicsock::Runtime>(io_, std::move(cfg), metrics_, derp_.get(), std::move(hooks), rng_);
  derp_->set_runtime(runtime_.get());
  if (auto st = broker_.send(ipc::Ready{}); !st) {
    spdlog::error("cannot send Ready: {}", st.error());
    return on_exit_(1);
  }
  runtime_->start();
  reader_ = std::make_unique<ipc::RingReader>(io_, from_data_, std::move(reader_bell_), 65536,
                                              ipc::RingReader::Options{},
                                              [this](const ipc::PacketBatch& b) { on_ring_batch(b); });
  // dataproc's room bell for the net->data ring rings our doorbell: receiving goes
  // on. Ours for the data->net ring rings dataproc's (its held-back TUN reads).
  from_data_.set_room_bell(to_data_bell_.get());
  reader_->set_on_wake([this] { runtime_->resume_rx(); });
  reader_->start();
  spdlog::info("netproc set up (generation {}, ipv6 {})", s.generation, (s.flags & ipc::NetprocSetup::kFlagIpv6) != 0);
}

void App::on_netmap(ipc::NetprocNetmap part) {
  auto full = assembler_.add(std::move(part));
  if (!full) {
    spdlog::error("netmap: {}", full.error());
    broker_.close("bad netmap sequence");
    return;
  }
  if (!*full) return;
  if (auto st = runtime_->apply_netmap(**full); !st) {
    spdlog::warn("netmap generation {} refused: {}", (*full)->generation, st.error());
    return;
  }
  spdlog::info("netmap generation {}: {} peers", (*full)->generation, (*full)->peers.size());
  auto map = parse_derp_map((*full)->derp_map_json, "netmap from broker");
  if (map) {
    home_derp_ = (*full)->home_derp;  // the broker's choice for this netmap
    derp_->set_map(std::move(*map), home_derp_);
  } else {
    spdlog::warn("derp map: {}", map.error());
  }
}

void App::on_broker_message(ipc::ReceivedMessage m) {
  std::visit(
      Overloaded{
          [&](ipc::NetprocSetup& msg) { on_setup(msg); },
          [&](ipc::NetprocNetmap& msg) {
            if (runtime_) on_netmap(std::move(msg));
          },
          [&](ipc::UdpSocket& msg) {
            if (runtime_ && !m.fds.empty()) {
              runtime_->adopt_udp(std::move(m.fds[0]));
              if (msg.rebind_generation > 0 && derp_) derp_->reconnect_all();
            }
          },
          [&](ipc::DerpConn& msg) {
            if (derp_ && !m.fds.empty()) derp_->on_derp_conn(msg, std::move(m.fds[0]));
          },
          [&](ipc::DerpDialFailed& msg) {
            if (derp_) derp_->on_dial_failed(msg);
          },
          [&](ipc::StatusRequest& msg) { on_status_request(msg); },
          [&](ipc::OperatorPing& msg) {
            if (!runtime_) return;
            const std::uint32_t id = msg.request_id;
            runtime_->ping(msg.peer_id,
                           [this, id](std::string body) { reply_status(id, std::move(body)); });
          },
          [&](ipc::ReleaseUdp& msg) {
            if (!runtime_) return;
            runtime_->release_udp();
            reply_status(msg.request_id, "{}");
          },
          [&](ipc::CandidatesVerdict& msg) {
            if (runtime_) runtime_->on_candidates_verdict(msg);
          },
          [&](ipc::Shutdown& msg) {
            spdlog::info("shutdown: {}", msg.reason);
            if (runtime_) runtime_->stop();
            on_exit_(0);
          },
          [&](ipc::RingReset&) {
            to_data_.resync();
            from_data_.resync();
          },
          // The catalogue lets none of these through from the broker: a link that
          // carries one is not what it claims, so it is closed (and we exit).
          on_any_of<ipc::StatusReply, ipc::Ready, ipc::DerpDialRequest, ipc::EndpointsUpdate,
                    ipc::DataprocSetup, ipc::DataprocNetmap, ipc::TunFd, ipc::SealClientInfoRequest,
                    ipc::SealClientInfoReply, ipc::RegisterCandidates, ipc::SelfAddresses,
                    ipc::ExitTunFd, ipc::DataprocFilter>([&] {
            spdlog::error("unexpected message from the broker");
            broker_.close("message not for netproc");
          }),
      },
      m.message);
}

void App::on_status_request(const ipc::StatusRequest& msg) {
  if (!runtime_) return;
  const std::uint32_t id = msg.request_id;
  runtime_->status_request(msg.topic,
                           [this, id](std::string body) { reply_status(id, std::move(body)); });
}

void App::reply_status(std::uint32_t request_id, std::string body) {
  ipc::StatusReply r;
  r.request_id = request_id;
  r.body =
      body.size() > ipc::kMaxStatusBytes ? body.substr(0, ipc::kMaxStatusBytes) : std::move(body);
  if (auto st = broker_.send(r); !st) spdlog::warn("status reply: {}", st.error());
}

// dataproc answers one thing only: the ClientInfo we asked it to seal.
void App::on_peer_message(ipc::ReceivedMessage m) {
  std::visit(
      Overloaded{
          [&](ipc::SealClientInfoReply& r) {
            if (derp_) derp_->on_sealed(r);
          },
          on_any_of<ipc::NetprocSetup, ipc::NetprocNetmap, ipc::UdpSocket, ipc::DerpConn,
                    ipc::DerpDialFailed, ipc::Shutdown, ipc::RingReset, ipc::StatusRequest,
                    ipc::StatusReply, ipc::Ready, ipc::DerpDialRequest, ipc::EndpointsUpdate,
                    ipc::DataprocSetup, ipc::DataprocNetmap, ipc::TunFd, ipc::SealClientInfoRequest,
                    ipc::RegisterCandidates, ipc::CandidatesVerdict, ipc::OperatorPing,
                    ipc::ReleaseUdp, ipc::SelfAddresses, ipc::ExitTunFd, ipc::DataprocFilter>(
              [&] { peer_.close("message not for netproc"); }),
      },
      m.message);
}

std::size_t App::deliver(std::span<const ipc::OutPacket> packets) {
  std::size_t done = 0;
  while (done < packets.size()) {
    const std::size_t n = to_data_.push(packets.subspan(done));
    if (n == 0) break;  // ring full: the caller counts the rest as dropped
    done += n;
  }
  return done;
}

void App::on_ring_batch(const ipc::PacketBatch& batch) {
  for (std::size_t i = 0; i < batch.size(); ++i) runtime_->send_wireguard(batch.peer_id(i), batch.data(i));
  runtime_->flush();
  // Busy, this reader does not wait on the doorbell: a room bell would be seen late.
  runtime_->resume_rx();
}

}  // namespace tw::netproc
