// Fuzz target: the ClientInfo seal request check accepts only ClientInfo objects,
// never crashes or throws, and its canonical form is a fixed point.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dataproc/wireguard/clientinfo_seal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto canon = tw::wg::canonical_client_info(tw::ByteView(data, size));
  if (!canon) return 0;
  if (canon->size() > tw::wg::kMaxClientInfoJson) std::abort();
  auto again = tw::wg::canonical_client_info(
      tw::ByteView(reinterpret_cast<const std::uint8_t*>(canon->data()), canon->size()));
  if (!again || *again != *canon) std::abort();
  return 0;
}
