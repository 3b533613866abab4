// TSO segmentation and GRO coalescing for the TUN device, checked against a naive
// byte-by-byte RFC 1071 checksum and against the segments a sender would have sent.
#include "dataproc/offload/tun_offload.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

namespace tw::offload {
namespace {

constexpr std::uint8_t kAck = 0x10, kPsh = 0x08, kFin = 0x01, kSyn = 0x02, kCwr = 0x80;

// Reference: sum of big-endian 16-bit words, one at a time.
std::uint32_t ref_sum(const std::uint8_t* p, std::size_t n, std::uint32_t acc = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) acc += (std::uint32_t{p[i]} << 8) | p[i + 1];
  if (n % 2 == 1) acc += std::uint32_t{p[n - 1]} << 8;
  return acc;
}
std::uint16_t ref_fold(std::uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint16_t>(acc);
}
std::uint32_t ref_pseudo(const std::vector<std::uint8_t>& ip, std::uint32_t l4_len) {
  const bool v4 = (ip[0] >> 4) == 4;
  std::uint32_t acc = ref_sum(ip.data() + (v4 ? 12 : 8), v4 ? 8 : 32);
  return acc + 6 + (l4_len >> 16) + (l4_len & 0xffff);
}
std::size_t ip_hlen(const std::vector<std::uint8_t>& ip) {
  return (ip[0] >> 4) == 4 ? std::size_t{ip[0] & 0x0fu} * 4u : 40u;
}
// Whole-packet checks a receiver makes: IPv4 header and TCP checksums.
bool ip_checksum_ok(const std::vector<std::uint8_t>& ip) {
  return (ip[0] >> 4) != 4 || ref_fold(ref_sum(ip.data(), ip_hlen(ip))) == 0xffff;
}
bool tcp_checksum_ok(const std::vector<std::uint8_t>& ip) {
  const std::size_t h = ip_hlen(ip);
  const auto l4 = static_cast<std::uint32_t>(ip.size() - h);
  return ref_fold(ref_sum(ip.data() + h, l4, ref_pseudo(ip, l4))) == 0xffff;
}

struct Seg {
  bool v4 = true;
  std::uint32_t seq = 1000;
  std::uint32_t ack = 77;
  std::uint8_t flags = kAck;
  std::uint16_t window = 500;
  std::uint16_t id = 10;
  bool df = true;
  std::size_t options = 12;  // TCP option bytes (timestamps-like)
  std::uint8_t ts = 1;       // varies the options
  std::uint16_t sport = 40000, dport = 5201;
  std::uint8_t last_addr = 2;
};

// A TCP/IP packet with complete, correct checksums.
std::vector<std::uint8_t> make_tcp(const Seg& s, std::size_t payload, std::uint8_t fill = 0) {
  const std::size_t ih = s.v4 ? 20 : 40;
  const std::size_t th = 20 + s.options;
  std::vector<std::uint8_t> p(ih + th + payload, 0);
  if (s.v4) {
    p[0] = 0x45;
    store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size()));
    store_be16(p.data() + 4, s.id);
    p[6] = s.df ? 0x40 : 0;
    p[8] = 64;
    p[9] = 6;
    const std::uint8_t a[8] = {100, 64, 0, 1, 100, 64, 0, s.last_addr};
    std::memcpy(p.data() + 12, a, 8);
    store_be16(p.data() + 10, static_cast<std::uint16_t>(~ref_fold(ref_sum(p.data(), 20))));
  } else {
    p[0] = 0x60;
    store_be16(p.data() + 4, static_cast<std::uint16_t>(th + payload));
    p[6] = 6;
    p[7] = 64;
    p[8] = 0xfd;
    p[23] = 1;
    p[24] = 0xfd;
    p[39] = s.last_addr;
  }
  std::uint8_t* t = p.data() + ih;
  store_be16(t, s.sport);
  store_be16(t + 2, s.dport);
  store_be32(t + 4, s.seq);
  store_be32(t + 8, s.ack);
  t[12] = static_cast<std::uint8_t>((th / 4) << 4);
  t[13] = s.flags;
  store_be16(t + 14, s.window);
  for (std::size_t i = 0; i < s.options; ++i) t[20 + i] = static_cast<std::uint8_t>(s.ts + i);
  for (std::size_t i = 0; i < payload; ++i)
    t[th + i] = static_cast<std::uint8_t>(fill + i * 7 + (i >> 8));
  const auto l4 = static_cast<std::uint32_t>(th + payload);
  store_be16(t + 16, static_cast<std::uint16_t>(~ref_fold(ref_sum(t, l4, ref_pseudo(p, l4)))));
  return p;
}

