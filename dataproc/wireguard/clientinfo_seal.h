// The narrow sealing service netproc may ask of dataproc: box a DERP ClientInfo for
// one server key with the node private key, and nothing
// else. The JSON must be a small object with only ClientInfo's known fields; what is
// sealed is a canonical re-serialisation of it, never the caller's bytes.
#pragma once

#include <cstdint>

#include "common/bytes.h"
#include "common/keys.h"
#include "common/result.h"

namespace tw::wg {

constexpr std::size_t kMaxClientInfoJson = 1024;
constexpr std::size_t kClientInfoNonceLen = 24;

// Checks the request and returns the canonical JSON to seal.
Result<std::string> canonical_client_info(ByteView json);

// node public(32) || nonce(24) || crypto_box(canonical JSON, nonce, server, node private).
Result<Bytes> seal_derp_client_info(const KeyBytes& node_private, const NodePublic& server,
                                    ByteView json);
// The same with a caller-chosen nonce (tests).
Result<Bytes> seal_derp_client_info_with_nonce(const KeyBytes& node_private,
                                               const NodePublic& server, ByteView json,
                                               const std::uint8_t nonce[kClientInfoNonceLen]);

}  // namespace tw::wg
