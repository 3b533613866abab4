// UDP_GRO on the receive side, over real loopback sockets: a UdpIo sender with UDP
// GSO, a receiver socket with UDP_GRO set (as the broker sets it). The kernel hands
// a run over as one coalesced message; UdpIo splits it into the datagrams that were
// sent, in order, first into private memory, then (having learnt the segment size)
// one datagram per ring slot without a copy. Odd cases: a segment size that changes,
// a run longer than the slots, no UDP_GRO at all. The splitter's own edge cases
// (hostile lengths and segment sizes) are below and in tests/fuzz/gro_split_fuzz.cc.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "netproc/magicsock/gro_split.h"
#include "netproc/magicsock/udp_io.h"
#include "tests/unit/netproc/rt_util.h"

namespace tw::magicsock {
namespace {

using namespace ::tw::netproc_test;

Bytes datagram(std::uint8_t marker, std::size_t len) {
  Bytes d(len);
  for (std::size_t i = 0; i < len; ++i) d[i] = static_cast<std::uint8_t>(marker * 7 + i);
  return d;
}

ipc::UniqueFd bind_gro_loopback() {
  auto fd = bind_loopback();
  int on = 1;
  EXPECT_EQ(::setsockopt(fd.get(), IPPROTO_UDP, UDP_GRO, &on, sizeof on), 0);
  return fd;
}

// Memory standing in for free ring slots: a 2 KiB dense part and an overflow area each.
struct FakeSlots {
  explicit FakeSlots(std::size_t n, std::size_t head = 2048, std::size_t rest = 63488)
      : heads(n * head), rests(n * rest), places(n) {
    for (std::size_t i = 0; i < n; ++i) {
      places[i] = RxPlacement{{heads.data() + i * head, rests.data() + i * rest}, {head, rest}};
    }
  }
  Bytes heads, rests;
  std::vector<RxPlacement> places;
};

struct Receiver {
  explicit Receiver(bool gro) : io(gro ? bind_gro_loopback() : bind_loopback(), c), out(kRxMaxDatagrams) {}
  // Receives until `want` datagrams arrived (or 2 s passed), with `slots` offered
  // each burst; returns them in order with where each landed.
  std::vector<std::pair<Bytes, std::uint32_t>> take(std::size_t want, std::span<const RxPlacement> slots) {
    std::vector<std::pair<Bytes, std::uint32_t>> got;
    for (int tries = 0; got.size() < want && tries < 2000; ++tries) {
      const int n = io.receive_placed(slots, out);
      if (n < 0) {
        ::usleep(1000);
        continue;
      }
      for (int i = 0; i < n; ++i) {
        const RxSegment& s = out[static_cast<std::size_t>(i)].seg;
        got.emplace_back(Bytes(s.data, s.data + s.length), s.slot);
      }
    }
    return got;
  }
  MetricsRegistry m;
  UdpIoCounters c{m};
  UdpIo io;
  std::vector<RxDatagram> out;
};

struct Sender {
  Sender() : io(bind_loopback(), c) {}
  std::vector<Bytes> run(const IpPort& to, std::uint8_t marker, std::size_t count, std::size_t size,
                         std::size_t last = 0) {
    std::vector<Bytes> sent;
    for (std::size_t i = 0; i < count; ++i) {
      sent.push_back(datagram(static_cast<std::uint8_t>(marker + i), i + 1 == count && last != 0 ? last : size));
      io.queue(to, sent.back());
    }
    io.flush();
    return sent;
  }
  MetricsRegistry m;
  UdpIoCounters c{m};
  UdpIo io;
};

std::vector<Bytes> data_of(const std::vector<std::pair<Bytes, std::uint32_t>>& got) {
  std::vector<Bytes> d;
  for (const auto& g : got) d.push_back(g.first);
  return d;
}

TEST(UdpGro, CoalescedRunsAreSplitIntoTheDatagramsSentThenLandOnePerSlot) {
  Receiver r(true);
  Sender s;
  if (!s.io.gso()) GTEST_SKIP() << "no UDP GSO on this kernel";
  const IpPort to = loopback(r.io.local_port());
  FakeSlots slots(64);
  // First run: nothing learnt yet, one slot per message: the first datagram sits in
  // slot 0, the rest are put together in private memory.
  auto sent = s.run(to, 1, 40, 1312, 600);
  auto got = r.take(sent.size(), slots.places);
  ASSERT_EQ(data_of(got), sent);
  EXPECT_GE(r.c.rx_gro_messages.value(), 1u) << "the kernel coalesced nothing";
  EXPECT_EQ(r.c.rx_datagrams.value(), 40u);
  EXPECT_EQ(got[0].second, 0u);
  EXPECT_EQ(got[1].second, kNoSlot);
  // Second run, same segment size: each datagram lands in its own slot, in order.
  sent = s.run(to, 50, 40, 1312, 600);
  got = r.take(sent.size(), slots.places);
  ASSERT_EQ(data_of(got), sent);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].second, i) << i;
    EXPECT_EQ(std::memcmp(slots.heads.data() + i * 2048, sent[i].data(), sent[i].size()), 0);
  }
  EXPECT_EQ(r.c.rx_gro_invalid.value(), 0u);
  EXPECT_EQ(r.c.rx_gro_dropped.value(), 0u);
  EXPECT_EQ(r.c.rx_truncated.value(), 0u);
}

