// Fuzz target: splitting a coalesced (UDP_GRO) message over any scatter layout, any
// reported length and segment size. Every datagram given out must hold exactly the
// message bytes at its offset, lie inside a chunk (in place) or the private buffer,
// and the counts must add up; ASan catches any read or write outside them.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "netproc/magicsock/gro_split.h"

using namespace tw::magicsock;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::size_t at = 0;
  auto u16 = [&] {
    std::uint16_t v = 0;
    if (at + 2 <= size) std::memcpy(&v, data + at, 2);
    at += 2;
    return v;
  };
  const std::size_t cap = 1 + u16() % 4096;
  const std::size_t length = u16() % 5000;  // may exceed cap
  const std::size_t gso = u16() % 4200;     // 0: one datagram
  const std::size_t out_room = u16() % (kMaxGroSegments + 8);
  // Chunks: (length, is a slot head) pairs from the rest of the input; they may
  // reach past cap (the splitter must clip them).
  std::vector<std::vector<std::uint8_t>> store;
  std::vector<RxChunk> chunks;
  std::size_t covered = 0;
  while (at + 3 <= size && chunks.size() < 64) {
    const std::size_t len = u16() % 1500;
    const bool slot = (data[at++] & 1) != 0;
    store.emplace_back(len);
    chunks.push_back(RxChunk{store.back().data(), static_cast<std::uint32_t>(len),
                             slot ? static_cast<std::uint32_t>(chunks.size()) : kNoSlot});
    covered += len;
  }
  // The message as the kernel would have scattered it: chunk bytes up to cap, then
  // the private buffer at the same offsets.
  std::vector<std::uint8_t> msg(length);
  for (std::size_t i = 0; i < length; ++i) msg[i] = static_cast<std::uint8_t>(i * 31 + (i >> 8));
  std::vector<std::uint8_t> priv(cap, 0xA5);
  std::size_t off = 0;
  for (const auto& c : chunks) {
    const std::size_t usable = off < cap ? std::min<std::size_t>(c.len, cap - off) : 0;
    for (std::size_t j = 0; j < usable && off + j < length; ++j) c.data[j] = msg[off + j];
    off += usable;
  }
  for (std::size_t i = off; i < length && i < cap; ++i) priv[i] = msg[i];
  (void)covered;

  std::vector<RxSegment> out(out_room);
  const GroSplitResult r = split_gro(chunks, priv.data(), cap, length, gso, out);
  if (r.count > out_room || r.count > kMaxGroSegments) std::abort();
  if (length > cap) {
    if (r.count != 0 || r.dropped != 1) std::abort();
    return 0;
  }
  const std::size_t seg = (gso == 0 || gso >= length) ? (length == 0 ? 1 : length) : gso;
  const std::size_t total = length == 0 ? 1 : (length + seg - 1) / seg;
  if (r.count + r.dropped != total) std::abort();
  for (std::size_t k = 0; k < r.count; ++k) {
    RxSegment& s = out[k];
    const std::size_t start = k * seg;
    if (s.priv != priv.data() + start) std::abort();
    if (s.length != std::min(seg, length - start)) std::abort();
    if (s.slot != kNoSlot) {
      if (s.slot >= chunks.size() || s.data != chunks[s.slot].data || s.length > chunks[s.slot].len) std::abort();
    } else if (s.data != s.priv) {
      std::abort();
    }
    if (s.length != 0 && std::memcmp(s.data, msg.data() + start, s.length) != 0) std::abort();
    to_private(s);
    if (s.length != 0 && std::memcmp(s.priv, msg.data() + start, s.length) != 0) std::abort();
  }
  return 0;
}
