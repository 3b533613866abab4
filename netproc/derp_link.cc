#include "netproc/derp_link.h"

#include <openssl/ssl.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include "netproc/derp/stream.h"
#include "netproc/magicsock/runtime.h"

namespace tw::netproc {

namespace asio = boost::asio;

Result<DerpLinkContexts> make_derp_contexts() {
  DerpLinkContexts c;
  derp::TlsClientConfig insecure;
  insecure.insecure_for_tests = true;
  auto in = derp::make_client_ctx(insecure);
  if (!in) return Error{in.error()};
  c.insecure = std::move(*in);
  // Load the CA bundle eagerly: a hashed CA directory would be read lazily, during a
  // handshake, when the sandbox no longer allows opening files.
  derp::TlsClientConfig verify;
  verify.ca_file = "/etc/ssl/certs/ca-certificates.crt";
  if (const char* f = std::getenv("TW_DERP_CA_FILE")) verify.ca_file = f;
  auto v = derp::make_client_ctx(verify);
  if (v) {
    c.verifying = std::move(*v);
  } else {
    spdlog::warn("derp: no CA bundle ({}); only InsecureForTests nodes can be used", v.error());
  }
  return c;
}

DerpLink::DerpLink(asio::io_context& io, NodePublic self, ipc::ControlLink& broker, ipc::ControlLink& dataproc,
                   DerpLinkContexts contexts, MetricsRegistry& metrics)
    : io_(io),
      self_(self),
      broker_(broker),
      dataproc_(dataproc),
      ctx_(std::move(contexts)),
      metrics_(metrics),
      regions_(derp::RegionPolicy{},
               derp::RegionActions{[this](derp::RegionId r) { dial(r); }, [this](derp::RegionId r) { close(r); }},
               [] { return static_cast<double>(randombytes_uniform(1u << 30)) / static_cast<double>(1u << 30); },
               metrics),
      tick_timer_(io),
      conn_failures_(metrics.counter("derp_conn_failures_total", "DERP connections that failed or dropped")) {}

DerpLink::~DerpLink() {
  *alive_ = false;
  for (auto& [r, c] : conns_) {
    if (c.sd) c.sd->release();  // the client owns and closes the fd
  }
}

const DerpNode* DerpLink::node_for(derp::RegionId region) const {
  const DerpRegion* r = map_.region(region);
  if (r == nullptr) return nullptr;
  for (const auto& n : r->nodes) {
    if (!n.stun_only) return &n;
  }
  return nullptr;
}

void DerpLink::set_map(DerpMap map, std::uint32_t home) {
  map_ = std::move(map);
  regions_.set_home(static_cast<derp::RegionId>(home), Clock::now());
  schedule_tick();
}

void DerpLink::dial(derp::RegionId region) {
  const DerpNode* node = node_for(region);
  if (node == nullptr) {
    spdlog::warn("derp: region {} has no usable node", region);
    regions_.on_failed(region, Clock::now());
    schedule_tick();
    return;
  }
  ipc::DerpDialRequest req;
  req.region_id = static_cast<std::uint32_t>(region);
  req.node_name = node->name;
  if (auto st = broker_.send(req); !st) {
    regions_.on_failed(region, Clock::now());
    schedule_tick();
  }
}

void DerpLink::close(derp::RegionId region) {
  auto it = conns_.find(region);
  if (it == conns_.end()) return;
  if (it->second.sd) it->second.sd->release();
  conns_.erase(it);
}

void DerpLink::fail(derp::RegionId region, const std::string& why) {
  spdlog::info("derp: region {}: {}", region, why);
  conn_failures_.inc();
  close(region);
  regions_.on_failed(region, Clock::now());
  schedule_tick();
}

void DerpLink::on_dial_failed(const ipc::DerpDialFailed& m) {
  spdlog::warn("derp: dial region {} node {} failed: {}", m.region_id, m.node_name, m.reason);
  fail(static_cast<derp::RegionId>(m.region_id), "dial failed");
}

void DerpLink::on_derp_conn(const ipc::DerpConn& m, ipc::UniqueFd fd) {
  const auto region = static_cast<derp::RegionId>(m.region_id);
  const DerpNode* node = map_.node(region, m.node_name);
  if (node == nullptr || !regions_.wanted(region)) return;  // fd closes with `fd`
  close(region);
  derp::DerpClientConfig cfg;
  cfg.self = self_;
  cfg.host_name = node->host_name;
  cfg.cert_name = node->cert_name;
  cfg.tls.insecure_for_tests = node->insecure_for_tests;
  cfg.ssl_ctx = node->insecure_for_tests ? ctx_.insecure.get() : ctx_.verifying.get();
  if (cfg.ssl_ctx == nullptr) return fail(region, "no TLS context to verify this node");
  cfg.preferred = region == regions_.home();
  cfg.request_seal = [this, region](const NodePublic& server, const std::string& json) {
    ipc::SealClientInfoRequest req;
    req.request_id = next_seal_id_++;
    req.server_key = server;
    req.client_info_json.assign(json.begin(), json.end());
    pending_seals_[req.request_id] = region;
    if (!dataproc_.send(req)) spdlog::warn("derp: cannot ask dataproc to seal ClientInfo");
  };
  derp::DerpClientEvents ev;
  ev.on_ready = [this, region] {
    spdlog::info("derp: connected to region {}", region);
    regions_.on_connected(region, Clock::now());
    flush_queue(region);
  };
  ev.on_packet = [this, region](const NodePublic& src, ByteView pkt) {
    regions_.note_heard(src, region, Clock::now());
    if (runtime_) runtime_->on_derp_packet(src, static_cast<std::uint32_t>(region), pkt);
  };
  ev.on_peer_gone = [this, region](const NodePublic& peer, derp::PeerGoneReason reason) {
    regions_.peer_gone(peer, region);
    if (reason == derp::PeerGoneReason::kNotHere && runtime_) runtime_->on_derp_peer_not_here(peer);
  };
  auto client = derp::DerpClient::start(fd.release(), std::move(cfg), {}, std::move(ev), Clock::now(), &metrics_);
  if (!client) return fail(region, client.error());
  Conn c;
  c.sd = std::make_unique<asio::posix::stream_descriptor>(io_, (*client)->fd());
  c.client = std::move(*client);
  conns_[region] = std::move(c);
  arm(region);
}

void DerpLink::on_sealed(const ipc::SealClientInfoReply& m) {
  auto it = pending_seals_.find(m.request_id);
  if (it == pending_seals_.end()) return;
  const derp::RegionId region = it->second;
  pending_seals_.erase(it);
  auto c = conns_.find(region);
  if (c == conns_.end()) return;
  // dataproc answers node public(32) || nonce(24) || box; the client wants the rest.
  Result<Bytes> sealed = make_error("dataproc refused to seal");
  if (m.sealed.size() > 32 + 24 && std::equal(self_.bytes().begin(), self_.bytes().end(), m.sealed.begin())) {
    sealed = Bytes(m.sealed.begin() + 32, m.sealed.end());
  }
  if (auto st = c->second.client->provide_sealed(std::move(sealed)); !st) return fail(region, st.error());
  arm(region);
}

void DerpLink::reconnect_all() {
  std::vector<derp::RegionId> regions;
  for (const auto& [r, c] : conns_) regions.push_back(r);
  for (auto r : regions) fail(r, "reconnecting after a rebind");
}

void DerpLink::arm(derp::RegionId region) {
  auto it = conns_.find(region);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  if (!c.read_armed) {
    c.read_armed = true;
    c.sd->async_wait(asio::posix::stream_descriptor::wait_read,
                     [this, region, alive = alive_](boost::system::error_code ec) {
                       if (!*alive || ec == asio::error::operation_aborted) return;
                       if (auto i = conns_.find(region); i != conns_.end()) i->second.read_armed = false;
                       on_ready(region, false);
                     });
  }
  if (c.client->wants_write() && !c.write_armed) {
    c.write_armed = true;
    c.sd->async_wait(asio::posix::stream_descriptor::wait_write,
                     [this, region, alive = alive_](boost::system::error_code ec) {
                       if (!*alive || ec == asio::error::operation_aborted) return;
                       if (auto i = conns_.find(region); i != conns_.end()) i->second.write_armed = false;
                       on_ready(region, true);
                     });
  }
}

void DerpLink::on_ready(derp::RegionId region, bool) {
  auto it = conns_.find(region);
  if (it == conns_.end()) return;
  if (auto st = it->second.client->on_io(Clock::now()); !st) return fail(region, st.error());
  arm(region);
}

void DerpLink::flush_queue(derp::RegionId region) {
  auto it = conns_.find(region);
  if (it == conns_.end() || !it->second.client->ready()) return;
  for (auto& q : regions_.take_queued(region)) {
    if (auto st = it->second.client->send_packet(q.dst, q.packet); !st) return fail(region, st.error());
  }
  arm(region);
}

bool DerpLink::send(const NodePublic& dst, std::uint32_t peer_region, ByteView packet) {
  auto region = regions_.send(dst, static_cast<derp::RegionId>(peer_region), Bytes(packet.begin(), packet.end()),
                              Clock::now());
  if (!region) return false;
  flush_queue(*region);
  schedule_tick();
  return true;
}

void DerpLink::schedule_tick() {
  const TimePoint now = Clock::now();
  auto next = regions_.tick(now);
  for (auto& [r, c] : conns_) {
    if (auto st = c.client->check_timeout(now); !st) {
      asio::post(io_, [this, r = r, alive = alive_] {
        if (*alive) fail(r, "read deadline passed");
      });
    }
    if (!next || c.client->deadline() < *next) next = c.client->deadline();
  }
  if (!next) return;
  tick_timer_.expires_at(*next);
  tick_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
    if (!ec && *alive) schedule_tick();
  });
}

}  // namespace tw::netproc
