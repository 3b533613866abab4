// The shared mapping that holds the two packet rings between netproc and dataproc.
// The broker creates it as a sealed memfd (it cannot shrink or grow, so no side can
// make the other fault on a truncated mapping) and hands the fd to both children;
// nothing else can open it. Geometry is read from the header once, at attach, and
// checked against the sealed size; no pointer ever lives in the shared memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "common/result.h"
#include "ipc/unique_fd.h"

namespace tw::ipc {

enum class Direction : std::uint8_t { kNetToData = 0, kDataToNet = 1 };

struct RingGeometry {
  // Slots per ring, a power of two. 256 (~2.8 ms of 1400-byte packets at 1 Gbit/s)
  // keeps both sides busy without stalls, and its ~512 KiB dense part stays warmer
  // in cache than 512 slots did: netproc receives straight into these slots, and
  // the receive path measured 0.84 of bare recvmmsg with 256 against 0.77 with 512.
  std::uint32_t slot_count = 256;
  // Largest datagram a slot holds. 64 KiB fits a GSO batch. Only the overflow
  // pages long datagrams touch become resident (at most 32 MiB per ring), so
  // big slots cost nothing for MTU-sized traffic.
  std::uint32_t slot_capacity = 65536;
};

constexpr std::uint32_t kMaxSlotCount = 1u << 16;
constexpr std::uint32_t kMaxSlotCapacity = 1u << 20;

// Where one ring lives inside a mapping; computed locally, never read from it.
struct RingEnd {
  std::uint8_t* control = nullptr;  // producer line, consumer line, wakeup line
  std::uint8_t* slots = nullptr;     // dense part: header and first bytes
  std::uint8_t* overflow = nullptr;  // the rest of long datagrams
  std::uint32_t slot_count = 0;
  std::uint32_t slot_capacity = 0;
  std::size_t slot_stride = 0;
  std::size_t inline_capacity = 0;   // payload bytes in the dense part
  std::size_t overflow_stride = 0;
};

class RingMemory {
 public:
  // Broker side: a fresh, zeroed, sealed memfd of the right size, mapped.
  static Result<RingMemory> create(const RingGeometry& geometry);
  // Child side: maps a memfd received from the broker after checking its seals,
  // its size and the geometry in its header. Takes ownership of the fd. With
  // `consumed`, the slots of the ring this child consumes are mapped read-only from
  // a read-only reopen and the writable fd is closed: a consumer cannot rewrite
  // what the producer may still be parsing (only the index lines stay writable).
  static Result<RingMemory> attach(UniqueFd fd, std::optional<Direction> consumed = std::nullopt);

  RingMemory(RingMemory&& o) noexcept;
  RingMemory& operator=(RingMemory&& o) noexcept;
  RingMemory(const RingMemory&) = delete;
  RingMemory& operator=(const RingMemory&) = delete;
  ~RingMemory();

  RingEnd ring(Direction d) const;
  int fd() const { return fd_.get(); }  // -1 in a child that protected its consumed ring
  std::size_t size() const { return size_; }
  const RingGeometry& geometry() const { return geometry_; }

  // Broker side, while one child is dead: empties both rings and clears the
  // wakeup flags. The surviving child is then told (RingReset) to resync().
  void reset();

 private:
  RingMemory() = default;
  Status map_and_layout(std::size_t size, bool writable_header);
  Status protect_consumed(Direction d);

  UniqueFd fd_;
  std::uint8_t* base_ = nullptr;
  std::size_t size_ = 0;
  RingGeometry geometry_;
};

// Size of the whole mapping for a geometry, or 0 if the geometry is invalid.
std::size_t ring_mapping_size(const RingGeometry& g);
std::size_t ring_slot_stride(std::uint32_t slot_capacity);
std::size_t ring_overflow_stride(std::uint32_t slot_capacity);

}  // namespace tw::ipc
