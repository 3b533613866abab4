// tailwarden-ctlproc as a process: spawned like the broker spawns children (fd 3 only,
// an empty network namespace when root, uid drop, NoNewPrivs, seccomp), the test
// playing the broker. It dials testcontrol on request and passes the fds; ctlproc
// fetches the control key, registers, follows the map and sends netmaps that pass the
// netmap-file parser; it survives refused dials and a cut connection with backoff.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "broker/spawn.h"
#include "ctlproc/http1.h"
#include "ctlproc/link.h"
#include "ipc/control_socket.h"
#include "tests/integration/ctlproc/controlserver.h"

namespace tw::ctl {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

class FakeBroker {
 public:
  ~FakeBroker() {
    link_.reset();
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void spawn() {
    auto pair = ipc::make_control_pair();
    ASSERT_TRUE(pair.ok());
    const bool root = ::geteuid() == 0;
    broker::ChildSpec spec;
    spec.path = TW_CTLPROC_BIN;
    const uid_t uid = root ? 65534 : ::getuid();
    const gid_t gid = root ? 65534 : ::getgid();
    spec.args = {"--uid",  std::to_string(uid), "--gid", std::to_string(gid), "--sandbox",
                 "strict", "--log-level",       "debug"};
    spec.fds = {{3, pair->second.get()}};
    spec.new_netns = root;
    auto pid = broker::spawn_child(spec);
    ASSERT_TRUE(pid.ok()) << pid.error();
    pid_ = *pid;
    pair->second.reset();
    link_ = std::move(pair->first);
    ASSERT_TRUE(ipc::set_nonblocking(link_.get()).ok());
  }
  bool send(const ToCtlproc& m, int fd = -1) {
    Bytes d = encode_link(m);
    std::vector<int> fds;
    if (fd >= 0) fds.push_back(fd);
    auto r = ipc::send_datagram(link_.get(), d, fds);
    return r.ok() && *r == ipc::SendOutcome::kSent;
  }
  // Serves ctlproc until pred() holds: answers dial requests with `dial`, collects
  // netmaps and statuses. False on timeout or when ctlproc exits.
  bool serve_until(const std::function<bool()>& pred, int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!pred()) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{link_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::min<long>(left, 100))) <= 0) continue;
      ipc::ReceivedDatagram d;
      auto r = ipc::receive_datagram(link_.get(), kMaxLinkDatagram, d);
      if (!r.ok() || *r == ipc::ReceiveOutcome::kPeerClosed) return false;
      if (*r == ipc::ReceiveOutcome::kWouldBlock) continue;
      auto m = decode_to_broker(d.bytes, d.fds.size());
      EXPECT_TRUE(m.ok()) << m.error();
      if (!m.ok()) return false;
      if (auto* dr = std::get_if<CtlDialRequest>(&*m)) {
        dial_requests.push_back(dr->purpose);
        if (refuse_dials > 0) {
          --refuse_dials;
          send(CtlDialFailed{dr->purpose, "connection refused (test)"});
          continue;
        }
        int fd = testing::dial(port);
        EXPECT_GE(fd, 0);
        last_conn = ::dup(fd);
        send(CtlConn{dr->purpose}, fd);
        ::close(fd);
      } else if (auto* part = std::get_if<CtlNetmapPart>(&*m)) {
        auto nm = assembler_.add(*part);
        EXPECT_TRUE(nm.ok()) << nm.error();
        if (nm.ok() && nm->has_value()) {
          auto parsed = parse_netmap(**nm, "control");  // what the broker runs
          EXPECT_TRUE(parsed.ok()) << parsed.error();
          if (parsed.ok()) netmaps.push_back(std::move(*parsed));
        }
      } else if (auto* s = std::get_if<CtlStatus>(&*m)) {
        statuses.push_back(*s);
      }
    }
    return true;
  }
  pid_t pid() const { return pid_; }
  std::string proc_status() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::uint16_t port = 0;
  int refuse_dials = 0;
  int last_conn = -1;
  std::vector<ConnPurpose> dial_requests;
  std::vector<Netmap> netmaps;
  std::vector<CtlStatus> statuses;

 private:
  pid_t pid_ = -1;
  ipc::UniqueFd link_;
  NetmapAssembler assembler_;
};

class CtlprocProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto_init();
    bool skip = false;
    if (!testing::build_controlserver(&skip)) {
      if (skip) GTEST_SKIP() << "no Go toolchain to build tests/interop/controlserver";
      FAIL() << "go build of tests/interop/controlserver failed";
    }
    std::string why;
    ASSERT_TRUE(server_.start({"-authkey", "tskey-proc17"}, &why)) << why;
    broker_.port = server_.port();
  }
  void TearDown() override {
    if (broker_.last_conn >= 0) ::close(broker_.last_conn);
  }

  CtlSetup setup() {
    CtlSetup s;
    s.machine_private = machine_.bytes();
    s.node_public = node_.public_key();
    s.disco_public = disco_.public_key();
    s.authority = server_.authority();
    s.auth_key = "tskey-proc17";
    s.hostname = "tw17-proc";
    s.home_derp = 1;
    s.endpoints = {{*IpPort::parse("198.18.17.3:41641"), EndpointType::kLocal}};
    return s;
  }

  json node_json() {
    std::string line = server_.command("node " + node_.public_key().to_string());
    return line.rfind("NODE ", 0) == 0 ? json::parse(line.substr(5), nullptr, false) : json();
  }

  testing::ControlServer server_;
  FakeBroker broker_;
  MachinePrivate machine_ = MachinePrivate::generate();
  NodePrivate node_ = NodePrivate::generate();
  DiscoPrivate disco_ = DiscoPrivate::generate();
};

TEST_F(CtlprocProcess, JoinsUnderSeccompAndSendsNetmapsTheBrokerParserAccepts) {
  std::string fake = server_.command("addfake");
  auto fake_key = NodePublic::parse(fake.substr(5));
  ASSERT_TRUE(fake_key.ok()) << fake;
  broker_.spawn();
  ASSERT_TRUE(broker_.send(setup()));
  ASSERT_TRUE(broker_.serve_until([&] { return !broker_.netmaps.empty(); }, 20000));
  // The key was fetched over its own connection first, then the session was dialled.
  ASSERT_GE(broker_.dial_requests.size(), 2u);
  EXPECT_EQ(broker_.dial_requests[0], ConnPurpose::kKeyFetch);
  EXPECT_EQ(broker_.dial_requests[1], ConnPurpose::kSession);
  const Netmap& nm = broker_.netmaps.back();
  EXPECT_EQ(nm.self.node_key, node_.public_key());
  EXPECT_NE(nm.peer_by_node_key(*fake_key), nullptr);
  ASSERT_TRUE(broker_.serve_until(
      [&] { return !broker_.statuses.empty() && broker_.statuses.back().state == "connected"; },
      5000));

  // It runs sandboxed: NoNewPrivs and a seccomp filter in force.
  const std::string st = broker_.proc_status();
  EXPECT_NE(st.find("NoNewPrivs:\t1"), std::string::npos) << st;
  EXPECT_NE(st.find("Seccomp:\t2"), std::string::npos) << st;

  // Endpoint changes from the broker reach control as a lite update.
  CtlEndpoints eps;
  eps.home_derp = 1;
  eps.disco_public = disco_.public_key();
  eps.endpoints = {{*IpPort::parse("198.18.17.4:999"), EndpointType::kStun}};
  ASSERT_TRUE(broker_.send(eps));
  json me;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    broker_.serve_until([] { return false; }, 100);
    me = node_json();
    if (me.is_object() && me["Endpoints"] == json({"198.18.17.4:999"})) break;
  }
  EXPECT_EQ(me["Endpoints"], json({"198.18.17.4:999"})) << me.dump();
  EXPECT_EQ(me.value("DiscoKey", ""), disco_.public_key().to_string());
  EXPECT_EQ(me.value("HomeDERP", 0), 1);
}

TEST_F(CtlprocProcess, RefusedDialsBackOffAndACutConnectionIsRedialled) {
  broker_.refuse_dials = 2;
  broker_.spawn();
  CtlSetup s = setup();
  ASSERT_TRUE(broker_.send(s));
  const auto t0 = Clock::now();
  ASSERT_TRUE(broker_.serve_until([&] { return !broker_.netmaps.empty(); }, 30000));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_GE(ms, 2500) << "two refusals back off 1 s then 2 s";
  bool saw_backoff = false;
  for (const auto& st : broker_.statuses) saw_backoff = saw_backoff || st.state == "backing-off";
  EXPECT_TRUE(saw_backoff);

  // Cut the session's TCP connection under it: ctlproc redials and gets a map again.
  const std::size_t before = broker_.netmaps.size();
  const std::size_t dials = broker_.dial_requests.size();
  ASSERT_GE(broker_.last_conn, 0);
  ::shutdown(broker_.last_conn, SHUT_RDWR);
  ASSERT_TRUE(broker_.serve_until(
      [&] { return broker_.dial_requests.size() > dials && broker_.netmaps.size() > before; },
      20000));
  EXPECT_EQ(broker_.statuses.back().reconnects >= 3, true);
}

}  // namespace
}  // namespace tw::ctl
