// `tailwarden demo [--hold] [--summary-json FILE]`: runs the two-node demo of the
// source tree (tests/e2e/demo.sh) with the binaries next to this one.
#include <unistd.h>

#include <climits>
#include <iostream>

#include "cli/commands.h"

namespace tw::cli {

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Two nodes behind NATs with a relay, in network namespaces (root)");
  auto hold = std::make_shared<bool>(false);
  auto summary = std::make_shared<std::string>();
  cmd->add_flag("--hold", *hold, "Keep everything running after the scripted part");
  cmd->add_option("--summary-json", *summary, "Write the summary figures as JSON");
  cmd->callback([hold, summary] {
    char exe[PATH_MAX] = {};
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::string dir = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string(".");
    dir = dir.substr(0, dir.rfind('/'));
    const std::string script = std::string(TW_SOURCE_DIR) + "/tests/e2e/demo.sh";
    if (::access(script.c_str(), X_OK) != 0) {
      std::cerr << "tailwarden demo: " << script << " not found (the demo runs from a source tree)\n";
      throw CLI::RuntimeError(1);
    }
    ::setenv("BIN", dir.c_str(), 1);
    std::vector<std::string> args = {script};
    if (*hold) args.push_back("--hold");
    if (!summary->empty()) {
      args.push_back("--summary-json");
      args.push_back(*summary);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(script.c_str(), argv.data());
    std::cerr << "tailwarden demo: cannot run " << script << "\n";
    throw CLI::RuntimeError(1);
  });
}

}  // namespace tw::cli
