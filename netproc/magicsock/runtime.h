// The magicsock runtime: the I/O side of the direct underlay in netproc
// (docs/direct-underlay.md). It owns the UDP fd the broker hands over, feeds the path
// logic (PeerTable, PeerPaths) events and carries out its plans. The packet path
// through netproc (the whole path across processes: docs/design.md#5-where-a-packet-goes):
//
// Inbound, socket to the net->data ring (runtime.cc, in this order):
//   1. arm_udp: epoll says the socket is readable -> drain_udp, bursts of <= 64:
//   2. place_burst + UdpIo::receive_placed: recvmmsg straight into free ring slots,
//      coalesced (UDP_GRO) messages split at their segment size (gro_split.h);
//   3. fill_in_place: WireGuard wholly in a slot is attributed by its source
//      (attribute_wireguard -> PeerTable::attribute) and published where it landed;
//   4. anything else is copied out (to_private) and demuxed by on_udp_datagram:
//      STUN -> on_stun (runtime_status.cc), disco -> on_udp_disco (runtime_disco.cc),
//      WireGuard -> deliver_pending -> hooks.deliver (netproc App::deliver, ring push);
//   5. DERP: on_derp_packet -> on_relayed_disco, or WireGuard -> hooks.deliver.
//
// Outbound, data->net ring to the wire (App::on_ring_batch calls in):
//   6. send_wireguard: broker id -> table id; PeerTable::route -> PeerPaths::route
//      decides UDP, UDP+DERP, DERP or drop (docs/direct-underlay.md#the-send-rule)
//      and may plan pings and a call-me-maybe, which go out first;
//   7. UDP: UdpIo::queue, sent by flush -> UdpIo::flush (one sendmmsg per batch);
//      DERP: derp_send -> DerpRelay::send (netproc DerpLink).
//
// Timers: tick (every 250 ms, and prompt_pinger after a verified ping) runs the
// pinger, call-me-maybe, STUN sweeps and endpoint refresh.
//
// Peer ids here are the broker's (stable per node key, 1..); 0 means "unknown" on
// the net->data ring and lets dataproc attribute the datagram by its receiver index.
// A peer with an all-zero disco key is wireguard_only: no disco, no DERP, its
// datagrams go straight to its first netmap endpoint.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/keys.h"
#include "common/metrics.h"
#include "common/result.h"
#include "ipc/messages.h"
#include "ipc/ring.h"
#include "netproc/disco/box.h"
#include "netproc/magicsock/advertiser.h"
#include "netproc/magicsock/derp_latency.h"
#include "netproc/magicsock/derp_seam.h"
#include "netproc/magicsock/egress_gate.h"
#include "netproc/magicsock/peer_table.h"
#include "netproc/magicsock/reflexive.h"
#include "netproc/magicsock/stun_prober.h"
#include "netproc/magicsock/udp_io.h"

