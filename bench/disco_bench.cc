// Disco seal+open throughput with a precomputed per-peer key, against raw libsodium
// crypto_box_easy_afternm + crypto_box_open_easy_afternm on the same plaintext in the
// same run. Prints codec/raw ratios at the end (aim >= 0.9).
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstdio>
#include <map>
#include <string>

#include "netproc/disco/box.h"
#include "netproc/disco/message.h"

namespace {

using namespace tw;
using namespace tw::disco;

struct Fixture {
  DiscoPrivate a = DiscoPrivate::generate();
  DiscoPrivate b = DiscoPrivate::generate();
  DiscoPublic a_pub = a.public_key();
  DiscoSharedKey a_to_b = DiscoSharedKey::derive(a, b.public_key()).value();
  DiscoSharedKey b_from_a = DiscoSharedKey::derive(b, a.public_key()).value();
  // A full Ping with node key: the 124-byte datagram sent every few seconds per path.
  Message ping = Ping{new_txid(), NodePrivate::generate().public_key(), 0, kVersion};
  Bytes plaintext = encode(ping);
  Nonce nonce{};
};

Fixture& fx() {
  static Fixture f;
  return f;
}

// Codec: encode the message, seal in place, open in place, parse.
void run_codec(benchmark::State& state, bool random_nonce) {
  Fixture& f = fx();
  std::array<std::uint8_t, 256> buf{};
  for (auto _ : state) {
    const std::size_t n = random_nonce
                              ? seal_message(f.a_to_b, f.a_pub, f.ping, buf)
                              : seal_message_with_nonce(f.a_to_b, f.a_pub, f.nonce, f.ping, buf);
    auto opened = open_in_place(f.b_from_a, MutableByteView(buf.data(), n));
    auto m = parse_message(opened.plaintext);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
}

// Raw libsodium on the same plaintext bytes, ciphertext at the same offset.
void run_raw(benchmark::State& state, bool random_nonce) {
  Fixture& f = fx();
  std::array<std::uint8_t, 256> buf{};
  std::array<std::uint8_t, 256> pt{};
  Nonce nonce = f.nonce;
  const std::size_t len = f.plaintext.size();
  for (auto _ : state) {
    if (random_nonce) randombytes_buf(nonce.data(), nonce.size());
    crypto_box_easy_afternm(buf.data() + kHeaderLen, f.plaintext.data(), len, nonce.data(),
                            f.a_to_b.data());
    int rc = crypto_box_open_easy_afternm(pt.data(), buf.data() + kHeaderLen, len + kTagLen,
                                          nonce.data(), f.b_from_a.data());
    benchmark::DoNotOptimize(rc);
    benchmark::DoNotOptimize(pt);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DiscoSealOpen_RandomNonce(benchmark::State& s) { run_codec(s, true); }
void BM_RawBoxAfternm_RandomNonce(benchmark::State& s) { run_raw(s, true); }
void BM_DiscoSealOpen_FixedNonce(benchmark::State& s) { run_codec(s, false); }
void BM_RawBoxAfternm_FixedNonce(benchmark::State& s) { run_raw(s, false); }
BENCHMARK(BM_DiscoSealOpen_RandomNonce)->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_RawBoxAfternm_RandomNonce)->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_DiscoSealOpen_FixedNonce)->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_RawBoxAfternm_FixedNonce)->Repetitions(3)->ReportAggregatesOnly(true);

// Console output as usual, and the median time per benchmark kept for the ratios.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      // CPU time: wall time on a shared CI machine mostly measures the neighbours.
      if (r.aggregate_name == "median")
        median_ns[r.run_name.function_name] = r.GetAdjustedCPUTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> median_ns;
};

void print_ratio(const RatioReporter& rep, const char* codec, const char* raw) {
  auto c = rep.median_ns.find(codec);
  auto r = rep.median_ns.find(raw);
  if (c == rep.median_ns.end() || r == rep.median_ns.end() || c->second <= 0) return;
  // Throughput ratio codec/raw = raw time / codec time.
  std::printf("throughput ratio (median CPU time) %s / %s = %.3f (aim >= 0.9)\n", codec, raw,
              r->second / c->second);
}

}  // namespace

int main(int argc, char** argv) {
  tw::crypto_init();
  benchmark::Initialize(&argc, argv);
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  print_ratio(rep, "BM_DiscoSealOpen_RandomNonce", "BM_RawBoxAfternm_RandomNonce");
  print_ratio(rep, "BM_DiscoSealOpen_FixedNonce", "BM_RawBoxAfternm_FixedNonce");
  benchmark::Shutdown();
  return 0;
}
