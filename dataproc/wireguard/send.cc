// The send side: TUN packet -> AllowedIPs -> peer session -> transport datagram;
// staging while there is no session; handshake initiations (rate limited).

#include "dataproc/wireguard/device.h"
#include "dataproc/wireguard/ip_packet.h"

namespace tw::wg {

void WireGuardDevice::on_tun_packet(ByteView packet, TimePoint now, EngineOutput& out) {
  std::optional<PeerId> id;
  if (auto dst = ip_destination(packet)) {
    id = dst->v4 ? allowed_ips_.lookup_v4(dst->bytes) : allowed_ips_.lookup_v6(dst->bytes);
  }
  Peer* peer = id ? peer_by_id(*id) : nullptr;
  if (peer == nullptr) {
    ++counters_.no_route;
    return;
  }
  if (peer->staged.empty() && encrypt_to(*peer, packet, now, out)) {
    keep_key_fresh_on_send(*peer, now, out);
    return;
  }
  stage(*peer, packet);
  send_staged(*peer, now, out);
}

void WireGuardDevice::stage(Peer& peer, ByteView packet) {
  if (peer.staged.size() >= kMaxStagedPackets) {
    peer.staged.pop_front();
    ++counters_.staged_dropped;
  }
  peer.staged.emplace_back(packet.begin(), packet.end());
}

bool WireGuardDevice::encrypt_to(Peer& peer, ByteView packet, TimePoint now, EngineOutput& out) {
  Keypair* kp = peer.keypairs.current.get();
  if (kp == nullptr || !kp->can_send(now)) return false;
  const std::uint64_t counter = kp->send_counter++;

  std::size_t padded = (packet.size() + kPaddingMultiple - 1) & ~(kPaddingMultiple - 1);
  if (padded > options_.mtu) padded = std::max(options_.mtu, packet.size());
  std::uint8_t* p = out.to_network.append(peer.id, kTransportOverhead + padded);
  write_header(p, MessageType::kTransport);
  store_le32(p + transport::kReceiver, kp->remote_index);
  store_le64(p + transport::kCounter, counter);
  // Sealed straight from the TUN packet into the datagram, padding included.
  aead_seal_padded(p + transport::kPayload, kp->send_key, counter, packet, padded - packet.size());

  if (packet.empty()) {
    ++peer.counters.keepalives_sent;
  } else {
    ++peer.counters.tx_packets;
    peer.counters.tx_bytes += packet.size();
  }
  timers_any_authenticated_packet_traversal(peer, now);
  timers_any_authenticated_packet_sent(peer);
  if (!packet.empty()) timers_data_sent(peer, now);
  return true;
}

void WireGuardDevice::send_staged(Peer& peer, TimePoint now, EngineOutput& out) {
  while (!peer.staged.empty()) {
    if (!encrypt_to(peer, peer.staged.front(), now, out)) {
      send_initiation(peer, now, false, out);
      return;
    }
    peer.staged.pop_front();
  }
  keep_key_fresh_on_send(peer, now, out);
}

void WireGuardDevice::send_keepalive(Peer& peer, TimePoint now, EngineOutput& out) {
  if (peer.staged.empty()) {
    if (!encrypt_to(peer, {}, now, out)) return;  // no session: nothing to keep alive
    keep_key_fresh_on_send(peer, now, out);
    return;
  }
  send_staged(peer, now, out);
}

// The initiator of a session rekeys once it is REKEY_AFTER_TIME old; either side
// rekeys after REKEY_AFTER_MESSAGES.
void WireGuardDevice::keep_key_fresh_on_send(Peer& peer, TimePoint now, EngineOutput& out) {
  const Keypair* kp = peer.keypairs.current.get();
  if (kp == nullptr || !kp->can_send(now)) return;
  if (kp->send_counter > kRekeyAfterMessages ||
      (kp->initiator && now - kp->birth >= kRekeyAfterTime)) {
    send_initiation(peer, now, false, out);
  }
}

void WireGuardDevice::send_initiation(Peer& peer, TimePoint now, bool is_retry,
                                      EngineOutput& out) {
  if (!is_retry) peer.timers.handshake_attempts = 0;
  // At most one initiation per REKEY_TIMEOUT, retries included.
  if (peer.timers.last_sent_handshake && now - *peer.timers.last_sent_handshake < kRekeyTimeout)
    return;
  if (!identity_ || !peer.handshake.static_static_ok) return;
  peer.timers.last_sent_handshake = now;

  if (peer.handshake.state == HandshakeState::kCreatedInitiation)
    drop_index(peer.handshake.local_index);
  const std::uint32_t index = new_index(&peer);
  std::uint8_t* p = out.to_network.append(peer.id, kInitiationSize);
  if (!create_initiation(peer.handshake, *identity_, index,
                         tai64n_from(options_.wall_clock()), p)) {
    out.to_network.drop_last();
    drop_index(index);
    return;
  }
  peer.cookie.add_macs({p, kInitiationSize}, now);
  ++counters_.handshake_initiations_sent;
  timers_any_authenticated_packet_traversal(peer, now);
  timers_any_authenticated_packet_sent(peer);
  timers_handshake_initiated(peer, now);
}

}  // namespace tw::wg
