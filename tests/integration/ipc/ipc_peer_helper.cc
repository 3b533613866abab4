// Test helper run as a separate process by ipc_process_test (fork/exec), playing
// the other child. Its fds arrive at fixed numbers, as the broker will hand them:
//   produce N | consume N    fd 3: ring memfd, fd 4: doorbell eventfd
//   garbage MS               fd 3: ring memfd (scribbles on the net->data ring)
//   netproc                  fd 3: control socket (answers as netproc would)
// Exit status 0 means every check passed; otherwise a reason is on stderr.
#include <poll.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipc/control_link.h"
#include "ipc/doorbell.h"
#include "ipc/ring.h"
#include "ipc/ring_layout.h"
#include "ipc/ring_memory.h"
#include "tests/integration/ipc/ring_traffic.h"
#include "tests/unit/ipc/fd_count.h"

namespace tw::ipc {
namespace {

using namespace tw::ipc::testing;

constexpr int kFirstFd = 3;

int fail(const std::string& why) {
  std::fprintf(stderr, "ipc_peer_helper: %s\n", why.c_str());
  return 1;
}

Result<RingMemory> attach_rings() { return RingMemory::attach(UniqueFd(kFirstFd)); }

int produce(std::uint64_t count) {
  auto mem = attach_rings();
  if (!mem) return fail(mem.error());
  RingProducer tx(mem->ring(Direction::kNetToData), kFirstFd + 1);
  std::vector<std::uint8_t> storage(32 * 65536);
  OutPacket out[32];
  for (std::uint64_t seq = 0; seq < count;) {
    std::size_t n = std::min<std::uint64_t>(32, count - seq);
    for (std::size_t k = 0; k < n; ++k) {
      std::uint8_t* buf = storage.data() + k * 65536;
      out[k] = OutPacket{traffic_peer(seq + k), ByteView(buf, fill_traffic(seq + k, buf))};
    }
    for (std::size_t done = 0; done < n;) {
      std::size_t pushed = tx.push(std::span(out + done, n - done));
      if (pushed == 0) std::this_thread::yield();
      done += pushed;
    }
    seq += n;
  }
  return 0;
}

int consume(std::uint64_t count) {
  auto mem = attach_rings();
  if (!mem) return fail(mem.error());
  RingConsumer rx(mem->ring(Direction::kDataToNet));
  PacketBatch batch(65536);
  int empty = 0;
  for (std::uint64_t expect = 0; expect < count;) {
    std::size_t n = rx.pop(batch);
    if (n == 0) {
      if (++empty < kSpinsBeforeSleep) {
        std::this_thread::yield();
        continue;
      }
      empty = 0;
      if (rx.prepare_to_sleep()) {
        pollfd pfd{kFirstFd + 1, POLLIN, 0};
        if (::poll(&pfd, 1, 10'000) != 1) return fail("no doorbell for 10 s at " + std::to_string(expect));
        drain_doorbell(kFirstFd + 1);
      }
      rx.woke();
      continue;
    }
    for (std::size_t i = 0; i < n; ++i, ++expect) {
      auto why = check_traffic(expect, batch.peer_id(i), batch.data(i));
      if (!why.empty()) return fail(why);
    }
  }
  if (rx.stats().dropped_oversize || rx.stats().bad_index) return fail("unexpected drops");
  return 0;
}

// A hostile producer: random indices, lengths and peer ids, sometimes plausible.
int garbage(int millis) {
  auto mem = attach_rings();
  if (!mem) return fail(mem.error());
  RingEnd end = mem->ring(Direction::kNetToData);
  std::mt19937_64 rng(42);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(millis);
  std::uint32_t tail = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 1000; ++i) {
      std::uint64_t r = rng();
      std::uint32_t slot = static_cast<std::uint32_t>(r >> 32) % end.slot_count;
      std::uint32_t len = (r & 1) ? static_cast<std::uint32_t>(r >> 8) : static_cast<std::uint32_t>(r % 2048);
      std::memcpy(end.slots + slot * end.slot_stride + layout::kSlotLength, &len, 4);
      std::memcpy(end.slots + slot * end.slot_stride + layout::kSlotPeerId, &r, 4);
      // Mostly plausible indices near the consumer's (so slots with forged
      // lengths get read), sometimes anything at all.
      std::uint32_t head = std::atomic_ref<std::uint32_t>(
          *reinterpret_cast<std::uint32_t*>(end.control + layout::kConsumerIndex)).load();
      tail = (r & 6) == 6 ? static_cast<std::uint32_t>(r >> 16)
                          : head + static_cast<std::uint32_t>((r >> 40) % (end.slot_count + 4));
      std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(end.control + layout::kProducerIndex))
          .store(tail, std::memory_order_release);
    }
  }
  return 0;
}

// Answers like netproc: Ready after Setup; for each UdpSocket, a StatusReply saying
// what the fd is; for StatusRequest, its open fd count. When the broker breaks the
// protocol, exits 0 if the link was dropped for it and no fd leaked.
int netproc() {
  if (auto s = check_control_socket(kFirstFd); !s) return fail(s.error());
  boost::asio::io_context io;
  ControlLink link(io, UniqueFd(kFirstFd), LinkKind::kBrokerNetproc, Role::kNetproc);
  int baseline = -1;
  int status = 5;
  link.start(
      [&](ReceivedMessage m) {
        if (std::holds_alternative<NetprocSetup>(m.message)) {
          baseline = open_fd_count();
          (void)link.send(Ready{});
        } else if (std::holds_alternative<UdpSocket>(m.message)) {
          int type = 0;
          socklen_t len = sizeof type;
          ::getsockopt(m.fds.at(0).get(), SOL_SOCKET, SO_TYPE, &type, &len);
          (void)link.send(StatusReply{1, type == SOCK_DGRAM ? "udp" : "not udp"});
        } else if (std::holds_alternative<StatusRequest>(m.message)) {
          (void)link.send(StatusReply{2, std::to_string(open_fd_count() - baseline)});
        }
      },
      [&](const std::string& why) {
        std::fprintf(stderr, "ipc_peer_helper: link closed: %s\n", why.c_str());
        bool violation = why.find("violation") != std::string::npos;
        // The control socket itself is gone now: one fewer than at setup.
        bool no_leak = open_fd_count() == baseline - 1;
        status = violation ? (no_leak ? 0 : 3) : 4;
        io.stop();
      });
  io.run();
  return status;
}

}  // namespace
}  // namespace tw::ipc

int main(int argc, char** argv) {
  if (argc < 2) return tw::ipc::fail("usage: ipc_peer_helper MODE [ARG]");
  std::string mode = argv[1];
  std::uint64_t arg = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 0;
  if (mode == "produce") return tw::ipc::produce(arg);
  if (mode == "consume") return tw::ipc::consume(arg);
  if (mode == "garbage") return tw::ipc::garbage(static_cast<int>(arg));
  if (mode == "netproc") return tw::ipc::netproc();
  return tw::ipc::fail("unknown mode " + mode);
}
