// Fuzz target: the per-datagram classifier never crashes and agrees with the
// STUN and disco predicates it is built from.
#include <cstdint>
#include <cstdlib>

#include "netproc/disco/box.h"
#include "netproc/disco/datagram_kind.h"
#include "netproc/stun/stun.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const tw::ByteView in(data, size);
  const auto kind = tw::disco::classify_datagram(in);
  if ((kind == tw::disco::DatagramKind::kStun) != tw::stun::looks_like_binding(in)) std::abort();
  if (kind == tw::disco::DatagramKind::kDisco && !tw::disco::looks_like_disco(in)) std::abort();
  (void)tw::disco::to_string(kind);
  return 0;
}
