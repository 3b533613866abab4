// The ts2021 client library against Tailscale's own control server (testcontrol from
// tailscale.com v1.102.5, run by tests/interop/controlserver on a loopback port): key
// fetch, upgrade, Noise IK, HTTP/2, register (auth key, wrong key, AuthURL flow),
// the zstd map stream with a Go-created peer, lite endpoint updates, pushed updates
// and deltas sent as raw MapResponses through the real server's framing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/keys.h"
#include "ctlproc/http1.h"
#include "ctlproc/session.h"
#include "tests/integration/ctlproc/controlserver.h"

namespace tw::ctl {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using testing::ControlServer;
using testing::dial;
using testing::write_all;

// A session on a real TCP connection, driven by poll.
class LiveSession {
 public:
  LiveSession(std::uint16_t port, SessionConfig cfg) : session_(std::move(cfg)) {
    fd_ = dial(port);
    auto first = session_.start();
    if (fd_ >= 0 && first) write_all(fd_, *first);
  }
  ~LiveSession() {
    if (fd_ >= 0) close(fd_);
  }
  // Runs until pred() is true (returns true), the session fails or the time is up.
  bool run_until(const std::function<bool()>& pred, int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!pred()) {
      if (session_.state() == SessionState::kFailed) return false;
      Bytes out = session_.take_output();
      if (!out.empty() && !write_all(fd_, out)) return false;
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(std::min<long>(left, 100))) <= 0) continue;
      std::uint8_t buf[16384];
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) {
        session_.on_eof();
        return pred();
      }
      (void)session_.on_bytes(ByteView(buf, static_cast<std::size_t>(n)));
      for (auto& nm : session_.take_netmaps()) netmaps_.push_back(std::move(nm));
    }
    return true;
  }
  Session& session() { return session_; }
  const std::vector<Netmap>& netmaps() const { return netmaps_; }

 private:
  int fd_ = -1;
  Session session_;
  std::vector<Netmap> netmaps_;
};

class TestControl : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto_init();
    bool skip = false;
    if (!testing::build_controlserver(&skip)) {
      if (skip) GTEST_SKIP() << "no Go toolchain to build tests/interop/controlserver";
      FAIL() << "go build of tests/interop/controlserver failed";
    }
  }

  void start_server(const std::vector<std::string>& args) {
    std::string why;
    ASSERT_TRUE(server_.start(args, &why)) << why;
  }

  MachinePublic fetch_key() {
    int fd = dial(server_.port());
    EXPECT_GE(fd, 0);
    std::string req = key_request(server_.authority(), kCapabilityVersion);
    EXPECT_TRUE(
        write_all(fd, ByteView(reinterpret_cast<const std::uint8_t*>(req.data()), req.size())));
    Bytes buf;
    for (;;) {
      std::uint8_t tmp[4096];
      ssize_t n = read(fd, tmp, sizeof tmp);
      if (n <= 0) break;
      buf.insert(buf.end(), tmp, tmp + n);
    }
    close(fd);
    auto k = parse_key_response(buf, true);
    EXPECT_TRUE(k.ok()) << (k ? "" : k.error());
    EXPECT_TRUE(k.ok() && k->has_value());
    return k.ok() && k->has_value() ? **k : MachinePublic{};
  }

  SessionConfig config(const std::string& auth_key) {
    SessionConfig c;
    c.authority = server_.authority();
    c.machine_private = machine_.bytes();
    c.control_key = fetch_key();
    c.node_key = node_.public_key();
    c.disco_key = disco_.public_key();
    c.auth_key = auth_key;
    c.hostinfo.hostname = "tw17-node";
    c.hostinfo.ipn_version = "tailwarden-test";
    c.hostinfo.preferred_derp = 1;
    c.endpoints = {{*IpPort::parse("198.18.17.1:41641"), EndpointType::kLocal},
                   {*IpPort::parse("198.18.17.2:41641"), EndpointType::kStun}};
    return c;
  }

  json node_json(const NodePublic& k) {
    std::string line = server_.command("node " + k.to_string());
    if (line.rfind("NODE ", 0) != 0) return json();
    return json::parse(line.substr(5), nullptr, false);
  }

  ControlServer server_;
  MachinePrivate machine_ = MachinePrivate::generate();
  NodePrivate node_ = NodePrivate::generate();
  DiscoPrivate disco_ = DiscoPrivate::generate();
};

