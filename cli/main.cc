// tailwarden: the operator CLI. Thin: parses the command line and dispatches.
#include <CLI/CLI.hpp>

#include "cli/admin_client.h"
#include "cli/commands.h"
#include "common/keys.h"

int main(int argc, char** argv) {
  tw::crypto_init();
  CLI::App app{"tailwarden: operator CLI for the tailwarden mesh VPN node"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tailwarden ") + TW_VERSION);
  auto socket = std::make_shared<std::string>(tw::cli::kDefaultAdminSocket);
  app.add_option("--socket", *socket, "tailwardend admin socket")->capture_default_str();
  tw::cli::add_keygen_command(app);
  tw::cli::add_node_commands(app, socket);
  tw::cli::add_demo_command(app);
#ifdef TW_CLI_HAS_DEBUG
  tw::cli::add_debug_commands(app);
#endif
  CLI11_PARSE(app, argc, argv);
  return 0;
}
