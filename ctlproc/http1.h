// The two HTTP/1.1 exchanges of ts2021 that happen before Noise: fetching the control
// server's Noise key (GET /key?v=N) and the upgrade (POST /ts2021 with the initiation
// in X-Tailscale-Handshake, answered by 101). Header blocks are split by
// netproc/derp/http_upgrade's bounded parser; bodies only with Content-Length.
#pragma once

#include <array>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/keys.h"
#include "common/machine_key.h"
#include "common/result.h"
#include "ctlproc/noise.h"

namespace tw::ctl {

using tw::MachinePrivate;
using tw::MachinePublic;

constexpr std::size_t kMaxKeyResponseBytes = 64 * 1024;

// "GET /key?v=<capver> HTTP/1.1" with Connection: close.
std::string key_request(const std::string& host, int capver);

// Parses a complete response (read until EOF or Content-Length satisfied). nullopt:
// more bytes are needed. The body is OverTLSPublicKeyResponse JSON; only publicKey is
// used and it must be a non-zero mkey.
Result<std::optional<MachinePublic>> parse_key_response(ByteView buffered, bool eof);

// "POST /ts2021" with the base64 initiation.
std::string upgrade_request(const std::string& host,
                            const std::array<std::uint8_t, kInitiationLen>& initiation);

struct UpgradeReply {
  std::size_t length = 0;  // bytes of the HTTP head; what follows is Noise
};
// nullopt: incomplete. Error unless 101 with Upgrade exactly tailscale-control-protocol.
Result<std::optional<UpgradeReply>> parse_upgrade_reply(ByteView buffered);

}  // namespace tw::ctl
