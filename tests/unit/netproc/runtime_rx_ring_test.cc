// The runtime receiving straight into the net->data ring (RuntimeHooks::rx_ring),
// over real loopback sockets: WireGuard lands in ring slots attributed to its
// sender; disco, STUN and junk that land in slots are copied out and handled as
// before and never reach the consumer; long datagrams, a full ring and truncation
// take the private path with the same counting as without a ring. Coalesced
// (UDP_GRO) runs from a UDP GSO sender land one datagram per slot, in order.
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <memory>

#include "ipc/ring.h"
#include "ipc/ring_memory.h"
#include "tests/unit/netproc/rt_util.h"

namespace tw::netproc_test {
namespace {

using magicsock::PathKind;

struct Delivered {
  std::uint32_t peer = 0;
  Bytes data;
  friend bool operator==(const Delivered&, const Delivered&) = default;
};

// A runtime whose net->data ring is real shared memory, drained by a consumer the
// way dataproc would.
struct RingNode : RuntimeNodeBase {
  RingNode(boost::asio::io_context& io, FakeRelay& relay, ipc::RingGeometry geometry = {},
           std::size_t rx_buffer = magicsock::kMaxDatagramBytes)
      : RuntimeNodeBase(relay),
        rings(ipc::RingMemory::create(geometry).value()),
        producer(rings.ring(ipc::Direction::kNetToData), -1),
        consumer(rings.ring(ipc::Direction::kNetToData)),
        batch(geometry.slot_capacity) {
    magicsock::RuntimeHooks hooks;
    hooks.deliver = [this](std::span<const ipc::OutPacket> p) {
      pushed += p.size();
      return producer.push(p);
    };
    hooks.rx_ring = &producer;
    build(io, config(rx_buffer), std::move(hooks));
  }
  ~RingNode() { rt.reset(); }  // the runtime writes into `producer`: it goes first
  // Pops what the ring holds now (as dataproc would) into `got`.
  std::size_t drain_ring() {
    while (consumer.pop(batch) > 0) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        got.push_back({batch.peer_id(i), Bytes(batch.data(i).begin(), batch.data(i).end())});
      }
    }
    return got.size();
  }

  ipc::RingMemory rings;
  ipc::RingProducer producer;
  ipc::RingConsumer consumer;
  ipc::PacketBatch batch;
  std::vector<Delivered> got;
  std::size_t pushed = 0;  // datagrams that took the copying path
};

// A peer for `node` whose netmap endpoint is `from`'s address, so that datagrams
// from that socket are attributed to it.
magicsock::RuntimePeer peer_at(std::uint32_t id, int from) {
  return {id, NodePrivate::generate().public_key(), DiscoPrivate::generate().public_key(), {loopback(port_of(from))}, 1};
}

TEST(RuntimeRxRing, WireGuardLandsInRingSlotsAttributedAndEverythingElseIsHandledPrivately) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  RingNode a(io, relay);
  auto known = bind_loopback();
  auto stranger = bind_loopback();
  const auto peer = peer_at(7, known.get());
  a.rt->set_peers(std::span(&peer, 1));
  a.start();
  // Disco from a key outside the netmap: magic, sender key, nonce, a sealed body.
  Bytes disco(62 + 16, 0);
  const char magic[] = "TS\xf0\x9f\x92\xac";
  std::memcpy(disco.data(), magic, 6);
  const Bytes junk(10, 0xEE);
  send_to(known.get(), loopback(a.port), wg_data(1, 100));
  send_to(known.get(), loopback(a.port), junk);
  send_to(stranger.get(), loopback(a.port), wg_data(2, 1280));
  send_to(known.get(), loopback(a.port), disco);
  send_to(known.get(), loopback(a.port), wg_data(3, 3000));  // longer than a slot's dense part
  send_to(known.get(), loopback(a.port), wg_data(4, 148));
  ASSERT_TRUE(run_until(io, [&] { return a.drain_ring() >= 4; }, 2000ms)) << a.got.size();
  io.poll();
  a.drain_ring();
  ASSERT_EQ(a.got.size(), 4u) << "junk and disco never reach the consumer";
  // Arrival order is kept: the long one takes the copying path, and so does the one
  // after it (in its slot it would overtake the copy); the ones before stay in place.
  const std::vector<Delivered> want{
      {7, wg_data(1, 100)}, {0, wg_data(2, 1280)}, {7, wg_data(3, 3000)}, {7, wg_data(4, 148)}};
  EXPECT_EQ(a.got, want);
  EXPECT_EQ(a.pushed, 2u) << "the long datagram and the one after it were copied";
  EXPECT_EQ(a.rt->counters().wg_rx.value(), 4u);
  EXPECT_EQ(a.rt->counters().wg_rx_unattributed.value(), 1u);
  EXPECT_EQ(a.rt->counters().rx_unknown_kind.value(), 1u);
  EXPECT_EQ(a.rt->counters().disco_rx_not_member.value(), 1u);
  EXPECT_EQ(a.rt->counters().wg_rx_ring_full.value(), 0u);
}

