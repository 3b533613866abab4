#include "broker/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace tw::broker {
namespace {

const std::string kRequired =
    "key_file = \"/var/lib/tailwarden/node.key\"\n"
    "netmap_file = \"/etc/tailwarden/netmap.json\"\n"
    "child_user = \"nobody\"\n";

// Accounts every Debian system has (base-passwd), one per child, distinct uids (1..4).
const std::string kAccounts =
    "netproc_user = \"daemon\"\n"
    "dataproc_user = \"bin\"\n"
    "exitproc_user = \"sys\"\n"
    "ctlproc_user = \"sync\"\n";

Result<BrokerConfig> parse(const std::string& text) { return parse_config_text(text, "test.toml"); }

// The error message of a config that must be refused.
std::string refusal(const std::string& text) {
  auto r = parse(text);
  EXPECT_FALSE(r.ok()) << "accepted:\n" << text;
  return r.ok() ? std::string() : r.error();
}

TEST(BrokerConfig, MinimalConfigGetsSafeDefaults) {
  auto r = parse(kRequired);
  ASSERT_TRUE(r.ok()) << r.error();
  const BrokerConfig& c = *r;
  EXPECT_EQ(c.key_file, "/var/lib/tailwarden/node.key");
  EXPECT_EQ(c.netmap_file, "/etc/tailwarden/netmap.json");
  EXPECT_EQ(c.child_user.name, "nobody");
  EXPECT_EQ(c.child_user.line, 3);
  EXPECT_EQ(c.state_dir, "/var/lib/tailwarden");
  EXPECT_EQ(c.listen_port, 0);
  EXPECT_FALSE(c.enable_ipv6);
  EXPECT_TRUE(c.tun.enabled);
  EXPECT_EQ(c.tun.name, "tailwarden0");
  EXPECT_EQ(c.tun.mtu, 1280u);
  EXPECT_EQ(c.admin_socket, "/run/tailwarden/tailwarden.sock");
  EXPECT_FALSE(c.admin_group.has_value());
  EXPECT_EQ(c.sandbox_mode, SandboxMode::kStrict);
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
  EXPECT_TRUE(c.allow_lan_endpoints);
  EXPECT_FALSE(c.advertise_lan_endpoints);
  EXPECT_FALSE(c.derp_dns);
}

TEST(BrokerConfig, EveryFieldIsRead) {
  auto r = parse(kRequired +
                 "state_dir = \"/srv/tw\"\n"
                 "listen_port = 41641\n"
                 "enable_ipv6 = true\n"
                 "admin_socket = \"/run/tw.sock\"\n"
                 "admin_group = \"adm\"\n"
                 "sandbox_mode = \"permissive-for-debugging\"\n"
                 "log_level = \"debug\"\n"
                 "allow_lan_endpoints = false\n"
                 "advertise_lan_endpoints = true\n"
                 "derp_dns = true\n"
                 "[tun]\n"
                 "enabled = false\n"
                 "name = \"tw-exit\"\n"
                 "mtu = 1420\n");
  ASSERT_TRUE(r.ok()) << r.error();
  const BrokerConfig& c = *r;
  EXPECT_EQ(c.state_dir, "/srv/tw");
  EXPECT_EQ(c.listen_port, 41641);
  EXPECT_TRUE(c.enable_ipv6);
  EXPECT_EQ(c.admin_socket, "/run/tw.sock");
  ASSERT_TRUE(c.admin_group.has_value());
  EXPECT_EQ(c.admin_group->name, "adm");
  EXPECT_EQ(c.sandbox_mode, SandboxMode::kPermissiveForDebugging);
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
  EXPECT_FALSE(c.allow_lan_endpoints);
  EXPECT_TRUE(c.advertise_lan_endpoints);
  EXPECT_TRUE(c.derp_dns);
  EXPECT_FALSE(c.tun.enabled);
  EXPECT_EQ(c.tun.name, "tw-exit");
  EXPECT_EQ(c.tun.mtu, 1420u);
}

TEST(BrokerConfig, PortOutOfRangeNamesFileLineFieldAndValue) {
  EXPECT_EQ(refusal(kRequired + "listen_port = 70000\n"),
            "test.toml:4: listen_port: expected an integer 0..65535, got 70000");
  EXPECT_EQ(refusal(kRequired + "listen_port = -1\n"),
            "test.toml:4: listen_port: expected an integer 0..65535, got -1");
  EXPECT_EQ(refusal(kRequired + "listen_port = \"41641\"\n"),
            "test.toml:4: listen_port: expected an integer 0..65535, got the string \"41641\"");
  EXPECT_EQ(refusal(kRequired + "listen_port = 4.5\n"),
            "test.toml:4: listen_port: expected an integer 0..65535, got the number 4.5");
}

TEST(BrokerConfig, EphemeralAndHighestPortsAreAccepted) {
  EXPECT_EQ(parse(kRequired + "listen_port = 0\n")->listen_port, 0);
  EXPECT_EQ(parse(kRequired + "listen_port = 65535\n")->listen_port, 65535);
}

// A misspelt key must not silently leave the default in force.
TEST(BrokerConfig, UnknownKeysAreErrorsWithTheirLine) {
  EXPECT_EQ(refusal(kRequired + "\nderp_dsn = true\n"), "test.toml:5: derp_dsn: unknown key");
  EXPECT_EQ(refusal(kRequired + "[tun]\nmtu = 1400\nnmae = \"x\"\n"), "test.toml:6: tun.nmae: unknown key");
  EXPECT_EQ(refusal(kRequired + "[sandbox]\nmode = \"strict\"\n"), "test.toml:4: sandbox: unknown key");
}

TEST(BrokerConfig, MissingRequiredFieldIsNamed) {
  EXPECT_EQ(refusal("key_file = \"/k\"\nchild_user = \"nobody\"\n"),
            "test.toml: missing required field netmap_file (or control_url, to take the map from a "
            "control server)");
  EXPECT_EQ(refusal("key_file = \"/k\"\nnetmap_file = \"/n\"\n"), "test.toml: missing required field child_user");
}

TEST(BrokerConfig, TunMtuMustBeAtLeastTheIpv6Minimum) {
  EXPECT_EQ(refusal(kRequired + "[tun]\nmtu = 1279\n"), "test.toml:5: tun.mtu: expected an integer 1280..65535, got 1279");
  EXPECT_EQ(refusal(kRequired + "[tun]\nmtu = 65536\n"),
            "test.toml:5: tun.mtu: expected an integer 1280..65535, got 65536");
  EXPECT_EQ(parse(kRequired + "[tun]\nmtu = 65535\n")->tun.mtu, 65535u);
}

TEST(BrokerConfig, TunMustBeATableWithAValidInterfaceName) {
  EXPECT_EQ(refusal(kRequired + "tun = true\n"), "test.toml:4: tun: expected a table ([tun]), got true");
  EXPECT_NE(refusal(kRequired + "[tun]\nname = \"a-very-long-name-x\"\n").find("tun.name: expected an interface name"),
            std::string::npos);
  EXPECT_NE(refusal(kRequired + "[tun]\nname = \"../etc\"\n").find("test.toml:5: tun.name"), std::string::npos);
  EXPECT_NE(refusal(kRequired + "[tun]\nname = \"..\"\n").find("tun.name"), std::string::npos);
}

// Permissive mode weakens the sandbox, so only its exact spelling turns it on.
TEST(BrokerConfig, SandboxModeIsStrictUnlessPermissiveIsSpelledOut) {
  EXPECT_EQ(parse(kRequired + "sandbox_mode = \"strict\"\n")->sandbox_mode, SandboxMode::kStrict);
  EXPECT_EQ(refusal(kRequired + "sandbox_mode = \"permissive\"\n"),
            "test.toml:4: sandbox_mode: expected one of \"strict\", \"permissive-for-debugging\", got the string "
            "\"permissive\"");
  EXPECT_NE(refusal(kRequired + "sandbox_mode = false\n").find("got false"), std::string::npos);
}

TEST(BrokerConfig, LogLevelIsOneOfTheNamedLevels) {
  for (auto [text, level] : {std::pair{"trace", LogLevel::kTrace}, std::pair{"warn", LogLevel::kWarn},
                             std::pair{"error", LogLevel::kError}}) {
    auto r = parse(kRequired + "log_level = \"" + text + "\"\n");
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r->log_level, level);
    EXPECT_EQ(to_string(level), text);
  }
  EXPECT_NE(refusal(kRequired + "log_level = \"verbose\"\n").find("test.toml:4: log_level: expected one of"),
            std::string::npos);
}

