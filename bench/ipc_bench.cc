// Cross-process throughput of the packet rings against a SOCK_SEQPACKET
// socketpair moving the same messages in the same run. A forked child
// produces, the parent consumes, copying every payload out (as dataproc and
// netproc do); batches of 32. Prints a table with the ratio of each ring row to
// the socketpair row of the same payload size.
//
// Methodology (the machine has two cores shared with other people's builds):
//  - Placement: by default the producer is pinned to one CPU and the consumer to
//    another, as netproc and dataproc run on a loaded two-core machine. Left to
//    the scheduler the two processes often share a core and take turns, which
//    measures context switches, not the transport, and made earlier runs swing
//    by 5x. --pin=same pins both to one CPU (the turn-taking case, reported on
//    its own); --pin=none leaves placement to the scheduler.
//  - The baseline is the fairest socket transport for the same job: datagrams
//    batched 32 at a time with sendmmsg/recvmmsg (one syscall per batch on each
//    side), the consumer blocking only when the socket is empty (MSG_WAITFORONE).
//  - Every row runs --reps times, the rows interleaved; the table gives each
//    row's median and the median and range of its per-repetition ratio to the
//    socketpair row of the same repetition.
//
//   ipc_bench [messages] [--pin=split|same|none] [--reps=N]
//   (default 5,000,000 ring messages per row, a tenth of that for the socketpair)
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ipc/control_socket.h"
#include "ipc/doorbell.h"
#include "ipc/ring.h"
#include "ipc/ring_memory.h"

namespace tw::ipc {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kBatch = 32;

int g_producer_cpu = -1;  // -1: leave placement to the scheduler
int g_consumer_cpu = -1;

void pin_to(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
}

// Runs `child` (the producer) in a forked process and `parent` (the consumer) here,
// each on its CPU; returns messages per second from the go signal to the last
// message consumed.
template <typename Child, typename Parent>
double run_pair(std::uint64_t count, Child child, Parent parent) {
  int go[2];
  if (::pipe(go) != 0) std::abort();
  pid_t pid = ::fork();
  if (pid == 0) {
    pin_to(g_producer_cpu);
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(2);
    child();
    ::_exit(0);
  }
  pin_to(g_consumer_cpu);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let the child settle on its CPU
  auto start = Clock::now();
  if (::write(go[1], "g", 1) != 1) std::abort();
  parent();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::abort();
  ::close(go[0]);
  ::close(go[1]);
  return count / secs;
}

double ring_run(std::uint64_t count, std::size_t payload, bool doorbell, RingGeometry geometry) {
  auto mem = RingMemory::create(geometry);
  auto bell = make_doorbell();
  if (!mem || !bell) std::abort();
  RingConsumer rx(mem->ring(Direction::kNetToData));
  return run_pair(
      count,
      [&] {
        RingProducer tx(mem->ring(Direction::kNetToData), doorbell ? bell->get() : -1);
        std::vector<std::uint8_t> bufs(kBatch * payload);
        OutPacket out[kBatch];
        for (std::uint64_t seq = 0; seq < count;) {
          std::size_t n = std::min<std::uint64_t>(kBatch, count - seq);
          for (std::size_t k = 0; k < n; ++k) {
            std::uint64_t s = seq + k;
            std::memcpy(&bufs[k * payload], &s, 8);
            out[k] = OutPacket{static_cast<std::uint32_t>(s), ByteView(&bufs[k * payload], payload)};
          }
          for (std::size_t done = 0; done < n;) {
            std::size_t pushed = tx.push(std::span(out + done, n - done));
            if (pushed == 0) std::this_thread::yield();
            done += pushed;
          }
          seq += n;
        }
      },
      [&] {
        PacketBatch batch(2048);
        std::uint64_t got = 0;
        int empty = 0;
        while (got < count) {
          std::size_t n = rx.pop(batch);
          if (n == 0) {
            // With doorbells: a short polite spin, then sleep on the eventfd.
            if (doorbell && ++empty > 64 && rx.prepare_to_sleep()) {
              empty = 0;
              pollfd pfd{bell->get(), POLLIN, 0};
              ::poll(&pfd, 1, 1000);
              drain_doorbell(bell->get());
              rx.woke();
            } else {
              // Busy-polling, but polite: when the two sides do share a core, a
              // pure spin would hold the core the producer needs.
              std::this_thread::yield();
            }
            continue;
          }
          std::uint64_t last;
          std::memcpy(&last, batch.data(n - 1).data(), 8);
          if (last != got + n - 1 || batch.data(n - 1).size() != payload) std::abort();
          got += n;
        }
      });
}

double socketpair_run(std::uint64_t count, std::size_t payload) {
  auto pair = make_control_pair();
  if (!pair) std::abort();
  int tx = pair->first.get(), rx = pair->second.get();
  return run_pair(
      count,
      [&] {
        std::vector<std::uint8_t> bufs(kBatch * payload);
        mmsghdr msgs[kBatch];
        iovec iov[kBatch];
        for (std::uint64_t seq = 0; seq < count;) {
          std::size_t n = std::min<std::uint64_t>(kBatch, count - seq);
          for (std::size_t k = 0; k < n; ++k) {
            std::uint64_t s = seq + k;
            std::memcpy(&bufs[k * payload], &s, 8);
            iov[k] = iovec{&bufs[k * payload], payload};
            msgs[k] = mmsghdr{};
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
          }
          for (std::size_t done = 0; done < n;) {
            int r = ::sendmmsg(tx, msgs + done, static_cast<unsigned>(n - done), 0);
            if (r > 0) done += static_cast<std::size_t>(r);
          }
          seq += n;
        }
      },
      [&] {
        std::vector<std::uint8_t> bufs(kBatch * 2048);
        mmsghdr msgs[kBatch];
        iovec iov[kBatch];
        std::uint64_t got = 0;
        while (got < count) {
          for (std::size_t k = 0; k < kBatch; ++k) {
            iov[k] = iovec{&bufs[k * 2048], 2048};
            msgs[k] = mmsghdr{};
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
          }
          int r = ::recvmmsg(rx, msgs, kBatch, MSG_WAITFORONE, nullptr);
          if (r <= 0) continue;
          std::uint64_t last;
          std::memcpy(&last, &bufs[(r - 1) * 2048], 8);
          if (last != got + r - 1 || msgs[r - 1].msg_len != payload) std::abort();
          got += static_cast<std::size_t>(r);
        }
      });
}

// Both ends in one thread, alternating: the intrinsic per-message cost of the ring
// (copy in, copy out, index traffic) with no scheduling or cache-line transfer.
double ring_same_thread(std::uint64_t count, std::size_t payload, RingGeometry geometry) {
  auto mem = RingMemory::create(geometry);
  if (!mem) std::abort();
  RingProducer tx(mem->ring(Direction::kNetToData), -1);
  RingConsumer rx(mem->ring(Direction::kNetToData));
  std::vector<std::uint8_t> bufs(kBatch * payload, 1);
  OutPacket out[kBatch];
  for (std::size_t k = 0; k < kBatch; ++k) out[k] = OutPacket{1, ByteView(&bufs[k * payload], payload)};
  PacketBatch batch(2048);
  auto start = Clock::now();
  std::uint64_t got = 0;
  while (got < count) {
    tx.push(out);
    got += rx.pop(batch);
  }
  return count / std::chrono::duration<double>(Clock::now() - start).count();
}

struct Row {
  std::string name;
  std::size_t payload;
  bool baseline;
  std::vector<double> rate;   // per repetition
  std::vector<double> ratio;  // per repetition, against that repetition's baseline
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The CPUs this process may run on, in order.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

}  // namespace
}  // namespace tw::ipc