std::vector<std::uint8_t> with_hdr(const VnetHdr& h, const std::vector<std::uint8_t>& pkt) {
  std::vector<std::uint8_t> r(kVnetHdrLen + pkt.size());
  store_vnet_hdr(r.data(), h);
  std::memcpy(r.data() + kVnetHdrLen, pkt.data(), pkt.size());
  return r;
}

// What the kernel hands over for TSO: one big segment, TCP checksum field holding
// the pseudo-header sum only.
std::vector<std::uint8_t> tso_read(const Seg& s, std::size_t payload, std::uint16_t mss) {
  auto big = make_tcp(s, payload);
  const std::size_t ih = ip_hlen(big);
  const auto l4 = static_cast<std::uint32_t>(big.size() - ih);
  store_be16(big.data() + ih + 16, ref_fold(ref_pseudo(big, l4)));
  VnetHdr h;
  h.flags = kFlagNeedsCsum;
  h.gso_type = s.v4 ? kGsoTcpV4 : kGsoTcpV6;
  h.hdr_len = static_cast<std::uint16_t>(ih + 20 + s.options);
  h.gso_size = mss;
  h.csum_start = static_cast<std::uint16_t>(ih);
  h.csum_offset = 16;
  return with_hdr(h, big);
}

TEST(Checksum, MatchesReferenceOnRandomData) {
  std::mt19937 rng(7);
  for (std::size_t n = 0; n < 300; ++n) {
    std::vector<std::uint8_t> d(n);
    for (auto& b : d) b = static_cast<std::uint8_t>(rng());
    const std::uint32_t init = rng() & 0x3ffff;
    EXPECT_EQ(checksum_add(d, init), ref_fold(ref_sum(d.data(), d.size(), init))) << n;
  }
  std::vector<std::uint8_t> ff(64, 0xff);
  EXPECT_EQ(checksum_add(ff), 0xffff);
}

// The eight-lane sum defers every carry to the end: segment-sized and 64 KiB
// buffers, random and all-ones (the most carries), at odd offsets and lengths.
TEST(Checksum, LongBuffersMatchReferenceIncludingAllOnes) {
  std::mt19937 rng(11);
  for (std::size_t n : {1279u, 1280u, 1312u, 4099u, 65535u}) {
    std::vector<std::uint8_t> d(n + 1);
    for (auto& b : d) b = static_cast<std::uint8_t>(rng());
    const ByteView v(d.data() + 1, n);  // unaligned
    EXPECT_EQ(checksum_add(v, 0x1234), ref_fold(ref_sum(v.data(), n, 0x1234))) << n;
    std::vector<std::uint8_t> ones(n, 0xff);
    EXPECT_EQ(checksum_add(ones), ref_fold(ref_sum(ones.data(), n, 0))) << n;
  }
}

TEST(VnetHdr, RoundTrips) {
  VnetHdr h{1, 4, 66, 1228, 40, 16};
  std::uint8_t b[kVnetHdrLen];
  store_vnet_hdr(b, h);
  VnetHdr g = load_vnet_hdr(b);
  EXPECT_EQ(g.flags, 1);
  EXPECT_EQ(g.gso_type, 4);
  EXPECT_EQ(g.hdr_len, 66);
  EXPECT_EQ(g.gso_size, 1228);
  EXPECT_EQ(g.csum_start, 40);
  EXPECT_EQ(g.csum_offset, 16);
}

