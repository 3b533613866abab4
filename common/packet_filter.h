// The tailnet's ACLs as a packet filter: the control server's PacketFilter rules
// (Tailscale's tailcfg.FilterRule JSON: SrcIPs, DstPorts{IP, Ports}, IPProto) compiled
// into prefixes and port ranges, and the inbound decision Tailscale's wgengine/filter
// makes for a packet decrypted from a peer (docs/control.md#packet-filter):
//
//   * TCP: only SYNs (new connections) are checked; later segments pass, since no
//     connection can start without a SYN.
//   * UDP and SCTP: accepted if a rule matches, or if the packet answers a flow this
//     node opened (the reverse of a recently sent packet, see FlowTable).
//   * ICMP: echo replies and errors pass; others need a rule naming the source and the
//     destination (any port).
//   * Non-first fragments pass; other protocols need a rule for that protocol that
//     covers all ports. A rule with no IPProto means TCP, UDP, ICMPv4 and ICMPv6.
//
// The same JSON is the netmap file's optional "packet_filter" field; a netmap without
// it has no filter (everything from a peer is delivered), a netmap with an empty list
// drops everything a peer starts.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/bytes.h"
#include "common/ipaddr.h"
#include "common/result.h"

namespace tw {

struct FilterDst {
  IpPrefix net;
  std::uint16_t first = 0;
  std::uint16_t last = 65535;
  bool all_ports() const { return first == 0 && last == 65535; }
  friend bool operator==(const FilterDst&, const FilterDst&) = default;
};

struct FilterRule {
  std::vector<std::uint8_t> protos;  // IP protocol numbers, never empty once parsed
  std::vector<IpPrefix> srcs;
  std::vector<FilterDst> dsts;
  friend bool operator==(const FilterRule&, const FilterRule&) = default;
};

struct PacketFilter {
  std::vector<FilterRule> rules;
  friend bool operator==(const PacketFilter&, const PacketFilter&) = default;
};

// Bounds against a hostile or broken control server; a filter within them fits one
// broker-to-dataproc message (22 bytes a prefix, 16 a rule and its protocols).
constexpr std::size_t kMaxFilterRules = 2048;
constexpr std::size_t kMaxFilterPrefixes = 5000;  // sources plus destinations, all rules

// Parses a JSON array of tailcfg.FilterRule. Source and destination sets are "*",
// a prefix (no host bits set), an address or an address range "a-b"; "cap:" sources
// and CapGrant rules grant capabilities, not packets, and are skipped. SrcBits and
// DstBits (pre-2021 fields) are refused, as Tailscale refuses them. `path` prefixes
// error messages.
Result<PacketFilter> parse_filter_rules(const nlohmann::json& rules, const std::string& path);
// The canonical form of `f` in the same JSON shape (prefixes, one DstPorts entry per
// prefix), which parse_filter_rules reads back to the same filter.
nlohmann::json filter_rules_json(const PacketFilter& f);

enum class FilterVerdict : std::uint8_t {
  kAccept,
  kDropNoRule,    // no rule allows it
  kDropInvalid,   // not a parsable IP packet, or a truncated transport header
  kDropMulticast  // multicast or link-local destination
};

// Reverse-flow state for UDP and SCTP: the packets this node sends (TUN to peer)
// let their replies in. Bounded; the oldest flow is evicted first.
class FlowTable {
 public:
  using Clock = std::chrono::steady_clock;
  explicit FlowTable(std::size_t capacity = 4096) : capacity_(capacity) {}
  // Records an outbound packet (TUN side); other protocols and malformed packets are
  // ignored.
  void note_outbound(ByteView packet, Clock::time_point now);
  // Whether `packet` (inbound) answers a recorded flow.
  bool answers(ByteView packet, Clock::time_point now) const;
  std::size_t size() const { return flows_.size(); }

 private:
  std::size_t capacity_;
  // Key: proto, src ip:port, dst ip:port of the outbound direction (38 bytes as text-free bytes).
  std::unordered_map<std::string, Clock::time_point> flows_;
};

// The inbound verdict for one packet decrypted from a peer. `flows` may be null.
FilterVerdict filter_inbound(const PacketFilter& f, ByteView packet, const FlowTable* flows,
                             FlowTable::Clock::time_point now);

}  // namespace tw