TEST(BrokerConfig, BooleansMustBeBooleans) {
  EXPECT_EQ(refusal(kRequired + "enable_ipv6 = \"yes\"\n"),
            "test.toml:4: enable_ipv6: expected true or false, got the string \"yes\"");
  EXPECT_EQ(refusal(kRequired + "derp_dns = 1\n"), "test.toml:4: derp_dns: expected true or false, got 1");
}

TEST(BrokerConfig, PathsMustBeAbsoluteAndPrintable) {
  EXPECT_EQ(refusal("key_file = \"node.key\"\nnetmap_file = \"/n\"\nchild_user = \"nobody\"\n"),
            "test.toml:1: key_file: expected an absolute path, got \"node.key\"");
  EXPECT_EQ(refusal(kRequired + "state_dir = \"/var/lib/tw\\u0000x\"\n"),
            "test.toml:4: state_dir: contains a control character");
  EXPECT_EQ(refusal(kRequired + "state_dir = \"\"\n"),
            "test.toml:4: state_dir: expected an absolute path, got an empty string");
}

TEST(BrokerConfig, AdminSocketPathMustFitSunPath) {
  const std::string long_path = "/run/" + std::string(120, 'x') + ".sock";
  EXPECT_NE(refusal(kRequired + "admin_socket = \"" + long_path + "\"\n").find("test.toml:4: admin_socket: path is"),
            std::string::npos);
}