TEST(RuntimeRxRing, DiscoThroughRingSlotsConfirmsADirectPathBothWays) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  RingNode a(io, relay);
  RingNode b(io, relay);
  const auto pa = a.as_peer(3);
  const auto pb = b.as_peer(7);
  a.rt->set_peers(std::span(&pb, 1));
  b.rt->set_peers(std::span(&pa, 1));
  a.start();
  b.start();
  const auto d = wg_data(0xAA, 200);
  a.rt->send_wireguard(7, d);
  b.rt->send_wireguard(3, d);
  a.rt->flush();
  b.rt->flush();
  ASSERT_TRUE(run_until(io,
                        [&] {
                          return a.rt->path_of(7) == PathKind::kDirect && b.rt->path_of(3) == PathKind::kDirect;
                        },
                        4000ms))
      << "pings and pongs received into ring slots must still be answered";
  b.drain_ring();
  b.got.clear();
  const auto e = wg_data(0x5C, 1400);
  a.rt->send_wireguard(7, e);
  a.rt->flush();
  ASSERT_TRUE(run_until(io, [&] { return b.drain_ring() >= 1; }, 2000ms));
  EXPECT_EQ(b.got.back(), (Delivered{3, e}));
}

// A consumer that stops: what does not fit is held for a while (~5 ms), then dropped
// and counted, so that disco and STUN are read again.
TEST(RuntimeRxRing, FullRingDropsWireGuardCountedButStillReadsTheSocket) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  RingNode a(io, relay, ipc::RingGeometry{4, 2048});
  auto known = bind_loopback();
  const auto peer = peer_at(7, known.get());
  a.rt->set_peers(std::span(&peer, 1));
  a.start();
  for (std::uint8_t i = 0; i < 6; ++i) send_to(known.get(), loopback(a.port), wg_data(i, 64));
  ASSERT_TRUE(run_until(io, [&] { return a.rt->counters().wg_rx.value() == 6; }, 2000ms));
  ASSERT_TRUE(run_until(
      io, [&] { return a.rt->counters().wg_rx_ring_full.value() == 2; }, 2000ms));
  EXPECT_GE(a.rt->counters().wg_rx_held_back.value(), 2u) << "held before dropping";
  EXPECT_EQ(a.producer.free_slots(), 0u);
  // Nothing can go into the ring now, yet the socket is still read and demuxed.
  send_to(known.get(), loopback(a.port), Bytes(10, 0xEE));
  ASSERT_TRUE(run_until(io, [&] { return a.rt->counters().rx_unknown_kind.value() == 1; }, 2000ms));
  ASSERT_EQ(a.drain_ring(), 4u);
  for (std::uint8_t i = 0; i < 4; ++i) EXPECT_EQ(a.got[i], (Delivered{7, wg_data(i, 64)}));
  send_to(known.get(), loopback(a.port), wg_data(9, 64));
  ASSERT_TRUE(run_until(io, [&] { return a.drain_ring() == 5; }, 2000ms));
  EXPECT_EQ(a.got.back(), (Delivered{7, wg_data(9, 64)}));
}

