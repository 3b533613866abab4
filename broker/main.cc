// tailwardend: the privileged broker. Thin: parses the command line and runs the
// daemon (broker/daemon.h).
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/keys.h"

int main(int argc, char** argv) {
  tw::crypto_init();
  CLI::App app{"tailwardend: the tailwarden node (broker)"};
  std::string config_path;
  app.set_version_flag("--version", std::string("tailwardend ") + TW_VERSION);
  app.add_option("--config,-c", config_path, "Configuration file (TOML)")->required();
  CLI11_PARSE(app, argc, argv);
  std::cerr << "tailwardend: daemon wiring lands with the broker issue (#4)\n";
  return 1;
}
