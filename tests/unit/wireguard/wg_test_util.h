// Two WireGuard engines wired back to back in memory with a fake clock: the harness
// of the handshake and timer tests.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "common/clock.h"
#include "dataproc/wireguard/device.h"

namespace tw::wg::testing {

inline Bytes make_ipv4(const IpAddr& src, const IpAddr& dst, std::size_t payload_len,
                       std::uint8_t fill = 0xab) {
  Bytes p(20 + payload_len, fill);
  p[0] = 0x45;
  p[1] = 0;
  store_be16(p.data() + 2, static_cast<std::uint16_t>(p.size()));
  store_be32(p.data() + 4, 0);
  p[8] = 64;
  p[9] = 17;  // UDP, contents irrelevant here
  store_be16(p.data() + 10, 0);
  for (int i = 0; i < 4; ++i) {
    p[12 + i] = src.raw()[i];
    p[16 + i] = dst.raw()[i];
  }
  return p;
}

inline Bytes make_ipv6(const IpAddr& src, const IpAddr& dst, std::size_t payload_len) {
  Bytes p(40 + payload_len, 0xcd);
  p[0] = 0x60;
  p[1] = p[2] = p[3] = 0;
  store_be16(p.data() + 4, static_cast<std::uint16_t>(payload_len));
  p[6] = 17;
  p[7] = 64;
  for (int i = 0; i < 16; ++i) {
    p[8 + i] = src.raw()[i];
    p[24 + i] = dst.raw()[i];
  }
  return p;
}

inline std::uint32_t message_type(const Bytes& d) { return d.size() >= 4 ? load_le32(d.data()) : 0; }

struct Captured {
  PeerId peer;
  Bytes bytes;
};

inline std::vector<Captured> take(PacketBatch& b) {
  std::vector<Captured> v;
  for (std::size_t i = 0; i < b.size(); ++i) {
    auto s = b.bytes(i);
    v.push_back({b.peer(i), Bytes(s.begin(), s.end())});
  }
  b.clear();
  return v;
}

struct Node {
  Node(const FakeTimeSource& clock, DeviceOptions opts)
      : key(NodePrivate::generate()), dev(with_wall(clock, std::move(opts))) {
    dev.set_private_key(key);
  }
  static DeviceOptions with_wall(const FakeTimeSource& clock, DeviceOptions o) {
    // Wall time follows the fake clock so TAI64N timestamps move with it.
    o.wall_clock = [&clock] {
      return std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 365 * 50) +
             std::chrono::duration_cast<std::chrono::system_clock::duration>(
                 clock.now().time_since_epoch());
    };
    return o;
  }
  NodePrivate key;
  WireGuardDevice dev;
  EngineOutput out;
  std::vector<Captured> tun;  // everything delivered to our TUN so far
};

// Node a (100.64.0.1) knows b as peer 2; node b (100.64.0.2) knows a as peer 1.
class TwoNodes : public ::testing::Test {
 protected:
  explicit TwoNodes(DeviceOptions a_opts = {}, DeviceOptions b_opts = {})
      : a(clock, std::move(a_opts)), b(clock, std::move(b_opts)) {
    a.dev.set_peers({PeerConfig{2, b.key.public_key(), {*IpPrefix::parse("100.64.0.2/32")}, {}}});
    b.dev.set_peers({PeerConfig{1, a.key.public_key(), {*IpPrefix::parse("100.64.0.1/32")}, {}}});
  }

  const IpAddr ip_a = IpAddr::v4(100, 64, 0, 1);
  const IpAddr ip_b = IpAddr::v4(100, 64, 0, 2);
  FakeTimeSource clock;
  Node a;
  Node b;

  TimePoint now() const { return clock.now(); }
  Node& other(Node& n) { return &n == &a ? b : a; }
  PeerId id_of_sender_at_receiver(Node& from) { return &from == &a ? 1 : 2; }

  // Delivers one datagram to `to`, as if netproc attributed it to the sender.
  void deliver(Node& from, const Bytes& d) {
    Node& to = other(from);
    to.dev.on_datagram(id_of_sender_at_receiver(from), d, now(), to.out);
    for (auto& c : take(to.out.to_tun)) to.tun.push_back(std::move(c));
  }
  // Exchanges datagrams until both sides are quiet; returns how many moved.
  int pump() {
    int moved = 0;
    for (int round = 0; round < 20; ++round) {
      auto from_a = take(a.out.to_network);
      auto from_b = take(b.out.to_network);
      for (auto& c : take(a.out.to_tun)) a.tun.push_back(std::move(c));
      for (auto& c : take(b.out.to_tun)) b.tun.push_back(std::move(c));
      if (from_a.empty() && from_b.empty()) break;
      for (auto& d : from_a) deliver(a, d.bytes), ++moved;
      for (auto& d : from_b) deliver(b, d.bytes), ++moved;
    }
    return moved;
  }
  void send_a_to_b(std::size_t len = 100) { a.dev.on_tun_packet(make_ipv4(ip_a, ip_b, len), now(), a.out); }
  void send_b_to_a(std::size_t len = 100) { b.dev.on_tun_packet(make_ipv4(ip_b, ip_a, len), now(), b.out); }
  void timers() {
    a.dev.on_timer(now(), a.out);
    b.dev.on_timer(now(), b.out);
  }
  void establish() {
    send_a_to_b();
    pump();
    ASSERT_TRUE(a.dev.has_session(2, now()));
    ASSERT_TRUE(b.dev.has_session(1, now()));
  }
};

}  // namespace tw::wg::testing
