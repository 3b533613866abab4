// Per-peer timers, after the Linux module's timers.c: events from the send and
// receive paths arm or cancel deadlines; on_timer runs whatever is due.
#include "dataproc/wireguard/device.h"

namespace tw::wg {

// Uniform in [0, REKEY_TIMEOUT_JITTER_MAX] milliseconds.
Duration WireGuardDevice::jitter() {
  std::uniform_int_distribution<std::int64_t> ms(0, kRekeyTimeoutJitterMax.count());
  return std::chrono::milliseconds(ms(jitter_rng_));
}

// Data went out: expect something back within KEEPALIVE + REKEY_TIMEOUT, else rekey.
void WireGuardDevice::timers_data_sent(Peer& peer, TimePoint now) {
  if (!peer.timers.new_handshake)
    peer.timers.new_handshake = now + kKeepaliveTimeout + kRekeyTimeout + jitter();
}

// Data came in: answer with a keepalive if we send nothing within KEEPALIVE_TIMEOUT.
void WireGuardDevice::timers_data_received(Peer& peer, TimePoint now) {
  if (!peer.timers.send_keepalive)
    peer.timers.send_keepalive = now + kKeepaliveTimeout;
  else
    peer.timers.need_another_keepalive = true;
}

void WireGuardDevice::timers_any_authenticated_packet_sent(Peer& peer) {
  peer.timers.send_keepalive.reset();
}

void WireGuardDevice::timers_any_authenticated_packet_received(Peer& peer) {
  peer.timers.new_handshake.reset();
}

void WireGuardDevice::timers_any_authenticated_packet_traversal(Peer& peer, TimePoint now) {
  if (peer.persistent_keepalive > Duration::zero())
    peer.timers.persistent_keepalive = now + peer.persistent_keepalive;
}

void WireGuardDevice::timers_handshake_initiated(Peer& peer, TimePoint now) {
  peer.timers.retransmit_handshake = now + kRekeyTimeout + jitter();
}

void WireGuardDevice::timers_handshake_complete(Peer& peer, TimePoint now) {
  (void)now;
  peer.timers.retransmit_handshake.reset();
  peer.timers.handshake_attempts = 0;
  peer.timers.sent_lastminute_handshake = false;
  peer.counters.last_handshake = options_.wall_clock();
  ++peer.counters.handshakes_completed;
}

void WireGuardDevice::timers_session_derived(Peer& peer, TimePoint now) {
  peer.timers.zero_key_material = now + 3 * kRejectAfterTime;
}

void WireGuardDevice::run_peer_timers(Peer& peer, TimePoint now, EngineOutput& out) {
  PeerTimers& t = peer.timers;
  auto due = [now](std::optional<TimePoint>& deadline) {
    if (!deadline || *deadline > now) return false;
    deadline.reset();
    return true;
  };
  if (due(t.retransmit_handshake)) {
    if (t.handshake_attempts > kMaxHandshakeAttempts) {
      // Gave up after REKEY_ATTEMPT_TIME: drop queued data, wipe keys later.
      ++counters_.handshake_timeouts;
      counters_.staged_dropped += peer.staged.size();
      peer.staged.clear();
      if (!t.zero_key_material) t.zero_key_material = now + 3 * kRejectAfterTime;
    } else {
      ++t.handshake_attempts;
      send_initiation(peer, now, true, out);
    }
  }
  if (due(t.send_keepalive)) {
    send_keepalive(peer, now, out);
    if (t.need_another_keepalive) {
      t.need_another_keepalive = false;
      t.send_keepalive = now + kKeepaliveTimeout;
    }
  }
  if (due(t.new_handshake)) send_initiation(peer, now, false, out);
  if (due(t.zero_key_material)) drop_sessions(peer);
  if (due(t.persistent_keepalive)) send_keepalive(peer, now, out);
}

void WireGuardDevice::on_timer(TimePoint now, EngineOutput& out) {
  for (auto& [id, peer] : peers_) run_peer_timers(*peer, now, out);
}

std::optional<TimePoint> WireGuardDevice::next_deadline() const {
  std::optional<TimePoint> best;
  auto consider = [&best](const std::optional<TimePoint>& t) {
    if (t && (!best || *t < *best)) best = t;
  };
  for (const auto& [id, peer] : peers_) {
    const PeerTimers& t = peer->timers;
    consider(t.retransmit_handshake);
    consider(t.send_keepalive);
    consider(t.new_handshake);
    consider(t.zero_key_material);
    consider(t.persistent_keepalive);
  }
  return best;
}

}  // namespace tw::wg
