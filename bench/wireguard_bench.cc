// WireGuard engine throughput against raw libsodium in the same run:
//   transport encrypt+decrypt of 1420-byte packets through two engines, against
//   crypto_aead_chacha20poly1305_ietf_encrypt/decrypt of the same bytes;
//   handshakes per second; AllowedIPs lookups per second.
// Prints the engine/raw ratio at the end.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstdio>
#include <map>
#include <string>

#include "dataproc/wireguard/cookie.h"
#include "dataproc/wireguard/device.h"
#include "dataproc/wireguard/noise.h"

namespace tw::wg {
namespace {

constexpr std::size_t kPacket = 1420;

Bytes make_packet(const IpAddr& src, const IpAddr& dst, std::size_t len) {
  Bytes p(len, 0x5a);
  p[0] = 0x45;
  store_be16(p.data() + 2, static_cast<std::uint16_t>(len));
  p[8] = 64;
  p[9] = 17;
  for (int i = 0; i < 4; ++i) {
    p[12 + i] = src.raw()[i];
    p[16 + i] = dst.raw()[i];
  }
  return p;
}

// Two engines with a session between them.
struct Pair {
  TimePoint now = TimePoint{} + std::chrono::hours(1);
  NodePrivate ka = NodePrivate::generate(), kb = NodePrivate::generate();
  WireGuardDevice a{options(this)}, b{options(this)};
  EngineOutput oa, ob;
  static DeviceOptions options(const Pair* self) {
    DeviceOptions o;
    o.mtu = 1420;
    // TAI64N follows the simulated clock, so back-to-back handshakes are not
    // mistaken for replays (real ones are 16.8 ms apart at the finest).
    o.wall_clock = [self] {
      return std::chrono::system_clock::time_point{} +
             std::chrono::duration_cast<std::chrono::system_clock::duration>(
                 self->now.time_since_epoch());
    };
    return o;
  }
  Pair() {
    a.set_private_key(ka);
    b.set_private_key(kb);
    a.set_peers({PeerConfig{2, kb.public_key(), {*IpPrefix::parse("100.64.0.2/32")}, {}}});
    b.set_peers({PeerConfig{1, ka.public_key(), {*IpPrefix::parse("100.64.0.1/32")}, {}}});
  }
  // Moves datagrams until quiet.
  void pump() {
    for (int i = 0; i < 10; ++i) {
      if (oa.to_network.empty() && ob.to_network.empty()) break;
      EngineOutput na, nb;
      for (std::size_t k = 0; k < oa.to_network.size(); ++k)
        b.on_datagram(1, oa.to_network.bytes(k), now, nb);
      for (std::size_t k = 0; k < ob.to_network.size(); ++k)
        a.on_datagram(2, ob.to_network.bytes(k), now, na);
      oa = std::move(na);
      ob = std::move(nb);
    }
  }
};

void BM_RawLibsodiumSealOpen1420(benchmark::State& state) {
  Bytes plain(kPacket, 0x5a), cipher(kPacket + 16 + 16), back(kPacket + 16);
  std::uint8_t key[32] = {1};
  std::uint8_t nonce[12] = {};
  std::uint64_t counter = 0;
  for (auto _ : state) {
    store_le64(nonce + 4, counter++);
    // Same work as the engine: 1420 bytes padded into a 16-byte-aligned buffer is
    // not needed at MTU 1420, so both sides process exactly 1420 bytes.
    crypto_aead_chacha20poly1305_ietf_encrypt(cipher.data(), nullptr, plain.data(), kPacket,
                                              nullptr, 0, nullptr, nonce, key);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(back.data(), nullptr, nullptr, cipher.data(),
                                                  kPacket + 16, nullptr, 0, nonce, key) != 0)
      state.SkipWithError("decrypt failed");
    benchmark::DoNotOptimize(back.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * kPacket);
}
BENCHMARK(BM_RawLibsodiumSealOpen1420);

void BM_EngineEncryptDecrypt1420(benchmark::State& state) {
  Pair p;
  const Bytes pkt = make_packet(IpAddr::v4(100, 64, 0, 1), IpAddr::v4(100, 64, 0, 2), kPacket);
  p.a.on_tun_packet(pkt, p.now, p.oa);
  p.pump();
  if (!p.a.has_session(2, p.now)) state.SkipWithError("no session");
  EngineOutput out_a, out_b;
  for (auto _ : state) {
    out_a.clear();
    out_b.clear();
    p.a.on_tun_packet(pkt, p.now, out_a);
    p.b.on_datagram(1, out_a.to_network.bytes(0), p.now, out_b);
    if (out_b.to_tun.size() != 1) state.SkipWithError("packet lost");
    benchmark::DoNotOptimize(out_b.to_tun.bytes(0).data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * kPacket);
}
BENCHMARK(BM_EngineEncryptDecrypt1420);

// Initiator side only: Noise message creation plus mac1.
void BM_HandshakeInitiationCreate(benchmark::State& state) {
  wg_crypto_init();
  const NodePrivate ours = NodePrivate::generate(), theirs = NodePrivate::generate();
  LocalIdentity local(ours.bytes());
  Handshake hs;
  hs.init(local, theirs.public_key().bytes());
  CookieMaker cookie;
  cookie.init(theirs.public_key().bytes());
  std::uint8_t msg[kInitiationSize];
  const Tai64n ts{};
  const TimePoint now{};
  for (auto _ : state) {
    create_initiation(hs, local, 1, ts, msg);
    cookie.add_macs({msg, sizeof msg}, now);
    benchmark::DoNotOptimize(msg);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HandshakeInitiationCreate);

// A whole handshake through both engines: initiation, response, confirmation.
void BM_FullHandshakeThroughEngines(benchmark::State& state) {
  Pair p;
  const Bytes pkt = make_packet(IpAddr::v4(100, 64, 0, 1), IpAddr::v4(100, 64, 0, 2), 64);
  for (auto _ : state) {
    p.now += std::chrono::seconds(200);  // past the rate limit and the old session's life
    p.a.on_tun_packet(pkt, p.now, p.oa);
    p.pump();
  }
  if (p.a.counters().handshake_responses_received !=
      static_cast<std::uint64_t>(state.iterations()))
    state.SkipWithError("a handshake did not complete");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FullHandshakeThroughEngines);

void BM_AllowedIpsLookup(benchmark::State& state) {
  AllowedIps t;
  for (std::uint32_t i = 0; i < 1000; ++i)
    t.insert(IpPrefix{IpAddr::v4(100, 64, static_cast<std::uint8_t>(i >> 8),
                                 static_cast<std::uint8_t>(i)), 32},
             i);
  for (std::uint32_t i = 0; i < 50; ++i)
    t.insert(IpPrefix{IpAddr::v4(10, static_cast<std::uint8_t>(i), 0, 0), 16}, 2000 + i);
  t.insert(*IpPrefix::parse("0.0.0.0/0"), 9999);
  std::vector<std::array<std::uint8_t, 4>> addrs;
  for (std::uint32_t i = 0; i < 4096; ++i) {
    std::uint32_t r = randombytes_random();
    if (i % 2) r = (100u << 24) | (64u << 16) | (r % 1000);
    addrs.push_back({static_cast<std::uint8_t>(r >> 24), static_cast<std::uint8_t>(r >> 16),
                     static_cast<std::uint8_t>(r >> 8), static_cast<std::uint8_t>(r)});
  }
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.lookup_v4(addrs[i++ & 4095].data()));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AllowedIpsLookup);

// Keeps items/s of every run so main can print the ratio.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs) {
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) rates[r.benchmark_name()] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> rates;
};

}  // namespace
}  // namespace tw::wg

int main(int argc, char** argv) {
  tw::crypto_init();
  benchmark::Initialize(&argc, argv);
  tw::wg::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto& r = reporter.rates;
  auto raw = r.find("BM_RawLibsodiumSealOpen1420");
  auto eng = r.find("BM_EngineEncryptDecrypt1420");
  if (raw != r.end() && eng != r.end() && raw->second > 0) {
    std::printf("\n1420-byte encrypt+decrypt: engine %.0f pkt/s, raw libsodium %.0f pkt/s, "
                "ratio %.3f\n",
                eng->second, raw->second, eng->second / raw->second);
  }
  benchmark::Shutdown();
  return 0;
}
