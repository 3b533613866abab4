// Disco messages as JSON, in the exact shape of `tailwarden debug disco-parse`:
// {"type":"ping","version":0,"txid":"<24 hex>","node_key":"nodekey:…"|null,
// "padding":N}, {"type":"pong",…,"src":"IP:PORT"}, {"type":"call_me_maybe",…,
// "endpoints":[…]}, {"type":"unknown","code":N}. Keys keep this order.
#pragma once

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "netproc/disco/message.h"

namespace tw::disco {

nlohmann::ordered_json message_to_json(const Message& m);

// The inverse. "version" defaults to 0, "node_key" to null, "padding" to 0. A
// call_me_maybe takes at most 16 endpoints, none unspecified (what we would send).
Result<Message> message_from_json(const nlohmann::json& j);

}  // namespace tw::disco
