// Receive-path cost of netproc per WireGuard datagram: the runtime's
// demux + source attribution + net->data ring publication, against a bare recvmmsg
// loop on the same traffic over loopback. Two runtime rows: receiving straight into
// the ring's slots (what netproc does) and the older receive-then-push-a-copy path.
// Sending (and dataproc's ring pop) is outside the timed region in all rows.
//
// The machine is shared and noisy, so the variants are interleaved (a few bursts
// of each in turn), every burst is timed on its own and a round's figure is the
// median burst; ratios are taken per round and their median and range printed. A
// neighbour's compile thus hits all rows alike, and a burst preempted for a whole
// time slice does not decide the result.
//
//   netproc_rx_bench [rounds]     (default 15 rounds of 200 bursts of 64 per variant)
//   RX_BENCH_SLOTS=n              ring slots (default: the broker's geometry)
//   RX_BENCH_ONLY=bare|in-place|copy   one variant alone, for profiling
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ipc/ring.h"
#include "ipc/ring_memory.h"
#include "netproc/magicsock/runtime.h"

namespace {

using namespace tw;
using Clock = std::chrono::steady_clock;
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

// The broker's ring geometry, or RX_BENCH_SLOTS slots of the same capacity (the
// ring's cache footprint is most of the runtime's extra cost, see the table note).
ipc::RingGeometry bench_geometry() {
  ipc::RingGeometry g;
  if (const char* slots = std::getenv("RX_BENCH_SLOTS")) g.slot_count = static_cast<std::uint32_t>(std::atoi(slots));
  return g;
}

// The baseline: recvmmsg bursts into private buffers and nothing else.
class BareReceiver {
 public:
  BareReceiver() : rx_(bind_lo()), tx_(addr_of(rx_.get())), buf_(kBatch * 65536) {}

