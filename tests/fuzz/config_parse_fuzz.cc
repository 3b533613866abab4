// Fuzzes the broker config parser (TOML text from the operator): any input must
// give a config or an error naming the file, never a crash or a throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "broker/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = tw::broker::parse_config_text(text, "fuzz.toml");
  if (!config && config.error().rfind("fuzz.toml", 0) != 0) __builtin_trap();
  return 0;
}
