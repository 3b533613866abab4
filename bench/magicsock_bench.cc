// Path-logic scale: netmap reconcile for 10,000 peers × 4 endpoints (first load and a
// 1 % change) and the pinger tick at 10,000 peers with trusted paths. Prints a table
// of medians with the targets, next to a baseline measured in the same run (copying
// the netmap vector), so figures read as ratios on any machine; then runs the same
// cases under Google Benchmark.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <memory>
#include <vector>

#include "common/metrics.h"
#include "netproc/magicsock/peer_table.h"

namespace tw::magicsock {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t kPeers = 10000;
constexpr std::size_t kEndpoints = 4;
const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);

KeyBytes key_of(std::uint32_t i, std::uint8_t tag) {
  KeyBytes b{};
  SeededRandom r(i * 2 + tag);
  r.fill(b);
  return b;
}

IpPort endpoint_of(std::uint32_t peer, std::uint32_t j, std::uint16_t port) {
  const std::uint32_t n = peer * kEndpoints + j;
  return IpPort{IpAddr::v4(11, static_cast<std::uint8_t>(n >> 16),
                           static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)),
                port};
}

std::vector<NetmapPeer> make_netmap(std::uint16_t port = 41641) {
  std::vector<NetmapPeer> nm;
  nm.reserve(kPeers);
  for (std::uint32_t i = 0; i < kPeers; ++i) {
    NetmapPeer p{NodePublic(key_of(i, 0)), DiscoPublic(key_of(i, 1)), {}, 1};
    for (std::uint32_t j = 0; j < kEndpoints; ++j) p.endpoints.push_back(endpoint_of(i, j, port));
    nm.push_back(std::move(p));
  }
  return nm;
}

// 1 % of peers get one endpoint replaced (a new port).
std::vector<NetmapPeer> one_percent_changed(std::vector<NetmapPeer> nm) {
  for (std::size_t i = 0; i < kPeers; i += 100) nm[i].endpoints[0].port = 50000;
  return nm;
}

struct Fixture {
  MetricsRegistry reg;
  MagicsockMetrics m{reg};
  SeededRandom rng{1};
  PeerTable table{CandidatePolicy{}, m, rng};
};

// Loads the netmap and brings every peer to a trusted path; returns the time.
TimePoint make_trusted(Fixture& f, const std::vector<NetmapPeer>& nm) {
  TimePoint now = kT0;
  f.table.apply_netmap(nm, now);
  std::vector<PeerPing> pings;
  f.table.pinger_tick(now, pings);
  for (const auto& p : pings) f.table.on_pong(f.table.info(p.peer).disco, p.ping.txid, now + 10ms);
  return now;
}

