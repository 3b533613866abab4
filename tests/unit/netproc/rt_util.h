// Helpers for the real-socket runtime tests: loopback UDP sockets, an in-process
// fake DERP relay between runtimes, and running an Asio loop until something holds.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/ipaddr.h"
#include "ipc/unique_fd.h"
#include "netproc/magicsock/derp_seam.h"
#include "netproc/magicsock/runtime.h"

namespace tw::netproc_test {

using namespace std::chrono_literals;

// A non-blocking UDP socket bound to 127.0.0.1:0, as the broker would hand over.
inline ipc::UniqueFd bind_loopback() {
  ipc::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  return fd;
}

inline std::uint16_t port_of(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  return ntohs(sa.sin_port);
}

inline IpPort loopback(std::uint16_t port) { return IpPort{IpAddr::v4(127, 0, 0, 1), port}; }

inline void send_to(int fd, const IpPort& to, ByteView data) {
  sockaddr_storage ss{};
  const socklen_t len = to.to_sockaddr(&ss, false);
  ASSERT_EQ(::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&ss), len),
            static_cast<ssize_t>(data.size()));
}

// A WireGuard transport-data datagram (type 4, LE) with a marker byte.
inline Bytes wg_data(std::uint8_t marker, std::size_t len = 64) {
  Bytes b(len, marker);
  b[0] = 4;
  b[1] = b[2] = b[3] = 0;
  return b;
}

inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.run_one_for(10ms);
    if (io.stopped()) io.restart();
  }
  return true;
}

// The runtimes' time is a FakeTimeSource: a test moves it and runs each runtime's
// periodic work (tick) itself, and the loop only handles what is ready (real socket
// I/O over loopback), so minutes of protocol time pass in milliseconds. Returns
// whether `pred` held before `limit` of fake time had passed.
inline bool advance_until(boost::asio::io_context& io, FakeTimeSource& clock,
                          std::initializer_list<magicsock::Runtime*> runtimes, Duration step,
                          Duration limit, const std::function<bool()>& pred) {
  const TimePoint end = clock.now() + limit;
  while (!pred()) {
    if (clock.now() >= end) return false;
    clock.advance(step);
    for (auto* rt : runtimes) rt->tick(clock.now());
    io.poll();
    if (io.stopped()) io.restart();
  }
  return true;
}

// Relays between runtimes by node key, like a DERP server, on the same loop.
class FakeRelay {
 public:
  class End final : public magicsock::DerpRelay {
   public:
    End(FakeRelay& r, NodePublic self) : r_(r), self_(self) {}
    bool send(const NodePublic& dst, std::uint32_t, ByteView packet) override {
      auto it = r_.ends_.find(dst);
      if (it == r_.ends_.end() || !r_.up) return false;
      ++sent;
      Bytes copy(packet.begin(), packet.end());
      auto* target = it->second;
      auto self = self_;
      boost::asio::post(r_.io_, [target, self, copy] {
        if (*target) (*target)->on_derp_packet(self, 1, copy);
      });
      return true;
    }
    bool available() const override { return r_.up; }
    std::uint32_t home_region() const override { return 1; }
    int sent = 0;

   private:
    FakeRelay& r_;
    NodePublic self_;
  };

  explicit FakeRelay(boost::asio::io_context& io) : io_(io) {}
  // `slot` holds the runtime once it exists (the relay end is made before it).
  void attach(const NodePublic& node, magicsock::Runtime** slot) { ends_[node] = slot; }
  bool up = true;

 private:
  boost::asio::io_context& io_;
  std::map<NodePublic, magicsock::Runtime**> ends_;
};

// A runtime on its own loopback socket, reachable through `relay`. Each test's node
// type decides where received WireGuard goes through the hooks it passes to build().
struct RuntimeNodeBase {
  explicit RuntimeNodeBase(FakeRelay& relay)
      : disco(DiscoPrivate::generate()),
        node(NodePrivate::generate().public_key()),
        relay_end(relay, node),
        udp(bind_loopback()),
        port(port_of(udp.get())) {
    relay.attach(node, &rt_slot);
  }
  ~RuntimeNodeBase() { rt_slot = nullptr; }
  RuntimeNodeBase(const RuntimeNodeBase&) = delete;
  RuntimeNodeBase& operator=(const RuntimeNodeBase&) = delete;

  magicsock::RuntimeConfig config(std::size_t rx_buffer) const {
    magicsock::RuntimeConfig cfg;
    cfg.disco_private = disco;
    cfg.self_node = node;
    cfg.rx_buffer_bytes = rx_buffer;
    cfg.time = time;
    return cfg;
  }
  void build(boost::asio::io_context& io, const magicsock::RuntimeConfig& cfg, magicsock::RuntimeHooks hooks) {
    rt = std::make_unique<magicsock::Runtime>(io, cfg, metrics, &relay_end, std::move(hooks), rng);
    rt_slot = rt.get();
  }
  magicsock::RuntimePeer as_peer(std::uint32_t id) const { return {id, node, disco.public_key(), {loopback(port)}, 1}; }
  void start() {
    rt->adopt_udp(std::move(udp));
    rt->start();
  }

  const TimeSource* time = nullptr;  // set before build(): nullptr is the system clock
  DiscoPrivate disco;
  NodePublic node;
  FakeRelay::End relay_end;
  ipc::UniqueFd udp;
  std::uint16_t port;
  MetricsRegistry metrics;
  magicsock::SodiumRandom rng;
  std::unique_ptr<magicsock::Runtime> rt;
  magicsock::Runtime* rt_slot = nullptr;
};

}  // namespace tw::netproc_test
