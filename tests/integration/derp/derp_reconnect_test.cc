// The region manager driving real connections: when the relay restarts, the home
// region is redialled with n²·10 ms backoff until it is back.
#include <gtest/gtest.h>

#include <thread>

#include "netproc/derp/regions.h"
#include "tests/integration/derp/derper_harness.h"

namespace tw::derptest {
namespace {

using std::chrono::milliseconds;

struct HomeRegionDriver {
  std::uint16_t port;
  MetricsRegistry metrics;
  bool dial_requested = false;
  std::vector<TimePoint> dials;
  std::unique_ptr<TestClient> client;
  derp::RegionManager mgr{derp::RegionPolicy{},
                          derp::RegionActions{[this](derp::RegionId) { dial_requested = true; }, nullptr},
                          [] { return 0.5; },  // jitter factor exactly 1.0
                          metrics};

  void step() {
    TimePoint now = Clock::now();
    if (dial_requested) {
      dial_requested = false;
      dials.push_back(now);
      client = std::make_unique<TestClient>(port, plain_config());
      if (!client->started()) {
        client.reset();
        mgr.on_failed(1, now);
      }
    }
    if (client) {
      bool was_ready = client->ready;
      pump_until({client.get()}, [] { return false; }, 5);
      if (client->failed()) {
        client.reset();
        mgr.on_failed(1, Clock::now());
      } else if (client->ready && !was_ready) {
        mgr.on_connected(1, Clock::now());
      }
    } else {
      std::this_thread::sleep_for(milliseconds(2));
    }
    mgr.tick(Clock::now());
  }
  bool run_until(const std::function<bool()>& done, milliseconds limit) {
    auto end = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() > end) return false;
      step();
    }
    return true;
  }
};

TEST(DerpReconnect, RelayRestartIsRedialledWithGrowingBackoffUntilBack) {
  crypto_init();
  TempDir dir;
  auto first = std::make_unique<Derper>(dir, std::vector<std::string>{"--plain-http"});
  ASSERT_TRUE(first->started());
  HomeRegionDriver drv;
  drv.port = first->port();
  drv.mgr.set_home(1, Clock::now());
  ASSERT_TRUE(drv.run_until([&] { return drv.mgr.connected(1); }, milliseconds(3000)));

  first.reset();  // the relay goes away
  ASSERT_TRUE(drv.run_until([&] { return !drv.mgr.connected(1); }, milliseconds(3000)));
  std::size_t dials_before = drv.dials.size();
  drv.run_until([] { return false; }, milliseconds(400));  // refused dials pile up failures
  std::size_t attempts = drv.dials.size() - dials_before;
  EXPECT_GE(attempts, 2u);
  EXPECT_LE(attempts, 8u);  // 10+40+90+160+250 ms: a handful in 400 ms, not a storm
  for (std::size_t i = dials_before + 1; i < drv.dials.size(); ++i) {
    auto n = static_cast<std::int64_t>(i - dials_before + 1);  // failures before this redial
    EXPECT_GE(drv.dials[i] - drv.dials[i - 1], milliseconds(10 * n * n)) << "redial " << n;
  }

  Derper second(dir, {"--plain-http"}, "127.0.0.1:" + std::to_string(drv.port));
  ASSERT_TRUE(second.started());
  EXPECT_TRUE(drv.run_until([&] { return drv.mgr.connected(1); }, milliseconds(3000)));
}

}  // namespace
}  // namespace tw::derptest
