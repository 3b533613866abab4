// The WireGuard engine of dataproc: pure logic, no sockets and no TUN. It consumes
// IP packets from the TUN and datagrams from netproc, and produces datagrams for
// netproc and IP packets for the TUN, each tagged with a peer id. Time comes in as
// `now` (steady clock); TAI64N timestamps use the injected wall clock.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

#include "common/ipaddr.h"
#include "common/keys.h"
#include "common/result.h"
#include "dataproc/wireguard/allowedips.h"
#include "dataproc/wireguard/cookie.h"
#include "dataproc/wireguard/noise.h"
#include "dataproc/wireguard/packet_batch.h"
#include "dataproc/wireguard/peer.h"

namespace tw::wg {

struct PeerConfig {
  PeerId id = 0;
  NodePublic key;
  std::vector<IpPrefix> allowed_ips;
  Duration persistent_keepalive{0};
};

struct DeviceOptions {
  // Wall clock for TAI64N timestamps (must move forward across restarts).
  std::function<std::chrono::system_clock::time_point()> wall_clock =
      [] { return std::chrono::system_clock::now(); };
  // TUN MTU: plaintext is padded to a multiple of 16 but not past this.
  std::size_t mtu = 1280;
  // More handshake messages than this within one second puts us "under load":
  // initiations and responses then need a valid mac2 (a cookie round trip).
  std::uint32_t under_load_handshakes_per_second = 256;
};

struct DeviceCounters {
  std::uint64_t handshake_initiations_sent = 0;
  std::uint64_t handshake_responses_sent = 0;
  std::uint64_t handshake_initiations_received = 0;  // accepted
  std::uint64_t handshake_responses_received = 0;    // accepted
  std::uint64_t handshakes_failed = 0;               // did not decrypt or verify
  std::uint64_t handshake_timeouts = 0;              // gave up after REKEY_ATTEMPT_TIME
  std::uint64_t replayed_initiations = 0;
  std::uint64_t flooded_initiations = 0;
  std::uint64_t invalid_mac1 = 0;
  std::uint64_t cookie_replies_sent = 0;
  std::uint64_t cookie_replies_received = 0;
  std::uint64_t invalid_messages = 0;  // not a WireGuard message or bad cookie reply
  std::uint64_t unknown_index = 0;
  std::uint64_t unknown_index_initiations = 0;  // we lost the session the peer still uses
  std::uint64_t decryption_failures = 0;
  std::uint64_t expired_sessions = 0;
  std::uint64_t replays = 0;
  std::uint64_t allowedips_drops = 0;  // inner source not the peer's
  std::uint64_t invalid_inner_packets = 0;
  std::uint64_t no_route = 0;  // TUN packet with no peer for its destination
  std::uint64_t staged_dropped = 0;
};

class WireGuardDevice {
 public:
  explicit WireGuardDevice(DeviceOptions options = {});
  ~WireGuardDevice();
  WireGuardDevice(const WireGuardDevice&) = delete;
  WireGuardDevice& operator=(const WireGuardDevice&) = delete;

  // Replaces our static key; every session and handshake in progress is dropped.
  void set_private_key(const NodePrivate& key);
  NodePublic public_key() const;
  // Applies a netmap generation: peers are matched by key, so sessions of peers
  // that stay survive (and follow a changed id); others are dropped.
  void set_peers(const std::vector<PeerConfig>& peers);

  // An IP packet read from the TUN.
  void on_tun_packet(ByteView packet, TimePoint now, EngineOutput& out);
  // A datagram netproc received; `peer_hint` is netproc's attribution of its source
  // and `source` optional endpoint bytes binding cookies (default: the hint).
  void on_datagram(PeerId peer_hint, ByteView datagram, TimePoint now, EngineOutput& out,
                   ByteView source = {});
  // Runs every timer that is due.
  void on_timer(TimePoint now, EngineOutput& out);
  // The earliest time on_timer has something to do.
  std::optional<TimePoint> next_deadline() const;

