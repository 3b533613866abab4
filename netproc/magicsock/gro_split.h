// Splitting one received underlay message into the datagrams it carries
// (docs/direct-underlay.md#per-datagram-robustness). With UDP_GRO on the socket the kernel
// hands over a run of same-flow datagrams as one message plus their segment size
// (every segment that size, the last one maybe shorter). The message was scattered
// by recvmmsg over "chunks" (ring slot areas, for receiving straight into the
// net->data ring) and, past them, over a private buffer at the same offsets. This
// finds every datagram: in place when it lies exactly at the start of a slot's
// dense part and fits it, otherwise copied together in the private buffer (the
// private bytes under a chunk's offsets are free scratch for that).
//
// Pure code over the lengths the kernel reported, so a fuzz target can drive it with
// any layout and any (hostile or odd) length and segment size: nothing is read or
// written outside the chunks and the private buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace tw::magicsock {

constexpr std::uint32_t kNoSlot = 0xffffffffu;
// A message carries at most this many datagrams (the kernel's UDP_MAX_SEGMENTS is 64
// or 128; its GRO stops at 64). Anything beyond is dropped and counted.
constexpr std::size_t kMaxGroSegments = 128;

// One piece of a message's scatter list, in order from offset 0. `slot` is the
// placement index of the ring slot whose dense part starts here, or kNoSlot for a
// piece that is not the start of a slot (a slot's overflow area).
struct RxChunk {
  std::uint8_t* data = nullptr;
  std::uint32_t len = 0;
  std::uint32_t slot = kNoSlot;
};

// A datagram found in a message: in slot `slot` at `data` (kNoSlot: in private
// memory, data == priv). `priv` is where its bytes go in the private buffer when
// they must be copied out of the slot (to_private).
struct RxSegment {
  std::uint8_t* data = nullptr;
  std::uint8_t* priv = nullptr;
  std::uint32_t length = 0;
  std::uint32_t slot = kNoSlot;
};

struct GroSplitResult {
  std::size_t count = 0;    // segments written to `out`
  std::size_t dropped = 0;  // datagrams that were there but could not be given out
};

// Splits a message of `length` bytes. `gso_size` is the kernel's segment size, or 0
// when it sent none (one datagram). `priv` holds `cap` bytes; the chunks cover a
// prefix of [0, cap) and the kernel wrote the rest of the message to priv at the
// same offsets. A length beyond `cap` drops the message (one datagram counted); segments past
// out.size() or kMaxGroSegments are dropped and counted.
GroSplitResult split_gro(std::span<const RxChunk> chunks, std::uint8_t* priv, std::size_t cap,
                         std::size_t length, std::size_t gso_size, std::span<RxSegment> out);

// Copies a segment's bytes from its slot to its private place (no-op when it is
// already private) and returns the private view's start.
std::uint8_t* to_private(RxSegment& s);

}  // namespace tw::magicsock
