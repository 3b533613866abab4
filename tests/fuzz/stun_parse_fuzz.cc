// Fuzz target: STUN response parsing never crashes, and a parsed address is valid.
#include <cstdint>
#include <cstdlib>

#include "netproc/stun/stun.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const tw::ByteView in(data, size);
  (void)tw::stun::is_stun(in);
  (void)tw::stun::looks_like_binding(in);
  auto r = tw::stun::parse_binding_response(in);
  if (r.ok() && (!r->mapped.valid() || !tw::stun::txid_matches(in, r->txid))) std::abort();
  return 0;
}