int main(int argc, char** argv) {
  using namespace tw::ipc;
  std::uint64_t count = 5'000'000;
  std::string pin = "split";
  int reps = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.starts_with("--pin=")) {
      pin = a.substr(6);
    } else if (a.starts_with("--reps=")) {
      reps = std::max(1, std::atoi(a.c_str() + 7));
    } else {
      count = std::strtoull(a.c_str(), nullptr, 10);
    }
  }
  const auto cpus = allowed_cpus();
  if (pin == "split" && cpus.size() >= 2) {
    g_producer_cpu = cpus[0];
    g_consumer_cpu = cpus[1];
  } else if (pin == "same" && !cpus.empty()) {
    g_producer_cpu = g_consumer_cpu = cpus[0];
  } else {
    pin = "none";
  }
  const std::uint64_t sock_count = std::max<std::uint64_t>(count / 10, 10'000);
  const RingGeometry geometry;  // the broker's: default slots of up to 64 KiB
  std::vector<Row> rows;
  for (std::size_t payload : {std::size_t{64}, std::size_t{1400}}) {
    rows.push_back({"socketpair SEQPACKET (sendmmsg/recvmmsg)", payload, true, {}, {}});
    rows.push_back({"ring busy-poll", payload, false, {}, {}});
    rows.push_back({"ring doorbell", payload, false, {}, {}});
    rows.push_back({"ring one thread (no transfer, reference)", payload, false, {}, {}});
  }
  for (int r = 0; r < reps; ++r) {
    double base = 0;
    for (auto& row : rows) {
      double rate = 0;
      if (row.baseline) {
        rate = socketpair_run(sock_count, row.payload);
      } else if (row.name == "ring busy-poll") {
        rate = ring_run(count, row.payload, false, geometry);
      } else if (row.name == "ring doorbell") {
        rate = ring_run(count, row.payload, true, geometry);
      } else {
        rate = ring_same_thread(count, row.payload, geometry);
      }
      if (row.baseline) base = rate;
      row.rate.push_back(rate);
      row.ratio.push_back(rate / base);
    }
  }
  std::printf("cross-process messages/s, batch %zu, ring %u x %u-byte slots, %llu ring / %llu socketpair "
              "messages per row, %d repetitions, placement: %s",
              kBatch, geometry.slot_count, geometry.slot_capacity, static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(sock_count), reps, pin.c_str());
  if (pin != "none") std::printf(" (producer cpu %d, consumer cpu %d)", g_producer_cpu, g_consumer_cpu);
  std::printf("\n\n| %-42s | payload | M msg/s (median) | vs socketpair (median, range) |\n|---|---|---|---|\n",
              "transport");
  for (const auto& row : rows) {
    auto lo = *std::min_element(row.ratio.begin(), row.ratio.end());
    auto hi = *std::max_element(row.ratio.begin(), row.ratio.end());
    std::printf("| %-42s | %6zuB | %16.2f | %8.1fx (%.1f - %.1f) |\n", row.name.c_str(), row.payload,
                median(row.rate) / 1e6, median(row.ratio), lo, hi);
  }
  return 0;
}
