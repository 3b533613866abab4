// Which DERP regions to keep connected, when to (re)dial, and the per-region send
// queues. Pure logic: time and randomness are
// injected, dialling and closing are requests to the owner (in production the broker
// dials the TCP connection and netproc wraps the fd in a DerpClient).
//
//   * the home region is always wanted; other regions are dialled on demand and
//     closed after 60 s without sends;
//   * a failed or dropped connection is redialled after n²·10 ms (n = consecutive
//     failures), capped at 5 s, times a jitter factor in [0.5, 1.5);
//   * packets wait in a bounded per-region queue (32) while the region is not
//     connected; when full the oldest is dropped and counted;
//   * a peer is sent to over the region we last heard it on, if that region is
//     connected (Go's reverse route), else over its home region.
// The owner creates the home region's DerpClient with `preferred = true` so the
// server gets NotePreferred(true).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/keys.h"
#include "common/metrics.h"

namespace tw::derp {

using RegionId = int;

struct RegionPolicy {
  std::size_t queue_limit = 32;
  Duration idle_close = std::chrono::seconds(60);
  Duration backoff_unit = std::chrono::milliseconds(10);
  Duration backoff_cap = std::chrono::seconds(5);
};

struct QueuedPacket {
  NodePublic dst;
  Bytes packet;
};

struct RegionActions {
  std::function<void(RegionId)> dial;   // open a connection (the owner reports the outcome)
  std::function<void(RegionId)> close;  // close an idle connection
};

class RegionManager {
 public:
  // `jitter` returns a uniform value in [0, 1).
  RegionManager(RegionPolicy policy, RegionActions actions, std::function<double()> jitter,
                MetricsRegistry& metrics);

  // Sets the home region (0 = none); the new home is dialled at once if needed.
  void set_home(RegionId home, TimePoint now);
  RegionId home() const { return home_; }

  // Routes a packet for `dst` (whose home region is `peer_home`, 0 if unknown). Returns
  // the region chosen, with the packet queued there; nullopt if there is no region.
  std::optional<RegionId> send(const NodePublic& dst, RegionId peer_home, Bytes packet, TimePoint now);
  // Packets ready for a connected region, oldest first (moves them out).
  std::vector<QueuedPacket> take_queued(RegionId region);

  // Connection outcomes reported by the owner.
  void on_connected(RegionId region, TimePoint now);
  void on_failed(RegionId region, TimePoint now);  // dial failed or the connection dropped

  // Inbound traffic: a packet from `peer` over `region` sets the reverse route.
  void note_heard(const NodePublic& peer, RegionId region, TimePoint now);
  // PeerGone over `region` removes the reverse route through it.
  void peer_gone(const NodePublic& peer, RegionId region);
  std::optional<RegionId> reverse_route(const NodePublic& peer) const;

  // Runs due redials and idle closes; returns when it next wants to be called.
  std::optional<TimePoint> tick(TimePoint now);

  bool connected(RegionId region) const;
  bool wanted(RegionId region) const { return regions_.count(region) != 0; }
  std::size_t queued(RegionId region) const;
  // The delay before redial number `failures` (>= 1), jitter applied.
  Duration backoff(int failures);

 private:
  enum class Phase { kDialling, kConnected, kWaiting };
  struct Region {
    Phase phase = Phase::kDialling;
    int failures = 0;
    TimePoint retry_at{};
    TimePoint last_used{};
    std::deque<QueuedPacket> queue;
  };
  Region& want(RegionId id, TimePoint now);
  void enqueue(Region& r, QueuedPacket p);

  RegionPolicy policy_;
  RegionActions actions_;
  std::function<double()> jitter_;
  RegionId home_ = 0;
  std::map<RegionId, Region> regions_;
  std::map<NodePublic, RegionId> reverse_;
  Counter& queue_drops_;
  Counter& no_region_drops_;
  Counter& dials_;
  Counter& idle_closes_;
};

}  // namespace tw::derp
