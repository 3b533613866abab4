#include "netproc/magicsock/reflexive.h"

#include <algorithm>

#include "netproc/magicsock/candidate_filter.h"
#include "netproc/magicsock/constants.h"

namespace tw::magicsock {

bool ReflexiveSet::note_stun(const IpPort& mapped, TimePoint now) {
  // STUN is IPv4-only. A LAN address is legitimate here (a STUN server on the LAN or
  // loopback sees it), but nobody can dial an unspecified or group address.
  const IpAddr& ip = mapped.ip;
  if (!ip.is_v4() || mapped.port == 0 || ip.is_unspecified() || ip.is_multicast() ||
      ip.is_broadcast()) {
    m_.reflexive_rejected.inc();
    return false;
  }
  return insert(mapped, ReflexiveSource::kStun, now);
}

bool ReflexiveSet::note_pong_src(const IpPort& src, bool solicited_by_member, TimePoint now) {
  if (!solicited_by_member) return false;
  // A member chooses `src` freely: it must be an address peers may be asked to ping.
  if (!is_pingable_candidate(src, enable_ipv6_)) {
    m_.reflexive_rejected.inc();
    return false;
  }
  return insert(src, ReflexiveSource::kPong, now);
}

bool ReflexiveSet::insert(const IpPort& a, ReflexiveSource s, TimePoint now) {
  expire(now);
  for (auto& r : addrs_) {
    if (r.addr != a) continue;
    r.last_confirmed = now;
    if (s == ReflexiveSource::kStun) r.source = s;  // STUN's word is the stronger one
    return false;
  }
  if (addrs_.size() >= kMaxReflexive) {
    // STUN may push out the stalest pong-learned entry; nothing else evicts.
    auto victim = addrs_.end();
    if (s == ReflexiveSource::kStun) {
      for (auto it = addrs_.begin(); it != addrs_.end(); ++it) {
        if (it->source == ReflexiveSource::kPong &&
            (victim == addrs_.end() || it->last_confirmed < victim->last_confirmed)) {
          victim = it;
        }
      }
    }
    if (victim == addrs_.end()) {
      m_.reflexive_cap_dropped.inc();
      return false;
    }
    addrs_.erase(victim);
  }
  addrs_.push_back(ReflexiveAddr{a, s, now});
  m_.reflexive_learned.inc();
  return true;
}

void ReflexiveSet::expire(TimePoint now) {
  const auto n = std::erase_if(
      addrs_, [&](const ReflexiveAddr& r) { return now - r.last_confirmed >= kReflexiveLifetime; });
  if (n > 0) m_.reflexive_expired.inc(n);
}

std::vector<ReflexiveAddr> ReflexiveSet::current(TimePoint now) const {
  std::vector<ReflexiveAddr> out;
  for (const auto& r : addrs_) {
    if (now - r.last_confirmed < kReflexiveLifetime) out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(), [](const ReflexiveAddr& a, const ReflexiveAddr& b) {
    if (a.source != b.source) return a.source == ReflexiveSource::kStun;
    return a.last_confirmed > b.last_confirmed;
  });
  return out;
}

}  // namespace tw::magicsock
