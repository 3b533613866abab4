// Ring tests within one process (threads stand in for the two children, so these
// also run under ThreadSanitizer). The cross-process tests are in
// tests/integration/ipc/.
#include "ipc/ring.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "ipc/doorbell.h"
#include "ipc/ring_layout.h"
#include "ipc/ring_memory.h"

namespace tw::ipc {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t kThreadedMessages = 200'000;
#else
constexpr std::uint64_t kThreadedMessages = 2'000'000;
#endif

RingMemory make_memory(std::uint32_t slots = 8, std::uint32_t capacity = 2048) {
  auto m = RingMemory::create(RingGeometry{slots, capacity});
  EXPECT_TRUE(m.ok()) << m.error();
  return std::move(*m);
}

Bytes payload(std::uint64_t seq, std::size_t len) {
  Bytes b(len);
  for (std::size_t i = 0; i < len; ++i) b[i] = static_cast<std::uint8_t>(seq * 131 + i);
  if (len >= 8) std::memcpy(b.data(), &seq, 8);
  return b;
}

TEST(Ring, PacketsComeOutInOrderWithTheirPeerIds) {
  auto mem = make_memory();
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  Bytes a = payload(1, 100), b = payload(2, 0), c = payload(3, 2048);
  OutPacket out[] = {{7, a}, {8, b}, {9, c}};
  EXPECT_EQ(tx.push(out), 3u);
  PacketBatch batch(2048);
  ASSERT_EQ(rx.pop(batch), 3u);
  EXPECT_EQ(batch.peer_id(0), 7u);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), batch.data(0).begin(), batch.data(0).end()));
  EXPECT_EQ(batch.data(1).size(), 0u);
  EXPECT_EQ(batch.peer_id(2), 9u);
  EXPECT_TRUE(std::equal(c.begin(), c.end(), batch.data(2).begin(), batch.data(2).end()));
  EXPECT_EQ(rx.pop(batch), 0u);
}

TEST(Ring, LongDatagramsSpanningTheOverflowAreaArriveIntact) {
  auto mem = make_memory(4, 65536);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  Bytes full = payload(1, 65536), just_over = payload(2, 2049), small = payload(3, 60);
  OutPacket out[] = {{1, full}, {2, just_over}, {3, small}, {4, full}, {5, just_over}};
  EXPECT_EQ(tx.push(out), 4u);
  PacketBatch batch(65536);
  ASSERT_EQ(rx.pop(batch), 4u);
  EXPECT_EQ(tx.push(std::span(out).subspan(4)), 1u);  // wraps onto slot 0
  const Bytes* want[] = {&full, &just_over, &small, &full};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(std::equal(want[i]->begin(), want[i]->end(), batch.data(i).begin(), batch.data(i).end())) << i;
  }
  ASSERT_EQ(rx.pop(batch), 1u);
  EXPECT_TRUE(std::equal(just_over.begin(), just_over.end(), batch.data(0).begin(), batch.data(0).end()));
}

TEST(Ring, FullRingStopsThePushAndFreesAfterPop) {
  auto mem = make_memory(8);
  RingProducer tx(mem.ring(Direction::kDataToNet), -1);
  RingConsumer rx(mem.ring(Direction::kDataToNet));
  Bytes p = payload(0, 64);
  std::vector<OutPacket> out(12, OutPacket{1, p});
  EXPECT_EQ(tx.push(out), 8u);
  EXPECT_EQ(tx.push(out), 0u);
  PacketBatch batch(2048);
  EXPECT_EQ(rx.pop(batch), 8u);
  EXPECT_EQ(tx.push(out), 8u);
}

TEST(Ring, OversizedPacketIsDroppedAndCountedNotPublished) {
  auto mem = make_memory(8, 1024);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  Bytes big(1025), ok(10);
  OutPacket out[] = {{1, big}, {2, ok}};
  EXPECT_EQ(tx.push(out), 2u);
  EXPECT_EQ(tx.stats().dropped_oversize, 1u);
  PacketBatch batch(1024);
  ASSERT_EQ(rx.pop(batch), 1u);
  EXPECT_EQ(batch.peer_id(0), 2u);
}

