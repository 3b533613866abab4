#include "ipc/ring.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "ipc/ring_layout.h"

namespace tw::ipc {
namespace {

static_assert(std::atomic_ref<std::uint32_t>::is_always_lock_free,
              "shared-memory indices need lock-free (address-free) atomics");

std::atomic_ref<std::uint32_t> shared_u32(std::uint8_t* p) {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(p));
}

std::uint8_t* slot_at(const RingEnd& e, std::uint32_t index, std::uint32_t mask) {
  return e.slots + std::size_t{index & mask} * e.slot_stride;
}
std::uint8_t* overflow_at(const RingEnd& e, std::uint32_t index, std::uint32_t mask) {
  return e.overflow + std::size_t{index & mask} * e.overflow_stride;
}

}  // namespace

PacketBatch::PacketBatch(std::size_t capacity_per_packet)
    : capacity_(capacity_per_packet),
      storage_(std::make_unique_for_overwrite<std::uint8_t[]>(kMaxBurst * capacity_per_packet)) {}

RingProducer::RingProducer(RingEnd end, int doorbell_fd)
    : end_(end), doorbell_fd_(doorbell_fd), mask_(end.slot_count - 1) {
  resync();
}

void RingProducer::resync() {
  reserved_ = 0;
  tail_ = 0;
  cached_head_ = 0;
  shared_u32(end_.control + layout::kProducerIndex).store(0, std::memory_order_release);
}

bool RingProducer::has_room(std::size_t n) {
  const std::uint32_t used = tail_ - cached_head_;
  if (used <= end_.slot_count && end_.slot_count - used >= n) return true;
  return refresh_free_slots() >= n;
}

