// Fuzz target: MapResponse JSON from the control server. Every message that parses is
// applied; whatever netmap results must be accepted by the netmap-file parser (the
// broker's check), or the conversion has a bug.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ctlproc/netmap_json.h"
#include "ctlproc/tailcfg.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool init = (tw::crypto_init(), true);
  (void)init;
  // Several messages separated by a NUL byte: a first map, then deltas.
  std::string text(reinterpret_cast<const char*>(data), size);
  tw::ctl::MapState state;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\0', pos);
    if (end == std::string::npos) end = text.size();
    auto m = tw::ctl::parse_map_response(std::string_view(text).substr(pos, end - pos));
    if (m.ok() && state.apply(*m).ok()) {
      auto nm = state.to_netmap();
      if (nm.ok()) {
        auto again = tw::parse_netmap(tw::ctl::netmap_to_json(*nm), "fuzz");
        if (!again.ok()) std::abort();
      }
    }
    (void)tw::ctl::parse_register_response(std::string_view(text).substr(pos, end - pos));
    pos = end + 1;
  }
  return 0;
}
