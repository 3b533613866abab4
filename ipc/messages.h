// Typed control messages and their pure codecs. One datagram is one message: a
// 12-byte header (magic "TWIP", version, type, body length; big-endian) and a body
// whose length must match exactly. Which process may send which message, with how
// many fds and in which phase, is in catalogue.h; fds travel beside the body, never
// inside it.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common/bytes.h"
#include "common/ipaddr.h"
#include "common/keys.h"
#include "common/packet_filter.h"
#include "common/result.h"
#include "ipc/catalogue.h"
#include "ipc/wire.h"

namespace tw::ipc {

constexpr std::uint32_t kMagic = 0x54574950;  // "TWIP"
constexpr std::uint16_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 12;
// Fits the default AF_UNIX send buffer (net.core.wmem_default) with room to spare,
// so no process needs privileges to raise it. Netmaps larger than this are split.
constexpr std::size_t kMaxBodyBytes = 160 * 1024;
constexpr std::size_t kMaxDatagramBytes = kHeaderBytes + kMaxBodyBytes;

// Field limits, enforced by the decoders (and so by the encoders, which check
// their output with the decoder before anything is sent).
constexpr std::size_t kMaxNameBytes = 255;
constexpr std::size_t kMaxReasonBytes = 1024;
constexpr std::size_t kMaxEndpoints = 64;
constexpr std::size_t kMaxAllowedIps = 1024;
constexpr std::size_t kMaxPeersPerPart = 1024;
constexpr std::size_t kMaxNetmapParts = 1024;
constexpr std::size_t kMaxNetmapPeers = 65536;
constexpr std::size_t kMaxDerpMapBytes = 64 * 1024;
constexpr std::size_t kMaxStatusBytes = 128 * 1024;
constexpr std::size_t kMaxClientInfoBytes = 4096;
constexpr std::size_t kMaxSealedBytes = kMaxClientInfoBytes + 24 + 16;  // nonce + MAC
constexpr std::size_t kMaxRegisterCandidates = 32;  // the learned-candidate cap per peer

// ---- broker -> netproc ----
struct NetprocSetup {
  static constexpr MessageType kType = MessageType::kNetprocSetup;
  static constexpr std::uint32_t kFlagIpv6 = 1;
  static constexpr std::uint32_t kFlagAllowLanEndpoints = 2;      // config allow_lan_endpoints
  static constexpr std::uint32_t kFlagAdvertiseLanEndpoints = 4;  // config advertise_lan_endpoints
  // The kernel allows the underlay socket only approved destinations: register
  // learned candidates (RegisterCandidates) before sending to them.
  static constexpr std::uint32_t kFlagEgressAllowlist = 8;
  static constexpr std::uint32_t kKnownFlags = 15;
  std::uint64_t generation = 0;
  DiscoPrivate disco_private;
  NodePublic node_public;
  std::uint16_t listen_port = 0;
  std::uint32_t flags = 0;
  std::uint32_t home_derp = 0;  // our home DERP region from the netmap (0: none)
  friend bool operator==(const NetprocSetup& a, const NetprocSetup& b) {
    return a.generation == b.generation && a.disco_private.bytes() == b.disco_private.bytes() &&
           a.node_public == b.node_public && a.listen_port == b.listen_port && a.flags == b.flags &&
           a.home_derp == b.home_derp;
  }
};

struct NetprocPeer {
  std::uint32_t peer_id = 0;
  NodePublic node_key;
  DiscoPublic disco_key;
  std::vector<IpPort> endpoints;
  std::uint32_t home_derp = 0;  // region id, 0 = none
  std::string name;
  friend bool operator==(const NetprocPeer&, const NetprocPeer&) = default;
};

// One part of a netmap (see netmap_parts.h); the DERP map rides in part 0 only.
struct NetprocNetmap {
  static constexpr MessageType kType = MessageType::kNetprocNetmap;
  std::uint64_t generation = 0;
  std::uint16_t part = 0;
  std::uint16_t parts = 1;
  std::uint32_t home_derp = 0;  // our home DERP region in this netmap (0: none); every part
  std::vector<NetprocPeer> peers;
  std::string derp_map_json;
  friend bool operator==(const NetprocNetmap&, const NetprocNetmap&) = default;
};

struct UdpSocket {  // + 1 fd: the bound underlay socket
  static constexpr MessageType kType = MessageType::kUdpSocket;
  std::uint64_t rebind_generation = 0;
  friend bool operator==(const UdpSocket&, const UdpSocket&) = default;
};

struct DerpConn {  // + 1 fd: a connected TCP socket to the DERP node
  static constexpr MessageType kType = MessageType::kDerpConn;
  std::uint32_t region_id = 0;
  std::string node_name;
  friend bool operator==(const DerpConn&, const DerpConn&) = default;
};

struct DerpDialFailed {
  static constexpr MessageType kType = MessageType::kDerpDialFailed;
  std::uint32_t region_id = 0;
  std::string node_name;
  std::string reason;
  friend bool operator==(const DerpDialFailed&, const DerpDialFailed&) = default;
};

// ---- broker -> either child ----
struct Shutdown {
  static constexpr MessageType kType = MessageType::kShutdown;
  std::string reason;
  friend bool operator==(const Shutdown&, const Shutdown&) = default;
};

// The broker re-initialised the rings (the other child was restarted): the
// receiver calls resync() on its ring ends.
struct RingReset {
  static constexpr MessageType kType = MessageType::kRingReset;
  std::uint64_t epoch = 0;
  friend bool operator==(const RingReset&, const RingReset&) = default;
};

struct StatusRequest {
  static constexpr MessageType kType = MessageType::kStatusRequest;
  std::uint32_t request_id = 0;
  std::string topic;  // e.g. "status", "metrics"
  friend bool operator==(const StatusRequest&, const StatusRequest&) = default;
};

// ---- either child -> broker ----
struct StatusReply {
  static constexpr MessageType kType = MessageType::kStatusReply;
  std::uint32_t request_id = 0;
  std::string body;  // JSON or Prometheus text; may contain newlines
  friend bool operator==(const StatusReply&, const StatusReply&) = default;
};

struct Ready {
  static constexpr MessageType kType = MessageType::kReady;
  friend bool operator==(const Ready&, const Ready&) = default;
};

// ---- netproc -> broker ----
struct DerpDialRequest {
  static constexpr MessageType kType = MessageType::kDerpDialRequest;
  std::uint32_t region_id = 0;
  std::string node_name;
  friend bool operator==(const DerpDialRequest&, const DerpDialRequest&) = default;
};

struct EndpointsUpdate {
  static constexpr MessageType kType = MessageType::kEndpointsUpdate;
  std::vector<IpPort> endpoints;
  friend bool operator==(const EndpointsUpdate&, const EndpointsUpdate&) = default;
};

// Learned candidates of one peer that netproc wants to send to: the broker admits
// each (pingable, capped, rate-limited) into the kernel allowlist and answers with
// a CandidatesVerdict carrying the same request id.
struct RegisterCandidates {
  static constexpr MessageType kType = MessageType::kRegisterCandidates;
  std::uint32_t request_id = 0;
  std::uint32_t peer_id = 0;
  std::vector<IpPort> candidates;  // at most kMaxRegisterCandidates
  friend bool operator==(const RegisterCandidates&, const RegisterCandidates&) = default;
};

// ---- broker -> netproc ----
struct CandidatesVerdict {
  static constexpr MessageType kType = MessageType::kCandidatesVerdict;
  std::uint32_t request_id = 0;
  std::uint32_t peer_id = 0;
  std::uint32_t lifetime_seconds = 0;  // how long the approved ones stay allowed
  std::vector<IpPort> approved;
  std::vector<IpPort> refused;
  friend bool operator==(const CandidatesVerdict&, const CandidatesVerdict&) = default;
};

// `tailwarden ping`: one disco ping to the peer; netproc answers with a StatusReply
// (JSON: via, endpoint or derp_region, latency_ms; or timeout).
struct OperatorPing {
  static constexpr MessageType kType = MessageType::kOperatorPing;
  std::uint32_t request_id = 0;
  std::uint32_t peer_id = 0;
  friend bool operator==(const OperatorPing&, const OperatorPing&) = default;
};

// Rebinding a pinned port: netproc closes its copy of the socket and answers with a
// StatusReply, so the broker can bind the port again.
struct ReleaseUdp {
  static constexpr MessageType kType = MessageType::kReleaseUdp;
  std::uint32_t request_id = 0;
  friend bool operator==(const ReleaseUdp&, const ReleaseUdp&) = default;
};

// ---- broker -> dataproc ----
struct DataprocSetup {
  static constexpr MessageType kType = MessageType::kDataprocSetup;
  NodePrivate node_private;
  friend bool operator==(const DataprocSetup& a, const DataprocSetup& b) {
    return a.node_private.bytes() == b.node_private.bytes();
  }
};

struct DataprocPeer {
  std::uint32_t peer_id = 0;
  NodePublic node_key;
  std::vector<IpPrefix> allowed_ips;
  friend bool operator==(const DataprocPeer&, const DataprocPeer&) = default;
};

struct DataprocNetmap {
  static constexpr MessageType kType = MessageType::kDataprocNetmap;
  std::uint64_t generation = 0;
  std::uint16_t part = 0;
  std::uint16_t parts = 1;
  std::vector<DataprocPeer> peers;
  friend bool operator==(const DataprocNetmap&, const DataprocNetmap&) = default;
};

struct TunFd {  // + 1 fd: the TUN device
  static constexpr MessageType kType = MessageType::kTunFd;
  std::uint32_t mtu = 0;
  friend bool operator==(const TunFd&, const TunFd&) = default;
};

// Our own tailnet addresses: decrypted packets to these go to the main TUN; any other
// destination goes to the exit TUN when there is one, else is dropped and counted
// (docs/design.md#9-exit-node). Sent before each DataprocNetmap.
struct SelfAddresses {
  static constexpr MessageType kType = MessageType::kSelfAddresses;
  std::vector<IpPrefix> addresses;
  friend bool operator==(const SelfAddresses&, const SelfAddresses&) = default;
};

struct ExitTunFd {  // + 1 fd: tw-exit, the TUN device of the exit namespace
  static constexpr MessageType kType = MessageType::kExitTunFd;
  std::uint32_t mtu = 0;
  friend bool operator==(const ExitTunFd&, const ExitTunFd&) = default;
};

// The tailnet's packet filter for traffic from peers (docs/control.md#packet-filter),
// sent after each netmap generation. enabled = false: no filter, all is delivered.
struct DataprocFilter {
  static constexpr MessageType kType = MessageType::kDataprocFilter;
  std::uint64_t generation = 0;
  bool enabled = false;
  PacketFilter filter;
  friend bool operator==(const DataprocFilter&, const DataprocFilter&) = default;
};

// ---- netproc <-> dataproc ----
struct SealClientInfoRequest {
  static constexpr MessageType kType = MessageType::kSealClientInfoRequest;
  std::uint32_t request_id = 0;
  NodePublic server_key;
  Bytes client_info_json;
  friend bool operator==(const SealClientInfoRequest&, const SealClientInfoRequest&) = default;
};

struct SealClientInfoReply {
  static constexpr MessageType kType = MessageType::kSealClientInfoReply;
  std::uint32_t request_id = 0;
  Bytes sealed;  // nonce || box; empty = refused
  friend bool operator==(const SealClientInfoReply&, const SealClientInfoReply&) = default;
};

using AnyMessage =
    std::variant<NetprocSetup, NetprocNetmap, UdpSocket, DerpConn, DerpDialFailed, Shutdown,
                 RingReset, StatusRequest, StatusReply, Ready, DerpDialRequest, EndpointsUpdate,
                 DataprocSetup, DataprocNetmap, TunFd, SealClientInfoRequest, SealClientInfoReply,
                 RegisterCandidates, CandidatesVerdict, OperatorPing, ReleaseUdp, SelfAddresses,
                 ExitTunFd, DataprocFilter>;

MessageType type_of(const AnyMessage& m);

struct Header {
  std::uint16_t type = 0;
  std::uint32_t body_len = 0;
};

// Checks magic, version and that the body length matches the datagram exactly.
Result<Header> decode_header(ByteView datagram);

// Decodes a body of the given type with exact length and field checks.
Result<AnyMessage> decode_body(std::uint16_t type, ByteView body);
// Header + body; fails if the message breaks a limit its receiver would enforce.
Result<Bytes> encode_message(const AnyMessage& m);
// A whole datagram: header, then body.
Result<AnyMessage> decode_message(ByteView datagram);

// Per-type body codecs (messages_codec.cc).
void encode_body(BodyWriter& w, const AnyMessage& m);

}  // namespace tw::ipc
