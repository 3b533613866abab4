// The exit namespace (docs/design.md#exit-node): a network namespace the broker
// creates for the privacy-proxy exit, whose only interfaces are `lo` and the TUN
// device `tw-exit`, and whose only routes lead into that TUN. Peers' flows to the
// internet are written by dataproc into `tw-exit`; the namespace's own kernel TCP
// terminates them on listeners the broker opened there and passes to exitproc. The
// kernel, not our code, guarantees that nothing a peer sends can leave except through
// a proxy connection the broker dials from the host namespace.
//
// nftables (table inet tailwarden_exit, in that namespace only):
//   prerouting filter: IPv6 from tw-exit: TCP -> reset, anything else -> ICMPv6
//     admin-prohibited; IPv4 ICMP echo -> host-unreachable; IPv4 other than TCP/UDP
//     -> drop (each counted by a named counter);
//   prerouting nat: IPv4 TCP -> :kExitTcpPort, UDP dport 53 -> :kExitDnsPort,
//     other UDP -> :kExitUdpPort (redirect: the listeners see the original
//     destination through SO_ORIGINAL_DST / the conntrack NAT);
//   input: lo, established/related, and redirected packets to the three ports only;
//   forward: drop (forwarding stays off in this namespace; nothing is routed through).
// No sysctl is written (systemd's ProtectKernelTunables keeps /proc/sys read-only):
// the rejects are done in prerouting, before any routing decision.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "exitproc/exit_ns.h"
#include "ipc/unique_fd.h"

namespace tw::broker {

// The names, addresses and ports exitproc relies on (exitproc/exit_ns.h).
inline constexpr const char* kExitTunName = exitproc::kExitTunName;
inline constexpr const char* kExitTable = exitproc::kExitNftTable;
inline constexpr const char* kExitTunAddress4 = exitproc::kExitTunAddrV4;  // /32 on tw-exit
inline constexpr const char* kExitTunAddress6 = exitproc::kExitTunAddrV6;  // /128 on tw-exit (ULA)

struct ExitPorts {
  std::uint16_t tcp = exitproc::kExitTcpPort;
  std::uint16_t dns = exitproc::kExitDnsPort;
  std::uint16_t udp = exitproc::kExitUdpPort;
};

struct ExitNamespace {
  ipc::UniqueFd netns;         // the namespace itself (/proc/self/ns/net while inside)
  ipc::UniqueFd tun;           // tw-exit, non-blocking; dataproc reads and writes it
  ipc::UniqueFd tcp_listener;  // 0.0.0.0:tcp, non-blocking, backlog 1024
  ipc::UniqueFd dns_socket;    // UDP 0.0.0.0:dns
  ipc::UniqueFd udp_socket;    // UDP 0.0.0.0:udp (the "other UDP" sink)
  std::string tun_name;
};

// Creates the namespace, tw-exit (MTU `mtu`), its addresses and routes, the nft table
// and the listeners, and returns to the caller's namespace (also on failure). Needs
// CAP_SYS_ADMIN and CAP_NET_ADMIN. Call from the broker's main thread only (the
// namespace switch is per thread).
Result<ExitNamespace> create_exit_namespace(unsigned mtu, const ExitPorts& ports);

// Runs `fn` inside the namespace `netns` and comes back (for audit and counters).
Status in_namespace(int netns, const std::function<void()>& fn);

// What `audit` checks: the interfaces and routes of the namespace.
struct ExitIsolation {
  std::vector<std::string> interfaces;  // from /proc/thread-self/net/dev
  std::vector<std::string> routes;      // "dst/bits dev" lines, IPv4 and IPv6
  std::vector<std::string> problems;    // empty: only lo + tw-exit, routes only via tw-exit
  bool nft_table_present = false;
};
ExitIsolation inspect_exit_namespace(int netns);

// The named counters of the exit table (refused_ipv6, refused_icmp, dropped_other),
// read inside the namespace; absent names read as 0.
struct ExitKernelCounters {
  std::uint64_t refused_ipv6 = 0;
  std::uint64_t refused_icmp = 0;
  std::uint64_t dropped_other = 0;
};
Result<ExitKernelCounters> read_exit_counters(int netns);

}  // namespace tw::broker
