// The relay's STUN binding-request parser (tailwarden-derper answers UDP from anyone).
#include <cstddef>
#include <cstdint>

#include "tests/support/derper/stun_responder.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)tw::derper::parse_binding_request(tw::ByteView(data, size));
  return 0;
}