TEST(BrokerConfig, TomlSyntaxErrorsNameTheLine) {
  const std::string err = refusal(kRequired + "listen_port = \n");
  EXPECT_EQ(err.rfind("test.toml:4: ", 0), 0u) << err;
  const std::string dup = refusal(kRequired + "child_user = \"other\"\n");
  EXPECT_EQ(dup.rfind("test.toml:4: ", 0), 0u) << dup;
}

TEST(BrokerConfigAccounts, EachChildHasItsOwnAccountDerivedFromChildUser) {
  auto r = parse(kRequired);
  ASSERT_TRUE(r.ok()) << r.error();
  const std::pair<ChildRole, const char*> want[] = {{ChildRole::kNetproc, "nobody-netproc"},
                                                    {ChildRole::kDataproc, "nobody-dataproc"},
                                                    {ChildRole::kCtlproc, "nobody-ctlproc"},
                                                    {ChildRole::kExitproc, "nobody-exitproc"}};
  for (const auto& [role, name] : want) {
    EXPECT_EQ(r->account(role).name, name);
    EXPECT_EQ(r->account(role).key, "child_user");
    EXPECT_EQ(r->account(role).line, 3);
  }
  auto o = parse(kRequired + "dataproc_user = \"bin\"\n");
  ASSERT_TRUE(o.ok()) << o.error();
  EXPECT_EQ(o->account(ChildRole::kDataproc).name, "bin");
  EXPECT_EQ(o->account(ChildRole::kDataproc).key, "dataproc_user");
  EXPECT_EQ(o->account(ChildRole::kDataproc).line, 4);
  EXPECT_EQ(o->account(ChildRole::kNetproc).name, "nobody-netproc");
}

TEST(BrokerConfigAccounts, EachChildResolvesToItsOwnIds) {
  auto r = parse(kRequired + "admin_group = \"nogroup\"\n" + kAccounts);
  ASSERT_TRUE(r.ok()) << r.error();
  auto st = resolve_accounts(*r);
  ASSERT_TRUE(st.ok()) << st.error();
  EXPECT_EQ(r->account(ChildRole::kNetproc).uid, 1u);   // daemon
  EXPECT_EQ(r->account(ChildRole::kDataproc).uid, 2u);  // bin
  EXPECT_EQ(r->account(ChildRole::kDataproc).gid, 2u);
  EXPECT_EQ(r->admin_group->gid, 65534u);
}

TEST(BrokerConfigAccounts, AConfigWithoutPerChildAccountsGetsAPreciseError) {
  // A config written for one shared child account: the derived account is missing.
  auto r = parse(kRequired);
  ASSERT_TRUE(r.ok());
  auto st = resolve_accounts(*r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error(),
            "test.toml:3: child_user: no such user \"nobody-netproc\" (netproc runs under its own "
            "account, \"<child_user>-netproc\", unless netproc_user names another; see "
            "docs/deploy.md, \"Child accounts\")");
}

