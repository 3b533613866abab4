// Transport data: decrypt straight into the TUN batch, check the counter against the
// replay window (after authentication, so forgeries cannot move it), confirm a
// pending session, and let only packets from the peer's AllowedIPs through.
#include "dataproc/wireguard/device.h"
#include "dataproc/wireguard/ip_packet.h"

namespace tw::wg {

void WireGuardDevice::handle_transport(PeerId hint, ByteView msg, TimePoint now,
                                       EngineOutput& out) {
  auto it = indices_.find(load_le32(msg.data() + transport::kReceiver));
  Peer* peer = it == indices_.end() ? nullptr : it->second;
  Keypair* kp = peer ? peer->keypairs.find(it->first) : nullptr;
  if (kp == nullptr) {
    ++counters_.unknown_index;
    initiate_on_unknown_index(hint, now, out);
    return;
  }
  if (!kp->can_receive(now)) {
    ++counters_.expired_sessions;
    return;
  }
  const std::uint64_t counter = load_le64(msg.data() + transport::kCounter);
  ByteView cipher = msg.subspan(transport::kPayload);
  const std::size_t plain_len = cipher.size() - kAeadTagLen;
  std::uint8_t* plain = out.to_tun.append(peer->id, plain_len);
  if (!aead_open(plain, kp->recv_key, counter, cipher, {})) {
    out.to_tun.drop_last();
    ++counters_.decryption_failures;
    return;
  }
  if (!kp->replay.accept(counter, kRejectAfterMessages)) {
    out.to_tun.drop_last();
    ++counters_.replays;
    return;
  }
  if (hint != peer->id) out.attributions.push_back({hint, peer->id});
  // The first packet on a responder's pending session confirms it: rotate it in.
  const bool confirmed_next = kp == peer->keypairs.next.get();
  if (confirmed_next) {
    Keypairs& k = peer->keypairs;
    drop_keypair(k.previous);
    k.previous = std::move(k.current);
    k.current = std::move(k.next);
    timers_handshake_complete(*peer, now);
  }
  timers_any_authenticated_packet_received(*peer);
  timers_any_authenticated_packet_traversal(*peer, now);

  if (plain_len == 0) {
    out.to_tun.drop_last();
    ++peer->counters.keepalives_received;
  } else if (deliver_inner(*peer, plain_len, out)) {
    timers_data_received(*peer, now);
  }
  // Output may have been appended above, so `plain` is not used past this point.
  if (confirmed_next) send_staged(*peer, now, out);
  keep_key_fresh_on_receive(*peer, now, out);
}

// After dataproc restarts, the peer keeps sending on a session we no longer hold and
// would notice only after KEEPALIVE + REKEY_TIMEOUT (15 s) of silence. A transport
// packet that netproc attributed to a peer we hold no session with, and are not
// already handshaking with, starts a handshake now. Forged packets gain an attacker
// nothing: send_initiation still sends at most one initiation per REKEY_TIMEOUT.
void WireGuardDevice::initiate_on_unknown_index(PeerId hint, TimePoint now, EngineOutput& out) {
  Peer* peer = peer_by_id(hint);
  if (peer == nullptr || peer->keypairs.current || peer->keypairs.next ||
      peer->handshake.state == HandshakeState::kCreatedInitiation) {
    return;
  }
  ++counters_.unknown_index_initiations;
  send_initiation(*peer, now, false, out);
}

// Trims the decrypted packet (the newest in to_tun) to its IP length and keeps it
// only if its source belongs to the peer.
bool WireGuardDevice::deliver_inner(Peer& peer, std::size_t plain_len, EngineOutput& out) {
  ByteView plain = out.to_tun.bytes(out.to_tun.size() - 1);
  auto hdr = ip_source_and_length(plain.first(plain_len));
  if (!hdr) {
    out.to_tun.drop_last();
    ++counters_.invalid_inner_packets;
    return false;
  }
  auto owner = hdr->source.v4 ? allowed_ips_.lookup_v4(hdr->source.bytes)
                              : allowed_ips_.lookup_v6(hdr->source.bytes);
  if (!owner || *owner != peer.id) {
    out.to_tun.drop_last();
    ++counters_.allowedips_drops;
    return false;
  }
  out.to_tun.shrink_last(hdr->length);
  ++peer.counters.rx_packets;
  peer.counters.rx_bytes += hdr->length;
  return true;
}

// An initiator whose session nears REJECT_AFTER_TIME rekeys once on receive, so a
// peer that only listens still gets a fresh session before the old one dies.
void WireGuardDevice::keep_key_fresh_on_receive(Peer& peer, TimePoint now, EngineOutput& out) {
  const Keypair* kp = peer.keypairs.current.get();
  if (kp == nullptr || !kp->initiator || !kp->can_send(now) ||
      peer.timers.sent_lastminute_handshake) {
    return;
  }
  if (now - kp->birth >= kRejectAfterTime - kKeepaliveTimeout - kRekeyTimeout) {
    peer.timers.sent_lastminute_handshake = true;
    send_initiation(peer, now, false, out);
  }
}

}  // namespace tw::wg
