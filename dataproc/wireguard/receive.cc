// The receive side: datagram -> message type -> handshake processing or transport
// decryption, replay check, session confirmation, AllowedIPs source check -> TUN.
#include <sodium.h>

#include "dataproc/wireguard/device.h"
#include "dataproc/wireguard/ip_packet.h"

namespace tw::wg {

void WireGuardDevice::on_datagram(PeerId hint, ByteView d, TimePoint now, EngineOutput& out,
                                  ByteView source) {
  if (!identity_) return;
  std::uint8_t hint_bytes[4];
  if (source.empty()) {
    store_le32(hint_bytes, hint);
    source = {hint_bytes, 4};
  }
  auto type = classify_message(d);
  if (!type) {
    ++counters_.invalid_messages;
    return;
  }
  switch (*type) {
    case MessageType::kInitiation:
      handle_initiation(hint, d, source, now, out);
      break;
    case MessageType::kResponse:
      handle_response(hint, d, source, now, out);
      break;
    case MessageType::kCookieReply:
      handle_cookie_reply(d, now);
      break;
    case MessageType::kTransport:
      handle_transport(hint, d, now, out);
      break;
  }
}

bool WireGuardDevice::under_load(TimePoint now) {
  if (now - load_window_start_ >= std::chrono::seconds(1)) {
    load_window_start_ = now;
    load_window_count_ = 0;
  }
  ++load_window_count_;
  if (load_window_count_ > options_.under_load_handshakes_per_second) {
    under_load_until_ = now + std::chrono::seconds(1);  // stays on a while, as the kernel does
  }
  return under_load_until_ && now < *under_load_until_;
}

// mac1 always; under load also mac2, else answer with a cookie reply.
bool WireGuardDevice::pass_load_check(ByteView msg, PeerId hint, ByteView source,
                                      std::uint32_t sender_index, TimePoint now,
                                      EngineOutput& out) {
  if (!cookie_checker_.mac1_valid(msg)) {
    ++counters_.invalid_mac1;
    return false;
  }
  if (!under_load(now) || cookie_checker_.mac2_valid(msg, source, now)) return true;
  std::uint8_t* p = out.to_network.append(hint, kCookieReplySize);
  cookie_checker_.make_reply(msg, sender_index, source, now, p);
  ++counters_.cookie_replies_sent;
  return false;
}

void WireGuardDevice::handle_initiation(PeerId hint, ByteView msg, ByteView source,
                                        TimePoint now, EngineOutput& out) {
  const std::uint32_t sender = load_le32(msg.data() + initiation::kSender);
  if (!pass_load_check(msg, hint, source, sender, now, out)) return;
  Peer* peer = nullptr;
  auto ci = consume_initiation(*identity_, msg, [&](const KeyBytes& k) -> const KeyBytes* {
    auto it = by_key_.find(k);
    if (it == by_key_.end() || !it->second->handshake.static_static_ok) return nullptr;
    peer = it->second;
    return &peer->handshake.static_static;
  });
  if (!ci || peer == nullptr) {
    ++counters_.handshakes_failed;
    return;
  }
  Handshake& hs = peer->handshake;
  if (hs.has_consumed_initiation && !tai64n_after(ci->timestamp, hs.latest_timestamp)) {
    ++counters_.replayed_initiations;
    return;
  }
  if (hs.has_consumed_initiation && now - hs.last_initiation_consumption < kInitiationMinInterval) {
    ++counters_.flooded_initiations;
    return;
  }
  if (hs.state == HandshakeState::kCreatedInitiation) drop_index(hs.local_index);
  accept_initiation(hs, *ci, now);
  ++counters_.handshake_initiations_received;
  if (hint != peer->id) out.attributions.push_back({hint, peer->id});
  timers_any_authenticated_packet_received(*peer);
  timers_any_authenticated_packet_traversal(*peer, now);

  const std::uint32_t index = new_index(peer);
  std::uint8_t* p = out.to_network.append(peer->id, kResponseSize);
  if (!create_response(hs, index, p)) {
    out.to_network.drop_last();
    drop_index(index);
    ++counters_.handshakes_failed;
    return;
  }
  peer->cookie.add_macs({p, kResponseSize}, now);
  ++counters_.handshake_responses_sent;
  install_keypair(*peer, derive_keypair(hs, now));
  timers_session_derived(*peer, now);
  timers_any_authenticated_packet_traversal(*peer, now);
  timers_any_authenticated_packet_sent(*peer);
}

void WireGuardDevice::handle_response(PeerId hint, ByteView msg, ByteView source, TimePoint now,
                                      EngineOutput& out) {
  const std::uint32_t sender = load_le32(msg.data() + response::kSender);
  if (!pass_load_check(msg, hint, source, sender, now, out)) return;
  const std::uint32_t receiver = load_le32(msg.data() + response::kReceiver);
  auto it = indices_.find(receiver);
  Peer* peer = it == indices_.end() ? nullptr : it->second;
  if (peer == nullptr || peer->handshake.state != HandshakeState::kCreatedInitiation ||
      peer->handshake.local_index != receiver) {
    ++counters_.unknown_index;
    return;
  }
  if (!consume_response(peer->handshake, *identity_, msg)) {
    ++counters_.handshakes_failed;
    return;
  }
  ++counters_.handshake_responses_received;
  if (hint != peer->id) out.attributions.push_back({hint, peer->id});
  install_keypair(*peer, derive_keypair(peer->handshake, now));
  timers_session_derived(*peer, now);
  timers_handshake_complete(*peer, now);
  timers_any_authenticated_packet_received(*peer);
  timers_any_authenticated_packet_traversal(*peer, now);
  // Confirms the session to the responder: staged data, or an empty keepalive.
  send_keepalive(*peer, now, out);
}

void WireGuardDevice::handle_cookie_reply(ByteView msg, TimePoint now) {
  auto it = indices_.find(load_le32(msg.data() + cookie_reply::kReceiver));
  if (it == indices_.end() || !it->second->cookie.consume_reply(msg, now)) {
    ++counters_.invalid_messages;
    return;
  }
  ++counters_.cookie_replies_received;
}

// Session rotation (the kernel's add_new_keypair): an initiator's new session is
// usable at once; a responder's waits in `next` for confirmation.
void WireGuardDevice::install_keypair(Peer& peer, std::unique_ptr<Keypair> kp) {
  if (!kp) return;
  Keypairs& k = peer.keypairs;
  if (kp->initiator) {
    if (k.next) {
      drop_keypair(k.previous);
      k.previous = std::move(k.next);
      drop_keypair(k.current);
    } else {
      drop_keypair(k.previous);
      k.previous = std::move(k.current);
    }
    k.current = std::move(kp);
  } else {
    drop_keypair(k.next);
    k.next = std::move(kp);
    drop_keypair(k.previous);
  }
}

}  // namespace tw::wg
