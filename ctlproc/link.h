// The broker <-> ctlproc link: typed messages on the SOCK_SEQPACKET at fd 3, each a
// 12-byte header (magic "TWCT", version, type, body length; big-endian; the framing is
// ipc/link_frame.h) and a body of exactly that length, read with ipc/wire.h's bounded
// readers. The control TCP fd
// rides only on CtlConn. Large netmaps travel as numbered parts of netmap-file JSON,
// which the broker reassembles (NetmapAssembler) and checks with parse_netmap, the
// same parser as `tailwarden netmap apply`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/bytes.h"
#include "common/keys.h"
#include "common/netmap.h"
#include "common/result.h"
#include "ctlproc/tailcfg.h"
#include "ipc/link_frame.h"

namespace tw::ctl {

constexpr std::uint32_t kLinkMagic = 0x54574354;  // "TWCT"
constexpr std::uint16_t kLinkVersion = 1;
constexpr std::size_t kLinkHeaderBytes = ipc::kLinkFrameHeaderBytes;
constexpr std::size_t kMaxLinkBody = 150 * 1024;
constexpr std::size_t kMaxLinkDatagram = kLinkHeaderBytes + kMaxLinkBody;
constexpr std::size_t kNetmapChunk = 128 * 1024;
constexpr std::size_t kMaxLinkText = 2048;
constexpr std::uint32_t kMaxRoutableIps = 64;

enum class ConnPurpose : std::uint8_t { kKeyFetch = 1, kSession = 2 };

// ---- broker -> ctlproc ----
struct CtlSetup {
  static constexpr std::uint16_t kType = 1;
  KeyBytes machine_private{};
  NodePublic node_public;
  DiscoPublic disco_public;  // zero: not known yet
  KeyBytes control_key{};    // zero: fetch it from /key
  std::string authority;     // host[:port]
  std::string auth_key;      // empty: none (interactive login)
  std::string hostname;
  std::uint32_t home_derp = 0;
  std::vector<Endpoint> endpoints;
  // Hostinfo.RoutableIPs: the routes we offer (0.0.0.0/0 and ::/0: an exit node).
  std::vector<IpPrefix> routable_ips;
};
struct CtlConn {  // carries 1 fd
  static constexpr std::uint16_t kType = 2;
  ConnPurpose purpose = ConnPurpose::kSession;
};
struct CtlDialFailed {
  static constexpr std::uint16_t kType = 3;
  ConnPurpose purpose = ConnPurpose::kSession;
  std::string reason;
};
struct CtlEndpoints {
  static constexpr std::uint16_t kType = 4;
  std::uint32_t home_derp = 0;
  DiscoPublic disco_public;
  std::vector<Endpoint> endpoints;
};

// ---- ctlproc -> broker ----
struct CtlDialRequest {
  static constexpr std::uint16_t kType = 10;
  ConnPurpose purpose = ConnPurpose::kSession;
};
struct CtlNetmapPart {
  static constexpr std::uint16_t kType = 11;
  std::uint64_t seq = 0;
  std::uint16_t part = 0;
  std::uint16_t parts = 1;
  Bytes data;
};
struct CtlStatus {
  static constexpr std::uint16_t kType = 12;
  std::string state;  // connecting | registering | needs-login | connected | backing-off
  std::string auth_url;
  std::string error;
  std::string user;
  std::uint64_t maps = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::string key_expiry;  // our node key's expiry (RFC 3339) from the map; empty: none
  bool key_expired = false;
  std::uint64_t expired_peers = 0;  // peers left out of the netmap: key expired
};

using ToCtlproc = std::variant<CtlSetup, CtlConn, CtlDialFailed, CtlEndpoints>;
using ToBroker = std::variant<CtlDialRequest, CtlNetmapPart, CtlStatus>;

Bytes encode_link(const ToCtlproc& m);
Bytes encode_link(const ToBroker& m);
// `fds` is how many fds arrived with the datagram: exactly 1 for CtlConn, else 0.
Result<ToCtlproc> decode_to_ctlproc(ByteView datagram, std::size_t fds);
Result<ToBroker> decode_to_broker(ByteView datagram, std::size_t fds);

// Splits netmap JSON into parts of at most kNetmapChunk bytes.
std::vector<CtlNetmapPart> split_netmap(std::uint64_t seq, const std::string& json);

// Reassembles parts in order; a part out of order, from another seq or with another
// count is an error (the broker drops the link). The complete text is what the
// broker hands to its netmap parser, the one `netmap apply` uses.
class NetmapAssembler {
 public:
  // Returns the complete netmap JSON text when the last part arrives.
  Result<std::optional<std::string>> add(const CtlNetmapPart& p);

 private:
  std::uint64_t seq_ = 0;
  std::uint16_t next_ = 0;
  std::uint16_t parts_ = 0;
  std::uint64_t last_done_ = 0;
  std::string text_;
};

}  // namespace tw::ctl
