#include "netproc/magicsock/gro_split.h"

#include <algorithm>
#include <cstring>

namespace tw::magicsock {

GroSplitResult split_gro(std::span<const RxChunk> chunks, std::uint8_t* priv, std::size_t cap,
                         std::size_t length, std::size_t gso_size, std::span<RxSegment> out) {
  GroSplitResult r;
  if (length > cap) {
    r.dropped = 1;
    return r;
  }
  const std::size_t seg = (gso_size == 0 || gso_size >= length) ? std::max<std::size_t>(length, 1)
                                                                : gso_size;
  const std::size_t total = length == 0 ? 1 : (length + seg - 1) / seg;
  const std::size_t give = std::min({total, out.size(), kMaxGroSegments});
  r.dropped = total - give;
  // A chunk's usable length: the part of it below cap (a layout reaching past cap is
  // clipped, never trusted).
  auto usable = [&](std::size_t j, std::size_t at) {
    return std::min<std::size_t>(chunks[j].len, cap - std::min(cap, at));
  };
  std::size_t c = 0;         // the chunk that may hold `start`
  std::size_t chunk_at = 0;  // its offset
  for (std::size_t k = 0; k < give; ++k) {
    const std::size_t start = k * seg;
    const std::size_t len = std::min(seg, length - start);
    const std::size_t end = start + len;
    while (c < chunks.size() && chunk_at + usable(c, chunk_at) <= start &&
           !(chunk_at == start && len == 0)) {
      chunk_at += usable(c, chunk_at);
      ++c;
    }
    RxSegment& s = out[r.count++];
    s.priv = priv + start;
    s.length = static_cast<std::uint32_t>(len);
    if (c < chunks.size() && chunk_at == start && chunks[c].slot != kNoSlot &&
        len <= usable(c, chunk_at)) {
      s.data = chunks[c].data;
      s.slot = chunks[c].slot;
      continue;
    }
    // Copy whatever of [start, end) the chunks hold to the same offsets in priv.
    std::size_t at = chunk_at;
    for (std::size_t j = c; j < chunks.size() && at < end; ++j) {
      const std::size_t cl = usable(j, at);
      const std::size_t lo = std::max(start, at), hi = std::min(end, at + cl);
      if (lo < hi) std::memcpy(priv + lo, chunks[j].data + (lo - at), hi - lo);
      at += cl;
    }
    s.data = s.priv;
    s.slot = kNoSlot;
  }
  return r;
}

std::uint8_t* to_private(RxSegment& s) {
  if (s.slot != kNoSlot) {
    std::memcpy(s.priv, s.data, s.length);
    s.data = s.priv;
    s.slot = kNoSlot;
  }
  return s.data;
}

}  // namespace tw::magicsock
