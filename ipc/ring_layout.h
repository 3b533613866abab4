// Byte layout of the ring mapping, shared by ring_memory.cc and ring.cc.
//   [0, 4096)    header line (magic, version, geometry), then per ring three
//                separate lines: producer index, consumer index, wakeup flag
//   [4096, ...)  ring 0 slots, then ring 1 slots (dense: header + first 2 KiB)
//   [page, ...)  ring 0 overflow areas, then ring 1's (bytes beyond 2 KiB)
// Each of the four slot areas starts on a page of its own, so that a consumer maps
// the other side's slots read-only (ring_memory.h: RingMemory::attach).
// A slot is [u32 length][u32 peer id][first kInlineBytes of payload]; the rest of
// a long datagram goes to the slot's overflow area. A length of kSlotSkipped marks
// a slot the producer received something else into (in-place receive, ring.h):
// the consumer passes over it. Common packets (MTU-sized and
// below) thus touch only the dense part, which keeps them cheap in cache and TLB,
// while every slot can still hold a 64 KiB datagram. Strides are multiples of 64
// that are not multiples of 4096, so slot headers do not all share a cache set.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tw::ipc::layout {

constexpr std::uint32_t kMagic = 0x54575247;  // "TWRG"
constexpr std::uint32_t kVersion = 4;  // 2: skipped slots; 3: page-aligned areas; 4: room wanted
// Two lines apart, because adjacent-line prefetch pairs 64-byte lines.
constexpr std::size_t kLine = 128;
constexpr std::size_t kPage = 4096;

constexpr std::size_t kMagicOffset = 0;
constexpr std::size_t kVersionOffset = 4;
constexpr std::size_t kSlotCountOffset = 8;
constexpr std::size_t kSlotCapacityOffset = 12;

constexpr std::size_t kControlOffset = kLine;
constexpr std::size_t kControlBytes = 3 * kLine;
constexpr std::size_t kProducerIndex = 0;       // within a ring's control block
constexpr std::size_t kConsumerIndex = kLine;
constexpr std::size_t kWakeupFlag = 2 * kLine;
// Free slots a held-back producer waits for (0: none); set by the producer, taken
// by the consumer, which then rings the producer (ring.h). On the wakeup line: both
// sides write it, and it is touched only when a side stalls.
constexpr std::size_t kRoomWanted = 2 * kLine + 64;
constexpr std::size_t kSlotsOffset = kPage;

constexpr std::size_t kSlotHeaderBytes = 8;
constexpr std::size_t kSlotLength = 0;
constexpr std::size_t kSlotPeerId = 4;
constexpr std::size_t kInlineBytes = 2048;
// Never a length: slot capacities are at most 1 MiB (ring_memory.h).
constexpr std::uint32_t kSlotSkipped = 0xffffffff;

}  // namespace tw::ipc::layout
