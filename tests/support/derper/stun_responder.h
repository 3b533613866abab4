// The STUN side of the relay: Tailscale's servers answer only binding requests that
// carry SOFTWARE "tailnode" and end in a valid FINGERPRINT, and
// reply with a single XOR-MAPPED-ADDRESS.
#pragma once

#include "common/bytes.h"
#include "common/ipaddr.h"
#include "common/result.h"
#include "netproc/stun/stun.h"

namespace tw::derper {

Result<stun::TxId> parse_binding_request(ByteView packet);
Bytes binding_response(const stun::TxId& txid, const IpPort& mapped);

}  // namespace tw::derper
