// All peers of one socket, keyed by node key with stable small ids: reconciled from
// each netmap generation, the binding verifier, source attribution (exact ip:port →
// peer) and the pinger tick over only the peers that have work
// (docs/direct-underlay.md).
#pragma once

#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/keys.h"
#include "netproc/magicsock/peer_paths.h"
#include "netproc/magicsock/ping_schedule.h"

namespace tw::magicsock {

struct NetmapPeer {
  NodePublic node;
  DiscoPublic disco;  // zero: the peer cannot do disco and stays on DERP
  std::vector<IpPort> endpoints;
  std::optional<std::uint16_t> derp_region;
};

struct ReconcileStats {
  std::size_t added = 0;
  std::size_t removed = 0;
  std::size_t changed = 0;
  std::size_t unchanged = 0;
};

struct PeerPing {
  PeerId peer = 0;
  PlannedPing ping;
};

struct PongResult {
  PeerId peer = 0;
  PongOutcome outcome;
};

class PeerTable {
 public:
  PeerTable(CandidatePolicy policy, MagicsockMetrics& metrics, RandomSource& rng);
  PeerTable(const PeerTable&) = delete;
  PeerTable& operator=(const PeerTable&) = delete;

  // Reconcile: add new peers, update changed endpoints (prune revoked netmap ones,
  // keep learned ones), drop departed peers. Unchanged peers cost one lookup.
  ReconcileStats apply_netmap(std::span<const NetmapPeer> peers, TimePoint now);
  bool has_netmap() const { return has_netmap_; }
  std::size_t size() const { return by_node_.size(); }

  std::optional<PeerId> by_node(const NodePublic& k) const;
  std::optional<PeerId> member(const DiscoPublic& k) const;  // fail closed: no netmap
  std::optional<PeerId> attribute(const IpPort& src) const;
  std::size_t attribution_size() const { return attr_.size(); }
  // Ids are stable while the node stays in the netmap; a departed peer's id may be
  // reused by a later one. These accessors take an id that was handed out.
  const NetmapPeer& info(PeerId id) const { return slots_[id].nm; }
  const PeerPaths& paths(PeerId id) const { return slots_[id].paths; }
  bool has_derp_region(PeerId id) const { return slots_[id].nm.derp_region.has_value(); }

  // Binding verifier. Ping: the claimed node key must be the netmap binding of the
  // sender's disco key. Call-me-maybe: the DERP source must own the disco key.
  std::optional<PeerId> verify_ping(const DiscoPublic& sender,
                                    const std::optional<NodePublic>& claimed) const;
  std::optional<PeerId> verify_call_me_maybe(const DiscoPublic& sender,
                                             const NodePublic& derp_src) const;

  // Disco events. A nullopt result means: drop, send nothing back.
  std::optional<PeerId> on_ping_udp(const DiscoPublic& sender,
                                    const std::optional<NodePublic>& claimed, const IpPort& src,
                                    TimePoint now);
  // After on_ping_udp accepted a ping: ping its source back at once (PeerPaths::ping_back).
  void ping_back(PeerId id, const IpPort& src, TimePoint now, std::vector<PeerPing>& out);
  std::optional<PeerId> on_ping_derp(const DiscoPublic& sender,
                                     const std::optional<NodePublic>& claimed,
                                     const NodePublic& derp_src);
  // A result means the pong was solicited and came from a member, so its `src` may
  // go to ReflexiveSet::note_pong_src.
  std::optional<PongResult> on_pong(const DiscoPublic& sender, const TxId& txid, TimePoint now);
  // Call-me-maybe is accepted only over DERP; there is no UDP variant on purpose.
  std::optional<PeerId> on_call_me_maybe(const DiscoPublic& sender, const NodePublic& derp_src,
                                         std::span<const IpPort> eps, TimePoint now,
                                         std::vector<PeerPing>& out);
  // After on_call_me_maybe accepted one: whether to answer with ours now
  // (PeerPaths::want_call_me_maybe_answer).
  bool answer_call_me_maybe(PeerId id, TimePoint now, bool have_endpoints);
  // The relay told us `node` is not connected to it (PeerGone "not here").
  void on_relay_not_here(const NodePublic& node, TimePoint now);

  // Per outbound datagram. Runs on-demand discovery (pings into `out`) and decides
  // on a call-me-maybe when the send found no trusted path.
  struct SendPlan {
    RouteDecision route;
    bool send_call_me_maybe = false;
  };
  SendPlan route(PeerId id, TimePoint now, bool derp_available, bool have_endpoints,
                 std::vector<PeerPing>& out);

  void pinger_tick(TimePoint now, std::vector<PeerPing>& out);
  // Peers that should get a call-me-maybe now (active, untrusted, 5 s apart); the
  // caller sends each over the peer's DERP region and skips peers without one.
  void call_me_maybe_tick(TimePoint now, bool have_endpoints, std::vector<PeerId>& out);
  std::optional<PeerPing> operator_ping(PeerId id, TimePoint now);
  void rebind(TimePoint now);
  PeerPathStatus status(PeerId id, TimePoint now, bool derp_available) const;
  std::size_t scheduled_peers() const { return schedule_.pending(); }
  // Every attribution points to a live peer holding that candidate, indexes agree,
  // and every peer's paths are consistent; for tests and fuzzing.
  bool consistent() const;

 private:
  struct Slot {
    explicit Slot(const PathsContext* ctx) : paths(ctx) {}
    NetmapPeer nm;
    PeerPaths paths;
    std::uint64_t seen_gen = 0;
    bool live = false;
    bool in_active_list = false;
  };

  PeerId allocate(TimePoint now);
  void add_peer(const NetmapPeer& np, TimePoint now);
  void update_peer(PeerId id, const NetmapPeer& np, TimePoint now, ReconcileStats& st);
  void remove_peer(PeerId id);
  void apply(PeerId id, const CandidateDelta& d);
  void forget_attribution(PeerId id);
  void touch(PeerId id, TimePoint now);
  void mark_active(PeerId id);

  PathsContext ctx_;
  RandomSource& rng_;
  std::vector<Slot> slots_;
  std::vector<PeerId> free_;
  std::unordered_map<NodePublic, PeerId, KeyHash> by_node_;
  std::unordered_map<DiscoPublic, PeerId, KeyHash> by_disco_;
  std::unordered_map<IpPort, PeerId> attr_;
  PingSchedule schedule_;
  std::vector<PeerId> active_;  // peers with recent outbound traffic or operator pings
  std::vector<PeerId> due_scratch_;
  std::vector<PlannedPing> ping_scratch_;
  std::uint64_t gen_ = 0;
  bool has_netmap_ = false;
};

}  // namespace tw::magicsock
