// Our reflexive (public) addresses as peers see them (docs/direct-underlay.md#our-endpoints):
// learned from STUN responses and, secondarily, from a solicited pong's `src` sent by
// a netmap member. Each expires 2 minutes after it was last confirmed; at most 16.
#pragma once

#include <vector>

#include "common/clock.h"
#include "common/ipaddr.h"
#include "netproc/magicsock/metrics.h"

namespace tw::magicsock {

enum class ReflexiveSource : std::uint8_t { kStun, kPong };

struct ReflexiveAddr {
  IpPort addr;
  ReflexiveSource source = ReflexiveSource::kStun;
  TimePoint last_confirmed{};
};

class ReflexiveSet {
 public:
  ReflexiveSet(MagicsockMetrics& metrics, bool enable_ipv6)
      : m_(metrics), enable_ipv6_(enable_ipv6) {}

  // The XOR-MAPPED-ADDRESS of a matched STUN response. Returns true if new.
  bool note_stun(const IpPort& mapped, TimePoint now);
  // A pong's src; used only when the pong answered our ping and came from a member.
  bool note_pong_src(const IpPort& src, bool solicited_by_member, TimePoint now);
  void expire(TimePoint now);
  // Live entries, STUN-learned first, most recently confirmed first within a source.
  std::vector<ReflexiveAddr> current(TimePoint now) const;
  void clear() { addrs_.clear(); }
  std::size_t size() const { return addrs_.size(); }

 private:
  bool insert(const IpPort& a, ReflexiveSource s, TimePoint now);

  MagicsockMetrics& m_;
  bool enable_ipv6_;
  std::vector<ReflexiveAddr> addrs_;
};

}  // namespace tw::magicsock
