// One WireGuard peer: its handshake, sessions, cookie state, timers, staged packets
// and counters. Plain state; the device's send/receive/timers code acts on it.
#pragma once

#include <deque>
#include <optional>

#include "common/keys.h"
#include "dataproc/wireguard/allowedips.h"
#include "dataproc/wireguard/cookie.h"
#include "dataproc/wireguard/keypair.h"
#include "dataproc/wireguard/noise.h"

namespace tw::wg {

struct PeerTimers {
  std::optional<TimePoint> retransmit_handshake;
  std::optional<TimePoint> send_keepalive;
  std::optional<TimePoint> new_handshake;
  std::optional<TimePoint> zero_key_material;
  std::optional<TimePoint> persistent_keepalive;
  int handshake_attempts = 0;
  bool need_another_keepalive = false;
  bool sent_lastminute_handshake = false;
  std::optional<TimePoint> last_sent_handshake;
};

struct PeerCounters {
  std::uint64_t tx_packets = 0;
  std::uint64_t tx_bytes = 0;  // inner IP bytes
  std::uint64_t rx_packets = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t keepalives_sent = 0;
  std::uint64_t keepalives_received = 0;
  std::uint64_t handshakes_completed = 0;
  std::optional<std::chrono::system_clock::time_point> last_handshake;  // wall clock
};

struct Peer {
  PeerId id = 0;
  NodePublic key;
  Handshake handshake;
  CookieMaker cookie;
  Keypairs keypairs;
  PeerTimers timers;
  std::deque<Bytes> staged;  // packets waiting for a session
  PeerCounters counters;
  Duration persistent_keepalive{0};  // 0: off
};

}  // namespace tw::wg
