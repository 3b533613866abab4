// tailwarden-netproc as a process under a fake broker: fixed fds 3-7, Setup →
// Ready, a netmap and the UDP socket, the status topics, and exit when the broker
// end of the control link closes (docs/design.md#7-failure-posture).
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>
#include <optional>

#include "broker/spawn.h"
#include "ipc/control_link.h"
#include "ipc/control_socket.h"
#include "ipc/doorbell.h"
#include "ipc/ring_memory.h"
#include "tests/unit/netproc/rt_util.h"

#ifndef TW_NETPROC_BIN
#error "TW_NETPROC_BIN must name the tailwarden-netproc binary"
#endif

namespace tw::netproc_test {
namespace {

struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  // Exit status within `wait`, or nullopt if still running.
  std::optional<int> wait_exit(std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return status;
      }
      ::usleep(10000);
    }
    return std::nullopt;
  }
};

TEST(NetprocProcess, SetupReadyStatusAndExitWhenBrokerLinkCloses) {
  auto ctl = ipc::make_control_pair();
  auto peer = ipc::make_control_pair();
  ASSERT_TRUE(ctl && peer);
  auto rings = ipc::RingMemory::create(ipc::RingGeometry{64, 2048});
  ASSERT_TRUE(rings) << rings.error();
  auto bell_nd = ipc::make_doorbell();
  auto bell_dn = ipc::make_doorbell();
  ASSERT_TRUE(bell_nd && bell_dn);

  const bool root = ::geteuid() == 0;
  broker::ChildSpec spec;
  spec.path = TW_NETPROC_BIN;
  const uid_t uid = root ? 65534 : ::getuid();
  const gid_t gid = root ? 65534 : ::getgid();
  spec.args = {"--uid", std::to_string(uid), "--gid", std::to_string(gid), "--sandbox", "strict", "--log-level", "debug"};
  spec.fds = {{3, ctl->second.get()}, {4, peer->second.get()}, {5, rings->fd()}, {6, bell_nd->get()}, {7, bell_dn->get()}};
  spec.new_netns = root;
  Child child;
  auto pid = broker::spawn_child(spec);
  ASSERT_TRUE(pid) << pid.error();
  child.pid = *pid;
  ctl->second.reset();
  peer->second.reset();

  boost::asio::io_context io;
  ipc::ControlLink link(io, std::move(ctl->first), ipc::LinkKind::kBrokerNetproc, ipc::Role::kBroker);
  bool ready = false;
  bool closed = false;
  std::map<std::uint32_t, std::string> replies;
  link.start(
      [&](ipc::ReceivedMessage m) {
        if (std::holds_alternative<ipc::Ready>(m.message)) ready = true;
        if (auto* r = std::get_if<ipc::StatusReply>(&m.message)) replies[r->request_id] = r->body;
      },
      [&](const std::string&) { closed = true; });

  ipc::NetprocSetup setup;
  setup.generation = 1;
  setup.disco_private = DiscoPrivate::generate();
  setup.node_public = NodePrivate::generate().public_key();
  setup.flags = ipc::NetprocSetup::kFlagAllowLanEndpoints;
  ASSERT_TRUE(link.send(setup));
  ASSERT_TRUE(run_until(io, [&] { return ready || closed; }, 10000ms));
  ASSERT_TRUE(ready) << "netproc answers Setup with Ready";

  ipc::NetprocNetmap nm;
  nm.generation = 1;
  ipc::NetprocPeer p;
  p.peer_id = 42;
  p.node_key = NodePrivate::generate().public_key();
  p.disco_key = DiscoPrivate::generate().public_key();
  p.endpoints = {loopback(9)};
  p.home_derp = 1;
  nm.peers.push_back(p);
  ASSERT_TRUE(link.send(nm));
  auto udp = bind_loopback();
  const int udp_fd = udp.get();
  ASSERT_TRUE(link.send(ipc::UdpSocket{1}, std::span<const int>(&udp_fd, 1)));

  ASSERT_TRUE(link.send(ipc::StatusRequest{1, "status"}));
  ASSERT_TRUE(link.send(ipc::StatusRequest{2, "metrics"}));
  ASSERT_TRUE(run_until(io, [&] { return replies.size() == 2 || closed; }, 5000ms));
  ASSERT_EQ(replies.size(), 2u);
  auto st = nlohmann::json::parse(replies[1]);
  ASSERT_EQ(st["peers"].size(), 1u);
  EXPECT_EQ(st["peers"][0]["id"], 42);
  EXPECT_EQ(st["peers"][0]["candidates"][0]["addr"], "127.0.0.1:9");
  EXPECT_EQ(st["udp"], port_of(udp_fd));
  EXPECT_NE(replies[2].find("tailwarden_udp_rx_datagrams_total"), std::string::npos);
  EXPECT_NE(replies[2].find("tailwarden_disco_ping_recv_rejected_total"), std::string::npos);

  link.close("test done");
  auto status = child.wait_exit(5000ms);
  ASSERT_TRUE(status.has_value()) << "netproc exits when the broker link closes";
  EXPECT_TRUE(WIFEXITED(*status)) << "status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

}  // namespace
}  // namespace tw::netproc_test
