// Cross-process throughput of the packet rings against a SOCK_SEQPACKET
// socketpair moving the same messages in the same run. A forked child produces,
// the parent consumes (copying every payload out, as dataproc/netproc will);
// batches of 32. Prints a table with the ratio of each ring row to the socketpair
// row of the same payload size.
//
//   ipc_bench [messages]      (default 5,000,000 for the rings)
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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

struct Row {
  std::string name;
  std::size_t payload;
  double msgs_per_sec;
};

// Runs `child` in a forked process after the parent is ready; returns after the
// parent's `parent` callable returns and the child has exited.
template <typename Child, typename Parent>
double run_pair(std::uint64_t count, Child child, Parent parent) {
  int go[2];
  if (::pipe(go) != 0) std::abort();
  pid_t pid = ::fork();
  if (pid == 0) {
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(2);
    child();
    ::_exit(0);
  }
  auto start = Clock::now();
  if (::write(go[1], "g", 1) != 1) std::abort();
  parent();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  ::waitpid(pid, nullptr, 0);
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
              // Busy-polling, but polite: on a shared, oversubscribed machine a
              // pure spin would hold the core the producer needs.
              std::this_thread::yield();
            }
            continue;
          }
          std::uint64_t last;
          std::memcpy(&last, batch.data(n - 1).data(), 8);
          if (last != got + n - 1) std::abort();
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
          if (r > 0) got += static_cast<std::size_t>(r);
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

}  // namespace
}  // namespace tw::ipc

int main(int argc, char** argv) {
  using namespace tw::ipc;
  std::uint64_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 5'000'000;
  std::uint64_t sock_count = std::max<std::uint64_t>(count / 10, 10'000);
  RingGeometry big;  // default: 512 slots of up to 64 KiB
  RingGeometry small{1024, 2048};
  std::vector<Row> rows;
  for (std::size_t payload : {std::size_t{64}, std::size_t{1400}}) {
    rows.push_back({"socketpair SEQPACKET (sendmmsg/recvmmsg)", payload, socketpair_run(sock_count, payload)});
    rows.push_back({"ring busy-poll, default (512 x 64 KiB)", payload, ring_run(count, payload, false, big)});
    rows.push_back({"ring doorbell,  default (512 x 64 KiB)", payload, ring_run(count, payload, true, big)});
    rows.push_back({"ring busy-poll, 1024 x 2 KiB slots", payload, ring_run(count, payload, false, small)});
    rows.push_back({"ring doorbell,  1024 x 2 KiB slots", payload, ring_run(count, payload, true, small)});
    rows.push_back({"ring one thread (no contention), default", payload, ring_same_thread(count, payload, big)});
  }
  std::printf("cross-process messages/s, batch %zu, %llu ring / %llu socketpair messages per row\n",
              kBatch, static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(sock_count));
  std::printf("%-44s %8s %14s %12s\n", "transport", "payload", "msg/s", "vs socket");
  double base = 0;
  for (const auto& r : rows) {
    if (r.name.starts_with("socketpair")) base = r.msgs_per_sec;
    std::printf("%-44s %7zuB %12.2f M %11.1fx\n", r.name.c_str(), r.payload, r.msgs_per_sec / 1e6,
                r.msgs_per_sec / base);
  }
  return 0;
}
