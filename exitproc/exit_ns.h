// Fixed facts of the exit network namespace, shared by the broker (which builds the
// namespace, its TUN, nft redirects and listeners) and tailwarden-exitproc (which
// serves the listeners). See docs/design.md, "Exit node".
#pragma once

#include <cstdint>

namespace tw::exitproc {

// The TUN device inside the exit namespace and its addresses.
inline constexpr const char* kExitTunName = "tw-exit";
inline constexpr const char* kExitTunAddrV4 = "169.254.77.1";       // /32
inline constexpr const char* kExitTunAddrV6 = "fd7a:7477:6578::1";  // /128, ULA
// nft prerouting redirects (iifname tw-exit) to these local ports:
inline constexpr std::uint16_t kExitTcpPort = 7001;  // all TCP
inline constexpr std::uint16_t kExitUdpPort = 7002;  // UDP other than port 53: counted, dropped
inline constexpr std::uint16_t kExitDnsPort = 7053;  // UDP port 53
inline constexpr int kExitTcpBacklog = 1024;
// The nft table the broker installs in the exit namespace.
inline constexpr const char* kExitNftTable = "tailwarden_exit";

// Defaults for ExitSetup's limits.
inline constexpr std::uint32_t kDefaultMaxFlows = 4096;
inline constexpr std::uint32_t kDefaultMaxFlowsPerSource = 512;
inline constexpr std::uint32_t kDefaultIdleTimeoutMs = 300'000;
inline constexpr std::uint32_t kDefaultHandshakeTimeoutMs = 10'000;
inline constexpr std::uint32_t kDefaultMaxDnsQueries = 256;
inline constexpr std::uint32_t kDefaultDnsTimeoutMs = 5'000;
inline constexpr std::uint16_t kDnsPort = 53;

}  // namespace tw::exitproc
