// Field-by-field body codecs, one put/get pair per message type. Readers latch the
// first error, so each get_ reads its fields in order and the caller checks once.
#include <type_traits>

#include "ipc/messages.h"

namespace tw::ipc {
namespace {

// Smallest encodings, used to bound list counts by the bytes that remain.
constexpr std::size_t kIpPortBytes = 17 + 2;
constexpr std::size_t kPrefixBytes = 17 + 1;
constexpr std::size_t kNetprocPeerMinBytes = 4 + 32 + 32 + 4 + 4 + 4;
constexpr std::size_t kDataprocPeerMinBytes = 4 + 32 + 4;

std::string free_text(BodyReader& r, std::size_t max_len) {
  Bytes b = r.blob(max_len);
  return std::string(b.begin(), b.end());
}

void put_endpoints(BodyWriter& w, const std::vector<IpPort>& eps) {
  w.u32(static_cast<std::uint32_t>(eps.size()));
  for (const auto& e : eps) w.ip_port(e);
}
std::vector<IpPort> get_endpoints(BodyReader& r) {
  std::vector<IpPort> eps(r.count(kMaxEndpoints, kIpPortBytes));
  for (auto& e : eps) e = r.ip_port();
  return eps;
}

void put(BodyWriter& w, const NetprocSetup& m) {
  w.u64(m.generation);
  w.key(m.disco_private.bytes());
  w.key(m.node_public.bytes());
  w.u16(m.listen_port);
  w.u32(m.flags);
  w.u32(m.home_derp);
}
NetprocSetup get_netproc_setup(BodyReader& r) {
  NetprocSetup m;
  m.generation = r.u64();
  KeyBytes k = r.key();
  m.disco_private = DiscoPrivate(k);
  secure_wipe(k.data(), k.size());
  m.node_public = NodePublic(r.key());
  m.listen_port = r.u16();
  m.flags = r.u32();
  if (m.flags & ~NetprocSetup::kKnownFlags) r.fail("unknown setup flags");
  m.home_derp = r.u32();
  return m;
}

void put(BodyWriter& w, const NetprocNetmap& m) {
  w.u64(m.generation);
  w.u16(m.part);
  w.u16(m.parts);
  w.u32(m.home_derp);
  w.u32(static_cast<std::uint32_t>(m.peers.size()));
  for (const auto& p : m.peers) {
    w.u32(p.peer_id);
    w.key(p.node_key.bytes());
    w.key(p.disco_key.bytes());
    put_endpoints(w, p.endpoints);
    w.u32(p.home_derp);
    w.text(p.name);
  }
  w.text(m.derp_map_json);
}

void check_part(BodyReader& r, std::uint16_t part, std::uint16_t parts) {
  if (parts == 0 || parts > kMaxNetmapParts || part >= parts) r.fail("bad netmap part numbering");
}

NetprocNetmap get_netproc_netmap(BodyReader& r) {
  NetprocNetmap m;
  m.generation = r.u64();
  m.part = r.u16();
  m.parts = r.u16();
  check_part(r, m.part, m.parts);
  m.home_derp = r.u32();
  m.peers.resize(r.count(kMaxPeersPerPart, kNetprocPeerMinBytes));
  for (auto& p : m.peers) {
    p.peer_id = r.u32();
    p.node_key = NodePublic(r.key());
    p.disco_key = DiscoPublic(r.key());
    p.endpoints = get_endpoints(r);
    p.home_derp = r.u32();
    p.name = r.text(kMaxNameBytes);
  }
  m.derp_map_json = free_text(r, kMaxDerpMapBytes);
  if (m.part != 0 && !m.derp_map_json.empty()) r.fail("DERP map outside netmap part 0");
  return m;
}

void put(BodyWriter& w, const UdpSocket& m) { w.u64(m.rebind_generation); }
UdpSocket get_udp_socket(BodyReader& r) { return UdpSocket{r.u64()}; }

void put(BodyWriter& w, const DerpConn& m) {
  w.u32(m.region_id);
  w.text(m.node_name);
}
DerpConn get_derp_conn(BodyReader& r) {
  DerpConn m;
  m.region_id = r.u32();
  m.node_name = r.text(kMaxNameBytes);
  return m;
}

void put(BodyWriter& w, const DerpDialFailed& m) {
  w.u32(m.region_id);
  w.text(m.node_name);
  w.text(m.reason);
}
DerpDialFailed get_derp_dial_failed(BodyReader& r) {
  DerpDialFailed m;
  m.region_id = r.u32();
  m.node_name = r.text(kMaxNameBytes);
  m.reason = r.text(kMaxReasonBytes);
  return m;
}

void put(BodyWriter& w, const Shutdown& m) { w.text(m.reason); }
Shutdown get_shutdown(BodyReader& r) { return Shutdown{r.text(kMaxReasonBytes)}; }

void put(BodyWriter& w, const RingReset& m) { w.u64(m.epoch); }
RingReset get_ring_reset(BodyReader& r) { return RingReset{r.u64()}; }

void put(BodyWriter& w, const StatusRequest& m) {
  w.u32(m.request_id);
  w.text(m.topic);
}
StatusRequest get_status_request(BodyReader& r) {
  StatusRequest m;
  m.request_id = r.u32();
  m.topic = r.text(kMaxNameBytes);
  return m;
}

void put(BodyWriter& w, const StatusReply& m) {
  w.u32(m.request_id);
  w.text(m.body);
}
StatusReply get_status_reply(BodyReader& r) {
  StatusReply m;
  m.request_id = r.u32();
  m.body = free_text(r, kMaxStatusBytes);
  return m;
}

void put(BodyWriter&, const Ready&) {}

void put(BodyWriter& w, const DerpDialRequest& m) {
  w.u32(m.region_id);
  w.text(m.node_name);
}
DerpDialRequest get_derp_dial_request(BodyReader& r) {
  DerpDialRequest m;
  m.region_id = r.u32();
  m.node_name = r.text(kMaxNameBytes);
  return m;
}

void put(BodyWriter& w, const EndpointsUpdate& m) { put_endpoints(w, m.endpoints); }
EndpointsUpdate get_endpoints_update(BodyReader& r) { return EndpointsUpdate{get_endpoints(r)}; }

void put(BodyWriter& w, const DataprocSetup& m) { w.key(m.node_private.bytes()); }
DataprocSetup get_dataproc_setup(BodyReader& r) {
  DataprocSetup m;
  KeyBytes k = r.key();
  m.node_private = NodePrivate(k);
  secure_wipe(k.data(), k.size());
  return m;
}

void put(BodyWriter& w, const DataprocNetmap& m) {
  w.u64(m.generation);
  w.u16(m.part);
  w.u16(m.parts);
  w.u32(static_cast<std::uint32_t>(m.peers.size()));
  for (const auto& p : m.peers) {
    w.u32(p.peer_id);
    w.key(p.node_key.bytes());
    w.u32(static_cast<std::uint32_t>(p.allowed_ips.size()));
    for (const auto& a : p.allowed_ips) w.prefix(a);
  }
}
DataprocNetmap get_dataproc_netmap(BodyReader& r) {
  DataprocNetmap m;
  m.generation = r.u64();
  m.part = r.u16();
  m.parts = r.u16();
  check_part(r, m.part, m.parts);
  m.peers.resize(r.count(kMaxPeersPerPart, kDataprocPeerMinBytes));
  for (auto& p : m.peers) {
    p.peer_id = r.u32();
    p.node_key = NodePublic(r.key());
    p.allowed_ips.resize(r.count(kMaxAllowedIps, kPrefixBytes));
    for (auto& a : p.allowed_ips) a = r.prefix();
  }
  return m;
}

void put(BodyWriter& w, const TunFd& m) { w.u32(m.mtu); }
TunFd get_tun_fd(BodyReader& r) { return TunFd{r.u32()}; }

void put(BodyWriter& w, const SelfAddresses& m) {
  w.u32(static_cast<std::uint32_t>(m.addresses.size()));
  for (const auto& a : m.addresses) w.prefix(a);
}
SelfAddresses get_self_addresses(BodyReader& r) {
  SelfAddresses m;
  m.addresses.resize(r.count(kMaxAllowedIps, kPrefixBytes));
  for (auto& a : m.addresses) a = r.prefix();
  return m;
}

void put(BodyWriter& w, const ExitTunFd& m) { w.u32(m.mtu); }
ExitTunFd get_exit_tun_fd(BodyReader& r) { return ExitTunFd{r.u32()}; }

void put(BodyWriter& w, const SealClientInfoRequest& m) {
  w.u32(m.request_id);
  w.key(m.server_key.bytes());
  w.blob(m.client_info_json);
}
SealClientInfoRequest get_seal_request(BodyReader& r) {
  SealClientInfoRequest m;
  m.request_id = r.u32();
  m.server_key = NodePublic(r.key());
  m.client_info_json = r.blob(kMaxClientInfoBytes);
  return m;
}

void put(BodyWriter& w, const SealClientInfoReply& m) {
  w.u32(m.request_id);
  w.blob(m.sealed);
}
SealClientInfoReply get_seal_reply(BodyReader& r) {
  SealClientInfoReply m;
  m.request_id = r.u32();
  m.sealed = r.blob(kMaxSealedBytes);
  return m;
}

std::vector<IpPort> get_ip_ports(BodyReader& r, std::size_t max) {
  std::vector<IpPort> eps(r.count(max, kIpPortBytes));
  for (auto& e : eps) e = r.ip_port();
  return eps;
}

void put(BodyWriter& w, const RegisterCandidates& m) {
  w.u32(m.request_id);
  w.u32(m.peer_id);
  put_endpoints(w, m.candidates);
}
RegisterCandidates get_register_candidates(BodyReader& r) {
  RegisterCandidates m;
  m.request_id = r.u32();
  m.peer_id = r.u32();
  m.candidates = get_ip_ports(r, kMaxRegisterCandidates);
  return m;
}

void put(BodyWriter& w, const CandidatesVerdict& m) {
  w.u32(m.request_id);
  w.u32(m.peer_id);
  w.u32(m.lifetime_seconds);
  put_endpoints(w, m.approved);
  put_endpoints(w, m.refused);
}
CandidatesVerdict get_candidates_verdict(BodyReader& r) {
  CandidatesVerdict m;
  m.request_id = r.u32();
  m.peer_id = r.u32();
  m.lifetime_seconds = r.u32();
  m.approved = get_ip_ports(r, kMaxRegisterCandidates);
  m.refused = get_ip_ports(r, kMaxRegisterCandidates);
  return m;
}

void put(BodyWriter& w, const OperatorPing& m) {
  w.u32(m.request_id);
  w.u32(m.peer_id);
}
OperatorPing get_operator_ping(BodyReader& r) {
  OperatorPing m;
  m.request_id = r.u32();
  m.peer_id = r.u32();
  return m;
}

void put(BodyWriter& w, const ReleaseUdp& m) { w.u32(m.request_id); }
ReleaseUdp get_release_udp(BodyReader& r) { return ReleaseUdp{r.u32()}; }

void put(BodyWriter& w, const DataprocFilter& m) {
  w.u64(m.generation);
  w.u8(m.enabled ? 1 : 0);
  w.u32(static_cast<std::uint32_t>(m.filter.rules.size()));
  for (const auto& rule : m.filter.rules) {
    w.u32(static_cast<std::uint32_t>(rule.protos.size()));
    for (auto p : rule.protos) w.u8(p);
    w.u32(static_cast<std::uint32_t>(rule.srcs.size()));
    for (const auto& s : rule.srcs) w.prefix(s);
    w.u32(static_cast<std::uint32_t>(rule.dsts.size()));
    for (const auto& d : rule.dsts) {
      w.prefix(d.net);
      w.u16(d.first);
      w.u16(d.last);
    }
  }
}
// Bounded by the filter limits and by the bytes that remain; a rule that could never
// match (no protocol, source or destination) or a reversed port range is refused.
DataprocFilter get_dataproc_filter(BodyReader& r) {
  DataprocFilter m;
  m.generation = r.u64();
  const std::uint8_t enabled = r.u8();
  if (enabled > 1) r.fail("DataprocFilter: enabled is not 0 or 1");
  m.enabled = enabled == 1;
  m.filter.rules.resize(r.count(kMaxFilterRules, 12));
  if (!m.enabled && !m.filter.rules.empty()) r.fail("DataprocFilter: rules without a filter");
  std::size_t prefixes = 0;
  for (auto& rule : m.filter.rules) {
    rule.protos.resize(r.count(256, 1));
    for (auto& p : rule.protos) p = r.u8();
    rule.srcs.resize(r.count(kMaxFilterPrefixes, kPrefixBytes));
    for (auto& s : rule.srcs) s = r.prefix();
    rule.dsts.resize(r.count(kMaxFilterPrefixes, kPrefixBytes + 4));
    for (auto& d : rule.dsts) {
      d.net = r.prefix();
      d.first = r.u16();
      d.last = r.u16();
      if (d.first > d.last) r.fail("DataprocFilter: reversed port range");
    }
    prefixes += rule.srcs.size() + rule.dsts.size();
    if (prefixes > kMaxFilterPrefixes) r.fail("DataprocFilter: too many prefixes");
    if (rule.protos.empty() || rule.srcs.empty() || rule.dsts.empty())
      r.fail("DataprocFilter: a rule that matches nothing");
    if (!r.ok()) break;
  }
  return m;
}

AnyMessage get_any(MessageType t, BodyReader& r) {
  switch (t) {
    case MessageType::kNetprocSetup: return get_netproc_setup(r);
    case MessageType::kNetprocNetmap: return get_netproc_netmap(r);
    case MessageType::kUdpSocket: return get_udp_socket(r);
    case MessageType::kDerpConn: return get_derp_conn(r);
    case MessageType::kDerpDialFailed: return get_derp_dial_failed(r);
    case MessageType::kShutdown: return get_shutdown(r);
    case MessageType::kRingReset: return get_ring_reset(r);
    case MessageType::kStatusRequest: return get_status_request(r);
    case MessageType::kStatusReply: return get_status_reply(r);
    case MessageType::kReady: return Ready{};
    case MessageType::kDerpDialRequest: return get_derp_dial_request(r);
    case MessageType::kEndpointsUpdate: return get_endpoints_update(r);
    case MessageType::kDataprocSetup: return get_dataproc_setup(r);
    case MessageType::kDataprocNetmap: return get_dataproc_netmap(r);
    case MessageType::kTunFd: return get_tun_fd(r);
    case MessageType::kSealClientInfoRequest: return get_seal_request(r);
    case MessageType::kSealClientInfoReply: return get_seal_reply(r);
    case MessageType::kRegisterCandidates:
      return get_register_candidates(r);
    case MessageType::kCandidatesVerdict:
      return get_candidates_verdict(r);
    case MessageType::kOperatorPing:
      return get_operator_ping(r);
    case MessageType::kReleaseUdp:
      return get_release_udp(r);
    case MessageType::kSelfAddresses:
      return get_self_addresses(r);
    case MessageType::kExitTunFd:
      return get_exit_tun_fd(r);
    case MessageType::kDataprocFilter:
      return get_dataproc_filter(r);
  }
  r.fail("unknown message type");
  return Ready{};
}

}  // namespace

void encode_body(BodyWriter& w, const AnyMessage& m) {
  std::visit([&w](const auto& msg) { put(w, msg); }, m);
}

MessageType type_of(const AnyMessage& m) {
  return std::visit([](const auto& msg) { return std::decay_t<decltype(msg)>::kType; }, m);
}

Result<AnyMessage> decode_body(std::uint16_t type, ByteView body) {
  if (!find_entry(type)) return make_error("unknown message type " + std::to_string(type));
  if (body.size() > kMaxBodyBytes) return make_error("body larger than the message limit");
  BodyReader r(body);
  AnyMessage m = get_any(static_cast<MessageType>(type), r);
  if (!r.finish()) {
    return make_error(std::string(message_name(static_cast<MessageType>(type))) + ": " +
                      r.error());
  }
  return m;
}

}  // namespace tw::ipc