void expect_segments_match(Segmenter& sg, const Seg& s, std::size_t payload, std::uint16_t mss) {
  const std::size_t n = (payload + mss - 1) / mss;
  ASSERT_EQ(sg.count(), n);
  for (std::size_t i = 0; i < n; ++i) {
    Seg e = s;
    e.seq = s.seq + static_cast<std::uint32_t>(i * mss);
    e.id = static_cast<std::uint16_t>(s.id + i);
    const bool last = i + 1 == n;
    if (!last) e.flags &= static_cast<std::uint8_t>(~(kPsh | kFin));
    if (i > 0) e.flags &= static_cast<std::uint8_t>(~kCwr);
    const std::size_t len = last ? payload - i * mss : mss;
    // The expected segment: the same bytes a sender cutting by hand would send.
    auto want = make_tcp(e, len);
    auto full = make_tcp(s, payload);
    const std::size_t h = ip_hlen(want) + 20 + s.options;
    std::memcpy(want.data() + h, full.data() + h + i * mss, len);
    const std::size_t ih = ip_hlen(want);
    store_be16(want.data() + ih + 16, 0);
    const auto l4 = static_cast<std::uint32_t>(want.size() - ih);
    store_be16(
        want.data() + ih + 16,
        static_cast<std::uint16_t>(~ref_fold(ref_sum(want.data() + ih, l4, ref_pseudo(want, l4)))));
    std::vector<std::uint8_t> got(sg.packet(i).begin(), sg.packet(i).end());
    EXPECT_EQ(got, want) << "segment " << i;
    EXPECT_TRUE(ip_checksum_ok(got));
    EXPECT_TRUE(tcp_checksum_ok(got));
  }
}

TEST(Segmenter, SplitsTso4LikeTheKernel) {
  Segmenter sg;
  Seg s;
  s.flags = kAck | kPsh | kCwr;
  auto r = tso_read(s, 5000, 1228);
  ASSERT_EQ(sg.split(r), SplitError::kNone);
  expect_segments_match(sg, s, 5000, 1228);
  // PSH only on the last segment, CWR only on the first.
  EXPECT_EQ(sg.packet(0)[20 + 13], kAck | kCwr);
  EXPECT_EQ(sg.packet(1)[20 + 13], kAck);
  EXPECT_EQ(sg.packet(4)[20 + 13], kAck | kPsh);
}

TEST(Segmenter, SplitsTso6AndExactMultiples) {
  Segmenter sg;
  Seg s;
  s.v4 = false;
  s.flags = kAck | kFin;
  s.seq = 0xfffff000;  // sequence numbers wrap
  auto r = tso_read(s, std::size_t{1208} * 4, 1208);
  ASSERT_EQ(sg.split(r), SplitError::kNone);
  expect_segments_match(sg, s, std::size_t{1208} * 4, 1208);
  EXPECT_EQ(sg.packet(3)[40 + 13], kAck | kFin);
}

TEST(Segmenter, LargestReadAndOddSizes) {
  Segmenter sg;
  Seg s;
  s.options = 0;
  s.id = 0xfffe;  // IPv4 ids wrap
  const std::size_t payload = 65535 - 40;
  auto r = tso_read(s, payload, 1241);
  ASSERT_EQ(sg.split(r), SplitError::kNone);
  expect_segments_match(sg, s, payload, 1241);
}

TEST(Segmenter, CompletesPartialChecksumOfSinglePacket) {
  Segmenter sg;
  Seg s;
  auto pkt = make_tcp(s, 333);
  const auto l4 = static_cast<std::uint32_t>(pkt.size() - 20);
  store_be16(pkt.data() + 36, ref_fold(ref_pseudo(pkt, l4)));
  VnetHdr h;
  h.flags = kFlagNeedsCsum;
  h.csum_start = 20;
  h.csum_offset = 16;
  auto r = with_hdr(h, pkt);
  ASSERT_EQ(sg.split(r), SplitError::kNone);
  ASSERT_EQ(sg.count(), 1u);
  std::vector<std::uint8_t> got(sg.packet(0).begin(), sg.packet(0).end());
  EXPECT_EQ(got, make_tcp(s, 333));
}

