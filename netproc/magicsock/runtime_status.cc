// STUN, our endpoints and the StatusRequest topics of the runtime.
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "netproc/magicsock/constants.h"
#include "netproc/magicsock/runtime.h"
#include "netproc/stun/stun.h"

namespace tw::magicsock {

namespace {
double to_ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
}  // namespace

void Runtime::run_stun(TimePoint now) {
  for (auto it = stun_sent_.begin(); it != stun_sent_.end();) {
    it = now - it->second.sent > kStunTxLifetime ? stun_sent_.erase(it) : std::next(it);
  }
  if (!udp_) return;
  stun_scratch_.clear();
  stun_.poll(now, table_.size() > 0 || !wg_only_.empty(), stun_scratch_);
  for (const auto& plan : stun_scratch_) {
    const auto req = stun::binding_request(plan.txid);
    udp_->queue(plan.server, ByteView(req.data(), req.size()));
    stun_sent_[plan.txid] = {plan.server, now};
  }
}

void Runtime::on_stun(const IpPort& src, ByteView data, TimePoint now) {
  auto resp = stun::parse_binding_response(data);
  if (!resp) return c_.stun_rx_bad.inc();
  // The prober checks the 5 s transaction lifetime on receipt (the reference: on send only).
  if (stun_.on_response(resp->txid, now) != StunProber::Match::kMatched) return;
  if (auto it = stun_sent_.find(resp->txid); it != stun_sent_.end()) {
    stun_results_[it->second.server] = {resp->mapped, to_ms(now - it->second.sent)};
    derp_latency_.on_stun_rtt(it->second.server, now - it->second.sent, now);
    stun_sent_.erase(it);
  } else {
    stun_results_[src] = {resp->mapped, 0};
  }
  if (reflexive_.note_stun(resp->mapped, now)) refresh_endpoints(now);
}

void Runtime::refresh_endpoints(TimePoint now) {
  reflexive_.expire(now);
  // netproc lives in an empty network namespace and cannot list interfaces, so
  // there are no local addresses to add here (LAN endpoints come from STUN only).
  const AdvertisePolicy policy{cfg_.advertise_lan_endpoints, cfg_.enable_ipv6};
  advertiser_.update(build_self_endpoints(reflexive_, {}, policy, now));
}

std::vector<IpPort> Runtime::advertised() const {
  std::vector<IpPort> out;
  if (const auto& last = advertiser_.last()) {
    for (const auto& e : *last) out.push_back(e.addr);
  }
  return out;
}

std::string Runtime::status_json() {
  const TimePoint now = clock_now();
  nlohmann::json j;
  j["endpoints"] = nlohmann::json::array();
  for (const auto& e : advertised()) j["endpoints"].push_back(e.to_string());
  j["home_derp"] = derp_ != nullptr ? derp_->home_region() : 0;
  j["udp"] = udp_ ? nlohmann::json(udp_->local_port()) : nlohmann::json(nullptr);
  auto& peers = j["peers"] = nlohmann::json::array();
  for (const auto& [id, t] : table_of_) {
    const auto st = table_.status(t, now, derp_available());
    nlohmann::json p = {{"id", id},
                        {"path", std::string(to_string(st.path))},
                        {"state", std::string(to_string(st.state))},
                        {"route", std::string(to_string(st.route))}};
    if (st.best) p["endpoint"] = st.best->to_string();
    if (st.latency) p["latency_ms"] = to_ms(*st.latency);
    p["trust_remaining_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(st.trust_remaining).count();
    if (const auto& r = table_.info(t).derp_region) p["derp_region"] = *r;
    auto& cands = p["candidates"] = nlohmann::json::array();
    for (const auto& c : st.candidates) {
      cands.push_back({{"addr", c.addr.to_string()}, {"source", std::string(to_string(c.source))}});
    }
    peers.push_back(std::move(p));
  }
  for (const auto& [id, ep] : wg_only_) {
    peers.push_back({{"id", id},
                     {"path", "direct"},
                     {"endpoint", ep.to_string()},
                     {"wireguard_only", true},
                     {"candidates", nlohmann::json::array({{{"addr", ep.to_string()}, {"source", "netmap"}}})}});
  }
  return j.dump();
}

std::string Runtime::netcheck_json() {
  nlohmann::json j;
  auto& stun = j["stun"] = nlohmann::json::array();
  for (const auto& [server, r] : stun_results_) {
    stun.push_back({{"server", server.to_string()}, {"mapped", r.mapped.to_string()}, {"latency_ms", r.latency_ms}});
  }
  j["endpoints"] = nlohmann::json::array();
  for (const auto& e : advertised()) j["endpoints"].push_back(e.to_string());
  if (stun_results_.size() >= 2) {
    bool varies = false;
    const IpPort& first = stun_results_.begin()->second.mapped;
    for (const auto& [server, r] : stun_results_) varies = varies || r.mapped != first;
    j["mapping_varies_by_dest_ip"] = varies;
  }
  auto& derp = j["derp"] = nlohmann::json::array();
  const std::uint32_t home = derp_ != nullptr ? derp_->home_region() : 0;
  for (const auto& l : derp_latency_.report(clock_now())) {
    nlohmann::json r = {{"region_id", l.region},
                        {"region", l.code},
                        {"region_name", l.name},
                        {"home", l.region == home},
                        {"connected", derp_ != nullptr && derp_->region_connected(l.region)}};
    switch (l.stun) {
      case DerpRegionLatency::Stun::kMeasured:
        r["stun"] = "measured";
        r["latency_ms"] = to_ms(l.latest);
        r["min_latency_ms"] = to_ms(l.min);
        r["age_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(l.age).count();
        r["node"] = l.node;
        r["stun_server"] = l.server.to_string();
        break;
      case DerpRegionLatency::Stun::kNoReply:
        r["stun"] = "no_reply";
        break;
      case DerpRegionLatency::Stun::kNoStun:
        r["stun"] = "no_stun";
        break;
    }
    derp.push_back(std::move(r));
  }
  return j.dump();
}

void Runtime::status_request(const std::string& topic, Reply reply) {
  if (topic == "status") return reply(status_json());
  if (topic == "metrics") return reply(metrics_text());
  if (topic == "netcheck") return reply(netcheck_json());
  reply(nlohmann::json{{"error", "unknown topic " + topic.substr(0, 64)}}.dump());
}

}  // namespace tw::magicsock
