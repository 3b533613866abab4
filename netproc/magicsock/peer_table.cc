#include "netproc/magicsock/peer_table.h"

#include <algorithm>

#include "netproc/magicsock/constants.h"

namespace tw::magicsock {

PeerTable::PeerTable(CandidatePolicy policy, MagicsockMetrics& metrics, RandomSource& rng)
    : ctx_{policy, &metrics}, rng_(rng) {}

// --- netmap reconcile

PeerId PeerTable::allocate(TimePoint) {
  if (!free_.empty()) {
    PeerId id = free_.back();
    free_.pop_back();
    const bool listed = slots_[id].in_active_list;  // active_ may still hold this id
    slots_[id] = Slot(&ctx_);
    slots_[id].in_active_list = listed;
    return id;
  }
  slots_.emplace_back(&ctx_);
  return static_cast<PeerId>(slots_.size() - 1);
}

void PeerTable::add_peer(const NetmapPeer& np, TimePoint now) {
  const PeerId id = allocate(now);
  Slot& s = slots_[id];
  s.nm = np;
  s.live = true;
  s.seen_gen = gen_;
  by_node_.emplace(np.node, id);
  if (!np.disco.is_zero()) {
    by_disco_[np.disco] = id;
    apply(id, s.paths.set_netmap_endpoints(np.endpoints, now));
    touch(id, now);
  }
}

void PeerTable::update_peer(PeerId id, const NetmapPeer& np, TimePoint now, ReconcileStats& st) {
  Slot& s = slots_[id];
  s.seen_gen = gen_;
  s.nm.derp_region = np.derp_region;
  const bool disco_changed = s.nm.disco != np.disco;
  if (!disco_changed && s.nm.endpoints == np.endpoints) {
    ++st.unchanged;
    return;
  }
  ++st.changed;
  if (disco_changed) {
    // A new disco key is a restarted peer: nothing learned about the old one holds.
    forget_attribution(id);
    auto it = by_disco_.find(s.nm.disco);
    if (it != by_disco_.end() && it->second == id) by_disco_.erase(it);
    s.paths = PeerPaths(&ctx_);
    s.nm.disco = np.disco;
    if (!np.disco.is_zero()) by_disco_[np.disco] = id;
  }
  s.nm.endpoints = np.endpoints;
  if (!np.disco.is_zero()) apply(id, s.paths.set_netmap_endpoints(np.endpoints, now));
  touch(id, now);
}

void PeerTable::remove_peer(PeerId id) {
  Slot& s = slots_[id];
  forget_attribution(id);
  auto it = by_disco_.find(s.nm.disco);
  if (it != by_disco_.end() && it->second == id) by_disco_.erase(it);
  by_node_.erase(s.nm.node);
  schedule_.cancel(id);
  const bool listed = s.in_active_list;  // the next call-me-maybe tick drops it
  s = Slot(&ctx_);
  s.in_active_list = listed;
  free_.push_back(id);
}

ReconcileStats PeerTable::apply_netmap(std::span<const NetmapPeer> peers, TimePoint now) {
  ReconcileStats st;
  ++gen_;
  has_netmap_ = true;
  // Sized for the whole generation up front: no rehash or slot move mid-reconcile.
  by_node_.reserve(peers.size());
  by_disco_.reserve(peers.size());
  slots_.reserve(peers.size());
  std::size_t endpoints = 0;
  for (const auto& np : peers) endpoints += np.endpoints.size();
  attr_.reserve(endpoints);
  for (const auto& np : peers) {
    auto it = by_node_.find(np.node);
    if (it == by_node_.end()) {
      add_peer(np, now);
      ++st.added;
    } else if (slots_[it->second].seen_gen != gen_) {
      update_peer(it->second, np, now, st);
    }
  }
  for (PeerId id = 0; id < slots_.size(); ++id) {
    if (slots_[id].live && slots_[id].seen_gen != gen_) {
      remove_peer(id);
      ++st.removed;
    }
  }
  return st;
}

// --- lookups and attribution

std::optional<PeerId> PeerTable::by_node(const NodePublic& k) const {
  auto it = by_node_.find(k);
  if (it == by_node_.end()) return std::nullopt;
  return it->second;
}

std::optional<PeerId> PeerTable::member(const DiscoPublic& k) const {
  if (!has_netmap_ || k.is_zero()) return std::nullopt;
  auto it = by_disco_.find(k);
  if (it == by_disco_.end()) return std::nullopt;
  return it->second;
}

std::optional<PeerId> PeerTable::attribute(const IpPort& src) const {
  auto it = attr_.find(src);
  if (it == attr_.end()) return std::nullopt;
  return it->second;
}

void PeerTable::apply(PeerId id, const CandidateDelta& d) {
  for (const auto& a : d.removed) {
    auto it = attr_.find(a);
    if (it != attr_.end() && it->second == id) attr_.erase(it);
  }
  for (const auto& a : d.added) {
    if (d.authoritative) {
      attr_[a] = id;  // the netmap may take an address from another peer
    } else {
      attr_.emplace(a, id);  // learned: first writer wins
    }
  }
}

void PeerTable::forget_attribution(PeerId id) {
  for (const auto& c : slots_[id].paths.candidates()) {
    auto it = attr_.find(c.addr);
    if (it != attr_.end() && it->second == id) attr_.erase(it);
  }
}

void PeerTable::touch(PeerId id, TimePoint now) {
  auto due = slots_[id].paths.next_due(now);
  if (due) {
    schedule_.schedule(id, *due);
  } else {
    schedule_.cancel(id);
  }
}

// --- binding verifier

std::optional<PeerId> PeerTable::verify_ping(const DiscoPublic& sender,
                                             const std::optional<NodePublic>& claimed) const {
  if (!claimed) return std::nullopt;  // a key-less (pre-1.16) ping cannot be bound
  auto id = member(sender);
  if (!id || slots_[*id].nm.node != *claimed) return std::nullopt;
  return id;
}

std::optional<PeerId> PeerTable::verify_call_me_maybe(const DiscoPublic& sender,
                                                      const NodePublic& derp_src) const {
  auto id = member(sender);
  if (!id || derp_src.is_zero() || slots_[*id].nm.node != derp_src) return std::nullopt;
  return id;
}

// --- disco events

std::optional<PeerId> PeerTable::on_ping_udp(const DiscoPublic& sender,
                                             const std::optional<NodePublic>& claimed,
                                             const IpPort& src, TimePoint now) {
  auto id = verify_ping(sender, claimed);
  if (!id) {
    ctx_.metrics->ping_recv_rejected.inc();
    return std::nullopt;
  }
  ctx_.metrics->ping_recv.inc();
  apply(*id, slots_[*id].paths.learn_from_ping(src, now));
  touch(*id, now);
  return id;
}

void PeerTable::ping_back(PeerId id, const IpPort& src, TimePoint now,
                          std::vector<PeerPing>& out) {
  ping_scratch_.clear();
  if (!slots_[id].paths.ping_back(src, now, rng_, ping_scratch_)) return;
  for (const auto& ping : ping_scratch_) out.push_back(PeerPing{id, ping});
  touch(id, now);
}

std::optional<PeerId> PeerTable::on_ping_derp(const DiscoPublic& sender,
                                              const std::optional<NodePublic>& claimed,
                                              const NodePublic& derp_src) {
  auto id = verify_ping(sender, claimed);
  if (!id || slots_[*id].nm.node != derp_src) {
    ctx_.metrics->ping_recv_rejected.inc();
    return std::nullopt;
  }
  ctx_.metrics->ping_recv.inc();  // answered over DERP; no UDP source to learn
  return id;
}

std::optional<PongResult> PeerTable::on_pong(const DiscoPublic& sender, const TxId& txid,
                                             TimePoint now) {
  auto id = member(sender);
  if (!id) {
    ctx_.metrics->pong_recv_unsolicited.inc();  // we never ping non-members
    return std::nullopt;
  }
  ctx_.metrics->pong_recv.inc();
  auto out = slots_[*id].paths.note_pong(txid, now);
  if (!out) return std::nullopt;
  touch(*id, now);
  return PongResult{*id, *out};
}

std::optional<PeerId> PeerTable::on_call_me_maybe(const DiscoPublic& sender,
                                                  const NodePublic& derp_src,
                                                  std::span<const IpPort> eps, TimePoint now,
                                                  std::vector<PeerPing>& out) {
  auto id = verify_call_me_maybe(sender, derp_src);
  if (!id) {
    ctx_.metrics->cmm_recv_rejected.inc();
    return std::nullopt;
  }
  ctx_.metrics->cmm_recv.inc();
  PeerPaths& p = slots_[*id].paths;
  apply(*id, p.learn_from_call_me_maybe(eps, now));
  ping_scratch_.clear();
  p.force_sweep(now, rng_, ping_scratch_);
  for (const auto& ping : ping_scratch_) out.push_back(PeerPing{*id, ping});
  touch(*id, now);
  return id;
}

bool PeerTable::answer_call_me_maybe(PeerId id, TimePoint now, bool have_endpoints) {
  if (id >= slots_.size() || !slots_[id].live) return false;
  return slots_[id].paths.want_call_me_maybe_answer(now, have_endpoints);
}

void PeerTable::on_relay_not_here(const NodePublic& node, TimePoint now) {
  if (auto id = by_node(node)) slots_[*id].paths.note_call_me_maybe_not_here(now);
}

// --- sending and ticks

void PeerTable::mark_active(PeerId id) {
  if (slots_[id].in_active_list) return;
  slots_[id].in_active_list = true;
  active_.push_back(id);
}

PeerTable::SendPlan PeerTable::route(PeerId id, TimePoint now, bool derp_available,
                                     bool have_endpoints, std::vector<PeerPing>& out) {
  SendPlan plan;
  if (id >= slots_.size() || !slots_[id].live) {
    ctx_.metrics->route_drop_no_route.inc();  // a departed peer has no route at all
    return plan;
  }
  PeerPaths& p = slots_[id].paths;
  plan.route = p.route(now, derp_available);
  mark_active(id);
  if (plan.route.probe_best) {
    ping_scratch_.clear();
    p.probe_best(now, rng_, ping_scratch_);
    for (const auto& ping : ping_scratch_) out.push_back(PeerPing{id, ping});
    touch(id, now);
  }
  if (!plan.route.start_discovery) return plan;
  ping_scratch_.clear();
  p.plan_discovery(now, rng_, ping_scratch_);
  for (const auto& ping : ping_scratch_) out.push_back(PeerPing{id, ping});
  plan.send_call_me_maybe = derp_available && p.want_call_me_maybe(now, have_endpoints);
  touch(id, now);
  return plan;
}

void PeerTable::pinger_tick(TimePoint now, std::vector<PeerPing>& out) {
  due_scratch_.clear();
  schedule_.pop_due(now, due_scratch_);
  for (PeerId id : due_scratch_) {
    Slot& s = slots_[id];
    if (!s.live) continue;
    apply(id, s.paths.expire(now));
    ping_scratch_.clear();
    s.paths.plan_pings(now, rng_, ping_scratch_);
    for (const auto& ping : ping_scratch_) out.push_back(PeerPing{id, ping});
    touch(id, now);
  }
}

void PeerTable::call_me_maybe_tick(TimePoint now, bool have_endpoints, std::vector<PeerId>& out) {
  std::erase_if(active_, [&](PeerId id) {
    Slot& s = slots_[id];
    if (!s.live || !s.paths.active(now)) {
      s.in_active_list = false;  // idle for 45 s: stop trying to reach it
      return true;
    }
    if (s.paths.want_call_me_maybe(now, have_endpoints)) out.push_back(id);
    return false;
  });
}

std::optional<PeerPing> PeerTable::operator_ping(PeerId id, TimePoint now) {
  if (id >= slots_.size() || !slots_[id].live) return std::nullopt;
  mark_active(id);
  auto ping = slots_[id].paths.plan_operator_ping(now, rng_);
  touch(id, now);
  if (!ping) return std::nullopt;
  return PeerPing{id, *ping};
}

void PeerTable::rebind(TimePoint now) {
  for (PeerId id = 0; id < slots_.size(); ++id) {
    if (!slots_[id].live) continue;
    slots_[id].paths.invalidate_best();
    touch(id, now);
  }
}

PeerPathStatus PeerTable::status(PeerId id, TimePoint now, bool derp_available) const {
  return slots_[id].paths.status(now, derp_available);
}

bool PeerTable::consistent() const {
  for (const auto& [addr, id] : attr_) {
    if (id >= slots_.size() || !slots_[id].live || !slots_[id].paths.find(addr)) return false;
  }
  for (const auto& [key, id] : by_node_) {
    if (id >= slots_.size() || !slots_[id].live || slots_[id].nm.node != key) return false;
  }
  for (const auto& [key, id] : by_disco_) {
    if (id >= slots_.size() || !slots_[id].live || slots_[id].nm.disco != key) return false;
  }
  std::size_t live = 0;
  for (const auto& s : slots_) {
    if (!s.live) continue;
    ++live;
    if (!s.paths.consistent()) return false;
  }
  return live == by_node_.size();
}

}  // namespace tw::magicsock
