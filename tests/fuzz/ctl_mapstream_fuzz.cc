// Fuzz target: the framed (u32 LE) map stream, raw and zstd, never crashes and never
// yields a message over the cap.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "ctlproc/mapstream.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool zstd = (data[0] & 1) != 0;
  const std::size_t chunk = 1 + data[0] / 2;
  tw::ByteView in(data + 1, size - 1);
  tw::ctl::MapFramer framer(zstd);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < in.size(); i += chunk) {
    if (!framer.feed(in.subspan(i, std::min(chunk, in.size() - i)), out).ok()) break;
  }
  for (const auto& m : out) {
    if (m.size() > tw::ctl::kMaxMapMessage) std::abort();
  }
  return 0;
}