TEST_F(TestControl, RegistersWithAuthKeyAndFollowsTheMap) {
  start_server({"-authkey", "tskey-tw17"});
  std::string fake = server_.command("addfake");
  ASSERT_EQ(fake.rfind("FAKE nodekey:", 0), 0u) << fake;
  auto fake_key = NodePublic::parse(fake.substr(5));
  ASSERT_TRUE(fake_key.ok());

  LiveSession live(server_.port(), config("tskey-tw17"));
  ASSERT_TRUE(live.run_until([&] { return !live.netmaps().empty(); }, 20000))
      << session_state_name(live.session().state()) << ": " << live.session().error();
  EXPECT_EQ(live.session().state(), SessionState::kMapping);
  const Netmap& nm = live.netmaps().back();
  EXPECT_EQ(nm.self.node_key, node_.public_key());
  ASSERT_FALSE(nm.self.addresses.empty());
  EXPECT_EQ(nm.self.addresses[0].addr.to_string().rfind("100.64.", 0), 0u)
      << nm.self.addresses[0].to_string();
  ASSERT_NE(nm.derp_map.region(1), nullptr);
  const NetmapPeer* peer = nm.peer_by_node_key(*fake_key);
  ASSERT_NE(peer, nullptr) << "the Go-created peer is not in our netmap";
  EXPECT_TRUE(peer->disco_key.has_value());
  EXPECT_FALSE(peer->allowed_ips.empty());

  // The lite update put our disco key, endpoints and home region into control.
  json me;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    live.run_until([] { return false; }, 100);
    me = node_json(node_.public_key());
    if (me.is_object() && me.value("HomeDERP", 0) == 1 && me.contains("Endpoints")) break;
  }
  ASSERT_TRUE(me.is_object()) << me.dump();
  EXPECT_EQ(me.value("DiscoKey", ""), disco_.public_key().to_string());
  EXPECT_EQ(me.value("HomeDERP", 0), 1);
  EXPECT_EQ(me["Endpoints"], json({"198.18.17.1:41641", "198.18.17.2:41641"}));

  // A new peer pushed by control reaches us within a second.
  std::string fake2 = server_.command("addfake");
  auto fake2_key = NodePublic::parse(fake2.substr(5));
  ASSERT_TRUE(fake2_key.ok()) << fake2;
  const auto t0 = Clock::now();
  ASSERT_EQ(server_.command("push " + fake2_key->to_string()), "PUSH true");
  ASSERT_TRUE(live.run_until(
      [&] { return live.netmaps().back().peer_by_node_key(*fake2_key) != nullptr; }, 5000))
      << live.session().error();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_LT(ms, 1000);
  std::printf("pushed peer reached the client in %lld ms\n", static_cast<long long>(ms));

  // Our endpoint change reaches control.
  live.session().update_endpoints({{*IpPort::parse("198.18.17.9:5555"), EndpointType::kStun}}, 1,
                                  disco_.public_key());
  deadline = Clock::now() + std::chrono::seconds(5);
  bool seen = false;
  while (Clock::now() < deadline && !seen) {
    live.run_until([] { return false; }, 100);
    me = node_json(node_.public_key());
    seen = me.is_object() && me["Endpoints"] == json({"198.18.17.9:5555"});
  }
  EXPECT_TRUE(seen) << me.dump();
  EXPECT_EQ(live.session().state(), SessionState::kMapping) << live.session().error();
}