TEST(BrokerConfigAccounts, OnlyTheChildrenThatRunNeedAccounts) {
  // No control_url, no [exit]: ctlproc's and exitproc's accounts are not looked up.
  auto r = parse(kRequired + "netproc_user = \"daemon\"\ndataproc_user = \"bin\"\n");
  ASSERT_TRUE(r.ok());
  auto st = resolve_accounts(*r);
  EXPECT_TRUE(st.ok()) << st.error();
}

TEST(BrokerConfigAccounts, TwoChildrenMustNotShareAUid) {
  const std::string shared = kRequired + "netproc_user = \"nobody\"\ndataproc_user = \"nobody\"\n";
  auto strict = parse(shared);
  ASSERT_TRUE(strict.ok());
  auto st = resolve_accounts(*strict);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error(),
            "test.toml:5: dataproc_user: dataproc and netproc would share uid 65534 (\"nobody\", "
            "\"nobody\"); each child needs an account of its own (sandbox_mode = \"strict\")");
  auto permissive = parse(shared + "sandbox_mode = \"permissive-for-debugging\"\n");
  ASSERT_TRUE(permissive.ok());
  EXPECT_TRUE(resolve_accounts(*permissive).ok());
}

TEST(BrokerConfigAccounts, UnknownUserOrGroupNamesFileAndLine) {
  auto r = parse(std::string("key_file = \"/k\"\nnetmap_file = \"/n\"\nchild_user = \"nobody\"\n") +
                 "netproc_user = \"tw-no-such-user\"\n");
  ASSERT_TRUE(r.ok());
  auto st = resolve_accounts(*r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error(), "test.toml:4: netproc_user: no such user \"tw-no-such-user\"");

  auto g = parse(kRequired + "admin_group = \"tw-no-such-group\"\n" + kAccounts);
  ASSERT_TRUE(g.ok());
  auto gst = resolve_accounts(*g);
  ASSERT_FALSE(gst.ok());
  EXPECT_EQ(gst.error(), "test.toml:4: admin_group: no such group \"tw-no-such-group\"");
}

TEST(BrokerConfigAccounts, RootChildrenOnlyInPermissiveMode) {
  const std::string root =
      "key_file = \"/k\"\nnetmap_file = \"/n\"\nchild_user = \"x\"\nnetproc_user = \"root\"\n"
      "dataproc_user = \"bin\"\n";
  auto strict = parse(root);
  ASSERT_TRUE(strict.ok());
  auto st = resolve_accounts(*strict);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().find("test.toml:4: netproc_user: \"root\" has uid or gid 0"),
            std::string::npos);

  auto permissive = parse(root + "sandbox_mode = \"permissive-for-debugging\"\n");
  ASSERT_TRUE(permissive.ok());
  EXPECT_TRUE(resolve_accounts(*permissive).ok());
}

TEST(BrokerConfigFile, LoadReadsParsesAndResolves) {
  char path[] = "/tmp/tw-config-test-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << kRequired << "listen_port = 41641\n" << kAccounts;
  auto r = load_config(path);
  ::unlink(path);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->origin, path);
  EXPECT_EQ(r->listen_port, 41641);
  EXPECT_EQ(r->account(ChildRole::kNetproc).uid, 1u);
}

TEST(BrokerConfig, EndpointsFileIsOptionalAndAnAbsoluteFilePath) {
  EXPECT_FALSE(parse(kRequired)->endpoints_file.has_value());
  auto r = parse(kRequired + "endpoints_file = \"/run/tailwarden/endpoints.json\"\n");
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_TRUE(r->endpoints_file.has_value());
  EXPECT_EQ(r->endpoints_file->path, "/run/tailwarden/endpoints.json");
  EXPECT_EQ(r->endpoints_file->line, 4);
  EXPECT_EQ(refusal(kRequired + "endpoints_file = \"endpoints.json\"\n"),
            "test.toml:4: endpoints_file: expected an absolute path, got \"endpoints.json\"");
  EXPECT_EQ(refusal(kRequired + "endpoints_file = \"/run/tailwarden/\"\n"),
            "test.toml:4: endpoints_file: expected a file path, got the directory \"/run/tailwarden/\"");
  EXPECT_EQ(refusal(kRequired + "endpoints_file = true\n"),
            "test.toml:4: endpoints_file: expected an absolute path, got true");
}

