// `tailwarden keygen [--out FILE] [--force]`: writes a new key file (mode 0600) and
// prints the public keys a controller needs for the netmap.
#include <iostream>

#include "cli/commands.h"
#include "common/keyfile.h"

namespace tw::cli {

void add_keygen_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("keygen", "Generate node, disco and control machine keys");
  auto out = std::make_shared<std::string>();
  auto force = std::make_shared<bool>(false);
  cmd->add_option("--out,-o", *out, "Key file to write (mode 0600); without it, print the file");
  cmd->add_flag("--force", *force, "Overwrite an existing key file");
  cmd->callback([out, force] {
    NodeKeys keys = generate_node_keys();
    if (out->empty()) {
      std::cout << key_file_text(keys);
    } else {
      auto st = write_key_file(*out, keys, *force);
      if (!st.ok()) {
        std::cerr << "keygen: " << st.error() << "\n";
        throw CLI::RuntimeError(1);
      }
    }
    std::cerr << "node_key = " << keys.node.public_key().to_string() << "\n"
              << "disco_key = " << keys.disco.public_key().to_string() << "\n"
              << "machine_key = " << keys.machine->public_key().to_string() << "\n";
  });
}

}  // namespace tw::cli