  // Seconds spent receiving one burst of kBatch. Like any receive loop (and the
  // runtime's), it cannot know how much is queued: it reads on while a burst came
  // back full, so a full burst costs it one more recvmmsg that finds the socket
  // empty, exactly as it costs the runtime.
  double burst() {
    tx_.burst();
    const auto start = Clock::now();
    int got = 0;
    for (bool more = true; more || got < kBatch;) {
      for (int i = 0; i < kBatch; ++i) {
        iov_[i] = {buf_.data() + static_cast<std::size_t>(i) * 65536, 65536};
        msgs_[i].msg_hdr = {};
        msgs_[i].msg_hdr.msg_name = &from_[i];
        msgs_[i].msg_hdr.msg_namelen = sizeof from_[i];
        msgs_[i].msg_hdr.msg_iov = &iov_[i];
        msgs_[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = ::recvmmsg(rx_.get(), msgs_, kBatch, MSG_DONTWAIT, nullptr);
      if (n > 0) got += n;
      more = n == kBatch;
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

 private:
  ipc::UniqueFd rx_;
  Blaster tx_;
  std::vector<std::uint8_t> buf_;
  mmsghdr msgs_[kBatch];
  iovec iov_[kBatch];
  sockaddr_storage from_[kBatch];
};

// The magicsock runtime's receive path. in_place: it receives straight into the
// ring's free slots (as netproc does); otherwise it receives privately and pushes
// a copy through `deliver`.
class RuntimeReceiver {
 public:
  explicit RuntimeReceiver(bool in_place)
      : rings_(ipc::RingMemory::create(bench_geometry()).value()),
        producer_(rings_.ring(ipc::Direction::kNetToData), -1),
        consumer_(rings_.ring(ipc::Direction::kNetToData)),
        popped_(2048) {
    cfg_.disco_private = DiscoPrivate::generate();
    cfg_.self_node = NodePrivate::generate().public_key();
    magicsock::RuntimeHooks hooks;
    hooks.deliver = [this](std::span<const ipc::OutPacket> p) { return producer_.push(p); };
    if (in_place) hooks.rx_ring = &producer_;
    rt_ = std::make_unique<magicsock::Runtime>(io_, cfg_, metrics_, nullptr, hooks, rng_);
    auto rx = bind_lo();
    tx_ = std::make_unique<Blaster>(addr_of(rx.get()));
    // 1,000 peers; the sender is one of them, so every datagram is attributed.
    std::vector<magicsock::RuntimePeer> peers;
    for (std::uint32_t i = 1; i <= 1000; ++i) {
      auto node = NodePrivate::generate().public_key();
      auto disco = DiscoPrivate::generate().public_key();
      IpPort ep{IpAddr::v4(10, 0, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)), 41641};
      if (i == 500) ep = addr_of(tx_->fd.get());
      peers.push_back({i, node, disco, {ep}, 1});
    }
    rt_->set_peers(peers);
    rt_->adopt_udp(std::move(rx));
  }

  double burst() {
    while (consumer_.pop(popped_) > 0) {
      for (std::size_t i = 0; i < popped_.size(); ++i) {
        if (popped_.peer_id(i) != 500) std::abort();  // attribution must be right
      }
    }
    tx_->burst();
    const auto before = in_ring();
    const auto start = Clock::now();
    while (in_ring() - before < kBatch) rt_->drain_udp();
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

 private:
  // Everything published to the ring, pushed copies and in-place slots alike.
  std::uint64_t in_ring() const { return producer_.stats().packets; }

  boost::asio::io_context io_;
  MetricsRegistry metrics_;
  magicsock::SodiumRandom rng_;
  magicsock::RuntimeConfig cfg_;
  ipc::RingMemory rings_;
  ipc::RingProducer producer_;
  ipc::RingConsumer consumer_;
  ipc::PacketBatch popped_;
  std::unique_ptr<Blaster> tx_;
  std::unique_ptr<magicsock::Runtime> rt_;
};

struct Range {
  double lo, median, hi;
};

Range range_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2], v.back()};
}

}  // namespace

int main(int argc, char** argv) {
  tw::crypto_init();
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 15;
  constexpr int kBurstsPerBlock = 200;
  BareReceiver bare;
  RuntimeReceiver in_place(true);
  RuntimeReceiver copying(false);
  // Warm-up: fault in buffers, ring slots and socket memory.
  for (int i = 0; i < 50; ++i) {
    bare.burst();
    in_place.burst();
    copying.burst();
  }
  // For profiling one variant alone: RX_BENCH_ONLY=bare|in-place|copy.
  if (const char* only = std::getenv("RX_BENCH_ONLY")) {
    const std::string v = only;
    double t = 0;
    const int bursts = rounds * kBurstsPerBlock;
    for (int b = 0; b < bursts; ++b) t += v == "bare" ? bare.burst() : v == "copy" ? copying.burst() : in_place.burst();
    std::printf("%s: %.2f M packets/s\n", only, bursts * double{kBatch} / t / 1e6);
    return 0;
  }
  std::vector<double> bare_rate, in_place_rate, copy_rate, in_place_ratio, copy_ratio;
  for (int r = 0; r < rounds; ++r) {
    // Per-burst times, the variants alternating every few bursts; a round's figure
    // is its median burst, so a burst that lost the CPU to a neighbour (a 4 ms
    // time slice against ~30 us of work) does not swamp the others.
    std::vector<double> t_bare, t_in_place, t_copy;
    for (int b = 0; b < kBurstsPerBlock; b += 8) {
      for (int k = 0; k < 8; ++k) t_bare.push_back(bare.burst());
      for (int k = 0; k < 8; ++k) t_in_place.push_back(in_place.burst());
      for (int k = 0; k < 8; ++k) t_copy.push_back(copying.burst());
    }
    const double bare_t = range_of(t_bare).median;
    const double in_place_t = range_of(t_in_place).median;
    const double copy_t = range_of(t_copy).median;
    bare_rate.push_back(kBatch / bare_t);
    in_place_rate.push_back(kBatch / in_place_t);
    copy_rate.push_back(kBatch / copy_t);
    in_place_ratio.push_back(bare_t / in_place_t);
    copy_ratio.push_back(bare_t / copy_t);
  }
  auto row = [](const char* name, const Range& r, double scale, const char* fmt) {
    std::printf("| %-52s | ", name);
    std::printf(fmt, r.median * scale);
    std::printf(" | ");
    std::printf(fmt, r.lo * scale);
    std::printf(" – ");
    std::printf(fmt, r.hi * scale);
    std::printf(" |\n");
  };
  const auto g = bench_geometry();
  std::printf("receive path, 1280-byte WireGuard data over loopback, bursts of %d, %d interleaved rounds, "
              "ring %u x %u-byte slots\n\n",
              kBatch, rounds, g.slot_count, g.slot_capacity);
  std::printf("| %-52s | median | range |\n|---|---|---|\n", "variant");
  row("bare recvmmsg loop (baseline), M packets/s", range_of(bare_rate), 1e-6, "%.2f");
  row("runtime, in-place ring commit, M packets/s", range_of(in_place_rate), 1e-6, "%.2f");
  row("runtime, private receive + pushed copy, M packets/s", range_of(copy_rate), 1e-6, "%.2f");
  row("ratio in-place / baseline (aim >= 0.8)", range_of(in_place_ratio), 1, "%.2f");
  row("ratio copying / baseline", range_of(copy_ratio), 1, "%.2f");
  return 0;
}