  // DERP ClientInfo sealed with our node key for `server` (clientinfo_seal.h).
  Result<Bytes> seal_derp_client_info(const NodePublic& server, ByteView json) const;

  const DeviceCounters& counters() const { return counters_; }
  const PeerCounters* peer_counters(PeerId id) const;
  // For tests and status: whether the peer has a session it can send on.
  bool has_session(PeerId id, TimePoint now) const;
  std::size_t peer_count() const { return peers_.size(); }
  const AllowedIps& allowed_ips() const { return allowed_ips_; }

 private:
  Peer* peer_by_id(PeerId id) const;
  std::uint32_t new_index(Peer* peer);
  void drop_index(std::uint32_t index);
  void drop_keypair(std::unique_ptr<Keypair>& slot);
  void drop_sessions(Peer& peer);
  void remove_peer(Peer& peer);
  void init_peer_crypto(Peer& peer);

  // send.cc
  void send_initiation(Peer& peer, TimePoint now, bool is_retry, EngineOutput& out);
  bool encrypt_to(Peer& peer, ByteView packet, TimePoint now, EngineOutput& out);
  void stage(Peer& peer, ByteView packet);
  void send_staged(Peer& peer, TimePoint now, EngineOutput& out);
  void send_keepalive(Peer& peer, TimePoint now, EngineOutput& out);
  void keep_key_fresh_on_send(Peer& peer, TimePoint now, EngineOutput& out);

  // receive.cc
  bool under_load(TimePoint now);
  bool pass_load_check(ByteView msg, PeerId hint, ByteView source, std::uint32_t sender_index,
                       TimePoint now, EngineOutput& out);
  void handle_initiation(PeerId hint, ByteView msg, ByteView source, TimePoint now,
                         EngineOutput& out);
  void handle_response(PeerId hint, ByteView msg, ByteView source, TimePoint now,
                       EngineOutput& out);
  void handle_cookie_reply(ByteView msg, TimePoint now);
  void handle_transport(PeerId hint, ByteView msg, TimePoint now, EngineOutput& out);
  void initiate_on_unknown_index(PeerId hint, TimePoint now, EngineOutput& out);
  void install_keypair(Peer& peer, std::unique_ptr<Keypair> kp);
  void keep_key_fresh_on_receive(Peer& peer, TimePoint now, EngineOutput& out);
  bool deliver_inner(Peer& peer, std::size_t plain_len, EngineOutput& out);

  // timers.cc
  Duration jitter();
  void timers_data_sent(Peer& peer, TimePoint now);
  void timers_data_received(Peer& peer, TimePoint now);
  void timers_any_authenticated_packet_sent(Peer& peer);
  void timers_any_authenticated_packet_received(Peer& peer);
  void timers_any_authenticated_packet_traversal(Peer& peer, TimePoint now);
  void timers_handshake_initiated(Peer& peer, TimePoint now);
  void timers_handshake_complete(Peer& peer, TimePoint now);
  void timers_session_derived(Peer& peer, TimePoint now);
  void run_peer_timers(Peer& peer, TimePoint now, EngineOutput& out);

  DeviceOptions options_;
  std::unique_ptr<LocalIdentity> identity_;
  CookieChecker cookie_checker_;
  AllowedIps allowed_ips_;
  std::unordered_map<PeerId, std::unique_ptr<Peer>> peers_;
  std::map<KeyBytes, Peer*> by_key_;
  std::unordered_map<std::uint32_t, Peer*> indices_;  // our sender indices
  DeviceCounters counters_;
  // Under-load detection: handshake messages counted per one-second window.
  TimePoint load_window_start_{};
  std::uint32_t load_window_count_ = 0;
  std::optional<TimePoint> under_load_until_;
  // Timer jitter is not secret: a standard PRNG seeded once from libsodium
  // (randombytes_uniform cost a getrandom system call on every data send).
  std::mt19937 jitter_rng_;
};

}  // namespace tw::wg