TEST(RuntimeRxRing, NearlyFullRingHoldsDatagramsInTheSocketInsteadOfDroppingThem) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  RingNode a(io, relay, ipc::RingGeometry{8, 2048});  // holds back below 4 free slots
  auto known = bind_loopback();
  const auto peer = peer_at(7, known.get());
  a.rt->set_peers(std::span(&peer, 1));
  a.start();
  for (std::uint8_t i = 0; i < 6; ++i) send_to(known.get(), loopback(a.port), wg_data(i, 64));
  ASSERT_TRUE(run_until(
      io, [&] { return a.rt->counters().wg_rx.value() == 6; }, 2000ms));
  for (std::uint8_t i = 6; i < 9; ++i) send_to(known.get(), loopback(a.port), wg_data(i, 64));
  // Two free slots: the next three wait in the socket buffer (this consumer has no
  // room bell, so the 1 ms fallback timer retries; 5 holds in a row reach the limit,
  // so 1 ms more of loop cannot).
  ASSERT_TRUE(run_until(
      io, [&] { return a.rt->counters().wg_rx_held_back.value() >= 2; }, 2000ms));
  io.run_for(1ms);
  EXPECT_EQ(a.rt->counters().wg_rx.value(), 6u);
  EXPECT_EQ(a.rt->counters().wg_rx_ring_full.value(), 0u);
  // The consumer catches up: all three arrive, none dropped, in order.
  ASSERT_EQ(a.drain_ring(), 6u);
  ASSERT_TRUE(run_until(
      io, [&] { return a.drain_ring() == 9; }, 2000ms));
  EXPECT_EQ(a.rt->counters().wg_rx_ring_full.value(), 0u);
  for (std::uint8_t i = 0; i < 9; ++i) EXPECT_EQ(a.got[i], (Delivered{7, wg_data(i, 64)}));
}

// One receive can bring more datagrams than the ring has free slots (a burst of
// messages, or UDP_GRO runs): the ones that do not fit stay pending in netproc, in
// order, and nothing more is read until the consumer makes room. Before, they were
// pushed at the full ring and dropped.
TEST(RuntimeRxRing, BurstLargerThanTheFreeRoomIsHeldInOrderNotDropped) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  RingNode a(io, relay, ipc::RingGeometry{8, 2048});
  auto known = bind_loopback();
  const auto peer = peer_at(7, known.get());
  a.rt->set_peers(std::span(&peer, 1));
  // Queued before the runtime reads anything: one recvmmsg takes all twelve.
  for (std::uint8_t i = 0; i < 12; ++i) send_to(known.get(), loopback(a.port), wg_data(i, 64));
  a.start();
  ASSERT_TRUE(run_until(
      io, [&] { return a.rt->counters().wg_rx_held_back.value() >= 2; }, 2000ms));
  EXPECT_EQ(a.rt->counters().wg_rx.value(), 12u) << "all read in one burst";
  EXPECT_EQ(a.rt->counters().wg_rx_ring_full.value(), 0u);
  // The consumer catches up in steps: the held ones follow, then a new one.
  ASSERT_EQ(a.drain_ring(), 8u);
  ASSERT_TRUE(run_until(
      io, [&] { return a.drain_ring() == 12; }, 2000ms));
  send_to(known.get(), loopback(a.port), wg_data(12, 64));
  ASSERT_TRUE(run_until(
      io, [&] { return a.drain_ring() == 13; }, 2000ms));
  EXPECT_EQ(a.rt->counters().wg_rx_ring_full.value(), 0u);
  for (std::uint8_t i = 0; i < 13; ++i) EXPECT_EQ(a.got[i], (Delivered{7, wg_data(i, 64)}));
}

