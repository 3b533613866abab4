// Fuzz target: disco plaintext parsing never crashes, and whatever parses as Ping,
// Pong or CallMeMaybe re-encodes and parses back to the same message.
#include <cstdint>
#include <cstdlib>

#include "netproc/disco/message.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const tw::ByteView in(data, size);
  auto m = tw::disco::parse_message(in);
  if (!m.ok()) return 0;
  const tw::Bytes again = tw::disco::encode(*m);
  auto back = tw::disco::parse_message(again);
  if (!back.ok()) std::abort();
  // Go's zero-key quirk means a keyless Ping with >= 32 padding can read back
  // differently; every other message must survive the round trip.
  // The encoder never writes an unspecified CallMeMaybe endpoint.
  tw::disco::Message expect = *m;
  if (auto* c = std::get_if<tw::disco::CallMeMaybe>(&expect)) {
    const auto version = c->version;
    *c = tw::disco::make_call_me_maybe({c->endpoints.begin(), c->endpoints.end()});
    c->version = version;
  }
  if (!std::holds_alternative<tw::disco::Ping>(*m) && !(*back == expect)) std::abort();
  return 0;
}