TEST(Ring, BurstIsCappedAt64) {
  auto mem = make_memory(256);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  Bytes p(1);
  std::vector<OutPacket> out(100, OutPacket{1, p});
  EXPECT_EQ(tx.push(out), kMaxBurst);
  EXPECT_EQ(tx.push(std::span(out).subspan(64)), 36u);
  PacketBatch batch(64);
  EXPECT_EQ(rx.pop(batch), 64u);
  EXPECT_EQ(rx.pop(batch), 36u);
}

TEST(Ring, GarbageIndexFromProducerDeliversNothingAndIsCounted) {
  auto mem = make_memory(8);
  RingEnd end = mem.ring(Direction::kNetToData);
  RingConsumer rx(end);
  std::uint32_t evil = 1000;
  std::memcpy(end.control + layout::kProducerIndex, &evil, 4);
  PacketBatch batch(2048);
  EXPECT_EQ(rx.pop(batch), 0u);
  EXPECT_EQ(rx.stats().bad_index, 1u);
  evil = 0xffffffffu;  // "behind" the consumer
  std::memcpy(end.control + layout::kProducerIndex, &evil, 4);
  EXPECT_EQ(rx.pop(batch), 0u);
  EXPECT_EQ(rx.stats().bad_index, 2u);
}

TEST(Ring, GarbageLengthInASlotIsDroppedOthersSurvive) {
  auto mem = make_memory(8, 256);
  RingEnd end = mem.ring(Direction::kNetToData);
  RingProducer tx(end, -1);
  RingConsumer rx(end);
  Bytes p = payload(5, 100);
  OutPacket out[] = {{1, p}, {2, p}, {3, p}};
  ASSERT_EQ(tx.push(out), 3u);
  std::uint32_t evil = 0x7fffffff;
  std::memcpy(end.slots + end.slot_stride + layout::kSlotLength, &evil, 4);
  PacketBatch batch(256);
  ASSERT_EQ(rx.pop(batch), 2u);
  EXPECT_EQ(batch.peer_id(0), 1u);
  EXPECT_EQ(batch.peer_id(1), 3u);
  EXPECT_EQ(rx.stats().dropped_oversize, 1u);
}

TEST(Ring, ConsumerWithGarbageHeadCannotMakeProducerOverwrite) {
  auto mem = make_memory(8);
  RingEnd end = mem.ring(Direction::kDataToNet);
  RingProducer tx(end, -1);
  Bytes p(4);
  std::vector<OutPacket> out(8, OutPacket{1, p});
  ASSERT_EQ(tx.push(out), 8u);
  std::uint32_t evil = 100;  // claims to have consumed more than was written
  std::memcpy(end.control + layout::kConsumerIndex, &evil, 4);
  EXPECT_EQ(tx.push(out), 0u);
  EXPECT_GE(tx.stats().bad_index, 1u);
}

TEST(Ring, ResetAndResyncStartBothSidesAfresh) {
  auto mem = make_memory(8);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  Bytes p(4);
  std::vector<OutPacket> out(5, OutPacket{1, p});
  ASSERT_EQ(tx.push(out), 5u);
  mem.reset();
  tx.resync();
  RingConsumer fresh(mem.ring(Direction::kNetToData));  // the restarted child
  PacketBatch batch(64);
  EXPECT_EQ(fresh.pop(batch), 0u);
  ASSERT_EQ(tx.push(out), 5u);
  EXPECT_EQ(fresh.pop(batch), 5u);
}

// Writes `data` into reserved slot i the way recvmmsg scatters: dense part first.
void write_in_place(RingProducer& tx, std::size_t i, ByteView data) {
  SlotArea a = tx.area(i);
  ASSERT_LE(data.size(), a.head_len + a.rest_len);
  std::size_t head = std::min(data.size(), a.head_len);
  if (head != 0) std::memcpy(a.head, data.data(), head);  // an empty payload has no data()
  if (data.size() > head) std::memcpy(a.rest, data.data() + head, data.size() - head);
}

bool same(const Bytes& want, ByteView got) { return std::equal(want.begin(), want.end(), got.begin(), got.end()); }

