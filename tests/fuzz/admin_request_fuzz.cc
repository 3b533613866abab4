// Fuzz target: admin socket request lines.
#include <cstdint>
#include <string>

#include "broker/admin_request.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)tw::broker::parse_admin_request(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