TEST(UdpGro, ASegmentSizeThatChangesOrARunLongerThanTheSlotsIsStillSplitRight) {
  Receiver r(true);
  Sender s;
  if (!s.io.gso()) GTEST_SKIP() << "no UDP GSO on this kernel";
  const IpPort to = loopback(r.io.local_port());
  FakeSlots slots(8);
  auto sent = s.run(to, 1, 30, 1312);
  ASSERT_EQ(data_of(r.take(sent.size(), slots.places)), sent);
  // Rows are now cut at 1312; 1000-byte datagrams straddle them: copied together.
  sent = s.run(to, 90, 30, 1000, 10);
  auto got = r.take(sent.size(), slots.places);
  ASSERT_EQ(data_of(got), sent);
  // Back at 1312 with 30 datagrams and only 8 slots: 8 in place, 22 private.
  s.run(to, 3, 30, 1312);  // relearn 1312
  r.take(30, slots.places);
  sent = s.run(to, 130, 30, 1312);
  got = r.take(sent.size(), slots.places);
  ASSERT_EQ(data_of(got), sent);
  std::size_t in_place = 0;
  for (const auto& g : got) in_place += g.second != kNoSlot;
  EXPECT_EQ(in_place, 8u);
  EXPECT_EQ(r.c.rx_gro_dropped.value(), 0u);
}

TEST(UdpGro, WithoutUdpGroDatagramsArriveOneByOne) {
  Receiver r(false);
  Sender s;
  const IpPort to = loopback(r.io.local_port());
  FakeSlots slots(64);
  const auto sent = s.run(to, 1, 20, 1312, 100);
  const auto got = r.take(sent.size(), slots.places);
  ASSERT_EQ(data_of(got), sent);
  EXPECT_EQ(r.c.rx_gro_messages.value(), 0u);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].second, i) << "one slot per datagram";
}

TEST(UdpGro, ReceiveBurstHandsOutEveryDatagramOfARun) {
  Receiver r(true);
  Sender s;
  const auto sent = s.run(loopback(r.io.local_port()), 1, 25, 1400, 1);
  std::vector<Bytes> got;
  for (int tries = 0; got.size() < sent.size() && tries < 2000; ++tries) {
    if (!r.io.receive_burst([&](const IpPort&, MutableByteView d) { got.emplace_back(d.begin(), d.end()); })) {
      ::usleep(1000);
    }
  }
  EXPECT_EQ(got, sent);
}

// The splitter on its own: lengths and segment sizes the kernel should never report.
struct Layout {
  explicit Layout(std::vector<std::pair<std::uint32_t, std::uint32_t>> spec, std::size_t cap_)
      : cap(cap_), priv(cap_, 0) {
    std::size_t total = 0;
    for (auto [len, slot] : spec) total += len;
    store.resize(total);
    std::size_t at = 0;
    for (auto [len, slot] : spec) {
      chunks.push_back(RxChunk{store.data() + at, len, slot});
      at += len;
    }
  }
  // Writes a message of `len` bytes as the kernel would have scattered it.
  Bytes fill(std::size_t len) {
    Bytes msg = datagram(9, len);
    std::size_t at = 0;
    for (const auto& c : chunks) {
      for (std::size_t j = 0; j < c.len && at < len && at < cap; ++j) c.data[j] = msg[at++];
    }
    for (; at < len && at < cap; ++at) priv[at] = msg[at];
    return msg;
  }
  std::size_t cap;
  Bytes store, priv;
  std::vector<RxChunk> chunks;
};

