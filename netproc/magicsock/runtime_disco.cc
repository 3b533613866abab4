// Disco on the runtime: opening and answering pings, pongs and call-me-maybe from
// UDP and from DERP, sending what PeerTable plans, and the operator ping.
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/overloaded.h"
#include "netproc/magicsock/runtime.h"

namespace tw::magicsock {

namespace {
// Large enough for the biggest message we send (a call-me-maybe with 16 endpoints).
constexpr std::size_t kDiscoBuf = 1024;
constexpr std::uint8_t kDerpMagicIp[4] = {127, 3, 3, 40};  // Go's DERP "magic" source address

double to_ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Disco events at debug level (log_level = "debug"): what a slow discovery is
// diagnosed from. Formatting is skipped entirely at the default level.
bool disco_debug() { return spdlog::should_log(spdlog::level::debug); }
}  // namespace

const disco::DiscoSharedKey* Runtime::shared_key(const DiscoPublic& peer) {
  if (auto it = keys_.find(peer); it != keys_.end()) return &it->second;
  auto k = disco::DiscoSharedKey::derive(cfg_.disco_private, peer);
  if (!k) return nullptr;
  return &keys_.emplace(peer, std::move(*k)).first->second;
}

void Runtime::on_udp_disco(const IpPort& src, MutableByteView data, TimePoint now) {
  auto hdr = disco::parse_header(data);
  if (!hdr) return c_.disco_rx_bad_message.inc();
  if (!table_.member(hdr->sender)) return c_.disco_rx_not_member.inc();
  const auto* key = shared_key(hdr->sender);
  if (key == nullptr) return c_.disco_rx_open_failed.inc();
  auto opened = disco::open_in_place(*key, data);
  if (!opened.ok()) return c_.disco_rx_open_failed.inc();
  auto msg = disco::parse_message(opened.plaintext);
  if (!msg) return c_.disco_rx_bad_message.inc();
  std::visit(Overloaded{
                 [&](const disco::Ping& p) {
                   // Binding verifier inside on_ping_udp; a refused ping gets nothing back.
                   auto id = table_.on_ping_udp(hdr->sender, p.node_key, src, now);
                   if (disco_debug()) {
                     spdlog::debug("disco: ping from {} over udp: {}", src.to_string(),
                                   id ? "answered" : "refused");
                   }
                   if (id) {
                     send_disco_udp(*id, src, disco::Pong{p.txid, src});
                     ping_scratch_.clear();
                     table_.ping_back(*id, src, now, ping_scratch_);
                     send_pings(ping_scratch_);
                     prompt_pinger(now);
                   }
                 },
                 [&](const disco::Pong& p) {
                   auto res = table_.on_pong(hdr->sender, p.txid, now);
                   if (disco_debug()) {
                     spdlog::debug("disco: pong from {} over udp: {}", src.to_string(),
                                   !res                       ? "unsolicited"
                                   : res->outcome.became_best ? "became best"
                                                              : "accepted");
                   }
                   if (!res) return;
                   if (reflexive_.note_pong_src(p.src, true, now)) refresh_endpoints(now);
                   for (auto it = op_pings_.begin(); it != op_pings_.end(); ++it) {
                     auto& op = **it;
                     if (op.table_id != res->peer || op.udp_txid != p.txid) continue;
                     nlohmann::json j = {{"via", "direct"},
                                         {"endpoint", res->outcome.pinged.to_string()},
                                         {"latency_ms", to_ms(res->outcome.rtt)}};
                     auto reply = std::move(op.reply);
                     op_pings_.erase(it);
                     reply(j.dump());
                     break;
                   }
                 },
                 [&](const disco::CallMeMaybe&) { c_.disco_rx_cmm_over_udp.inc(); },
                 [&](const disco::UnknownMessage&) { c_.disco_rx_unknown_type.inc(); },
             },
             *msg);
}

void Runtime::on_relayed_disco(const NodePublic& src, std::uint32_t region, ByteView data, TimePoint now) {
  auto hdr = disco::parse_header(data);
  if (!hdr) return c_.disco_rx_bad_message.inc();
  if (!table_.member(hdr->sender)) return c_.disco_rx_not_member.inc();
  const auto* key = shared_key(hdr->sender);
  if (key == nullptr) return c_.disco_rx_open_failed.inc();
  std::uint8_t buf[disco::kOverhead + 2048];
  if (data.size() > sizeof buf) return c_.disco_rx_bad_message.inc();
  auto opened = disco::open(*key, data, MutableByteView(buf, sizeof buf));
  if (!opened.ok()) return c_.disco_rx_open_failed.inc();
  auto msg = disco::parse_message(opened.plaintext);
  if (!msg) return c_.disco_rx_bad_message.inc();
  std::visit(Overloaded{
                 [&](const disco::Ping& p) {
                   // The reference drops relayed pings; we answer over DERP
                   // (docs/direct-underlay.md#pings-and-pongs).
                   auto id = table_.on_ping_derp(hdr->sender, p.node_key, src);
                   if (disco_debug()) {
                     spdlog::debug("disco: ping over derp region {}: {}", region,
                                   id ? "answered" : "refused");
                   }
                   if (!id) return;
                   const IpPort magic{IpAddr::v4(kDerpMagicIp[0], kDerpMagicIp[1], kDerpMagicIp[2], kDerpMagicIp[3]),
                                      static_cast<std::uint16_t>(region)};
                   send_disco_derp(*id, disco::Pong{p.txid, magic});
                 },
                 [&](const disco::Pong& p) {
                   for (auto it = op_pings_.begin(); it != op_pings_.end(); ++it) {
                     auto& op = **it;
                     if (op.derp_txid != p.txid || table_.info(op.table_id).node != src) continue;
                     nlohmann::json j = {{"via", "derp"}, {"derp_region", region}, {"latency_ms", to_ms(now - op.sent)}};
                     auto reply = std::move(op.reply);
                     op_pings_.erase(it);
                     reply(j.dump());
                     return;
                   }
                   // Path pings go out over UDP only, and a peer answers a UDP ping over
                   // UDP. A pong that arrives over DERP (even one carrying a live UDP
                   // txid) proves nothing about a UDP path: never trusted, counted
                   // (docs/direct-underlay.md#pings-and-pongs).
                   c_.disco_rx_relayed_pong_ignored.inc();
                 },
                 [&](const disco::CallMeMaybe& cmm) {
                   ping_scratch_.clear();
                   std::vector<IpPort> eps(cmm.endpoints.begin(), cmm.endpoints.end());
                   const auto id =
                       table_.on_call_me_maybe(hdr->sender, src, eps, now, ping_scratch_);
                   if (disco_debug()) {
                     spdlog::debug(
                         "disco: call-me-maybe over derp region {} with {} endpoints: {}, {} pings",
                         region, eps.size(), id ? "accepted" : "refused", ping_scratch_.size());
                   }
                   if (!id) return;
                   send_pings(ping_scratch_);
                   if (table_.answer_call_me_maybe(*id, now, have_endpoints()))
                     send_call_me_maybe(*id);
                 },
                 [&](const disco::UnknownMessage&) { c_.disco_rx_unknown_type.inc(); },
             },
             *msg);
}

void Runtime::send_disco_udp(PeerId id, const IpPort& to, const disco::Message& m) {
  if (!udp_) return;
  const auto* key = shared_key(table_.info(id).disco);
  if (key == nullptr) return;
  std::uint8_t buf[kDiscoBuf];
  const std::size_t n = disco::seal_message(*key, self_disco_, m, MutableByteView(buf, sizeof buf));
  if (n == 0) return;
  const std::uint32_t peer = id < broker_of_.size() ? broker_of_[id] : 0;
  if (!egress_clear(peer, to, ByteView(buf, n), true, clock_now())) return;
  udp_->queue(to, ByteView(buf, n));
  c_.disco_tx.inc();
}

bool Runtime::send_disco_derp(PeerId id, const disco::Message& m) {
  const auto* key = shared_key(table_.info(id).disco);
  if (key == nullptr) return false;
  std::uint8_t buf[kDiscoBuf];
  const std::size_t n = disco::seal_message(*key, self_disco_, m, MutableByteView(buf, sizeof buf));
  if (n == 0 || !derp_send(id, ByteView(buf, n))) return false;
  c_.disco_tx.inc();
  return true;
}

void Runtime::send_pings(const std::vector<PeerPing>& pings) {
  for (const auto& p : pings) {
    if (disco_debug()) spdlog::debug("disco: ping to {} (peer {})", p.ping.to.to_string(), p.peer);
    send_disco_udp(p.peer, p.ping.to, disco::Ping{p.ping.txid, cfg_.self_node, 0, disco::kVersion});
  }
}

void Runtime::send_call_me_maybe(PeerId id) {
  // Only over DERP, carrying our advertised endpoints, most useful first.
  const auto eps = advertised();
  const bool sent = send_disco_derp(id, disco::make_call_me_maybe(eps));
  if (disco_debug()) {
    spdlog::debug("disco: call-me-maybe to peer {} with {} endpoints: {}", id, eps.size(),
                  sent ? "sent over derp" : "derp send failed");
  }
}

void Runtime::ping(std::uint32_t peer_id, Reply reply) {
  c_.operator_pings.inc();
  auto t = table_id(peer_id);
  if (!t) {
    reply(nlohmann::json{{"error", "no disco peer with id " + std::to_string(peer_id)}}.dump());
    return;
  }
  const TimePoint now = clock_now();
  auto op = std::make_unique<OperatorPing>();
  op->peer_id = peer_id;
  op->table_id = *t;
  op->sent = now;
  op->deadline = now + cfg_.operator_ping_timeout;
  op->reply = std::move(reply);
  if (auto pp = table_.operator_ping(*t, now); pp && udp_) {
    op->udp_txid = pp->ping.txid;
    send_pings({*pp});
  }
  // Over DERP too when there is no trusted direct path to measure (or no UDP ping
  // could go out); with a trusted path the answer is about that path.
  const bool trusted = table_.paths(*t).trusted(now);
  if (derp_available() && (!trusted || !op->udp_txid)) {
    disco::TxId txid{};
    rng_.fill(txid);
    if (send_disco_derp(*t, disco::Ping{txid, cfg_.self_node, 0, disco::kVersion})) op->derp_txid = txid;
  }
  flush();
  op_pings_.push_back(std::move(op));
}

void Runtime::expire_operator_pings(TimePoint now) {
  for (std::size_t i = 0; i < op_pings_.size();) {
    if (op_pings_[i]->deadline > now) {
      ++i;
      continue;
    }
    auto reply = std::move(op_pings_[i]->reply);
    op_pings_.erase(op_pings_.begin() + static_cast<std::ptrdiff_t>(i));
    c_.operator_ping_timeouts.inc();
    reply(R"({"timeout":true})");
  }
}

}  // namespace tw::magicsock
