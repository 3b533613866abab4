// The broker <-> exitproc link: typed messages on the SOCK_SEQPACKET at fd 3, each a
// 12-byte header (magic "TWEX", version, type, body length; big-endian; the framing is
// ipc/link_frame.h) and a body of exactly that length, read with ipc/wire.h's bounded
// readers. fds ride only on
// ExitSetup (3: TCP listener, DNS UDP socket, other-UDP socket) and ProxyConn (1: a
// TCP connection to the upstream proxy the broker dialled). Any violation is an error
// the receiver acts on (the broker drops the link and counts it; exitproc exits).
// Credentials travel only on ExitSetup; ExitStats never carries them.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <variant>

#include "common/bytes.h"
#include "common/result.h"
#include "exitproc/exit_ns.h"
#include "ipc/link_frame.h"

namespace tw::exitproc {

constexpr std::uint32_t kLinkMagic = 0x54574558;  // "TWEX"
constexpr std::uint16_t kLinkVersion = 1;
constexpr std::size_t kLinkHeaderBytes = ipc::kLinkFrameHeaderBytes;
constexpr std::size_t kMaxLinkBody = 4096;
constexpr std::size_t kMaxLinkDatagram = kLinkHeaderBytes + kMaxLinkBody;
constexpr std::size_t kMaxLinkText = 512;
constexpr std::size_t kMaxCredential = 255;  // RFC 1929 ULEN/PLEN
constexpr std::size_t kMaxProxyHost = 255;
constexpr std::size_t kSetupFds = 3;  // [tcp listener, dns udp, other udp]

enum class ProxyKind : std::uint8_t { kSocks5 = 1, kHttpConnect = 2 };

struct ExitLimits {
  std::uint32_t max_flows = kDefaultMaxFlows;
  std::uint32_t max_flows_per_source = kDefaultMaxFlowsPerSource;
  std::uint32_t idle_timeout_ms = kDefaultIdleTimeoutMs;
  std::uint32_t handshake_timeout_ms = kDefaultHandshakeTimeoutMs;
  std::uint32_t max_dns_queries = kDefaultMaxDnsQueries;
  std::uint32_t dns_timeout_ms = kDefaultDnsTimeoutMs;
  friend bool operator==(const ExitLimits&, const ExitLimits&) = default;
};

// ---- broker -> exitproc ----
struct ExitSetup {  // carries 3 fds
  static constexpr std::uint16_t kType = 1;
  ProxyKind kind = ProxyKind::kSocks5;
  std::string proxy_host;  // host[:port] for the HTTP CONNECT request's Host context; may be empty
  std::string username;    // empty: no authentication
  std::string password;
  std::array<std::uint8_t, 4> dns_resolver{};  // IPv4; port 53
  ExitLimits limits;
};
struct ProxyConn {  // carries 1 fd
  static constexpr std::uint16_t kType = 2;
  std::uint64_t flow = 0;
};
struct ProxyDialFailed {
  static constexpr std::uint16_t kType = 3;
  std::uint64_t flow = 0;
  std::string reason;
};
struct StatsRequest {
  static constexpr std::uint16_t kType = 4;
};

// ---- exitproc -> broker ----
struct DialProxy {
  static constexpr std::uint16_t kType = 10;
  std::uint64_t flow = 0;
};

// Why a client flow was reset (or a DNS query failed). Stable order: the wire and the
// metric labels use it.
enum class Refusal : std::uint8_t {
  kDialFailed = 0,      // the broker could not reach the proxy
  kProxyHandshake = 1,  // the proxy answered something that is not a valid reply, or timed out
  kAuthRefused = 2,     // the proxy refused our credentials (or wanted auth we do not have)
  kConnectRefused = 3,  // the proxy refused the CONNECT (host unreachable, 403, 502 ...)
  kProxyClosed = 4,     // the proxy connection failed or closed with data still to relay
  kLimitTotal = 5,
  kLimitPerSource = 6,
  kIdle = 7,
  kNoDestination = 8,  // SO_ORIGINAL_DST unavailable or not IPv4
};
constexpr std::size_t kRefusalKinds = 9;
const char* refusal_name(Refusal r);

struct ExitStats {
  static constexpr std::uint16_t kType = 11;
  std::uint64_t flows_open = 0;
  std::uint64_t flows_total = 0;
  std::uint64_t bytes_up = 0;    // client -> proxy
  std::uint64_t bytes_down = 0;  // proxy -> client
  std::array<std::uint64_t, kRefusalKinds> refusals{};
  std::uint64_t dns_queries = 0;
  std::uint64_t dns_ok = 0;
  std::uint64_t dns_failed = 0;   // answered SERVFAIL
  std::uint64_t dns_invalid = 0;  // not a query, wrong size: dropped
  std::uint64_t dns_dropped = 0;  // over the concurrent-query bound: dropped
  std::uint64_t udp_dropped = 0;  // other UDP
  std::uint64_t handshakes_ok = 0;
  bool proxy_ok = false;         // the last proxy handshake succeeded
  std::string last_proxy_error;  // kind and short text; never credentials
};

using ToExitproc = std::variant<ExitSetup, ProxyConn, ProxyDialFailed, StatsRequest>;
using ToBroker = std::variant<DialProxy, ExitStats>;

Bytes encode_link(const ToExitproc& m);
Bytes encode_link(const ToBroker& m);
// `fds` is how many fds arrived with the datagram: 3 for ExitSetup, 1 for ProxyConn,
// else 0.
Result<ToExitproc> decode_to_exitproc(ByteView datagram, std::size_t fds);
Result<ToBroker> decode_to_broker(ByteView datagram, std::size_t fds);

}  // namespace tw::exitproc