TEST(Segmenter, PassesPlainPacketsThrough) {
  Segmenter sg;
  auto pkt = make_tcp(Seg{}, 10);
  auto r = with_hdr(VnetHdr{}, pkt);
  ASSERT_EQ(sg.split(r), SplitError::kNone);
  ASSERT_EQ(sg.count(), 1u);
  EXPECT_TRUE(std::equal(pkt.begin(), pkt.end(), sg.packet(0).begin(), sg.packet(0).end()));
}

TEST(Segmenter, RefusesMalformedInput) {
  Segmenter sg;
  std::vector<std::uint8_t> tiny(kVnetHdrLen, 0);
  EXPECT_EQ(sg.split(tiny), SplitError::kTruncated);

  auto good = tso_read(Seg{}, 3000, 1200);
  auto bad = good;
  bad[1] = kGsoUdpL4;
  EXPECT_EQ(sg.split(bad), SplitError::kUnsupportedGso);
  bad = good;
  bad[1] = kGsoTcpV6;  // an IPv4 packet announced as IPv6
  EXPECT_EQ(sg.split(bad), SplitError::kBadIpHeader);
  bad = good;
  store_be16(bad.data() + 4, 0);  // gso_size 0
  EXPECT_EQ(sg.split(bad), SplitError::kBadGsoSize);
  bad = good;
  std::uint16_t one = 1;
  std::memcpy(bad.data() + 4, &one, 2);  // 3000 segments
  EXPECT_EQ(sg.split(bad), SplitError::kBadGsoSize);
  bad = good;
  bad[kVnetHdrLen + 20 + 12] = 0xf0;  // TCP header longer than the packet allows
  bad.resize(kVnetHdrLen + 60);
  EXPECT_EQ(sg.split(bad), SplitError::kBadTcpHeader);
  bad = good;
  bad[kVnetHdrLen + 6] |= 0x20;  // a fragment
  EXPECT_EQ(sg.split(bad), SplitError::kBadIpHeader);

  auto plain = with_hdr(VnetHdr{kFlagNeedsCsum, 0, 0, 0, 20, 200}, make_tcp(Seg{}, 10));
  EXPECT_EQ(sg.split(plain), SplitError::kBadChecksumSpot);
}

// ---- Coalescer ----

struct Written {
  VnetHdr h;
  std::vector<std::uint8_t> ip;
};

std::vector<Written> coalesce(const std::vector<std::vector<std::uint8_t>>& pkts,
                              Coalescer* c = nullptr) {
  Coalescer local;
  Coalescer& co = c ? *c : local;
  for (const auto& p : pkts) EXPECT_TRUE(co.add(p));
  std::vector<Written> out;
  co.finish([&](ByteView w, std::size_t) {
    out.push_back(Written{load_vnet_hdr(w.data()),
                          std::vector<std::uint8_t>(w.begin() + kVnetHdrLen, w.end())});
  });
  return out;
}

// What the kernel would do with a written GSO segment: cut it again.
std::vector<std::vector<std::uint8_t>> resegment(const Written& w) {
  std::vector<std::uint8_t> buf(kVnetHdrLen + w.ip.size());
  store_vnet_hdr(buf.data(), w.h);
  std::memcpy(buf.data() + kVnetHdrLen, w.ip.data(), w.ip.size());
  Segmenter sg;
  EXPECT_EQ(sg.split(buf), SplitError::kNone);
  std::vector<std::vector<std::uint8_t>> r;
  for (std::size_t i = 0; i < sg.count(); ++i)
    r.emplace_back(sg.packet(i).begin(), sg.packet(i).end());
  return r;
}