TEST(RingInPlace, FilledSlotsArriveInOrderAndUnfilledOnesAreSkipped) {
  auto mem = make_memory(8, 65536);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  ASSERT_EQ(tx.reserve(5), 5u);
  Bytes a = payload(1, 1280), junk = payload(2, 90), b = payload(3, 3000), c = payload(4, 0);
  write_in_place(tx, 0, a);
  write_in_place(tx, 1, junk);  // received, but not for the consumer (say, disco)
  write_in_place(tx, 2, b);     // spans the dense part and the overflow area
  write_in_place(tx, 4, c);
  tx.fill(0, 11, static_cast<std::uint32_t>(a.size()));
  tx.fill(2, 13, static_cast<std::uint32_t>(b.size()));
  tx.fill(4, 15, 0);
  tx.commit(5);
  EXPECT_EQ(tx.stats().packets, 3u);
  EXPECT_EQ(tx.stats().skipped, 2u);
  PacketBatch batch(65536);
  ASSERT_EQ(rx.pop(batch), 3u);
  EXPECT_EQ(batch.peer_id(0), 11u);
  EXPECT_TRUE(same(a, batch.data(0)));
  EXPECT_EQ(batch.peer_id(1), 13u);
  EXPECT_TRUE(same(b, batch.data(1)));
  EXPECT_EQ(batch.peer_id(2), 15u);
  EXPECT_EQ(batch.data(2).size(), 0u);
  EXPECT_EQ(rx.stats().skipped, 2u);
  EXPECT_EQ(rx.stats().dropped_oversize, 0u);
  EXPECT_EQ(rx.pop(batch), 0u);
}

TEST(RingInPlace, SlotsPastTheCommitStayFreeForTheNextReservation) {
  auto mem = make_memory(8);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  ASSERT_EQ(tx.reserve(6), 6u);
  std::uint8_t* third = tx.area(2).head;
  Bytes p = payload(7, 40);
  write_in_place(tx, 0, p);
  tx.fill(0, 1, 40);
  tx.fill(3, 2, 40);  // beyond the commit: never published
  tx.commit(2);       // slot 1 skipped, slots 2.. not committed
  EXPECT_EQ(tx.free_slots(), 6u);
  ASSERT_EQ(tx.reserve(64), 6u);
  EXPECT_EQ(tx.area(0).head, third) << "the next reservation starts after the committed slots";
  tx.commit(0);  // nothing received this time
  PacketBatch batch(2048);
  ASSERT_EQ(rx.pop(batch), 1u);
  EXPECT_TRUE(same(p, batch.data(0)));
  EXPECT_EQ(rx.stats().skipped, 1u);
  EXPECT_EQ(rx.pop(batch), 0u);
}

TEST(RingInPlace, ReservationIsBoundedByFreeSlotsAndTheBurst) {
  auto mem = make_memory(8);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  Bytes p(4);
  std::vector<OutPacket> out(6, OutPacket{1, p});
  ASSERT_EQ(tx.push(out), 6u);
  EXPECT_EQ(tx.reserve(64), 2u);
  EXPECT_EQ(tx.area(2).head, nullptr) << "no area outside the reservation";
  tx.commit(0);
  EXPECT_EQ(tx.reserve(64), 2u);
  tx.fill(0, 1, 4);
  tx.fill(1, 1, 4);
  tx.commit(2);
  EXPECT_EQ(tx.reserve(64), 0u) << "full";
  PacketBatch batch(2048);
  EXPECT_EQ(rx.pop(batch), 8u);
  auto big = make_memory(256);
  RingProducer wide(big.ring(Direction::kNetToData), -1);
  EXPECT_EQ(wide.reserve(100), kMaxBurst);
}

TEST(RingInPlace, LengthBeyondTheSlotIsDroppedAndTheSlotSkipped) {
  auto mem = make_memory(8, 1024);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  ASSERT_EQ(tx.reserve(2), 2u);
  EXPECT_EQ(tx.area(0).head_len + tx.area(0).rest_len, 1024u);
  tx.fill(0, 1, 1025);
  tx.fill(1, 2, 10);
  tx.commit(2);
  EXPECT_EQ(tx.stats().dropped_oversize, 1u);
  PacketBatch batch(1024);
  ASSERT_EQ(rx.pop(batch), 1u);
  EXPECT_EQ(batch.peer_id(0), 2u);
}

