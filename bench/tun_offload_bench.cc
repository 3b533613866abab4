// TUN offload costs per byte: TSO segmentation of a 64 KiB read into MTU-sized
// packets (copy + IPv4/TCP checksums) and GRO coalescing of 1228-byte packets into
// one write (checksum verification + copy), against a plain memcpy of the same bytes.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "dataproc/offload/tun_offload.h"

namespace tw::offload {
namespace {

constexpr std::uint16_t kMss = 1228;  // what TCP uses at the default MTU of 1280

std::vector<std::uint8_t> tcp_packet(std::uint32_t seq, std::size_t payload, std::uint16_t id) {
  std::vector<std::uint8_t> p(40 + payload, 0x5a);
  p[0] = 0x45;
  p[1] = 0;
  store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size()));
  store_be16(p.data() + 4, id);
  p[6] = 0x40;
  p[7] = 0;
  p[8] = 64;
  p[9] = 6;
  p[10] = p[11] = 0;
  const std::uint8_t a[8] = {100, 64, 0, 1, 100, 64, 0, 2};
  std::memcpy(p.data() + 12, a, 8);
  store_be16(p.data() + 10, fold_complement(checksum_add(ByteView(p.data(), 20))));
  std::uint8_t* t = p.data() + 20;
  std::memset(t, 0, 20);
  store_be16(t, 40000);
  store_be16(t + 2, 5201);
  store_be32(t + 4, seq);
  store_be32(t + 8, 1);
  t[12] = 0x50;
  t[13] = 0x10;
  store_be16(t + 14, 500);
  const auto l4 = static_cast<std::uint32_t>(p.size() - 20);
  store_be16(t + 16, fold_complement(
                         checksum_add(ByteView(t, l4), pseudo_header_sum(p.data(), true, 6, l4))));
  return p;
}

void bm_segment_tso64k(benchmark::State& st) {
  const std::size_t payload = 65535 - 40;
  auto pkt = tcp_packet(1, payload, 1);
  std::vector<std::uint8_t> read(kVnetHdrLen + pkt.size());
  VnetHdr h{kFlagNeedsCsum, kGsoTcpV4, 40, kMss, 20, 16};
  store_vnet_hdr(read.data(), h);
  std::memcpy(read.data() + kVnetHdrLen, pkt.data(), pkt.size());
  Segmenter sg;
  for (auto _ : st) {
    auto e = sg.split(read);
    benchmark::DoNotOptimize(e);
    benchmark::DoNotOptimize(sg.packet(sg.count() - 1).data());
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * payload));
  st.counters["segments"] = static_cast<double>(sg.count());
}
BENCHMARK(bm_segment_tso64k);

void bm_coalesce53(benchmark::State& st) {
  std::vector<std::vector<std::uint8_t>> pkts;
  for (std::uint32_t i = 0; i < 53; ++i)
    pkts.push_back(tcp_packet(1 + i * kMss, kMss, static_cast<std::uint16_t>(i)));
  Coalescer co;
  std::size_t writes = 0;
  for (auto _ : st) {
    for (const auto& p : pkts) benchmark::DoNotOptimize(co.add(p));
    co.finish([&](ByteView w, std::size_t) {
      benchmark::DoNotOptimize(w.data());
      ++writes;
    });
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 53 * kMss));
  st.counters["writes_per_batch"] =
      static_cast<double>(writes) / static_cast<double>(st.iterations());
}
BENCHMARK(bm_coalesce53);

void bm_memcpy64k(benchmark::State& st) {
  std::vector<std::uint8_t> a(65535, 1), b(65535);
  for (auto _ : st) {
    std::memcpy(b.data(), a.data(), a.size());
    benchmark::DoNotOptimize(b.data());
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * a.size()));
}
BENCHMARK(bm_memcpy64k);

}  // namespace
}  // namespace tw::offload

BENCHMARK_MAIN();