TEST(RuntimeRxRing, TruncationIsDetectedAgainstTheConfiguredSizeNotTheSlot) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  RingNode a(io, relay, ipc::RingGeometry{8, 65536}, /*rx_buffer=*/2048);
  a.start();
  auto other = bind_loopback();
  send_to(other.get(), loopback(a.port), wg_data(0x01, 4000));
  send_to(other.get(), loopback(a.port), wg_data(0x02, 2048));
  ASSERT_TRUE(run_until(io, [&] { return a.drain_ring() >= 1; }, 2000ms));
  EXPECT_EQ(a.rt->udp_counters().rx_truncated.value(), 1u);
  ASSERT_EQ(a.got.size(), 1u);
  EXPECT_EQ(a.got[0].data, wg_data(0x02, 2048));
}

TEST(RuntimeRxRing, DatagramLongerThanASmallSlotRingIsStillReceivedWhole) {
  // Slots of 1 KiB: a 1500-byte disco-sized datagram overflows into the private
  // buffer and is handled whole; a WireGuard one that long cannot enter the ring.
  boost::asio::io_context io;
  FakeRelay relay(io);
  RingNode a(io, relay, ipc::RingGeometry{8, 1024});
  a.start();
  auto other = bind_loopback();
  Bytes unknown(1500, 0xEE);
  send_to(other.get(), loopback(a.port), unknown);
  send_to(other.get(), loopback(a.port), wg_data(0x03, 1500));
  send_to(other.get(), loopback(a.port), wg_data(0x04, 1000));
  ASSERT_TRUE(run_until(io, [&] { return a.drain_ring() >= 1; }, 2000ms));
  io.poll();
  EXPECT_EQ(a.rt->udp_counters().rx_truncated.value(), 0u);
  EXPECT_EQ(a.rt->counters().rx_unknown_kind.value(), 1u);
  EXPECT_EQ(a.producer.stats().dropped_oversize, 1u);
  ASSERT_EQ(a.drain_ring(), 1u);
  EXPECT_EQ(a.got[0].data, wg_data(0x04, 1000));
}

}  // namespace
}  // namespace tw::netproc_test

namespace tw::netproc_test {
namespace {

TEST(RuntimeRxRing, CoalescedRunsLandOnePerSlotInOrderAttributed) {
  boost::asio::io_context io;
  FakeRelay relay(io);
  RingNode a(io, relay);
  int on = 1;
  ASSERT_EQ(::setsockopt(a.udp.get(), IPPROTO_UDP, UDP_GRO, &on, sizeof on),
            0);  // as the broker does
  auto known = bind_loopback();
  const auto peer = peer_at(7, known.get());
  a.rt->set_peers(std::span(&peer, 1));
  a.start();
  MetricsRegistry m;
  magicsock::UdpIoCounters c(m);
  magicsock::UdpIo sender(std::move(known), c);
  if (!sender.gso()) GTEST_SKIP() << "no UDP GSO on this kernel";
  std::vector<Delivered> want;
  auto run = [&](std::uint8_t first, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      const auto marker = static_cast<std::uint8_t>(first + i);
      want.push_back({7, wg_data(marker, i + 1 == count ? 500 : 1312)});
      sender.queue(loopback(a.port), want.back().data);
    }
    sender.flush();
    ASSERT_TRUE(run_until(
        io, [&] { return a.drain_ring() >= want.size(); }, 2000ms))
        << a.got.size();
  };
  run(1, 40);  // learns the segment size; most of this run is copied
  const std::size_t pushed_before = a.pushed;
  run(60, 40);
  run(120, 40);
  EXPECT_EQ(a.got, want) << "every datagram, in order, attributed";
  EXPECT_EQ(a.pushed, pushed_before) << "runs after the first land in their slots without a copy";
  EXPECT_GE(a.rt->udp_counters().rx_gro_messages.value(), 3u);
  EXPECT_EQ(a.rt->counters().wg_rx.value(), 120u);
  EXPECT_EQ(a.rt->counters().wg_rx_ring_full.value(), 0u);
}

}  // namespace
}  // namespace tw::netproc_test
