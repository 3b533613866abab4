// Receive-path cost of netproc per WireGuard datagram (issue 5): the runtime's
// demux + source attribution + net->data ring push, against a bare recvmmsg loop on
// the same traffic over loopback. Sending (and dataproc's ring pop) is outside the
// timed region in both. Prints a table with the ratio of the two packet rates.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <map>
#include <string>

#include "ipc/ring.h"
#include "ipc/ring_memory.h"
#include "netproc/magicsock/runtime.h"

namespace {

using namespace tw;
constexpr int kBatch = 64;
constexpr std::size_t kLen = 1280;

ipc::UniqueFd bind_lo() {
  ipc::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  int big = 4 << 20;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  return fd;
}

IpPort addr_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return *IpPort::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

// Sends one burst of WireGuard data datagrams from `from` to `to`.
struct Blaster {
  Blaster(const IpPort& to) : fd(bind_lo()), payload(kLen, 0x5A) {
    payload[0] = 4;
    payload[1] = payload[2] = payload[3] = 0;
    len = to.to_sockaddr(&dst, false);
    for (int i = 0; i < kBatch; ++i) {
      iov[i] = {payload.data(), payload.size()};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_name = &dst;
      msgs[i].msg_hdr.msg_namelen = len;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
  }
  void burst() {
    int sent = 0;
    while (sent < kBatch) {
      const int n = ::sendmmsg(fd.get(), msgs + sent, kBatch - sent, 0);
      if (n > 0) sent += n;
    }
  }
  ipc::UniqueFd fd;
  Bytes payload;
  sockaddr_storage dst{};
  socklen_t len = 0;
  iovec iov[kBatch];
  mmsghdr msgs[kBatch];
};

void BM_BareRecvmmsg(benchmark::State& state) {
  auto rx = bind_lo();
  Blaster tx(addr_of(rx.get()));
  std::vector<std::uint8_t> buf(kBatch * 65536);
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  sockaddr_storage from[kBatch];
  std::int64_t packets = 0;
  for (auto _ : state) {
    state.PauseTiming();
    tx.burst();
    state.ResumeTiming();
    int got = 0;
    while (got < kBatch) {
      for (int i = 0; i < kBatch; ++i) {
        iov[i] = {buf.data() + static_cast<std::size_t>(i) * 65536, 65536};
        msgs[i].msg_hdr = {};
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = ::recvmmsg(rx.get(), msgs, kBatch, MSG_DONTWAIT, nullptr);
      if (n > 0) got += n;
      benchmark::DoNotOptimize(msgs[0].msg_len);
    }
    packets += got;
  }
  state.SetItemsProcessed(packets);
}

void BM_RuntimeReceive(benchmark::State& state) {
  boost::asio::io_context io;
  MetricsRegistry metrics;
  magicsock::SodiumRandom rng;
  magicsock::RuntimeConfig cfg;
  cfg.disco_private = DiscoPrivate::generate();
  cfg.self_node = NodePrivate::generate().public_key();
  auto rings = ipc::RingMemory::create(ipc::RingGeometry{256, 2048});
  ipc::RingProducer producer(rings->ring(ipc::Direction::kNetToData), -1);
  ipc::RingConsumer consumer(rings->ring(ipc::Direction::kNetToData));
  ipc::PacketBatch popped(2048);
  std::int64_t delivered = 0;
  magicsock::RuntimeHooks hooks;
  hooks.deliver = [&](std::span<const ipc::OutPacket> p) {
    const auto n = producer.push(p);
    delivered += static_cast<std::int64_t>(n);
    return n;
  };
  magicsock::Runtime rt(io, cfg, metrics, nullptr, hooks, rng);
  auto rx = bind_lo();
  const IpPort rx_addr = addr_of(rx.get());
  Blaster tx(rx_addr);
  // 1,000 peers; the sender is one of them, so every datagram is attributed.
  std::vector<magicsock::RuntimePeer> peers;
  for (std::uint32_t i = 1; i <= 1000; ++i) {
    auto node = NodePrivate::generate().public_key();
    auto disco = DiscoPrivate::generate().public_key();
    IpPort ep{IpAddr::v4(10, 0, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)), 41641};
    if (i == 500) ep = addr_of(tx.fd.get());
    peers.push_back({i, node, disco, {ep}, 1});
  }
  rt.set_peers(peers);
  rt.adopt_udp(std::move(rx));
  std::int64_t packets = 0;
  for (auto _ : state) {
    state.PauseTiming();
    while (consumer.pop(popped) > 0) {
    }
    tx.burst();
    const auto before = delivered;
    state.ResumeTiming();
    while (delivered - before < kBatch) rt.drain_udp();
    packets += delivered - before;
  }
  state.SetItemsProcessed(packets);
  if (rt.counters().wg_rx_unattributed.value() != 0) state.SkipWithError("datagrams were not attributed");
}

BENCHMARK(BM_BareRecvmmsg)->MinTime(1.0);
BENCHMARK(BM_RuntimeReceive)->MinTime(1.0);

class RateReporter : public benchmark::ConsoleReporter {
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

int main(int argc, char** argv) {
  tw::crypto_init();
  benchmark::Initialize(&argc, argv);
  RateReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  double bare = 0;
  double rt = 0;
  for (const auto& [name, rate] : reporter.rates) {
    if (name.rfind("BM_BareRecvmmsg", 0) == 0) bare = rate;
    if (name.rfind("BM_RuntimeReceive", 0) == 0) rt = rate;
  }
  std::printf("\n| receive path (1280-byte WireGuard data, loopback) | packets/s |\n|---|---|\n");
  std::printf("| bare recvmmsg loop (baseline) | %.0f |\n", bare);
  std::printf("| runtime: demux + attribution + ring push | %.0f |\n", rt);
  if (bare > 0) std::printf("| ratio runtime / baseline (aim >= 0.8) | %.2f |\n", rt / bare);
  return 0;
}