TEST(GroSplit, SegmentsAreFoundInPlaceOrCopiedTogether) {
  Layout l({{100, 0}, {100, 1}, {100, 2}}, 1000);
  const Bytes msg = l.fill(450);
  RxSegment out[8];
  const auto r = split_gro(l.chunks, l.priv.data(), l.cap, 450, 100, out);
  ASSERT_EQ(r.count, 5u);
  EXPECT_EQ(r.dropped, 0u);
  for (std::size_t k = 0; k < 5; ++k) {
    EXPECT_EQ(Bytes(out[k].data, out[k].data + out[k].length),
              Bytes(msg.begin() + 100 * k, msg.begin() + std::min<std::size_t>(450, 100 * (k + 1))));
    EXPECT_EQ(out[k].slot, k < 3 ? k : kNoSlot);
  }
  EXPECT_EQ(out[4].length, 50u);
  // to_private moves an in-place one to its private place (same offset).
  EXPECT_EQ(to_private(out[1]), l.priv.data() + 100);
  EXPECT_EQ(out[1].slot, kNoSlot);
  EXPECT_EQ(Bytes(l.priv.begin() + 100, l.priv.begin() + 200), Bytes(msg.begin() + 100, msg.begin() + 200));
  // Mispredicted: 150-byte segments straddle the 100-byte chunks: all copied together.
  const Bytes msg2 = l.fill(450);
  const auto r2 = split_gro(l.chunks, l.priv.data(), l.cap, 450, 150, out);
  ASSERT_EQ(r2.count, 3u);
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(out[k].slot, kNoSlot);
    EXPECT_EQ(Bytes(out[k].data, out[k].data + out[k].length),
              Bytes(msg2.begin() + 150 * k, msg2.begin() + 150 * (k + 1)));
  }
}

TEST(GroSplit, HostileLengthsAndSizesGiveCountedDropsNeverOverruns) {
  Layout l({{64, 0}, {64, 1}}, 256);
  RxSegment out[kMaxGroSegments];
  // Longer than the buffer: the message is dropped.
  auto r = split_gro(l.chunks, l.priv.data(), l.cap, 257, 64, out);
  EXPECT_EQ(r.count, 0u);
  EXPECT_EQ(r.dropped, 1u);
  // A segment size beyond the length: one datagram.
  l.fill(100);
  r = split_gro(l.chunks, l.priv.data(), l.cap, 100, 5000, out);
  ASSERT_EQ(r.count, 1u);
  EXPECT_EQ(out[0].length, 100u);
  EXPECT_EQ(out[0].slot, kNoSlot) << "longer than its chunk: copied together";
  // One-byte segments: more than kMaxGroSegments; the rest counted.
  l.fill(256);
  r = split_gro(l.chunks, l.priv.data(), l.cap, 256, 1, out);
  EXPECT_EQ(r.count, kMaxGroSegments);
  EXPECT_EQ(r.dropped, 256 - kMaxGroSegments);
  // An output shorter than the run: the rest counted.
  r = split_gro(l.chunks, l.priv.data(), l.cap, 256, 64, std::span(out, 2));
  EXPECT_EQ(r.count, 2u);
  EXPECT_EQ(r.dropped, 2u);
  // A zero-length datagram is one datagram (the demux drops it as unknown).
  r = split_gro(l.chunks, l.priv.data(), l.cap, 0, 0, out);
  ASSERT_EQ(r.count, 1u);
  EXPECT_EQ(out[0].length, 0u);
  // Chunks reaching past the buffer are clipped, never trusted.
  Layout wide({{200, 0}, {200, 1}}, 256);
  const Bytes msg = wide.fill(256);
  r = split_gro(wide.chunks, wide.priv.data(), wide.cap, 256, 200, out);
  ASSERT_EQ(r.count, 2u);
  EXPECT_EQ(out[0].slot, 0u);
  EXPECT_EQ(out[1].slot, 1u) << "what is left of the clipped chunk holds it";
  EXPECT_EQ(out[1].length, 56u);
  EXPECT_EQ(Bytes(out[1].data, out[1].data + out[1].length), Bytes(msg.begin() + 200, msg.end()));
}

}  // namespace
}  // namespace tw::magicsock
