// Single-producer/single-consumer packet rings over a RingEnd (ring_memory.h).
//
// Indices are free-running u32 counters, the producer's and the consumer's each
// on its own cache line; each side caches the other's index and re-reads it only
// when its cached view says full (producer) or empty (consumer). Every value read
// from the shared memory - the other side's index, a slot's length and peer id -
// is read once and checked before use, and payloads are copied into private
// memory before anyone looks at them: a hostile peer can only spoil its own
// traffic, never make this side read or write outside the mapping.
//
// In-place filling: a producer can also reserve free slots, have the kernel
// receive straight into them (recvmmsg scattering over a slot's dense part and its
// overflow area) and publish only the datagrams meant for the consumer; the other
// reserved slots are published as skipped or left for the next reservation. This
// saves the second copy of every datagram on netproc's receive path.
//
// Doorbell (io_uring style): a consumer about to sleep sets the wakeup flag and
// re-checks the ring; a producer that publishes while the flag is set clears it
// and writes the eventfd. While both sides are busy no syscall is made.
//
// Room bell, the same the other way round: a producer that must hold its input
// back for lack of free slots stores how many it wants (want_room) and re-checks;
// a consumer that frees slots while a wish is stored and met takes it and writes
// the producer's eventfd (each child waits on one eventfd: the doorbell of the ring
// it consumes, so that is the one rung). No timer polls a full ring.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "common/bytes.h"
#include "ipc/ring_memory.h"

namespace tw::ipc {

constexpr std::size_t kMaxBurst = 64;

struct OutPacket {
  std::uint32_t peer_id = 0;
  ByteView data;
};

// Private storage for up to kMaxBurst received packets.
class PacketBatch {
 public:
  explicit PacketBatch(std::size_t capacity_per_packet = 65536);
  std::size_t size() const { return count_; }
  std::uint32_t peer_id(std::size_t i) const { return peer_ids_[i]; }
  ByteView data(std::size_t i) const {
    return ByteView(storage_.get() + i * capacity_, lengths_[i]);
  }
  std::size_t capacity_per_packet() const { return capacity_; }

 private:
  friend class RingConsumer;
  std::size_t capacity_;
  std::unique_ptr<std::uint8_t[]> storage_;
  std::uint32_t peer_ids_[kMaxBurst];
  std::uint32_t lengths_[kMaxBurst];
  std::size_t count_ = 0;
};

// Where a reserved slot's payload goes: its dense part first, then its overflow
// area (empty when the slot capacity fits the dense part).
struct SlotArea {
  std::uint8_t* head = nullptr;
  std::size_t head_len = 0;
  std::uint8_t* rest = nullptr;
  std::size_t rest_len = 0;
};

struct RingStats {
  std::uint64_t packets = 0;
  std::uint64_t skipped = 0;           // slots published as skipped (in-place receive)
  std::uint64_t dropped_oversize = 0;  // length beyond the slot or batch capacity
  std::uint64_t bad_index = 0;         // the other side published an impossible index
  std::uint64_t doorbells = 0;         // eventfd writes (producer) or waits (consumer)
  std::uint64_t room_bells = 0;        // room bells rung (consumer)
};

class RingProducer {
 public:
  // doorbell_fd: the eventfd to ring when the consumer sleeps (-1: never ring).
  RingProducer(RingEnd end, int doorbell_fd);

  // Publishes up to kMaxBurst packets from the front of `packets` with one index
  // store; returns how many were consumed from the input. Packets longer than a
  // slot are dropped (and counted) but still consumed. Stops early when full.
  std::size_t push(std::span<const OutPacket> packets);
  std::size_t free_slots();
  std::size_t capacity() const { return end_.slot_count; }
  // True when at least n slots are free; re-reads the consumer's index only when
  // the cached view says otherwise. Lets a producer hold back input it could not
  // place (backpressure) instead of dropping it at the ring.
  bool has_room(std::size_t n);
  // Backpressure without polling: asks the consumer to ring this side's room bell
  // (RingConsumer::set_room_bell) once at least n slots are free. True when n are
  // free already, and nothing is asked.
  bool want_room(std::size_t n);

  // In-place filling. reserve() sets aside up to `max` (at most kMaxBurst) free
  // slots at the write position, invisible to the consumer, and returns how many.
  // The caller writes reserved slot i through area(i) and marks it for delivery
  // with fill(i, ...). commit(count) publishes the first `count` reserved slots with
  // one index store; those never filled go out as skipped. Slots past `count` stay
  // free. push() or another reserve() abandons an uncommitted reservation.
  std::size_t reserve(std::size_t max);
  std::size_t reserved() const { return reserved_; }
  SlotArea area(std::size_t i) const;
  // A length beyond the slot capacity is dropped (counted) and the slot skipped.
  void fill(std::size_t i, std::uint32_t peer_id, std::uint32_t length);
  void commit(std::size_t count);

  // After the broker reset the mapping: start again from index 0.
  void resync();
  const RingStats& stats() const { return stats_; }

 private:
  void ring_if_sleeping();
  std::size_t refresh_free_slots();

  RingEnd end_;
  int doorbell_fd_;
  std::uint32_t mask_;
  std::uint32_t tail_ = 0;         // next index to write (owned)
  std::uint32_t cached_head_ = 0;  // consumer's index as last read
  std::size_t reserved_ = 0;       // slots set aside by reserve(), from tail_
  std::uint32_t fill_length_[kMaxBurst];  // per reserved slot; kSlotSkipped: not filled
  std::uint32_t fill_peer_[kMaxBurst];
  RingStats stats_;
};

class RingConsumer {
 public:
  explicit RingConsumer(RingEnd end);

  // Copies up to kMaxBurst packets into `batch` (replacing its contents) and
  // frees their slots; returns the number delivered.
  std::size_t pop(PacketBatch& batch);

  // Doorbell protocol: sets the wakeup flag, then re-checks the ring. True means
  // the ring is still empty and the caller may wait on the eventfd; false means
  // work arrived in between (the flag is withdrawn).
  bool prepare_to_sleep();
  // After waking (or deciding not to sleep): withdraw the wakeup request.
  void woke();
  // The eventfd that wakes the producer (its consumer doorbell); -1: never ring.
  void set_room_bell(int fd) { room_bell_fd_ = fd; }

  void resync();
  const RingStats& stats() const { return stats_; }

 private:
  std::uint32_t available();
  void ring_if_room_wanted();

  RingEnd end_;
  std::uint32_t mask_;
  int room_bell_fd_ = -1;
  std::uint32_t head_ = 0;         // next index to read (owned)
  std::uint32_t cached_tail_ = 0;  // producer's index as last read and checked
  RingStats stats_;
};

}  // namespace tw::ipc
