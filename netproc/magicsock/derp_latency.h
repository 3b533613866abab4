// DERP region latency for `tailwarden netcheck`, measured the way Tailscale's
// netcheck does it: the round-trip time of a STUN binding request to the STUN
// endpoint of each region's nodes (the same requests the STUN prober sends for our
// reflexive address; nothing extra goes on the wire). Pure logic: the runtime feeds
// it the DERP map and each matched response's RTT with the time it arrived.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/ipaddr.h"
#include "common/netmap.h"

namespace tw::magicsock {

struct DerpRegionLatency {
  enum class Stun : std::uint8_t {
    kMeasured,  // some node of the region answered
    kNoReply,   // it has a usable STUN endpoint, nothing answered (yet)
    kNoStun,    // no node has one: STUNPort -1, or no IPv4 (STUN is IPv4 only)
  };
  std::uint32_t region = 0;
  std::string code;  // RegionCode, or the id when the map has none
  std::string name;  // RegionName
  Stun stun = Stun::kNoStun;
  // kMeasured only: the latest answer (from `node` at `server`) and the smallest
  // RTT any of the region's nodes gave since the map named them.
  Duration latest{};
  Duration min{};
  Duration age{};  // since the latest answer
  std::string node;
  IpPort server;
};

class DerpLatencyTable {
 public:
  // The regions and nodes in force. Measurements of a node whose region, name and
  // STUN endpoint are unchanged are kept (a netmap reload is not a new network).
  void set_map(const DerpMap& map);
  // A matched STUN response from `server`, `rtt` after its request, arriving `now`.
  // Every node with that endpoint is credited (regions may share a STUN server).
  void on_stun_rtt(const IpPort& server, Duration rtt, TimePoint now);
  // Our socket changed: earlier RTTs describe another path; forget them.
  void clear_measurements();

  // Every region of the map: measured ones by latest RTT (fastest first), then the
  // unanswered, then those without STUN; ties by region id.
  std::vector<DerpRegionLatency> report(TimePoint now) const;

 private:
  struct Node {
    std::uint32_t region = 0;
    std::string name;
    std::optional<IpPort> stun;  // nullopt: no usable IPv4 STUN endpoint
    std::optional<Duration> latest;
    Duration min{};
    TimePoint at{};
  };
  struct Region {
    std::uint32_t id = 0;
    std::string code;
    std::string name;
  };
  std::vector<Region> regions_;
  std::vector<Node> nodes_;
};

}  // namespace tw::magicsock
