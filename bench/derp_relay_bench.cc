// Relay throughput: 1400-byte packets from DERP client A to client B through
// tailwarden-derper on loopback, next to the same bytes over one plain loopback TCP
// connection. Every path runs in one single-threaded poll loop with the same window
// of packets in flight (sent, not yet received), so the ratios compare like with like.
//
// Windows: 24 stays under the relay's 32-packet queue, so nothing can be dropped even
// if every socket buffer were full; 128 (180 KiB) is closer to what a tunnelled TCP
// flow keeps in flight and still fits the loopback socket buffers. A relay drop would
// stall the window and fail the run, never inflate it.
//
// Rows: plain TCP with one send(2) per packet (how a naive tunnel writes), plain TCP
// with the window's packets coalesced into one send(2) (the stronger baseline), the
// derper over TLS, the derper over plain HTTP. Ratios are against both TCP rows.
#include <benchmark/benchmark.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "netproc/derp/stream.h"
#include "tests/integration/derp/derper_harness.h"

namespace {

using namespace tw;
using namespace tw::derptest;

constexpr std::size_t kPacket = 1400;
constexpr std::size_t kBatch = 4000;  // packets per timed iteration
constexpr int kStallMs = 2000;

enum Path : int { kTcpPerPacket, kTcpCoalesced, kRelayTls, kRelayHttp };
const char* const kPathNames[] = {"plain TCP, send per packet", "plain TCP, coalesced sends",
                                  "derper over TLS", "derper over plain HTTP"};

std::map<std::pair<int, int>, double> g_rate;  // (path, window) → packets/s

void set_rate_counters(benchmark::State& state, std::size_t packets) {
  state.counters["pkts_per_s"] = benchmark::Counter(static_cast<double>(packets), benchmark::Counter::kIsRate);
  state.counters["Mbit_per_s"] =
      benchmark::Counter(static_cast<double>(packets * kPacket * 8) / 1e6, benchmark::Counter::kIsRate);
}

struct RelayFixture {
  TempDir dir;
  std::unique_ptr<Derper> derper;
  std::unique_ptr<TestClient> a, b;
  explicit RelayFixture(bool tls) {
    crypto_init();
    std::vector<std::string> args{"--plain-http"};
    if (tls) {
      if (!make_test_certs(dir)) return;
      args = {"--tls-cert", dir.file("leaf.pem"), "--tls-key", dir.file("leaf.key")};
    }
    derper = std::make_unique<Derper>(dir, args);
    if (!derper->started()) return;
    auto cfg = tls ? insecure_tls_config() : plain_config();
    a = std::make_unique<TestClient>(derper->port(), cfg);
    b = std::make_unique<TestClient>(derper->port(), cfg);
    b->keep_packets = false;
    pump_until({a.get(), b.get()}, [&] { return a->ready && b->ready; });
  }
  bool ok() const { return a && b && a->ready && b->ready && !a->failed() && !b->failed(); }
};

// One turn of the event loop a node runs: poll both clients' fds, drive the ready ones.
bool drive(TestClient& a, TestClient& b) {
  pollfd fds[2];
  TestClient* owners[2] = {&a, &b};
  for (int i = 0; i < 2; ++i) {
    short ev = POLLIN;
    if (owners[i]->client().wants_write()) ev |= POLLOUT;
    fds[i] = pollfd{owners[i]->client().fd(), ev, 0};
  }
  if (::poll(fds, 2, 10) < 0) return false;
  for (int i = 0; i < 2; ++i)
    if (fds[i].revents != 0) owners[i]->step(Clock::now());
  return !a.failed() && !b.failed();
}

void run_relay(benchmark::State& state, bool tls) {
  const auto window = static_cast<std::size_t>(state.range(0));
  RelayFixture f(tls);
  if (!f.ok()) {
    state.SkipWithError("relay setup failed");
    return;
  }
  Bytes pkt(kPacket, 0x5a);
  std::size_t received_total = 0;
  for (auto _ : state) {
    std::size_t sent = 0;
    const std::size_t base = f.b->packets_seen;
    auto got = [&] { return f.b->packets_seen - base; };
    auto last_progress = Clock::now();
    while (got() < kBatch) {
      while (sent < kBatch && sent - got() < window) {
        if (!f.a->client().send_packet(f.b->key(), pkt).ok()) break;
        ++sent;
      }
      const std::size_t before = got();
      if (!drive(*f.a, *f.b)) {
        state.SkipWithError("relay client failed");
        return;
      }
      if (got() != before) {
        last_progress = Clock::now();
      } else if (Clock::now() - last_progress > std::chrono::milliseconds(kStallMs)) {
        state.SkipWithError("relay stalled (a packet was dropped?)");
        return;
      }
    }
    received_total += got();
  }
  set_rate_counters(state, received_total);
}

// Bytes for the next send(2): the rest of a started packet, then whole packets while
// they fit the window (one at a time unless coalescing). `want` is whole packets.
std::size_t next_chunk(std::size_t sent, std::size_t got, std::size_t want, std::size_t window, bool coalesce) {
  const std::size_t rest_of_packet = (kPacket - sent % kPacket) % kPacket;
  const std::size_t in_flight = sent + rest_of_packet - got;
  const std::size_t cap = window * kPacket;
  std::size_t whole = in_flight >= cap ? 0 : (cap - in_flight) / kPacket;
  whole = std::min(whole, (want - sent - rest_of_packet) / kPacket);
  if (!coalesce) return rest_of_packet != 0 ? rest_of_packet : std::min<std::size_t>(whole, 1) * kPacket;
  return rest_of_packet + whole * kPacket;
}

// The same window over one plain TCP connection: per packet sends, or the packets that
// fit the window coalesced into one send(2).
void run_tcp(benchmark::State& state, bool coalesce) {
  const auto window = static_cast<std::size_t>(state.range(0));
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
  derp::set_tcp_nodelay(rfd);
  derp::PlainStream w(wfd), r(rfd);
  const Bytes pkts(window * kPacket, 0x5a);
  Bytes buf(64 * 1024);
  std::size_t received_total = 0;
  for (auto _ : state) {
    std::size_t sent_bytes = 0, got_bytes = 0;
    const std::size_t want = kBatch * kPacket;
    while (got_bytes < want) {
      while (std::size_t chunk = next_chunk(sent_bytes, got_bytes, want, window, coalesce)) {
        auto res = w.write(ByteView(pkts).first(chunk));
        if (res.kind != derp::IoResult::kDone) break;
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
  set_rate_counters(state, received_total);
}

void BM_PlainTcpPerPacket(benchmark::State& s) { run_tcp(s, false); }
void BM_PlainTcpCoalesced(benchmark::State& s) { run_tcp(s, true); }
void BM_RelayTls(benchmark::State& s) { run_relay(s, true); }
void BM_RelayHttp(benchmark::State& s) { run_relay(s, false); }

#define TW_RELAY_BENCH(fn) \
  BENCHMARK(fn)->ArgName("window")->Arg(24)->Arg(128)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0)
TW_RELAY_BENCH(BM_PlainTcpPerPacket);
TW_RELAY_BENCH(BM_PlainTcpCoalesced);
TW_RELAY_BENCH(BM_RelayTls);
TW_RELAY_BENCH(BM_RelayHttp);

int path_of(const std::string& name) {
  if (name.starts_with("BM_PlainTcpPerPacket")) return kTcpPerPacket;
  if (name.starts_with("BM_PlainTcpCoalesced")) return kTcpCoalesced;
  if (name.starts_with("BM_RelayTls")) return kRelayTls;
  if (name.starts_with("BM_RelayHttp")) return kRelayHttp;
  return -1;
}

int window_of(const benchmark::BenchmarkReporter::Run& r) {
  const std::string& args = r.run_name.args;  // "window:24"
  auto colon = args.find(':');
  return colon == std::string::npos ? 0 : std::atoi(args.c_str() + colon + 1);
}

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      auto it = r.counters.find("pkts_per_s");
      int path = path_of(r.benchmark_name());
      if (it != r.counters.end() && path >= 0 && !r.error_occurred) g_rate[{path, window_of(r)}] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

void print_table() {
  std::set<int> windows;
  for (const auto& entry : g_rate) windows.insert(entry.first.second);
  for (int window : windows) {
    auto rate = [&](int path) {
      auto it = g_rate.find({path, window});
      return it == g_rate.end() ? 0.0 : it->second;
    };
    const double tcp = rate(kTcpPerPacket), tcp_c = rate(kTcpCoalesced);
    std::printf("\nwindow %d packets of %zu bytes in flight\n", window, kPacket);
    std::printf("| path | pkts/s | Mbit/s | / TCP per packet | / TCP coalesced |\n|---|---|---|---|---|\n");
    for (int path : {kTcpPerPacket, kTcpCoalesced, kRelayTls, kRelayHttp}) {
      const double r = rate(path);
      if (r <= 0) continue;
      std::printf("| %s | %.0f | %.1f | %.2f | %.2f |\n", kPathNames[path], r, r * kPacket * 8 / 1e6,
                  tcp > 0 ? r / tcp : 0.0, tcp_c > 0 ? r / tcp_c : 0.0);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  print_table();
  return 0;
}
