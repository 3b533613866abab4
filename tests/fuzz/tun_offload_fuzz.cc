// Fuzz target: any bytes read from the TUN (virtio-net header + packet) go through
// the TSO segmenter; whatever it accepts goes through the GRO coalescer, and every
// coalesced write must split again into exactly the packets that went in.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dataproc/offload/tun_offload.h"

namespace {

tw::offload::Segmenter seg;
tw::offload::Segmenter reseg;
tw::offload::Coalescer co;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > tw::offload::kMaxTunRead) return 0;
  std::vector<std::uint8_t> read(data, data + size);
  if (seg.split(read) != tw::offload::SplitError::kNone) return 0;
  if (seg.count() == 0 || seg.count() > tw::offload::kMaxSegments) std::abort();
  std::vector<std::vector<std::uint8_t>> in;
  for (std::size_t i = 0; i < seg.count(); ++i) {
    in.emplace_back(seg.packet(i).begin(), seg.packet(i).end());
    if (in.back().size() > 65535) std::abort();
  }
  for (const auto& p : in) {
    if (!co.add(p)) std::abort();
  }
  std::vector<std::vector<std::uint8_t>> out;
  co.finish([&](tw::ByteView w, std::size_t) {
    if (w.size() < tw::offload::kVnetHdrLen) std::abort();
    const auto h = tw::offload::load_vnet_hdr(w.data());
    std::vector<std::uint8_t> copy(w.begin(), w.end());
    if (h.gso_type == tw::offload::kGsoNone) {
      out.emplace_back(copy.begin() + tw::offload::kVnetHdrLen, copy.end());
      return;
    }
    if (reseg.split(copy) != tw::offload::SplitError::kNone) std::abort();
    for (std::size_t i = 0; i < reseg.count(); ++i)
      out.emplace_back(reseg.packet(i).begin(), reseg.packet(i).end());
  });
  if (out != in) std::abort();
  return 0;
}
