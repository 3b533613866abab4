// A real STUN server (coturn in --stun-only mode) on loopback: the runtime's first
// sweep goes out at once and the response yields our mapped address (issue 5).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>
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

TEST(RuntimeStun, ResponseFromRealCoturnYieldsOurMappedAddress) {
  if (::system("command -v turnserver >/dev/null 2>&1") != 0) GTEST_SKIP() << "coturn not installed";
  std::uint16_t stun_port;
  {
    auto probe = bind_loopback();
    stun_port = port_of(probe.get());
  }
  Coturn server(stun_port);
  ASSERT_TRUE(server.started());

  boost::asio::io_context io;
  MetricsRegistry metrics;
  magicsock::SodiumRandom rng;
  magicsock::RuntimeConfig cfg;
  cfg.disco_private = DiscoPrivate::generate();
  cfg.self_node = NodePrivate::generate().public_key();
  magicsock::Runtime rt(io, cfg, metrics, nullptr, {}, rng);
  auto udp = bind_loopback();
  const auto our_port = port_of(udp.get());
  rt.adopt_udp(std::move(udp));
  rt.start();
  const IpPort server_addr = loopback(stun_port);
  // coturn needs a moment to listen; a re-set server list sweeps again at once.
  nlohmann::json nc;
  const bool got = run_until(io, [&] {
    static auto last = std::chrono::steady_clock::now() - 1s;
    if (std::chrono::steady_clock::now() - last > 300ms) {
      last = std::chrono::steady_clock::now();
      rt.set_stun_servers(std::span(&server_addr, 1));
    }
    nc = nlohmann::json::parse(rt.netcheck_json());
    return !nc["stun"].empty();
  }, 5000ms);
  ASSERT_TRUE(got) << nc.dump();
  EXPECT_EQ(nc["stun"][0]["server"], server_addr.to_string());
  EXPECT_EQ(nc["stun"][0]["mapped"], loopback(our_port).to_string());
  EXPECT_FALSE(nc.contains("mapping_varies_by_dest_ip")) << "only one server answered";
  EXPECT_GE(metrics.value("stun_response_matched_total"), 1u);
}

// netcheck's DERP latency is the RTT of STUN requests to each region's node, as in
// Tailscale: a region whose node points at the real coturn gets a measured latency
// naming that node; a region without STUN (STUNPort -1) is reported as such.
TEST(RuntimeStun, NetcheckReportsDerpRegionLatencyFromRealStunAnswers) {
  if (::system("command -v turnserver >/dev/null 2>&1") != 0) GTEST_SKIP() << "coturn not installed";
  std::uint16_t stun_port;
  {
    auto probe = bind_loopback();
    stun_port = port_of(probe.get());
  }
  Coturn server(stun_port);
  ASSERT_TRUE(server.started());

  boost::asio::io_context io;
  MetricsRegistry metrics;
  magicsock::SodiumRandom rng;
  magicsock::RuntimeConfig cfg;
  cfg.disco_private = DiscoPrivate::generate();
  cfg.self_node = NodePrivate::generate().public_key();
  magicsock::Runtime rt(io, cfg, metrics, nullptr, {}, rng);
  rt.adopt_udp(bind_loopback());
  rt.start();
  ipc::NetprocNetmap nm;
  nm.derp_map_json = R"({"Regions":{
    "900":{"RegionID":900,"RegionCode":"lab","RegionName":"Lab","Nodes":[
      {"Name":"900a","RegionID":900,"HostName":"derp.lab","IPv4":"127.0.0.1","STUNPort":)" +
                     std::to_string(stun_port) + R"(}]},
    "901":{"RegionID":901,"RegionCode":"relayonly","Nodes":[
      {"Name":"901a","RegionID":901,"HostName":"relay.lab","IPv4":"127.0.0.1","STUNPort":-1}]}}})";
  ASSERT_TRUE(rt.apply_netmap(nm).ok());
  const IpPort server_addr = loopback(stun_port);
  nlohmann::json nc;
  const bool got = run_until(io, [&] {
    static auto last = std::chrono::steady_clock::now();
    if (std::chrono::steady_clock::now() - last > 300ms) {
      last = std::chrono::steady_clock::now();
      rt.set_stun_servers(std::span(&server_addr, 1));  // coturn may not have listened yet: sweep again
    }
    nc = nlohmann::json::parse(rt.netcheck_json());
    return !nc["derp"].empty() && nc["derp"][0].value("stun", "") == "measured";
  }, 5000ms);
  ASSERT_TRUE(got) << nc.dump();
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
