#include "netproc/magicsock/stun_prober.h"

#include <algorithm>

#include "netproc/magicsock/constants.h"

namespace tw::magicsock {

bool usable_stun_server(const IpPort& s) {
  return s.ip.is_v4() && s.port != 0 && !s.ip.is_unspecified() && !s.ip.is_multicast() &&
         !s.ip.is_broadcast();
}

void StunProber::set_servers(std::span<const IpPort> servers, TimePoint now) {
  servers_.clear();
  rotation_ = 0;
  for (const auto& s : servers) {
    if (!usable_stun_server(s)) {
      m_.stun_server_skipped.inc();
    } else if (std::find(servers_.begin(), servers_.end(), s) == servers_.end()) {
      servers_.push_back(s);
    }
  }
  start(now);
}

void StunProber::on_rebind(TimePoint now) {
  in_flight_.clear();
  start(now);
}

Duration StunProber::draw_interval() {
  const auto span_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(kStunIntervalMax - kStunIntervalMin)
          .count();
  return kStunIntervalMin +
         std::chrono::milliseconds(rng_.uniform(static_cast<std::uint64_t>(span_ms)));
}

void StunProber::poll(TimePoint now, bool have_peers, std::vector<StunRequestPlan>& out) {
  const bool periodic_due = next_sweep_ && now >= *next_sweep_;
  if (!immediate_ && !periodic_due) return;
  const bool run = immediate_ || have_peers;
  immediate_ = false;
  next_sweep_ = now + draw_interval();
  if (run) sweep(now, out);
}

void StunProber::sweep(TimePoint now, std::vector<StunRequestPlan>& out) {
  std::erase_if(in_flight_, [&](const InFlight& f) { return now - f.sent >= kStunTxLifetime; });
  // A sweep starts where the last one hit the in-flight cap, so that with more servers
  // than the cap every server gets its turn instead of the first 16 forever.
  const std::size_t n = servers_.size();
  if (rotation_ >= n) rotation_ = 0;
  std::optional<std::size_t> first_skipped;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (rotation_ + k) % n;
    const IpPort& server = servers_[i];
    if (in_flight_.size() >= kMaxStunInFlight) {
      m_.stun_request_dropped_in_flight_cap.inc();
      if (!first_skipped) first_skipped = i;
      continue;
    }
    StunRequestPlan p;
    p.server = server;
    rng_.fill(p.txid);
    in_flight_.push_back(InFlight{p.txid, now});
    m_.stun_request_planned.inc();
    out.push_back(p);
  }
  if (first_skipped) rotation_ = *first_skipped;
}

StunProber::Match StunProber::on_response(const StunTxId& txid, TimePoint now) {
  auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                         [&](const InFlight& f) { return f.txid == txid; });
  if (it == in_flight_.end()) {
    m_.stun_response_unknown.inc();
    return Match::kUnknown;
  }
  const bool late = now - it->sent >= kStunTxLifetime;
  in_flight_.erase(it);
  if (late) {
    m_.stun_response_expired.inc();
    return Match::kExpired;
  }
  m_.stun_response_matched.inc();
  return Match::kMatched;
}

}  // namespace tw::magicsock
