// The config file the package installs as /etc/tailwarden/tailwardend.toml must be
// one the daemon accepts as is, in strict sandbox mode, with the paths the systemd
// unit makes writable.
#include <gtest/gtest.h>

#include "broker/config.h"

#include <fstream>
#include <sstream>
#include <string>

namespace tw::broker {
namespace {

std::string shipped_config_text() {
  std::ifstream in(TW_DEFAULT_CONFIG);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ShippedConfig, ParsesWithTheDaemonsOwnParser) {
  auto cfg = parse_config_text(shipped_config_text(), "/etc/tailwarden/tailwardend.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.error();
}

TEST(ShippedConfig, KeepsTheStrictSandboxAndAnUnprivilegedChildUser) {
  auto cfg = parse_config_text(shipped_config_text(), "tailwardend.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.error();
  EXPECT_EQ(cfg->sandbox_mode, SandboxMode::kStrict);
  EXPECT_EQ(cfg->child_user.name, "tailwarden");
  // The accounts packaging/debian/postinst and the image create, one per child.
  EXPECT_EQ(cfg->account(ChildRole::kNetproc).name, "tailwarden-netproc");
  EXPECT_EQ(cfg->account(ChildRole::kDataproc).name, "tailwarden-dataproc");
  EXPECT_EQ(cfg->account(ChildRole::kCtlproc).name, "tailwarden-ctlproc");
  EXPECT_EQ(cfg->account(ChildRole::kExitproc).name, "tailwarden-exitproc");
  EXPECT_FALSE(cfg->admin_group.has_value()) << "admin socket must default to root-only";
}

// The unit makes only StateDirectory (/var/lib/tailwarden) and RuntimeDirectory
// (/run/tailwarden) writable and allows only IPv4: the defaults must fit in that.
TEST(ShippedConfig, FitsTheSystemdSandbox) {
  auto cfg = parse_config_text(shipped_config_text(), "tailwardend.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.error();
  EXPECT_EQ(cfg->state_dir, "/var/lib/tailwarden");
  EXPECT_EQ(cfg->key_file.rfind("/var/lib/tailwarden/", 0), 0u) << cfg->key_file;
  EXPECT_EQ(cfg->admin_socket.rfind("/run/tailwarden/", 0), 0u) << cfg->admin_socket;
  EXPECT_FALSE(cfg->enable_ipv6);
  EXPECT_FALSE(cfg->derp_dns);
}

}  // namespace
}  // namespace tw::broker