// Thread CPU time: the CI box is shared, so wall time mostly measures the neighbours.
double cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double median_us(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename Setup, typename Work>
double measure(int runs, Setup setup, Work work) {
  std::vector<double> samples;
  for (int i = 0; i < runs; ++i) {
    setup(i);
    const double t = cpu_us();
    work(i);
    samples.push_back(cpu_us() - t);
  }
  return median_us(samples);
}

void print_table() {
  const auto nm = make_netmap();
  const auto changed = one_percent_changed(nm);

  std::vector<NetmapPeer> sink;
  const double copy_us = measure(
      15,
      [&](int) {
        sink.clear();
        sink.shrink_to_fit();
      },
      [&](int) {
        sink = nm;
        benchmark::DoNotOptimize(sink.data());
      });

  std::unique_ptr<Fixture> f;
  const double first_us = measure(
      7, [&](int) { f = std::make_unique<Fixture>(); },
      [&](int) { f->table.apply_netmap(nm, kT0); });

  f = std::make_unique<Fixture>();
  f->table.apply_netmap(nm, kT0);
  const double change_us = measure(
      21, [](int) {}, [&](int i) { f->table.apply_netmap(i % 2 ? nm : changed, kT0); });

  // Worst case first: every pong is lost, so trust lapses and each tick pings again.
  f = std::make_unique<Fixture>();
  TimePoint now = make_trusted(*f, nm);
  std::vector<PeerPing> pings;
  std::size_t pinged = 0;
  const double tick_us = measure(
      30,
      [&](int) {
        pings.clear();
        now += 2s;
      },
      [&](int) { f->table.pinger_tick(now, pings); });
  // Steady state: pongs are answered outside the timed region.
  f = std::make_unique<Fixture>();
  now = make_trusted(*f, nm);
  std::vector<double> samples;
  for (int i = 0; i < 30; ++i) {
    pings.clear();
    now += 2s;
    const double t = cpu_us();
    f->table.pinger_tick(now, pings);
    samples.push_back(cpu_us() - t);
    pinged += pings.size();
    for (const auto& p : pings)
      f->table.on_pong(f->table.info(p.peer).disco, p.ping.txid, now + 10ms);
  }
  const double steady_us = median_us(samples);

  std::printf("\nmagicsock path logic, %zu peers x %zu endpoints (median thread CPU time)\n",
              kPeers, kEndpoints);
  std::printf("%-46s %10s %10s %12s\n", "case", "time", "target", "x baseline");
  auto row = [&](const char* name, double us, const char* target) {
    std::printf("%-46s %8.2fms %10s %11.2fx\n", name, us / 1000, target, us / copy_us);
  };
  row("baseline: copy the netmap vector", copy_us, "-");
  row("reconcile, first load", first_us, "<=50ms");
  row("reconcile, 1% of peers changed", change_us, "<=5ms");
  row("pinger tick, trusted, pongs answered", steady_us, "<=2ms");
  row("pinger tick, trusted, pongs lost (worst case)", tick_us, "-");
  std::printf("pings planned per steady tick: %.0f of %zu peers\n\n", double(pinged) / 30, kPeers);
}

void BM_CopyNetmapBaseline(benchmark::State& state) {
  const auto nm = make_netmap();
  for (auto _ : state) {
    auto copy = nm;
    benchmark::DoNotOptimize(copy.data());
  }
}
BENCHMARK(BM_CopyNetmapBaseline)->Unit(benchmark::kMillisecond);

void BM_ReconcileFirstLoad(benchmark::State& state) {
  const auto nm = make_netmap();
  for (auto _ : state) {
    state.PauseTiming();
    auto f = std::make_unique<Fixture>();
    state.ResumeTiming();
    f->table.apply_netmap(nm, kT0);
    state.PauseTiming();
    f.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_ReconcileFirstLoad)->Unit(benchmark::kMillisecond);

void BM_ReconcileOnePercentChange(benchmark::State& state) {
  const auto nm = make_netmap();
  const auto changed = one_percent_changed(nm);
  Fixture f;
  f.table.apply_netmap(nm, kT0);
  bool flip = false;
  for (auto _ : state) {
    f.table.apply_netmap(flip ? nm : changed, kT0);
    flip = !flip;
  }
}
BENCHMARK(BM_ReconcileOnePercentChange)->Unit(benchmark::kMillisecond);

void BM_PingerTickTrusted(benchmark::State& state) {
  const auto nm = make_netmap();
  Fixture f;
  TimePoint now = make_trusted(f, nm);
  std::vector<PeerPing> pings;
  for (auto _ : state) {
    state.PauseTiming();
    pings.clear();
    now += 2s;
    state.ResumeTiming();
    f.table.pinger_tick(now, pings);
    state.PauseTiming();
    for (const auto& p : pings)
      f.table.on_pong(f.table.info(p.peer).disco, p.ping.txid, now + 10ms);
    state.ResumeTiming();
  }
}
BENCHMARK(BM_PingerTickTrusted)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tw::magicsock

int main(int argc, char** argv) {
  tw::magicsock::print_table();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