namespace tw::magicsock {

struct RuntimeConfig {
  DiscoPrivate disco_private;
  NodePublic self_node;
  bool enable_ipv6 = false;
  bool allow_lan_endpoints = true;
  bool advertise_lan_endpoints = false;
  std::size_t rx_buffer_bytes = kMaxDatagramBytes;  // smaller only in tests (truncation)
  Duration operator_ping_timeout = std::chrono::seconds(5);
  // Where the runtime reads the time; nullptr: the system clock. Tests pass a
  // FakeTimeSource and call tick() as they advance it, so nothing sleeps.
  const TimeSource* time = nullptr;
};

struct RuntimePeer {
  std::uint32_t id = 0;  // broker peer id, >= 1
  NodePublic node;
  DiscoPublic disco;  // zero: wireguard_only
  std::vector<IpPort> endpoints;
  std::uint32_t home_derp = 0;
};

struct RuntimeHooks {
  // Received WireGuard datagrams for the net→data ring; returns how many it took.
  std::function<std::size_t(std::span<const ipc::OutPacket>)> deliver;
  // The net→data ring itself, if the caller owns one: WireGuard datagrams from the
  // socket are then received straight into its free slots (no second copy) and
  // `deliver` carries only the rest (DERP, datagrams that did not fit a slot).
  ipc::RingProducer* rx_ring = nullptr;
  // Our advertised endpoints changed (and once at subscription with the last set).
  std::function<void(const std::vector<IpPort>&)> endpoints_changed;
  // Set when the broker enforces a kernel allowlist on the socket: asks it to admit
  // learned candidates of one peer (answered with on_candidates_verdict).
  std::function<void(std::uint32_t peer_id, const std::vector<IpPort>&)> register_candidates;
  // Waiting on the underlay socket failed with an error other than cancellation: the
  // receive loop cannot go on. The owner must report it (netproc exits so that the
  // broker restarts it on the same socket); it is never a silent stop.
  std::function<void(const std::string& why)> udp_failed;
};

struct RuntimeCounters {
  explicit RuntimeCounters(MetricsRegistry& r);
  Counter& wg_rx;
  Counter& wg_rx_unattributed;
  Counter& wg_rx_ring_full;
  Counter& wg_rx_held_back;
  Counter& wg_rx_derp;
  Counter& wg_rx_derp_unknown;
  Counter& wg_tx_udp;
  Counter& wg_tx_derp;
  Counter& wg_tx_derp_failed;
  Counter& wg_tx_unknown_peer;
  Counter& disco_rx_not_member;
  Counter& disco_rx_open_failed;
  Counter& disco_rx_bad_message;
  Counter& disco_rx_unknown_type;
  Counter& disco_rx_cmm_over_udp;
  Counter& disco_rx_relayed_pong_ignored;
  Counter& disco_tx;
  Counter& stun_rx_bad;
  Counter& rx_unknown_kind;
  Counter& operator_pings;
  Counter& operator_ping_timeouts;
};

class Runtime {
 public:
  using Reply = std::function<void(std::string)>;

  Runtime(boost::asio::io_context& io, RuntimeConfig cfg, MetricsRegistry& metrics, DerpRelay* derp,
          RuntimeHooks hooks, RandomSource& rng);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Starts the timers (pinger, call-me-maybe, STUN, endpoint refresh).
  void start();
  void stop();

  // A new underlay socket. With a socket already in use this is a rebind: the old
  // one is closed; reflexive addresses, best paths, trust and in-flight pings are
  // cleared, candidates kept, and STUN and pings go out at once
  // (docs/direct-underlay.md#the-socket).
  void adopt_udp(ipc::UniqueFd fd);
  // Stops using and closes the socket (the broker rebinds the pinned port next).
  void release_udp();
  bool has_udp() const { return udp_ != nullptr; }
  std::uint16_t local_port() const { return udp_ ? udp_->local_port() : 0; }

  void set_peers(std::span<const RuntimePeer> peers);
  // The broker's answer to register_candidates: held datagrams to approved
  // candidates go now; refused ones are dropped.
  void on_candidates_verdict(const ipc::CandidatesVerdict& v);
  const EgressGate& egress_gate() const { return gate_; }
  void set_stun_servers(std::span<const IpPort> servers);
  // A whole (assembled) netmap from the broker: peers, STUN servers and region codes
  // from the DERP map in part 0. A DERP map that does not parse is refused.
  Status apply_netmap(const ipc::NetprocNetmap& nm);
  const std::map<std::uint32_t, std::string>& region_codes() const { return region_codes_; }

  // Outbound WireGuard from the data→net ring. Sends are batched until flush().
  void send_wireguard(std::uint32_t peer_id, ByteView datagram);
  void flush();

  // Inbound from DERP: relayed disco or relayed WireGuard from node `src`.
  void on_derp_packet(const NodePublic& src, std::uint32_t region, ByteView packet);
  // The relay says `peer` is not connected to it: what we sent it there was lost.
  void on_derp_peer_not_here(const NodePublic& peer);

