// Fuzz target: netmap and DERP map JSON from a controller never crash the parser.
#include <cstdint>
#include <string>

#include "common/netmap.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool init = (tw::crypto_init(), true);
  (void)init;
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)tw::parse_netmap(text, "fuzz");
  (void)tw::parse_derp_map(text, "fuzz");
  return 0;
}
