// Each command family of the `tailwarden` CLI registers its subcommands here.
#pragma once

#include <CLI/CLI.hpp>

namespace tw::cli {

// `tailwarden keygen`
void add_keygen_command(CLI::App& app);
// `tailwarden debug …`: offline protocol tools (disco, STUN, classifier).
void add_debug_commands(CLI::App& app);

}  // namespace tw::cli
