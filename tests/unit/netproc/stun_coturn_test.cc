// A real STUN server (coturn in --stun-only mode) on loopback: the runtime's first
// sweep goes out at once and the response yields our mapped address.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tests/unit/netproc/rt_util.h"

namespace tw::netproc_test {
namespace {

class Coturn {
 public:
  explicit Coturn(std::uint16_t port) : port_(port) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string p = std::to_string(port);
      // Private pid and database files: other test runs may have a coturn too.
      const std::string pid = "/tmp/tw-netrt-coturn-" + p + ".pid";
      const std::string db = "/tmp/tw-netrt-coturn-" + p + ".db";
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      ::execlp("turnserver", "turnserver", "--stun-only", "-L", "127.0.0.1", "-p", p.c_str(), "--no-cli",
               "--no-tls", "--no-dtls", "-n", "--log-file", "stdout", "--pidfile", pid.c_str(), "--db", db.c_str(),
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Coturn() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      ::unlink(("/tmp/tw-netrt-coturn-" + std::to_string(port_) + ".pid").c_str());
      ::unlink(("/tmp/tw-netrt-coturn-" + std::to_string(port_) + ".db").c_str());
    }
  }
  bool started() const { return pid_ > 0; }

 private:
  std::uint16_t port_;
  pid_t pid_ = -1;
};

// A real coturn on a free loopback port and a started runtime on another socket.
class RuntimeStun : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::system("command -v turnserver >/dev/null 2>&1") != 0) GTEST_SKIP() << "coturn not installed";
    {
      auto probe = bind_loopback();
      stun_port = port_of(probe.get());
    }
    server.emplace(stun_port);
    ASSERT_TRUE(server->started());
    cfg.disco_private = DiscoPrivate::generate();
    cfg.self_node = NodePrivate::generate().public_key();
    rt.emplace(io, cfg, metrics, nullptr, magicsock::RuntimeHooks{}, rng);
    auto udp = bind_loopback();
    our_port = port_of(udp.get());
    rt->adopt_udp(std::move(udp));
    rt->start();
  }

  // Polls netcheck until `done` holds; coturn needs a moment to listen, so the
  // server list is re-set (which sweeps again at once) every 300 ms meanwhile.
  bool poll_netcheck(nlohmann::json& nc, const std::function<bool(const nlohmann::json&)>& done) {
    const IpPort server_addr = loopback(stun_port);
    auto last = std::chrono::steady_clock::now() - 1s;
    return run_until(
        io,
        [&] {
          if (std::chrono::steady_clock::now() - last > 300ms) {
            last = std::chrono::steady_clock::now();
            rt->set_stun_servers(std::span(&server_addr, 1));
          }
          nc = nlohmann::json::parse(rt->netcheck_json());
          return done(nc);
        },
        15000ms);  // coturn's start-up under a parallel ctest can take seconds
  }

  std::uint16_t stun_port = 0;
  std::uint16_t our_port = 0;
  std::optional<Coturn> server;
  boost::asio::io_context io;
  MetricsRegistry metrics;
  magicsock::SodiumRandom rng;
  magicsock::RuntimeConfig cfg;
  std::optional<magicsock::Runtime> rt;  // declared last: destroyed before what it uses
};

TEST_F(RuntimeStun, ResponseFromRealCoturnYieldsOurMappedAddress) {
  const IpPort server_addr = loopback(stun_port);
  nlohmann::json nc;
  ASSERT_TRUE(poll_netcheck(nc, [](const nlohmann::json& j) { return !j["stun"].empty(); })) << nc.dump();
  EXPECT_EQ(nc["stun"][0]["server"], server_addr.to_string());
  EXPECT_EQ(nc["stun"][0]["mapped"], loopback(our_port).to_string());
  EXPECT_FALSE(nc.contains("mapping_varies_by_dest_ip")) << "only one server answered";
  EXPECT_GE(metrics.value("stun_response_matched_total"), 1u);
}

// netcheck's DERP latency is the RTT of STUN requests to each region's node, as in
// Tailscale: a region whose node points at the real coturn gets a measured latency
// naming that node; a region without STUN (STUNPort -1) is reported as such.
TEST_F(RuntimeStun, NetcheckReportsDerpRegionLatencyFromRealStunAnswers) {
  ipc::NetprocNetmap nm;
  nm.derp_map_json = R"({"Regions":{
    "900":{"RegionID":900,"RegionCode":"lab","RegionName":"Lab","Nodes":[
      {"Name":"900a","RegionID":900,"HostName":"derp.lab","IPv4":"127.0.0.1","STUNPort":)" +
                     std::to_string(stun_port) + R"(}]},
    "901":{"RegionID":901,"RegionCode":"relayonly","Nodes":[
      {"Name":"901a","RegionID":901,"HostName":"relay.lab","IPv4":"127.0.0.1","STUNPort":-1}]}}})";
  ASSERT_TRUE(rt->apply_netmap(nm).ok());
  nlohmann::json nc;
  ASSERT_TRUE(poll_netcheck(nc, [](const nlohmann::json& j) {
    return !j["derp"].empty() && j["derp"][0].value("stun", "") == "measured";
  })) << nc.dump();
  ASSERT_EQ(nc["derp"].size(), 2u) << nc.dump();
  const auto& lab = nc["derp"][0];
  EXPECT_EQ(lab["region"], "lab");
  EXPECT_EQ(lab["region_id"], 900);
  EXPECT_EQ(lab["node"], "900a");
  EXPECT_EQ(lab["stun_server"], loopback(stun_port).to_string());
  EXPECT_GT(lab["latency_ms"].get<double>(), 0.0);
  EXPECT_LT(lab["latency_ms"].get<double>(), 1000.0);
  EXPECT_LE(lab["min_latency_ms"].get<double>(), lab["latency_ms"].get<double>());
  EXPECT_FALSE(lab["connected"].get<bool>()) << "no DERP relay in this test";
  const auto& relay = nc["derp"][1];
  EXPECT_EQ(relay["region"], "relayonly");
  EXPECT_EQ(relay["stun"], "no_stun");
  EXPECT_FALSE(relay.contains("latency_ms"));
}

}  // namespace
}  // namespace tw::netproc_test