std::vector<std::vector<std::uint8_t>> flow(Seg s, std::size_t n, std::size_t mss,
                                            std::size_t last = 0) {
  std::vector<std::vector<std::uint8_t>> r;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t len = (i + 1 == n && last) ? last : mss;
    r.push_back(make_tcp(s, len, static_cast<std::uint8_t>(i)));
    s.seq += static_cast<std::uint32_t>(len);
    s.id = static_cast<std::uint16_t>(s.id + 1);
  }
  return r;
}

TEST(Coalescer, MergesOneFlowIntoOneGsoWrite) {
  for (bool v4 : {true, false}) {
    Seg s;
    s.v4 = v4;
    auto pkts = flow(s, 10, 1200, 700);
    auto out = coalesce(pkts);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].h.gso_type, v4 ? kGsoTcpV4 : kGsoTcpV6);
    EXPECT_EQ(out[0].h.flags, kFlagNeedsCsum);
    EXPECT_EQ(out[0].h.gso_size, 1200);
    EXPECT_EQ(out[0].h.csum_start, v4 ? 20 : 40);
    EXPECT_EQ(out[0].h.csum_offset, 16);
    EXPECT_EQ(out[0].ip.size(), (v4 ? 20 : 40) + 32 + 9 * 1200 + 700);
    EXPECT_TRUE(ip_checksum_ok(out[0].ip));
    // Cut again as the kernel would, the packets are the originals.
    EXPECT_EQ(resegment(out[0]), pkts);
  }
}

TEST(Coalescer, SinglePacketsGoOutUnchangedWithEmptyHeader) {
  auto p = make_tcp(Seg{}, 100);
  std::vector<std::uint8_t> udp = {0x45, 0, 0,   28, 0, 0, 0x40, 0, 64, 17, 0, 0, 100, 64,
                                   0,    1, 100, 64, 0, 2, 0,    1, 0,  2,  0, 8, 0,   0};
  auto out = coalesce({p, udp});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].h.gso_type, kGsoNone);
  EXPECT_EQ(out[0].h.flags, 0);
  EXPECT_EQ(out[0].ip, p);
  EXPECT_EQ(out[1].ip, udp);
}

TEST(Coalescer, InterleavedFlowsMergeSeparately) {
  Seg a, b;
  b.sport = 40001;
  auto fa = flow(a, 4, 1000), fb = flow(b, 4, 1000);
  std::vector<std::vector<std::uint8_t>> mixed;
  for (int i = 0; i < 4; ++i) {
    mixed.push_back(fa[i]);
    mixed.push_back(fb[i]);
  }
  auto out = coalesce(mixed);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(resegment(out[0]), fa);
  EXPECT_EQ(resegment(out[1]), fb);
}

TEST(Coalescer, KeepsOrderWithinAFlow) {
  Seg s;
  auto f = flow(s, 6, 1000);
  // A gap, then a FIN, then more data: nothing may jump ahead of what came before it.
  Seg fin = s;
  fin.seq = s.seq + 3000;
  fin.flags = kAck | kFin;
  fin.id = 3;
  std::vector<std::vector<std::uint8_t>> in = {f[0], f[1], f[2], make_tcp(fin, 10),
                                               f[3], f[4], f[5]};
  auto out = coalesce(in);
  std::vector<std::vector<std::uint8_t>> replay;
  for (auto& w : out) {
    if (w.h.gso_type == kGsoNone) {
      replay.push_back(w.ip);
    } else {
      for (auto& p : resegment(w)) replay.push_back(p);
    }
  }
  EXPECT_EQ(replay, in);
  ASSERT_EQ(out.size(), 3u);  // f0-2 merged, the FIN alone, f3-5 merged
}