TEST_F(TestControl, DeltasThroughTheRealServerFraming) {
  start_server({});
  std::string fake = server_.command("addfake");
  auto fake_key = NodePublic::parse(fake.substr(5));
  ASSERT_TRUE(fake_key.ok()) << fake;
  LiveSession live(server_.port(), config(""));
  ASSERT_TRUE(live.run_until([&] { return !live.netmaps().empty(); }, 20000))
      << live.session().error();
  json fake_node = node_json(*fake_key);
  ASSERT_TRUE(fake_node.is_object());
  const std::int64_t id = fake_node["ID"].get<std::int64_t>();
  ASSERT_NE(live.netmaps().back().peer_by_node_key(*fake_key), nullptr);

  // A patch: new endpoints and home region for the peer.
  json patch = {
      {"PeersChangedPatch",
       json::array({{{"NodeID", id}, {"DERPRegion", 1}, {"Endpoints", {"198.18.17.77:41641"}}}})}};
  ASSERT_EQ(server_.command("raw " + node_.public_key().to_string() + " " + patch.dump()),
            "RAW true");
  ASSERT_TRUE(live.run_until(
      [&] {
        const NetmapPeer* p = live.netmaps().back().peer_by_node_key(*fake_key);
        return p != nullptr && p->endpoints.size() == 1 && p->home_derp == 1;
      },
      5000))
      << live.session().error();
  EXPECT_EQ(live.netmaps().back().peer_by_node_key(*fake_key)->endpoints[0].to_string(),
            "198.18.17.77:41641");

  // A removal.
  json removal = {{"PeersRemoved", json::array({id})}};
  ASSERT_EQ(server_.command("raw " + node_.public_key().to_string() + " " + removal.dump()),
            "RAW true");
  ASSERT_TRUE(live.run_until(
      [&] { return live.netmaps().back().peer_by_node_key(*fake_key) == nullptr; }, 5000))
      << live.session().error();
  EXPECT_EQ(live.session().state(), SessionState::kMapping);
}

TEST_F(TestControl, WrongAuthKeyIsRefusedWithAClearMessage) {
  start_server({"-authkey", "tskey-right"});
  LiveSession live(server_.port(), config("tskey-wrong"));
  EXPECT_FALSE(live.run_until([&] { return !live.netmaps().empty(); }, 20000));
  EXPECT_EQ(live.session().state(), SessionState::kFailed);
  EXPECT_NE(live.session().error().find("control refused the node"), std::string::npos)
      << live.session().error();
  EXPECT_NE(live.session().error().find("authkey"), std::string::npos) << live.session().error();
}

TEST_F(TestControl, InteractiveLoginShowsTheAuthUrlUntilCompleted) {
  start_server({"-requireauth"});
  LiveSession live(server_.port(), config(""));
  ASSERT_TRUE(
      live.run_until([&] { return live.session().state() == SessionState::kNeedsLogin; }, 20000))
      << live.session().error();
  const std::string url = live.session().auth_url();
  EXPECT_EQ(url.rfind("http", 0), 0u) << url;
  ASSERT_EQ(server_.command("completeauth " + url), "AUTH true");
  ASSERT_TRUE(live.run_until([&] { return !live.netmaps().empty(); }, 20000))
      << live.session().error();
  EXPECT_EQ(live.session().state(), SessionState::kMapping);
  EXPECT_TRUE(live.session().auth_url().empty());
}

TEST_F(TestControl, WrongControlKeyFailsTheHandshake) {
  start_server({});
  SessionConfig c = config("");
  c.control_key = MachinePrivate::generate().public_key();
  LiveSession live(server_.port(), std::move(c));
  EXPECT_FALSE(live.run_until([&] { return !live.netmaps().empty(); }, 10000));
  EXPECT_EQ(live.session().state(), SessionState::kFailed);
  EXPECT_NE(live.session().error().find("wrong control key"), std::string::npos)
      << live.session().error();
}

}  // namespace
}  // namespace tw::ctl
