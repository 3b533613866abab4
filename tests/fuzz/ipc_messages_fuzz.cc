// Fuzz target: every control-message decoder (the header picks the type). Nothing
// may crash; anything accepted must re-encode to exactly the same bytes (one
// encoding per message), and the catalogue check must be total.
#include <cstdint>
#include <cstdlib>

#include "ipc/catalogue.h"
#include "ipc/messages.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tw::ipc;
  tw::ByteView in(data, size);
  auto m = decode_message(in);
  if (m.ok()) {
    auto again = encode_message(*m);
    if (!again.ok()) std::abort();
    if (again->size() != size || !std::equal(again->begin(), again->end(), data)) std::abort();
  }
  if (size >= kHeaderBytes) {
    std::uint16_t type = tw::load_be16(data + 6);
    for (auto link : {LinkKind::kBrokerNetproc, LinkKind::kBrokerDataproc, LinkKind::kNetprocDataproc}) {
      for (auto role : {Role::kBroker, Role::kNetproc, Role::kDataproc}) {
        for (auto phase : {Phase::kSetup, Phase::kRunning}) {
          (void)check_admissible(link, role, phase, type, data[0] % 3);
        }
      }
    }
  }
  return 0;
}
