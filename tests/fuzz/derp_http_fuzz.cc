// The HTTP upgrade exchange: the client's response parser and the relay's request
// parser.
#include <cstddef>
#include <cstdint>

#include "netproc/derp/http_upgrade.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tw::derp;
  tw::ByteView in(data, size);
  if (auto r = parse_upgrade_response(in); r && *r && (*r)->length > size) __builtin_trap();
  if (auto q = parse_upgrade_request(in); q && *q) {
    if ((*q)->length > size) __builtin_trap();
    (void)(*q)->wants_derp();
    (void)(*q)->fast_start();
  }
  return 0;
}
