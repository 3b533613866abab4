// The kernel half of the single-egress invariant (docs/deploy.md, "Egress"): the
// underlay UDP socket can reach only destinations the broker approved. The broker
// keeps an nftables table of its own with one set of (destination address,
// destination port, source address, outgoing interface) tuples and an output-hook
// chain that drops every datagram leaving the underlay port for a tuple not in the
// set (the sender sees EPERM). The source address and the interface in each tuple are
// the ones the routing table picks for that destination, so a datagram whose source
// or interface was chosen with an IP_PKTINFO control message (ipi_spec_dst,
// ipi_ifindex) is dropped too.
//
// Approved: the netmap peers' endpoints, the STUN servers of the DERP map, and the
// candidates netproc registers (CandidateRegistry: pingable addresses only, 32 per
// peer, 45 s each, rate-limited). Never: loopback, the host's own addresses,
// multicast, broadcast, unspecified, IPv6 without enable_ipv6.
//
// Why nftables through libnftables: the set and its element timeouts are the
// kernel's, so an approval lapses even if the broker stalls; a batch of commands is
// one atomic transaction (a rebuild never leaves a window without the drop rule);
// the library runs in-process (no helper binary found through PATH by a root
// process, errors come back as text); and an operator can inspect the result with
// `nft list table inet tailwarden_<pid>`. A cgroup sock_addr BPF program would see
// the destination before routing but needs a compiler toolchain for BPF, a
// delegated cgroup per child, and a loader in the root process.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/ipaddr.h"
#include "common/result.h"
#include "common/throttle.h"

struct nft_ctx;

namespace tw::broker {

// One approved tuple; no lifetime: until the next rebuild.
struct AllowElement {
  IpPort dst;
  IpAddr src;
  std::uint32_t oif = 0;  // interface index; 0 matches no packet
  std::optional<std::chrono::seconds> lifetime;
  friend bool operator==(const AllowElement&, const AllowElement&) = default;
};

// Whether the broker would ever let the underlay socket send to `ip` (the never
// list above, without the host-address check, which needs the routing table).
bool never_an_underlay_destination(const IpAddr& ip, bool enable_ipv6);

// Peer-supplied candidates: public unicast only (the same rule as netproc's
// is_pingable_candidate, docs/direct-underlay.md).
bool is_pingable_for_broker(const IpPort& ep, bool enable_ipv6);

// The route the kernel picks for a datagram to `dst` from an unbound socket: the
// source address (a connect()ed UDP probe socket that never sends) and the outgoing
// interface (an RTM_GETROUTE query). nullopt: no route, a broadcast, `dst` is one of
// the host's own addresses (the route then picks `dst` itself, or a loopback
// source), or the interface could not be learnt (fail closed: not approved).
struct RouteChoice {
  IpAddr src;
  std::uint32_t oif = 0;
};
std::optional<RouteChoice> route_for(const IpPort& dst);

// Which netmap prefixes the TUN may route (IPv4, not /0, de-duplicated): a prefix
// that covers one of `underlay_destinations` (DERP nodes, STUN servers, peer
// endpoints) would send the node's own underlay and DERP traffic into its tunnel
// (a loop, and for an exit route such as 0.0.0.0/1 + 128.0.0.0/1 every relay
// connection), so it goes to `skipped` instead.
struct TunRoutePlan {
  std::vector<IpPrefix> routes;
  std::vector<IpPrefix> skipped;
};
TunRoutePlan plan_tun_routes(std::span<const IpPrefix> prefixes,
                             std::span<const IpAddr> underlay_destinations);

// The nft script that creates the table if needed and replaces its rules and set
// contents in one transaction (the drop counter survives). `port` 0: no rules
// (no underlay socket). Pure; unit-tested.
std::string nft_rebuild_script(const std::string& table, std::uint16_t port,
                               std::span<const AllowElement> elements);
// The nft script that adds (or refreshes the lifetime of) elements.
std::string nft_add_script(const std::string& table, std::span<const AllowElement> elements);

struct CandidateLimits {
  std::size_t per_peer = 32;
  std::chrono::seconds lifetime{45};
  double rate_per_second = 20;  // registrations (addresses), all peers together
  double burst = 64;
};

// Learned candidates netproc registered, under the caps of docs/direct-underlay.md.
class CandidateRegistry {
 public:
  using Clock = std::chrono::steady_clock;
  using Limits = CandidateLimits;
  enum class Verdict { kAccepted, kUnknownPeer, kNotPingable, kPeerFull, kRateLimited };

  explicit CandidateRegistry(Limits limits = Limits())
      : limits_(limits), bucket_(limits.rate_per_second, limits.burst) {}

  // The netmap's disco peers; learned candidates of departed peers are forgotten.
  void set_peers(const std::set<std::uint32_t>& peer_ids);
  // Checks one registration and records it (a known address has its lifetime
  // renewed and does not count against the cap).
  Verdict admit(std::uint32_t peer_id, const IpPort& addr, bool enable_ipv6, Clock::time_point now);
  // Registered and not expired, with the lifetime each has left (at least 1 s).
  std::vector<std::pair<IpPort, std::chrono::seconds>> live(Clock::time_point now);
  std::chrono::seconds lifetime() const { return limits_.lifetime; }

 private:
  void prune(Clock::time_point now);
  Limits limits_;
  std::set<std::uint32_t> peers_;
  std::map<std::uint32_t, std::map<IpPort, Clock::time_point>> learned_;  // expiry
  TokenBucket bucket_;
};

std::string_view to_string(CandidateRegistry::Verdict v);

// The installed table. Destroying it deletes the table.
class NftAllowlist {
 public:
  // Removes tables left by brokers that are gone, then creates "tailwarden_<pid>".
  static Result<std::unique_ptr<NftAllowlist>> install(std::uint16_t port,
                                                       std::span<const AllowElement> elements);
  ~NftAllowlist();
  NftAllowlist(const NftAllowlist&) = delete;
  NftAllowlist& operator=(const NftAllowlist&) = delete;

  Status rebuild(std::uint16_t port, std::span<const AllowElement> elements);
  Status add(std::span<const AllowElement> elements);
  // Datagrams the kernel dropped since install (rebuilds keep the counter).
  std::uint64_t dropped_packets();
  const std::string& table() const { return table_; }

 private:
  NftAllowlist(nft_ctx* ctx, std::string table) : ctx_(ctx), table_(std::move(table)) {}
  Status run(const std::string& script);
  nft_ctx* ctx_;
  std::string table_;
};

}  // namespace tw::broker