  // StatusRequest topics: status, metrics, netcheck (operator pings and socket
  // release have their own typed messages: ping(), release_udp()).
  void status_request(const std::string& topic, Reply reply);
  std::string status_json();
  std::string netcheck_json();
  std::string metrics_text() const { return metrics_.prometheus_text(); }
  // Operator ping: replies once, with the path and RTT or {"timeout":true}.
  void ping(std::uint32_t peer_id, Reply reply);
  std::size_t pending_operator_pings() const { return op_pings_.size(); }

  // Receives and handles everything the socket has now (also used by benchmarks).
  // While the net->data ring lacks room for a burst it stops early, leaving the
  // datagrams in the socket buffer (rx_held_back() is then true) for a while.
  void drain_udp();
  bool rx_held_back() const { return rx_holds_ != 0; }
  // Receives again if held back and the net->data ring now has the room asked for
  // (dataproc's room bell rang, or its reader just drained a batch).
  void resume_rx();
  // Runs the periodic work due at `now` (the timer calls it).
  void tick(TimePoint now);
  // A verified ping means the peer is trying to reach us, maybe from a source we
  // have never pinged: run the pinger now instead of at its next 2 s tick, so the
  // new candidate is probed at once (at most every 100 ms).
  void prompt_pinger(TimePoint now);

  const PeerTable& table() const { return table_; }
  std::optional<PeerId> table_id(std::uint32_t peer_id) const;
  PathKind path_of(std::uint32_t peer_id);
  const UdpIoCounters& udp_counters() const { return udp_c_; }
  const RuntimeCounters& counters() const { return c_; }
  std::vector<IpPort> advertised() const;

 private:
  struct OperatorPing {
    std::uint32_t peer_id = 0;
    PeerId table_id = 0;
    std::optional<disco::TxId> udp_txid;
    std::optional<disco::TxId> derp_txid;
    TimePoint sent{};
    TimePoint deadline{};
    Reply reply;
  };
  struct StunSent {
    IpPort server;
    TimePoint sent{};
  };
  struct StunResult {
    IpPort mapped;
    double latency_ms = 0;
  };

  // What fill_in_place did in one burst, for publish_in_place.
  struct InPlaceBurst {
    std::size_t reserved = 0;  // placements [0, reserved) are net->data ring slots
    std::size_t commit = 0;    // publish slots [0, commit); unfilled ones are skipped
    std::uint64_t filled = 0;
    std::uint64_t unattributed = 0;
    const IpPort* last_src = nullptr;  // bursts mostly come from one peer
    std::uint32_t last_id = 0;
  };
  struct CopiedDatagram {
    IpPort src;
    MutableByteView data;  // UdpIo's private buffer: valid until the next receive
  };

