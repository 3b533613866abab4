// tailwardend: the privileged broker. Thin: parses the command line, loads config and
// keys, and runs the daemon (broker/daemon.h).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "broker/config.h"
#include "broker/daemon.h"
#include "common/keyfile.h"
#include "common/log.h"

int main(int argc, char** argv) {
  // The broker holds both private keys: no core dump, and no ptrace attach or
  // /proc/PID/mem read by anything but a CAP_SYS_PTRACE holder.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  tw::crypto_init();
  CLI::App app{"tailwardend: the tailwarden node (broker)"};
  std::string config_path;
  bool check_only = false;
  app.set_version_flag("--version", std::string("tailwardend ") + TW_VERSION);
  app.add_option("--config,-c", config_path, "Configuration file (TOML)")->required();
  app.add_flag("--check", check_only, "Validate config, key file and netmap, then exit");
  CLI11_PARSE(app, argc, argv);

  tw::init_logging("broker", "info");
  auto config = tw::broker::load_config(config_path);
  if (!config) {
    std::cerr << "tailwardend: " << config.error() << "\n";
    return 2;
  }
  tw::init_logging("broker", std::string(tw::broker::to_string(config->log_level)));
  auto keys = tw::load_key_file(config->key_file);
  if (!keys) {
    std::cerr << "tailwardend: " << keys.error() << "\n";
    return 2;
  }
  if (check_only) {
    auto nm = config->netmap_file.empty() ? tw::Result<tw::Netmap>(tw::Netmap{})
                                          : tw::load_netmap_file(config->netmap_file);
    if (!nm) {
      std::cerr << "tailwardend: " << nm.error() << "\n";
      return 2;
    }
    std::cout << "tailwardend: configuration OK\n";
    return 0;
  }
  tw::broker::Daemon daemon(std::move(*config), std::move(*keys));
  if (auto st = daemon.start(); !st) {
    std::cerr << "tailwardend: " << st.error() << "\n";
    return 2;
  }
  return daemon.run();
}