TEST(RingInPlace, PushAbandonsAnUncommittedReservation) {
  auto mem = make_memory(8);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  ASSERT_EQ(tx.reserve(4), 4u);
  tx.fill(0, 9, 4);
  Bytes p = payload(3, 20);
  OutPacket out{5, p};
  ASSERT_EQ(tx.push(std::span(&out, 1)), 1u);
  tx.commit(4);  // stale: publishes nothing
  PacketBatch batch(2048);
  ASSERT_EQ(rx.pop(batch), 1u);
  EXPECT_EQ(batch.peer_id(0), 5u);
  EXPECT_EQ(rx.pop(batch), 0u);
}

TEST(RingInPlace, CommitRingsTheDoorbellOfASleepingConsumer) {
  auto mem = make_memory(8);
  auto bell = make_doorbell();
  ASSERT_TRUE(bell.ok());
  RingProducer tx(mem.ring(Direction::kNetToData), bell->get());
  RingConsumer rx(mem.ring(Direction::kNetToData));
  ASSERT_TRUE(rx.prepare_to_sleep());
  ASSERT_EQ(tx.reserve(1), 1u);
  tx.fill(0, 1, 0);
  tx.commit(1);
  EXPECT_EQ(tx.stats().doorbells, 1u);
  pollfd pfd{bell->get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 1);
}

TEST(RingMemory, ChildRefusesUnsealedOrMisSizedMemory) {
  UniqueFd plain(::memfd_create("x", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(plain.get(), 1 << 20), 0);
  auto r = RingMemory::attach(std::move(plain));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("sealed"), std::string::npos);

  auto mem = make_memory(8, 2048);
  // Tamper with the geometry: claims more slots than the sealed size holds.
  std::uint32_t slots = 1024;
  auto* base = mem.ring(Direction::kNetToData).control - layout::kControlOffset;
  std::memcpy(base + layout::kSlotCountOffset, &slots, 4);
  auto bad = RingMemory::attach(UniqueFd(::dup(mem.fd())));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("geometry"), std::string::npos);
}

TEST(RingMemory, SealedMemoryCannotBeShrunkByAChild) {
  auto mem = make_memory();
  auto child = RingMemory::attach(UniqueFd(::dup(mem.fd())));
  ASSERT_TRUE(child.ok()) << child.error();
  EXPECT_NE(::ftruncate(child->fd(), 4096), 0);
  EXPECT_EQ(child->geometry().slot_count, 8u);
}