TEST(Coalescer, RulesThatEndOrRefuseAGroup) {
  Seg s;
  auto base = flow(s, 3, 1000);
  auto count_writes = [](const std::vector<std::vector<std::uint8_t>>& in) {
    return coalesce(in).size();
  };

  // Sequence gap (a lost packet): no merge across it.
  auto gap = base;
  gap.erase(gap.begin() + 1);
  EXPECT_EQ(count_writes(gap), 2u);

  // Different ACK number, window, options (timestamps), TTL: no merge.
  for (int what = 0; what < 4; ++what) {
    Seg t = s;
    t.seq += 1000;
    t.id = static_cast<std::uint16_t>(t.id + 1);
    if (what == 0) t.ack += 1;
    if (what == 1) t.window += 1;
    if (what == 2) t.ts += 1;
    auto p = make_tcp(t, 1000, 1);
    if (what == 3) {
      p[8] = 63;
      store_be16(p.data() + 10, 0);
      store_be16(p.data() + 10, static_cast<std::uint16_t>(~ref_fold(ref_sum(p.data(), 20))));
    }
    EXPECT_EQ(count_writes({base[0], p}), 2u) << what;
  }

  // PSH ends the group (it is included); a shorter segment ends it too.
  Seg psh = s;
  psh.seq += 1000;
  psh.flags = kAck | kPsh;
  psh.id = 11;
  Seg after = s;
  after.seq += 2000;
  after.id = 12;
  auto out = coalesce({base[0], make_tcp(psh, 1000, 1), make_tcp(after, 1000, 2)});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].ip[20 + 13], kAck | kPsh);
  auto shorter = flow(s, 3, 1000, 500);
  Seg more = s;
  more.seq += 2500;
  more.id = 13;
  EXPECT_EQ(count_writes({shorter[0], shorter[1], shorter[2], make_tcp(more, 1000)}), 2u);
  // A longer segment after the first cannot join.
  Seg longer = s;
  longer.seq += 1000;
  longer.id = 11;
  EXPECT_EQ(count_writes({base[0], make_tcp(longer, 1100)}), 2u);

  // SYN, pure ACKs and a missing DF with a jumping IP id: not merged.
  Seg syn = s;
  syn.flags = kSyn | kAck;
  EXPECT_EQ(count_writes({make_tcp(syn, 1000), base[1]}), 2u);
  auto acks = flow(s, 3, 0);
  EXPECT_EQ(count_writes(acks), 3u);
  Seg nodf = s;
  nodf.df = false;
  auto f = flow(nodf, 3, 1000);
  EXPECT_EQ(count_writes(f), 1u);  // consecutive ids merge
  Seg jump = nodf;
  jump.seq += 1000;
  jump.id = 99;
  EXPECT_EQ(count_writes({f[0], make_tcp(jump, 1000, 1)}), 2u);
}

TEST(Coalescer, BadChecksumIsNeverHiddenInAMerge) {
  Seg s;
  auto f = flow(s, 3, 1000);
  f[1][20 + 32 + 5] ^= 0x01;  // payload corrupted, TCP checksum now wrong
  Coalescer co;
  auto out = coalesce(f, &co);
  EXPECT_EQ(co.stats().bad_checksums, 1u);
  for (auto& w : out) {
    if (w.h.gso_type == kGsoNone && w.ip == f[1]) SUCCEED();
  }
  // The corrupted one is written on its own, unchanged (the kernel drops it).
  bool found = false;
  for (auto& w : out) found = found || (w.h.gso_type == kGsoNone && w.ip == f[1]);
  EXPECT_TRUE(found);
}

TEST(Coalescer, GroupSizeIsBounded) {
  Seg s;
  s.options = 0;
  auto f = flow(s, 100, 1200);
  auto out = coalesce(f);
  // 65535 bytes at most per write, 64 packets at most.
  std::size_t total = 0;
  for (auto& w : out) {
    EXPECT_LE(w.ip.size(), 65535u);
    total += resegment(w).size();
  }
  EXPECT_EQ(total, 100u);
  EXPECT_GE(out.size(), 2u);
  Coalescer co;
  for (std::size_t i = 0; i < Coalescer::kMaxPackets; ++i) ASSERT_TRUE(co.add(f[i % 100]));
  EXPECT_FALSE(co.add(f[0]));
}

}  // namespace
}  // namespace tw::offload
