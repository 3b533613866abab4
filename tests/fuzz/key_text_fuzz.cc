// Fuzz target: key text parsing and key-file parsing never crash and never accept
// anything that does not re-serialise to the same text.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/keyfile.h"
#include "common/keys.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool init = (tw::crypto_init(), true);
  (void)init;
  std::string text(reinterpret_cast<const char*>(data), size);
  if (auto k = tw::NodePublic::parse(text); k.ok()) {
    if (k->to_string() != text && k->to_string() != "nodekey:" + tw::to_hex(k->bytes())) std::abort();
  }
  (void)tw::DiscoPublic::parse(text);
  (void)tw::NodePrivate::parse(text);
  (void)tw::parse_key_file_text(text, "fuzz");
  return 0;
}
