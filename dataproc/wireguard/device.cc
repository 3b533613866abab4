// Device configuration: our key, the peer set from the netmap, and the index table
// that maps our sender indices to peers.
#include "dataproc/wireguard/device.h"

#include <sodium.h>

#include <array>
#include <set>

#include "dataproc/wireguard/clientinfo_seal.h"

namespace tw::wg {

WireGuardDevice::WireGuardDevice(DeviceOptions options) : options_(std::move(options)) {
  wg_crypto_init();
  std::array<std::uint32_t, 8> seed{};
  randombytes_buf(seed.data(), sizeof seed);
  std::seed_seq seq(seed.begin(), seed.end());
  jitter_rng_.seed(seq);
}

WireGuardDevice::~WireGuardDevice() = default;

void WireGuardDevice::set_private_key(const NodePrivate& key) {
  identity_ = std::make_unique<LocalIdentity>(key.bytes());
  cookie_checker_.init(identity_->public_key);
  for (auto& [id, peer] : peers_) {
    drop_sessions(*peer);
    init_peer_crypto(*peer);
  }
}

NodePublic WireGuardDevice::public_key() const {
  return identity_ ? NodePublic(identity_->public_key) : NodePublic();
}

void WireGuardDevice::init_peer_crypto(Peer& peer) {
  peer.cookie.init(peer.key.bytes());
  if (identity_) {
    // A peer key that makes a low-order shared secret never gets a session.
    (void)peer.handshake.init(*identity_, peer.key.bytes());
  }
}

Peer* WireGuardDevice::peer_by_id(PeerId id) const {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second.get();
}

std::uint32_t WireGuardDevice::new_index(Peer* peer) {
  for (;;) {
    std::uint32_t idx = randombytes_random();
    if (idx == 0 || indices_.count(idx)) continue;
    indices_.emplace(idx, peer);
    return idx;
  }
}

void WireGuardDevice::drop_index(std::uint32_t index) {
  if (index != 0) indices_.erase(index);
}

void WireGuardDevice::drop_keypair(std::unique_ptr<Keypair>& slot) {
  if (!slot) return;
  drop_index(slot->local_index);
  slot.reset();
}

void WireGuardDevice::drop_sessions(Peer& peer) {
  drop_keypair(peer.keypairs.current);
  drop_keypair(peer.keypairs.previous);
  drop_keypair(peer.keypairs.next);
  if (peer.handshake.state == HandshakeState::kCreatedInitiation)
    drop_index(peer.handshake.local_index);
  peer.handshake.clear_ephemeral();
}

void WireGuardDevice::remove_peer(Peer& peer) {
  drop_sessions(peer);
  by_key_.erase(peer.key.bytes());
  allowed_ips_.remove_peer(peer.id);
  peers_.erase(peer.id);  // destroys `peer`
}

void WireGuardDevice::set_peers(const std::vector<PeerConfig>& configs) {
  std::set<KeyBytes> wanted;
  for (const auto& c : configs) wanted.insert(c.key.bytes());
  // Drop peers that left the netmap.
  std::vector<Peer*> gone;
  for (auto& [id, p] : peers_)
    if (!wanted.count(p->key.bytes())) gone.push_back(p.get());
  for (Peer* p : gone) remove_peer(*p);

  // Keep existing peers (sessions survive), re-keyed under their new ids.
  std::unordered_map<PeerId, std::unique_ptr<Peer>> next;
  std::set<KeyBytes> taken;
  for (const auto& c : configs) {
    // A duplicate id, a duplicate key or a zero key: the first entry wins.
    if (next.count(c.id) || c.key.is_zero() || !taken.insert(c.key.bytes()).second) continue;
    auto found = by_key_.find(c.key.bytes());
    if (found != by_key_.end()) {
      auto node = peers_.extract(found->second->id);
      node.mapped()->id = c.id;
      node.mapped()->persistent_keepalive = c.persistent_keepalive;
      next[c.id] = std::move(node.mapped());
    } else {
      auto peer = std::make_unique<Peer>();
      peer->id = c.id;
      peer->key = c.key;
      peer->persistent_keepalive = c.persistent_keepalive;
      init_peer_crypto(*peer);
      by_key_[c.key.bytes()] = peer.get();
      next[c.id] = std::move(peer);
    }
  }
  peers_ = std::move(next);

  allowed_ips_.clear();
  for (const auto& c : configs) {
    auto it = peers_.find(c.id);
    if (it == peers_.end() || it->second->key != c.key) continue;
    for (const auto& prefix : c.allowed_ips) allowed_ips_.insert(prefix, c.id);
  }
}

Result<Bytes> WireGuardDevice::seal_derp_client_info(const NodePublic& server,
                                                      ByteView json) const {
  if (!identity_) return make_error("ClientInfo: no node private key yet");
  return wg::seal_derp_client_info(identity_->private_key, server, json);
}

const PeerCounters* WireGuardDevice::peer_counters(PeerId id) const {
  const Peer* p = peer_by_id(id);
  return p ? &p->counters : nullptr;
}

bool WireGuardDevice::has_session(PeerId id, TimePoint now) const {
  const Peer* p = peer_by_id(id);
  return p && p->keypairs.current && p->keypairs.current->can_send(now);
}

}  // namespace tw::wg
