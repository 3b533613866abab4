// Relay throughput: 1400-byte packets from client A to client B through
// tailwarden-derper on loopback with TLS, next to the same bytes over one plain
// loopback TCP connection, driven by the same single-threaded poll loop with the same
// in-flight window (24 packets, under the relay's 32-packet queue). Prints the
// relay/TCP ratio at the end (aim >= 0.5).
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "netproc/derp/stream.h"
#include "tests/integration/derp/derper_harness.h"

namespace {

using namespace tw;
using namespace tw::derptest;

constexpr std::size_t kPacket = 1400;
constexpr std::size_t kWindow = 24;
constexpr std::size_t kBatch = 2000;

std::map<std::string, double> g_rate;

struct RelayFixture {
  TempDir dir;
  std::unique_ptr<Derper> derper;
  std::unique_ptr<TestClient> a, b;
  RelayFixture() {
    crypto_init();
    if (!make_test_certs(dir)) return;
    derper = std::make_unique<Derper>(dir, std::vector<std::string>{"--tls-cert", dir.file("leaf.pem"),
                                                                    "--tls-key", dir.file("leaf.key")});
    a = std::make_unique<TestClient>(derper->port(), insecure_tls_config());
    b = std::make_unique<TestClient>(derper->port(), insecure_tls_config());
    pump_until({a.get(), b.get()}, [&] { return a->ready && b->ready; });
  }
  bool ok() const { return a && b && a->ready && b->ready; }
};

// A round relays kBatch packets A→B with at most kWindow in flight.
void run_relay(benchmark::State& state) {
  RelayFixture f;
  if (!f.ok()) {
    state.SkipWithError("relay setup failed");
    return;
  }
  Bytes pkt(kPacket, 0x5a);
  std::size_t received_total = 0;
  for (auto _ : state) {
    std::size_t sent = 0;
    std::size_t base = f.b->packets.size();
    auto got = [&] { return f.b->packets.size() - base; };
    while (got() < kBatch) {
      while (sent < kBatch && sent - got() < kWindow && f.a->client().send_packet(f.b->key(), pkt).ok()) ++sent;
      std::size_t before = got();
      bool moved = pump_until(
          {f.a.get(), f.b.get()},
          [&] { return got() >= kBatch || (sent < kBatch && sent - got() < kWindow); }, 2000);
      if (f.a->failed() || f.b->failed() || (!moved && got() == before)) {
        state.SkipWithError("relay stalled or failed");
        return;
      }
    }
    received_total += got();
    f.b->packets.clear();
  }
  state.counters["pkts_per_s"] = benchmark::Counter(static_cast<double>(received_total), benchmark::Counter::kIsRate);
  state.counters["Mbit_per_s"] =
      benchmark::Counter(static_cast<double>(received_total * kPacket * 8) / 1e6, benchmark::Counter::kIsRate);
}

void run_tcp(benchmark::State& state) {
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  ::listen(lfd, 1);
  socklen_t len = sizeof sa;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);
  int wfd = connect_loopback(ntohs(sa.sin_port));
  int rfd = ::accept(lfd, nullptr, nullptr);
  ::close(lfd);
  (void)derp::make_nonblocking(wfd);
  (void)derp::make_nonblocking(rfd);
  derp::PlainStream w(wfd), r(rfd);
  Bytes pkt(kPacket, 0x5a);
  Bytes buf(64 * 1024);
  std::size_t received_total = 0;
  for (auto _ : state) {
    std::size_t sent_bytes = 0, got_bytes = 0, partial = 0;
    const std::size_t want = kBatch * kPacket;
    while (got_bytes < want) {
      while (sent_bytes < want && sent_bytes - got_bytes < kWindow * kPacket) {
        auto res = w.write(ByteView(pkt).subspan(partial));
        if (res.kind != derp::IoResult::kDone) break;
        partial += res.n;
        if (partial == kPacket) partial = 0;
        sent_bytes += res.n;
      }
      pollfd p{rfd, POLLIN, 0};
      ::poll(&p, 1, 10);
      for (;;) {
        auto res = r.read(buf);
        if (res.kind != derp::IoResult::kDone) break;
        got_bytes += res.n;
      }
    }
    received_total += kBatch;
  }
  state.counters["pkts_per_s"] = benchmark::Counter(static_cast<double>(received_total), benchmark::Counter::kIsRate);
  state.counters["Mbit_per_s"] =
      benchmark::Counter(static_cast<double>(received_total * kPacket * 8) / 1e6, benchmark::Counter::kIsRate);
}

void BM_RelayTls(benchmark::State& state) { run_relay(state); }
void BM_PlainTcp(benchmark::State& state) { run_tcp(state); }

BENCHMARK(BM_PlainTcp)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_RelayTls)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      auto it = r.counters.find("pkts_per_s");
      if (it != r.counters.end()) g_rate[r.benchmark_name()] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  double tcp = g_rate["BM_PlainTcp/min_time:1.000/real_time"];
  double relay = g_rate["BM_RelayTls/min_time:1.000/real_time"];
  if (tcp > 0 && relay > 0) {
    std::printf("\n| path | pkts/s | Mbit/s |\n|---|---|---|\n");
    std::printf("| plain TCP loopback | %.0f | %.1f |\n", tcp, tcp * kPacket * 8 / 1e6);
    std::printf("| DERP relay over TLS | %.0f | %.1f |\n", relay, relay * kPacket * 8 / 1e6);
    std::printf("relay/TCP ratio: %.2f (aim >= 0.5)\n", relay / tcp);
  }
  return 0;
}