TEST(BrokerConfig, ControlUrlIsPlainHttpToAFixedIpv4) {
  EXPECT_TRUE(parse(kRequired)->control_url.empty());
  auto r = parse(kRequired + "control_url = \"http://198.18.0.1:8080/\"\nhostname = \"vps-1\"\n"
                             "auth_key_file = \"/etc/tailwarden/authkey\"\n"
                             "control_key = \"mkey:9f512dea1cb0688378c1f4e7023a7073fcab79cde61f3db6fcfd1138bf98cc71\"\n");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->control_authority, "198.18.0.1:8080");
  ASSERT_TRUE(r->control_address.has_value());
  EXPECT_EQ(r->control_address->port, 8080);
  EXPECT_EQ(r->hostname, "vps-1");
  EXPECT_EQ(r->auth_key_file, "/etc/tailwarden/authkey");
  EXPECT_EQ(parse(kRequired + "control_url = \"http://198.18.0.1\"\n")->control_authority, "198.18.0.1:80");
  EXPECT_NE(refusal(kRequired + "control_url = \"https://198.18.0.1\"\n").find("test.toml:4: control_url: https://"),
            std::string::npos);
  EXPECT_NE(refusal(kRequired + "control_url = \"http://controlplane.example\"\n").find("host names are not resolved"),
            std::string::npos);
  EXPECT_NE(refusal(kRequired + "control_url = \"ftp://198.18.0.1\"\n").find("expected an http:// URL"),
            std::string::npos);
  EXPECT_NE(refusal(kRequired + "control_key = \"nodekey:00\"\n").find("test.toml:4: control_key"), std::string::npos);
  EXPECT_NE(refusal(kRequired + "hostname = \"a b\"\n").find("test.toml:4: hostname"), std::string::npos);
}

TEST(BrokerConfig, NetmapFileIsOptionalWithControlAndExitNeedsControl) {
  auto r = parse(
      "key_file = \"/k\"\nchild_user = \"nobody\"\ncontrol_url = \"http://198.18.0.1:8080\"\n"
      "advertise_exit_node = true\n");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r->netmap_file.empty());
  EXPECT_TRUE(r->advertise_exit_node);
  EXPECT_FALSE(parse(kRequired)->advertise_exit_node);
  EXPECT_NE(refusal(kRequired + "advertise_exit_node = true\n")
                .find("advertise_exit_node needs control_url"),
            std::string::npos);
  EXPECT_NE(refusal(kRequired + "advertise_exit_node = \"yes\"\n")
                .find("test.toml:4: advertise_exit_node"),
            std::string::npos);
}

TEST(BrokerConfigPaths, EndpointsFileDirectoryMustExistAtLoad) {
  char tmpl[] = "/tmp/tw-config-dir-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  auto check = [](const std::string& file) {
    auto r = parse_config_text(kRequired + "\nendpoints_file = \"" + file + "\"\n", "/etc/tw.toml");
    EXPECT_TRUE(r.ok()) << r.error();
    return r.ok() ? check_paths(*r) : Status(make_error("parse"));
  };
  EXPECT_TRUE(check(dir + "/endpoints.json").ok());
  EXPECT_EQ(check(dir + "/missing/endpoints.json").error(),
            "/etc/tw.toml:5: endpoints_file: directory \"" + dir + "/missing\" does not exist");
  std::ofstream(dir + "/plain") << "x";
  EXPECT_EQ(check(dir + "/plain/endpoints.json").error(),
            "/etc/tw.toml:5: endpoints_file: \"" + dir + "/plain\" is not a directory");
  EXPECT_EQ(check(dir).error(), "/etc/tw.toml:5: endpoints_file: \"" + dir + "\" is a directory");
  ::unlink((dir + "/plain").c_str());
  ::rmdir(dir.c_str());
}

TEST(BrokerConfigFile, LoadRefusesAnEndpointsFileInAMissingDirectory) {
  char path[] = "/tmp/tw-config-test-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << kRequired << "endpoints_file = \"/nonexistent-tw-dir/endpoints.json\"\n"
                      << kAccounts;
  auto r = load_config(path);
  ::unlink(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), std::string(path) + ":4: endpoints_file: directory \"/nonexistent-tw-dir\" does not exist");
}