bool RingProducer::want_room(std::size_t n) {
  n = std::min<std::size_t>(std::max<std::size_t>(n, 1), end_.slot_count);
  auto wanted = shared_u32(end_.control + layout::kRoomWanted);
  // seq_cst store, then seq_cst load of the consumer's index: the Dekker pair with
  // the consumer's index store and its load of the wish (ring_if_room_wanted).
  wanted.store(static_cast<std::uint32_t>(n), std::memory_order_seq_cst);
  const std::uint32_t head =
      shared_u32(end_.control + layout::kConsumerIndex).load(std::memory_order_seq_cst);
  const std::uint32_t used = tail_ - head;
  if (used <= end_.slot_count) {
    cached_head_ = head;
    if (end_.slot_count - used >= n) {
      wanted.store(0, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

std::size_t RingProducer::free_slots() {
  std::uint32_t used = tail_ - cached_head_;
  if (used < end_.slot_count) return end_.slot_count - used;
  return refresh_free_slots();
}

std::size_t RingProducer::refresh_free_slots() {
  std::uint32_t head =
      shared_u32(end_.control + layout::kConsumerIndex).load(std::memory_order_acquire);
  // The consumer may only have freed what we wrote: tail - head in [0, count].
  if (tail_ - head > end_.slot_count) {
    ++stats_.bad_index;
    return 0;
  }
  cached_head_ = head;
  return end_.slot_count - (tail_ - head);
}

std::size_t RingProducer::push(std::span<const OutPacket> packets) {
  reserved_ = 0;
  std::size_t want = std::min(packets.size(), kMaxBurst);
  if (want == 0) return 0;
  std::size_t room = end_.slot_count - (tail_ - cached_head_);
  if (room < want) room = free_slots();
  std::size_t consumed = 0;
  std::uint32_t start = tail_;
  for (; consumed < want; ++consumed) {
    const OutPacket& p = packets[consumed];
    if (p.data.size() > end_.slot_capacity) {
      ++stats_.dropped_oversize;
      continue;
    }
    if (room == 0) break;
    std::uint8_t* slot = slot_at(end_, tail_, mask_);
    auto len = static_cast<std::uint32_t>(p.data.size());
    std::memcpy(slot + layout::kSlotLength, &len, sizeof len);
    std::memcpy(slot + layout::kSlotPeerId, &p.peer_id, sizeof p.peer_id);
    std::size_t head_part = std::min<std::size_t>(len, end_.inline_capacity);
    if (head_part) std::memcpy(slot + layout::kSlotHeaderBytes, p.data.data(), head_part);
    if (len > head_part) {
      std::memcpy(overflow_at(end_, tail_, mask_), p.data.data() + head_part, len - head_part);
    }
    ++tail_;
    --room;
  }
  if (tail_ != start) {
    // seq_cst: ordered before our read of the wakeup flag (the Dekker pair with
    // prepare_to_sleep), and a release of the slot contents.
    shared_u32(end_.control + layout::kProducerIndex).store(tail_, std::memory_order_seq_cst);
    stats_.packets += tail_ - start;
    ring_if_sleeping();
  }
  return consumed;
}

std::size_t RingProducer::reserve(std::size_t max) {
  const std::size_t want = std::min(max, kMaxBurst);
  std::size_t room = end_.slot_count - (tail_ - cached_head_);
  if (room < want) room = free_slots();
  reserved_ = std::min(want, room);
  std::fill_n(fill_length_, reserved_, layout::kSlotSkipped);
  std::fill_n(fill_peer_, reserved_, 0u);
  return reserved_;
}

SlotArea RingProducer::area(std::size_t i) const {
  if (i >= reserved_) return {};
  const auto index = static_cast<std::uint32_t>(tail_ + i);
  return SlotArea{slot_at(end_, index, mask_) + layout::kSlotHeaderBytes, end_.inline_capacity,
                  overflow_at(end_, index, mask_), end_.slot_capacity - end_.inline_capacity};
}

void RingProducer::fill(std::size_t i, std::uint32_t peer_id, std::uint32_t length) {
  if (i >= reserved_) return;
  if (length > end_.slot_capacity) {
    ++stats_.dropped_oversize;
    return;
  }
  fill_length_[i] = length;
  fill_peer_[i] = peer_id;
}

void RingProducer::commit(std::size_t count) {
  count = std::min(count, reserved_);
  reserved_ = 0;
  if (count == 0) return;
  std::uint64_t delivered = 0;
  for (std::size_t i = 0; i < count; ++i) {
    std::uint8_t* slot = slot_at(end_, static_cast<std::uint32_t>(tail_ + i), mask_);
    std::memcpy(slot + layout::kSlotLength, &fill_length_[i], sizeof(std::uint32_t));
    std::memcpy(slot + layout::kSlotPeerId, &fill_peer_[i], sizeof(std::uint32_t));
    delivered += fill_length_[i] != layout::kSlotSkipped;
  }
  tail_ += static_cast<std::uint32_t>(count);
  // As in push(): the release of the slots and the Dekker pair with the doorbell.
  shared_u32(end_.control + layout::kProducerIndex).store(tail_, std::memory_order_seq_cst);
  stats_.packets += delivered;
  stats_.skipped += count - delivered;
  ring_if_sleeping();
}

void RingProducer::ring_if_sleeping() {
  auto flag = shared_u32(end_.control + layout::kWakeupFlag);
  if (flag.load(std::memory_order_seq_cst) == 0) return;
  if (flag.exchange(0, std::memory_order_seq_cst) == 0 || doorbell_fd_ < 0) return;
  std::uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the consumer will wake anyway.
  ssize_t n = ::write(doorbell_fd_, &one, sizeof one);
  (void)n;
  ++stats_.doorbells;
}

RingConsumer::RingConsumer(RingEnd end) : end_(end), mask_(end.slot_count - 1) { resync(); }

void RingConsumer::resync() {
  head_ = 0;
  cached_tail_ = 0;
  shared_u32(end_.control + layout::kConsumerIndex).store(0, std::memory_order_release);
  shared_u32(end_.control + layout::kWakeupFlag).store(0, std::memory_order_relaxed);
  shared_u32(end_.control + layout::kRoomWanted).store(0, std::memory_order_relaxed);
}

std::uint32_t RingConsumer::available() {
  std::uint32_t ready = cached_tail_ - head_;
  if (ready != 0) return ready;
  // seq_cst (a plain load on x86): prepare_to_sleep relies on it being ordered
  // after its store of the wakeup flag.
  std::uint32_t tail =
      shared_u32(end_.control + layout::kProducerIndex).load(std::memory_order_seq_cst);
  // The producer can only be ahead of us by at most a full ring.
  if (tail - head_ > end_.slot_count) {
    ++stats_.bad_index;
    return 0;
  }
  cached_tail_ = tail;
  return tail - head_;
}

std::size_t RingConsumer::pop(PacketBatch& batch) {
  batch.count_ = 0;
  std::size_t n = std::min<std::size_t>(available(), kMaxBurst);
  if (n == 0) return 0;
  const std::size_t limit = std::min<std::size_t>(end_.slot_capacity, batch.capacity_);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t index = head_++;
    std::uint8_t* slot = slot_at(end_, index, mask_);
    // Each field read exactly once, into a local, before it is checked.
    std::uint32_t len = shared_u32(slot + layout::kSlotLength).load(std::memory_order_relaxed);
    std::uint32_t peer = shared_u32(slot + layout::kSlotPeerId).load(std::memory_order_relaxed);
    if (len == layout::kSlotSkipped) {
      ++stats_.skipped;
      continue;
    }
    if (len > limit) {
      ++stats_.dropped_oversize;
      continue;
    }
    std::size_t k = batch.count_++;
    std::uint8_t* dst = batch.storage_.get() + k * batch.capacity_;
    // len <= slot_capacity, so the rest fits the slot's overflow area.
    std::size_t head_part = std::min<std::size_t>(len, end_.inline_capacity);
    std::memcpy(dst, slot + layout::kSlotHeaderBytes, head_part);
    if (len > head_part) {
      std::memcpy(dst + head_part, overflow_at(end_, index, mask_), len - head_part);
    }
    batch.lengths_[k] = len;
    batch.peer_ids_[k] = peer;
  }
  // seq_cst: ordered before the load of the producer's wish (see want_room).
  shared_u32(end_.control + layout::kConsumerIndex).store(head_, std::memory_order_seq_cst);
  stats_.packets += batch.count_;
  ring_if_room_wanted();
  return batch.count_;
}

void RingConsumer::ring_if_room_wanted() {
  auto wanted = shared_u32(end_.control + layout::kRoomWanted);
  const std::uint32_t want = wanted.load(std::memory_order_seq_cst);
  if (want == 0) return;
  // Free as far as we know: the producer publishes nothing while it waits, and an
  // early bell only makes it look again. A wish beyond the ring (a lying producer)
  // is never met: it only stalls that producer's own input.
  const std::uint32_t free = end_.slot_count - (cached_tail_ - head_);
  if (free < want) return;
  if (wanted.exchange(0, std::memory_order_seq_cst) == 0 || room_bell_fd_ < 0) return;
  std::uint64_t one = 1;
  ssize_t n = ::write(room_bell_fd_, &one, sizeof one);  // EAGAIN: it wakes anyway
  (void)n;
  ++stats_.room_bells;
}

bool RingConsumer::prepare_to_sleep() {
  auto flag = shared_u32(end_.control + layout::kWakeupFlag);
  flag.store(1, std::memory_order_seq_cst);
  if (available() == 0) {
    ++stats_.doorbells;
    return true;
  }
  flag.store(0, std::memory_order_relaxed);
  return false;
}

void RingConsumer::woke() {
  shared_u32(end_.control + layout::kWakeupFlag).store(0, std::memory_order_relaxed);
}

}  // namespace tw::ipc