  // I/O plumbing.
  void arm_udp();
  void on_udp_readable();
  // Points placement i at free net->data slot i while the ring has one, the rest at
  // UdpIo's private buffer; returns how many slots it reserved.
  std::size_t place_burst(std::span<RxPlacement, kUdpBurst> places);
  // Publishes `d` in its slot if it is WireGuard wholly inside a reserved slot's
  // dense part (attributed, no copy); false: it needs copying and the demux.
  bool fill_in_place(const RxDatagram& d, InPlaceBurst& b);
  // Commits the burst's filled slots to the ring and counts them.
  void publish_in_place(const InPlaceBurst& b);
  // Demux of one datagram in private memory: STUN, disco, or WireGuard for the ring.
  void on_udp_datagram(const IpPort& src, MutableByteView data, TimePoint now);
  // The broker peer id a WireGuard datagram from `src` belongs to; 0: unknown.
  std::uint32_t attribute_wireguard(const IpPort& src) const;
  // Pushes the pending WireGuard copies to the ring; false while some are left
  // (they stay, in order, and are offered again before anything else is received).
  bool rx_room();
  std::size_t rx_wanted() const;
  bool deliver_pending();
  void drop_pending();  // counted as wg_rx_ring_full
  void arm_timer();
  // Disco (runtime_disco.cc).
  const disco::DiscoSharedKey* shared_key(const DiscoPublic& peer);
  void on_udp_disco(const IpPort& src, MutableByteView data, TimePoint now);
  void on_relayed_disco(const NodePublic& src, std::uint32_t region, ByteView data, TimePoint now);
  void send_pings(const std::vector<PeerPing>& pings);
  void send_disco_udp(PeerId id, const IpPort& to, const disco::Message& m);
  bool send_disco_derp(PeerId id, const disco::Message& m);
  void send_call_me_maybe(PeerId id);
  void complete_operator_pings(PeerId id, const std::string& body);
  void expire_operator_pings(TimePoint now);
  // STUN and endpoints.
  void on_stun(const IpPort& src, ByteView data, TimePoint now);
  void run_stun(TimePoint now);
  void refresh_endpoints(TimePoint now);
  bool derp_available() const { return derp_ != nullptr && derp_->available(); }
  // Whether we have endpoints to put in a call-me-maybe.
  bool have_endpoints() const {
    return advertiser_.last().has_value() && !advertiser_.last()->empty();
  }
  TimePoint clock_now() const { return time_.now(); }
  bool derp_send(PeerId id, ByteView packet);
  // Whether a datagram to `to` may go now (the kernel allowlist); holds it for a
  // verdict when `holdable`. `peer_id` is the broker's (0: none).
  bool egress_clear(std::uint32_t peer_id, const IpPort& to, ByteView datagram, bool holdable,
                    TimePoint now);

  boost::asio::io_context& io_;
  RuntimeConfig cfg_;
  const TimeSource& time_;
  MetricsRegistry& metrics_;
  DerpRelay* derp_;
  RuntimeHooks hooks_;
  RandomSource& rng_;
  MagicsockMetrics m_;
  UdpIoCounters udp_c_;
  RuntimeCounters c_;
  DiscoPublic self_disco_;
  PeerTable table_;
  ReflexiveSet reflexive_;
  StunProber stun_;
  EndpointAdvertiser advertiser_;
  EgressGate gate_;
  std::vector<EgressGate::Request> gate_requests_;

  std::unique_ptr<UdpIo> udp_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> udp_wait_;
  std::uint64_t udp_gen_ = 0;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer udp_retry_;
  bool udp_retry_armed_ = false;
  int rx_holds_ = 0;  // consecutive receives held back for ring room
  bool running_ = false;
  TimePoint next_pinger_{};
  TimePoint last_prompt_{};
  bool prompt_posted_ = false;

  // Broker ids ↔ table ids; wireguard_only peers live outside the table.
  std::vector<std::uint32_t> broker_of_;  // indexed by table id
  std::unordered_map<std::uint32_t, PeerId> table_of_;
  std::unordered_map<std::uint32_t, IpPort> wg_only_;
  std::unordered_map<IpPort, std::uint32_t> wg_only_attr_;
  std::unordered_map<DiscoPublic, disco::DiscoSharedKey, KeyHash> keys_;

  std::vector<ipc::OutPacket> rx_wg_;
  std::vector<RxDatagram> rx_got_;         // one burst's datagrams, in arrival order
  std::vector<CopiedDatagram> rx_copied_;  // those copied into private memory
  std::vector<PeerPing> ping_scratch_;
  std::vector<PeerId> cmm_scratch_;
  std::vector<StunRequestPlan> stun_scratch_;
  std::map<StunTxId, StunSent> stun_sent_;
  std::map<IpPort, StunResult> stun_results_;
  DerpLatencyTable derp_latency_;
  std::map<std::uint32_t, std::string> region_codes_;
  std::vector<std::unique_ptr<OperatorPing>> op_pings_;
  std::shared_ptr<bool> alive_;
};

}  // namespace tw::magicsock