TEST(BrokerConfigFile, MissingFileIsNamed) {
  auto r = load_config("/nonexistent/tailwarden.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().rfind("/nonexistent/tailwarden.toml: cannot open", 0), 0u) << r.error();
}

// ---- [exit] ----

const std::string kExit =
    "[exit]\n"
    "mode = \"proxy\"\n"
    "proxy = \"socks5://198.18.5.2:1080\"\n"
    "dns_resolver = \"198.18.9.53\"\n";

TEST(BrokerConfigExit, AbsentMeansNoExit) {
  auto r = parse(kRequired);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_FALSE(r->exit.has_value());
}

TEST(BrokerConfigExit, Socks5AndHttpProxiesAreRead) {
  auto r = parse(kRequired + kExit);
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_TRUE(r->exit.has_value());
  EXPECT_EQ(r->exit->mode, ExitMode::kProxy);
  EXPECT_EQ(r->exit->proxy_kind, ProxyKind::kSocks5);
  EXPECT_EQ(r->exit->proxy.to_string(), "198.18.5.2:1080");
  EXPECT_EQ(r->exit->proxy_url, "socks5://198.18.5.2:1080");
  EXPECT_EQ(r->exit->dns_resolver.to_string(), "198.18.9.53");
  EXPECT_FALSE(r->exit->credentials_file.has_value());
  EXPECT_EQ(r->exit->line, 4);

  auto h = parse(kRequired +
                 "[exit]\nmode = \"proxy\"\nproxy = \"http://198.18.5.3:3128/\"\n"
                 "dns_resolver = \"198.18.9.53\"\ncredentials_file = \"/etc/tw/creds\"\n");
  ASSERT_TRUE(h.ok()) << h.error();
  EXPECT_EQ(h->exit->proxy_kind, ProxyKind::kHttpConnect);
  EXPECT_EQ(h->exit->proxy_url, "http://198.18.5.3:3128");
  ASSERT_TRUE(h->exit->credentials_file.has_value());
  EXPECT_EQ(h->exit->credentials_file->path, "/etc/tw/creds");
  EXPECT_EQ(h->exit->credentials_file->line, 8);
}

TEST(BrokerConfigExit, HostModeIsRefusedNeverImplied) {
  EXPECT_EQ(
      refusal(kRequired + "[exit]\nmode = \"host\"\nproxy = \"socks5://198.18.5.2:1080\"\n"
                          "dns_resolver = \"198.18.9.53\"\n"),
      "test.toml:5: exit.mode: \"host\" (the broker dials destinations from this host) is not "
      "built yet; use \"proxy\" with an upstream proxy");
  EXPECT_EQ(
      refusal(kRequired + "[exit]\nmode = \"direct\"\n"),
      "test.toml:5: exit.mode: expected one of \"proxy\", \"host\", got the string \"direct\"");
  // mode must be written: an [exit] table alone does not pick one.
  EXPECT_EQ(
      refusal(kRequired +
              "[exit]\nproxy = \"socks5://198.18.5.2:1080\"\ndns_resolver = \"198.18.9.53\"\n"),
      "test.toml: missing required field exit.mode");
}

TEST(BrokerConfigExit, ProxyIsAnIpv4UrlWithPortAndNoCredentials) {
  auto with_proxy = [](const std::string& url) {
    return kRequired + "[exit]\nmode = \"proxy\"\nproxy = \"" + url +
           "\"\ndns_resolver = \"198.18.9.53\"\n";
  };
  EXPECT_EQ(refusal(with_proxy("https://198.18.5.2:443")),
            "test.toml:6: exit.proxy: expected a socks5:// or http:// URL, got "
            "\"https://198.18.5.2:443\"");
  EXPECT_EQ(
      refusal(with_proxy("socks5://proxy.example:1080")),
      "test.toml:6: exit.proxy: expected <scheme>://<IPv4>:<port 1..65535> (host names are not "
      "resolved), got \"socks5://proxy.example:1080\"");
  EXPECT_EQ(refusal(with_proxy("socks5://198.18.5.2")),
            "test.toml:6: exit.proxy: expected an explicit port (<scheme>://<IPv4>:<port>), got "
            "\"socks5://198.18.5.2\"");
  EXPECT_NE(refusal(with_proxy("socks5://198.18.5.2:0")).find("port 1..65535"), std::string::npos);
  EXPECT_NE(refusal(with_proxy("socks5://0.0.0.0:1080")).find("IPv4"), std::string::npos);
  EXPECT_NE(refusal(with_proxy("socks5://[2001:db8::1]:1080")).find("IPv4"), std::string::npos);
  EXPECT_NE(refusal(with_proxy("socks5://198.18.5.2:99999")).find("IPv4"), std::string::npos);
  const std::string creds = refusal(with_proxy("socks5://user:secret@198.18.5.2:1080"));
  EXPECT_EQ(
      creds,
      "test.toml:6: exit.proxy: credentials do not belong in the URL (it shows in status); put "
      "\"username:password\" in exit.credentials_file");
  EXPECT_EQ(creds.find("secret"), std::string::npos);
}

TEST(BrokerConfigExit, DnsResolverIsIpv4AndRequired) {
  const std::string head =
      kRequired + "[exit]\nmode = \"proxy\"\nproxy = \"socks5://198.18.5.2:1080\"\n";
  EXPECT_EQ(refusal(head), "test.toml: missing required field exit.dns_resolver");
  EXPECT_EQ(
      refusal(head + "dns_resolver = \"2001:db8::53\"\n"),
      "test.toml:7: exit.dns_resolver: expected an IPv4 unicast address (port 53 is implied), got "
      "\"2001:db8::53\"");
  EXPECT_NE(refusal(head + "dns_resolver = \"198.18.9.53:53\"\n").find("IPv4 unicast"),
            std::string::npos);
  EXPECT_NE(refusal(head + "dns_resolver = 53\n").find("expected an IPv4 address"),
            std::string::npos);
  EXPECT_NE(refusal(head + "dns_resolver = \"198.18.9.53\"\nresolver = \"x\"\n")
                .find("exit.resolver: unknown key"),
            std::string::npos);
  EXPECT_EQ(refusal(kRequired + "exit = \"proxy\"\n"),
            "test.toml:4: exit: expected a table ([exit]), got the string \"proxy\"");
}

// A credentials file: written with `mode`, holding `content`.
std::string write_creds(const std::string& content, mode_t mode) {
  char path[] = "/tmp/tw-creds-test-XXXXXX";
  int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ::fchmod(fd, mode);
  ::close(fd);
  return path;
}

TEST(BrokerConfigExit, CredentialsFileIsCheckedLikeTheKeyFile) {
  const std::string good = write_creds("alice:s3cr:et\n", 0600);
  auto c = load_proxy_credentials(good);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->password, "s3cr:et");

  const std::string open_file = write_creds("alice:secret\n", 0640);
  auto r = load_proxy_credentials(open_file);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(
      r.error(),
      open_file + ": mode 0640 lets group or others read the proxy credentials; chmod 600 it");

  struct Case {
    std::string content;
    std::string error;
  };
  const Case cases[] = {
      {"alice\n", "no ':'; expected one line \"username:password\""},
      {":secret\n", "the username must be 1..255 bytes"},
      {"alice:\n", "the password must be 1..255 bytes"},
      {"alice:secret\nbob:x\n", "more than one line; expected one line \"username:password\""},
      {"al\x01ice:secret\n", "username and password must be printable ASCII"},
      {std::string(300, 'a') + ":secret\n", "the username must be 1..255 bytes"},
  };
  for (const auto& k : cases) {
    const std::string p = write_creds(k.content, 0600);
    auto e = load_proxy_credentials(p);
    ASSERT_FALSE(e.ok()) << k.content;
    EXPECT_EQ(e.error(), p + ": " + k.error);
    EXPECT_EQ(e.error().find("secret"), std::string::npos) << "the error leaks the secret";
    ::unlink(p.c_str());
  }
  auto missing = load_proxy_credentials("/nonexistent/creds");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), "/nonexistent/creds: cannot open: No such file or directory");
  ::unlink(good.c_str());
  ::unlink(open_file.c_str());
}

TEST(BrokerConfigExit, LoadChecksTheCredentialsFileWithItsLine) {
  const std::string creds = write_creds("alice:secret\n", 0644);
  char path[] = "/tmp/tw-config-test-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = kRequired + kAccounts + kExit + "credentials_file = \"" + creds + "\"\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  auto r = load_config(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(),
            std::string(path) + ":12: exit.credentials_file: " + creds +
                ": mode 0644 lets group or others read the proxy credentials; chmod 600 it");
  ::chmod(creds.c_str(), 0600);
  auto ok = load_config(path);
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->exit->credentials_file->path, creds);
  ::unlink(path);
  ::unlink(creds.c_str());
}

}  // namespace
}  // namespace tw::broker
