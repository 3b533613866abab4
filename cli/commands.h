// Each command family of the `tailwarden` CLI registers its subcommands here.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

namespace tw::cli {

// `tailwarden keygen`
void add_keygen_command(CLI::App& app);
// `tailwarden debug …`: offline protocol tools (disco, STUN, classifier).
void add_debug_commands(CLI::App& app);
// `tailwarden demo`
void add_demo_command(CLI::App& app);
// Commands that talk to a running node through the admin socket at *socket.
void add_node_commands(CLI::App& app, std::shared_ptr<std::string> socket);

}  // namespace tw::cli
