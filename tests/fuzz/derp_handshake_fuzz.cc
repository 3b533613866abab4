// DERP handshake payloads: ServerKey and ClientInfo framing and the ClientInfo JSON
// (the server decodes it after opening the box).
#include <cstddef>
#include <cstdint>

#include "netproc/derp/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tw::derp;
  tw::ByteView in(data, size);
  (void)parse_server_key(in);
  if (auto ci = parse_client_info(in); ci) (void)ci->sealed.size();
  (void)parse_server_info(in);
  (void)parse_client_info_json(in);
  return 0;
}
