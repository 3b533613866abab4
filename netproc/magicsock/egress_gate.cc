#include "netproc/magicsock/egress_gate.h"

namespace tw::magicsock {

EgressGate::EgressGate(MetricsRegistry& metrics)
    : requested_(metrics.counter(
          "egress_candidates_requested_total",
          "Learned candidates netproc asked the broker to admit to the kernel allowlist")),
      refused_(metrics.counter("egress_candidates_refused_total",
                               "Learned candidates the broker refused: nothing is sent to them")),
      held_dropped_(metrics.counter(
          "egress_held_dropped_total",
          "Datagrams held for a candidate's approval and dropped (refused, late or full)")) {}

void EgressGate::set_netmap_endpoints(std::span<const IpPort> endpoints) {
  netmap_ = std::set<IpPort>(endpoints.begin(), endpoints.end());
}

void EgressGate::set_stun_servers(std::span<const IpPort> servers) {
  stun_ = std::set<IpPort>(servers.begin(), servers.end());
}

bool EgressGate::approved(const IpPort& to, TimePoint now) const {
  if (!enabled_ || netmap_.count(to) != 0 || stun_.count(to) != 0) return true;
  auto it = approved_until_.find(to);
  return it != approved_until_.end() && it->second > now;
}

EgressGate::Decision EgressGate::check(std::uint32_t peer_id, const IpPort& to, TimePoint now,
                                       std::vector<Request>& requests) {
  if (!enabled_ || netmap_.count(to) != 0 || stun_.count(to) != 0) return Decision::kSend;
  auto ask = [&] {
    if (peer_id == 0) return;
    auto r = requested_at_.find(to);
    if (r != requested_at_.end() && now - r->second < kRetryAfter) return;
    requested_at_[to] = now;
    requests.emplace_back(peer_id, to);
    requested_.inc();
  };
  if (auto it = approved_until_.find(to); it != approved_until_.end() && it->second > now) {
    if (it->second - now < kRenewBefore) ask();  // in use: renew before it lapses
    return Decision::kSend;
  }
  if (auto it = refused_until_.find(to); it != refused_until_.end() && it->second > now)
    return Decision::kDrop;
  if (peer_id == 0) return Decision::kDrop;
  ask();
  return Decision::kHold;
}

void EgressGate::hold(const IpPort& to, ByteView datagram, TimePoint now) {
  auto it = held_.find(to);
  if (it == held_.end()) {
    if (held_.size() >= kMaxHeldAddresses) {
      held_dropped_.inc();
      return;
    }
    it = held_.emplace(to, std::vector<std::pair<TimePoint, Bytes>>{}).first;
  }
  auto& q = it->second;
  if (q.size() >= kMaxHeldPerAddress) {
    q.erase(q.begin());
    held_dropped_.inc();
  }
  q.emplace_back(now, Bytes(datagram.begin(), datagram.end()));
}

std::vector<std::pair<IpPort, Bytes>> EgressGate::on_verdict(std::span<const IpPort> approved,
                                                             std::span<const IpPort> refused,
                                                             Duration lifetime, TimePoint now) {
  std::vector<std::pair<IpPort, Bytes>> out;
  for (const auto& a : approved) {
    approved_until_[a] = now + lifetime;
    requested_at_.erase(a);
    refused_until_.erase(a);
    auto it = held_.find(a);
    if (it == held_.end()) continue;
    for (auto& [when, bytes] : it->second) {
      if (now - when <= kHoldFor) {
        out.emplace_back(a, std::move(bytes));
      } else {
        held_dropped_.inc();
      }
    }
    held_.erase(it);
  }
  for (const auto& r : refused) {
    refused_.inc();
    requested_at_.erase(r);
    approved_until_.erase(r);
    refused_until_[r] = now + kRefusedFor;
    if (auto it = held_.find(r); it != held_.end()) {
      held_dropped_.inc(it->second.size());
      held_.erase(it);
    }
  }
  return out;
}

void EgressGate::expire(TimePoint now) {
  for (auto it = held_.begin(); it != held_.end();) {
    auto& q = it->second;
    const std::size_t before = q.size();
    std::erase_if(q, [&](const auto& e) { return now - e.first > kHoldFor; });
    held_dropped_.inc(before - q.size());
    it = q.empty() ? held_.erase(it) : std::next(it);
  }
  std::erase_if(approved_until_, [now](const auto& kv) { return kv.second <= now; });
  std::erase_if(refused_until_, [now](const auto& kv) { return kv.second <= now; });
  std::erase_if(requested_at_,
                [now](const auto& kv) { return now - kv.second >= kRetryAfter * 4; });
}

std::size_t EgressGate::held() const {
  std::size_t n = 0;
  for (const auto& [a, q] : held_) n += q.size();
  return n;
}

}  // namespace tw::magicsock