// A consumer's view of the other side's slots is read-only and cannot be made
// writable: it cannot rewrite a datagram the producer is still parsing. Its own
// producer slots and the index lines stay writable.
TEST(RingMemory, ConsumerCannotWriteTheSlotsItConsumes) {
  auto mem = make_memory(8, 65536);  // dense and overflow areas both in use
  auto child = RingMemory::attach(UniqueFd(::dup(mem.fd())), Direction::kNetToData);
  ASSERT_TRUE(child.ok()) << child.error();
  EXPECT_EQ(child->fd(), -1) << "the writable fd must be gone";
  const RingEnd consumed = child->ring(Direction::kNetToData);
  const RingEnd produced = child->ring(Direction::kDataToNet);
  // What the producer (the broker's mapping here) writes is visible.
  mem.ring(Direction::kNetToData).slots[0] = 0x5a;
  EXPECT_EQ(consumed.slots[0], 0x5a);
  // Own slots and the index lines: writable.
  produced.slots[0] = 1;
  produced.overflow[0] = 1;
  consumed.control[layout::kConsumerIndex] = 0;
  // The consumed areas cannot be made writable again.
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(consumed.slots) % 4096, 0u) << "areas start on a page";
  EXPECT_NE(::mprotect(consumed.slots, 4096, PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(errno, EACCES);
  auto poke = [](std::uint8_t* p) { *static_cast<volatile std::uint8_t*>(p) = 0; };
  EXPECT_DEATH(poke(consumed.slots), "") << "a write to a consumed slot must fault";
  EXPECT_DEATH(poke(consumed.overflow + 100), "");
  EXPECT_DEATH(poke(consumed.slots + std::size_t{consumed.slot_count} * consumed.slot_stride - 1),
               "");
}

TEST(RingMemory, DefaultGeometryHolds64KiBDatagrams) {
  RingGeometry g;
  EXPECT_GE(g.slot_capacity, 65535u);
  EXPECT_LE(ring_mapping_size(g), 72u << 20);  // virtual; MTU traffic touches ~1 MiB per ring
  EXPECT_NE(ring_slot_stride(g.slot_capacity) % 4096, 0u);
}

// Two threads, the ring in the middle, with the doorbell protocol: the consumer
// sleeps on the eventfd whenever the ring is empty.
TEST(Ring, ThreadedTrafficWithDoorbellsHasNoLossDuplicationOrReordering) {
  auto mem = make_memory(64, 2048);
  auto bell = make_doorbell();
  ASSERT_TRUE(bell.ok());
  RingProducer tx(mem.ring(Direction::kNetToData), bell->get());
  RingConsumer rx(mem.ring(Direction::kNetToData));
  std::thread producer([&] {
    std::uint8_t bufs[32][64];
    OutPacket out[32];
    std::uint64_t seq = 0;
    while (seq < kThreadedMessages) {
      std::size_t n = std::min<std::uint64_t>(32, kThreadedMessages - seq);
      for (std::size_t k = 0; k < n; ++k) {
        std::uint64_t s = seq + k;
        std::memcpy(bufs[k], &s, 8);
        out[k] = OutPacket{static_cast<std::uint32_t>(s * 7), ByteView(bufs[k], 8 + s % 50)};
      }
      for (std::size_t done = 0; done < n;) {
        std::size_t k = tx.push(std::span(out + done, n - done));
        if (k == 0) std::this_thread::yield();
        done += k;
      }
      seq += n;
    }
  });
  PacketBatch batch(2048);
  std::uint64_t expect = 0;
  std::uint64_t sleeps = 0;
  while (expect < kThreadedMessages) {
    std::size_t n = rx.pop(batch);
    if (n == 0) {
      if (rx.prepare_to_sleep()) {
        pollfd pfd{bell->get(), POLLIN, 0};
        ASSERT_EQ(::poll(&pfd, 1, 5000), 1) << "lost wakeup at " << expect;
        drain_doorbell(bell->get());
        ++sleeps;
      }
      rx.woke();
      continue;
    }
    for (std::size_t i = 0; i < n; ++i, ++expect) {
      ASSERT_EQ(batch.data(i).size(), 8 + expect % 50);
      std::uint64_t got;
      std::memcpy(&got, batch.data(i).data(), 8);
      ASSERT_EQ(got, expect);
      ASSERT_EQ(batch.peer_id(i), static_cast<std::uint32_t>(expect * 7));
    }
  }
  producer.join();
  EXPECT_EQ(rx.pop(batch), 0u);
  EXPECT_EQ(tx.stats().packets, kThreadedMessages);
  RecordProperty("sleeps", std::to_string(sleeps));
}

// An 8-slot ring whose consumer rings `room_bell` for the producer.
struct RoomBellRing {
  RoomBellRing() { rx.set_room_bell(room_bell.get()); }
  bool rang() {
    pollfd pfd{room_bell.get(), POLLIN, 0};
    return ::poll(&pfd, 1, 0) == 1;
  }
  RingMemory mem = make_memory(8);
  UniqueFd room_bell = std::move(make_doorbell().value());
  RingProducer tx{mem.ring(Direction::kDataToNet), -1};
  RingConsumer rx{mem.ring(Direction::kDataToNet)};
  Bytes p = payload(0, 64);
  std::vector<OutPacket> out = std::vector<OutPacket>(8, OutPacket{1, p});
  PacketBatch batch{2048};
};

// The room bell: a producer that has to hold back asks for n free slots; the
// consumer rings its eventfd once, when a pop has freed them.
TEST(Ring, RoomBellRingsTheHeldBackProducerOnceItsWishIsMet) {
  RoomBellRing r;
  EXPECT_TRUE(r.tx.want_room(8)) << "an empty ring has room: nothing is asked";
  ASSERT_EQ(r.tx.push(r.out), 8u);
  EXPECT_EQ(r.rx.pop(r.batch), 8u);
  EXPECT_FALSE(r.rang()) << "no wish was stored, so no bell";
  ASSERT_EQ(r.tx.push(r.out), 8u);
  EXPECT_FALSE(r.tx.want_room(4));
  EXPECT_FALSE(r.rang());
  EXPECT_EQ(r.rx.pop(r.batch), 8u);
  EXPECT_TRUE(r.rang());
  EXPECT_EQ(r.rx.stats().room_bells, 1u);
  drain_doorbell(r.room_bell.get());
  ASSERT_EQ(r.tx.push(std::span(r.out).first(2)), 2u);
  EXPECT_EQ(r.rx.pop(r.batch), 2u);
  EXPECT_FALSE(r.rang()) << "the wish was taken: one bell per wish";
}

// A producer's wish is read from shared memory: one beyond the ring is never met
// (it only stalls that producer), and a wish not met yet rings nothing.
TEST(Ring, RoomWishBeyondTheRingNeverRings) {
  RoomBellRing r;
  ASSERT_EQ(r.tx.push(r.out), 8u);
  std::atomic_ref<std::uint32_t>(
      *reinterpret_cast<std::uint32_t*>(r.mem.ring(Direction::kDataToNet).control +
                                        layout::kRoomWanted))
      .store(0xffffffffu);
  EXPECT_EQ(r.rx.pop(r.batch), 8u);
  EXPECT_FALSE(r.rang());
  EXPECT_EQ(r.rx.stats().room_bells, 0u);
}

// Both bells between two threads: the consumer sleeps on its doorbell when the ring
// is empty, the producer on its room bell when the ring is full (no yield, no
// timer). A lost wake-up on either side hangs the test (5 s per wait).
TEST(Ring, ThreadedTrafficWithBothBellsHasNoLostWakeups) {
  auto mem = make_memory(16, 2048);
  auto bell = make_doorbell();
  auto room_bell = make_doorbell();
  ASSERT_TRUE(bell.ok() && room_bell.ok());
  RingProducer tx(mem.ring(Direction::kNetToData), bell->get());
  RingConsumer rx(mem.ring(Direction::kNetToData));
  rx.set_room_bell(room_bell->get());
  const std::uint64_t total = kThreadedMessages / 4;
  std::atomic<bool> lost{false};
  std::uint64_t holds = 0;
  std::thread producer([&] {
    std::uint8_t bufs[32][64];
    OutPacket out[32];
    std::uint64_t seq = 0;
    while (seq < total && !lost) {
      std::size_t n = std::min<std::uint64_t>(32, total - seq);
      for (std::size_t k = 0; k < n; ++k) {
        std::uint64_t s = seq + k;
        std::memcpy(bufs[k], &s, 8);
        out[k] = OutPacket{1, ByteView(bufs[k], 8 + s % 50)};
      }
      for (std::size_t done = 0; done < n && !lost;) {
        std::size_t k = tx.push(std::span(out + done, n - done));
        done += k;
        if (k != 0 || tx.want_room(8)) continue;
        ++holds;
        pollfd pfd{room_bell->get(), POLLIN, 0};
        if (::poll(&pfd, 1, 5000) != 1) lost = true;
        drain_doorbell(room_bell->get());
      }
      seq += n;
    }
  });
  PacketBatch batch(2048);
  std::uint64_t expect = 0;
  while (expect < total && !lost) {
    std::size_t n = rx.pop(batch);
    if (n == 0) {
      if (rx.prepare_to_sleep()) {
        pollfd pfd{bell->get(), POLLIN, 0};
        if (::poll(&pfd, 1, 5000) != 1) lost = true;
        drain_doorbell(bell->get());
      }
      rx.woke();
      continue;
    }
    for (std::size_t i = 0; i < n; ++i, ++expect) {
      std::uint64_t got;
      std::memcpy(&got, batch.data(i).data(), 8);
      ASSERT_EQ(got, expect);
    }
  }
  producer.join();
  ASSERT_FALSE(lost) << "a wake-up was lost at " << expect;
  EXPECT_EQ(tx.stats().packets, total);
  EXPECT_GT(holds, 0u) << "the producer never had to hold back: the test proved nothing";
  RecordProperty("holds", std::to_string(holds));
}

// The in-place producer (reserve, write, fill some, commit) against a consumer in
// another thread: every filled slot arrives once and in order, skipped ones never.
TEST(RingInPlace, ThreadedTrafficHasNoLossDuplicationOrReordering) {
  auto mem = make_memory(64, 2048);
  RingProducer tx(mem.ring(Direction::kNetToData), -1);
  RingConsumer rx(mem.ring(Direction::kNetToData));
  auto delivered = [](std::uint64_t s) { return s % 7 != 3; };  // every 7th is "disco"
  std::thread producer([&] {
    for (std::uint64_t seq = 0; seq < kThreadedMessages;) {
      std::size_t n = tx.reserve(std::min<std::uint64_t>(32, kThreadedMessages - seq));
      if (n == 0) {
        std::this_thread::yield();
        continue;
      }
      for (std::size_t k = 0; k < n; ++k) {
        std::uint64_t s = seq + k;
        std::memcpy(tx.area(k).head, &s, 8);
        if (delivered(s)) tx.fill(k, static_cast<std::uint32_t>(s * 7), static_cast<std::uint32_t>(8 + s % 50));
      }
      tx.commit(n);
      seq += n;
    }
  });
  PacketBatch batch(2048);
  std::uint64_t expect = 0;
  std::uint64_t got_count = 0;
  while (expect < kThreadedMessages) {
    while (expect < kThreadedMessages && !delivered(expect)) ++expect;
    if (expect == kThreadedMessages) break;
    std::size_t n = rx.pop(batch);
    if (n == 0) {
      std::this_thread::yield();
      continue;
    }
    for (std::size_t i = 0; i < n; ++i) {
      while (!delivered(expect)) ++expect;
      ASSERT_EQ(batch.data(i).size(), 8 + expect % 50);
      std::uint64_t got;
      std::memcpy(&got, batch.data(i).data(), 8);
      ASSERT_EQ(got, expect);
      ASSERT_EQ(batch.peer_id(i), static_cast<std::uint32_t>(expect * 7));
      ++expect;
      ++got_count;
    }
  }
  producer.join();
  EXPECT_EQ(rx.pop(batch), 0u);
  EXPECT_EQ(got_count, tx.stats().packets);
  EXPECT_EQ(tx.stats().packets + tx.stats().skipped, kThreadedMessages);
}

// The Asio integration: RingReader drains the ring from an io_context, sleeping on
// the doorbell between bursts, until every packet has arrived.
TEST(RingReader, DeliversEveryPacketFromTheEventLoop) {
  constexpr std::uint64_t kCount = 100'000;
  auto mem = make_memory(64, 256);
  auto bell = make_doorbell();
  ASSERT_TRUE(bell.ok());
  UniqueFd bell_for_reader(::dup(bell->get()));
  RingProducer tx(mem.ring(Direction::kDataToNet), bell->get());
  RingConsumer rx(mem.ring(Direction::kDataToNet));
  boost::asio::io_context io;
  std::uint64_t expect = 0;
  bool in_order = true;
  RingReader reader(io, rx, std::move(bell_for_reader), 256, RingReader::Options{},
                    [&](const PacketBatch& b) {
                      for (std::size_t i = 0; i < b.size(); ++i, ++expect) {
                        std::uint64_t got;
                        std::memcpy(&got, b.data(i).data(), 8);
                        in_order = in_order && got == expect;
                      }
                      if (expect == kCount) io.stop();
                    });
  reader.start();
  std::thread producer([&] {
    for (std::uint64_t s = 0; s < kCount;) {
      OutPacket p{1, ByteView(reinterpret_cast<const std::uint8_t*>(&s), 8)};
      if (tx.push(std::span(&p, 1)) == 1) {
        ++s;
        if (s % 1000 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
      } else {
        std::this_thread::yield();
      }
    }
  });
  io.run_for(std::chrono::seconds(30));
  producer.join();
  EXPECT_EQ(expect, kCount);
  EXPECT_TRUE(in_order);
  EXPECT_GT(rx.stats().doorbells, 0u) << "the reader never slept";
}

}  // namespace
}  // namespace tw::ipc
