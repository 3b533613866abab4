// The commands that talk to a running node over the admin socket: status, ping,
// netcheck, audit, metrics, rebind, endpoints, netmap apply.
#include <ctime>
#include <iostream>
#include <memory>

#include "cli/admin_client.h"
#include "cli/commands.h"
#include "cli/status_format.h"

namespace tw::cli {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "tailwarden: " << what << "\n";
  throw CLI::RuntimeError(1);
}

json call_once(const std::string& socket, const json& req) {
  auto r = admin_call_once(socket, req);
  if (!r) fail(r.error());
  return *r;
}

}  // namespace

void add_node_commands(CLI::App& app, std::shared_ptr<std::string> socket) {
  auto json_out = std::make_shared<bool>(false);

  auto* status = app.add_subcommand("status", "Peers and the path each one uses");
  status->add_flag("--json", *json_out, "Print the JSON reply");
  status->callback([socket, json_out] {
    json r = call_once(*socket, {{"cmd", "status"}});
    if (*json_out) {
      std::cout << r.dump(2) << "\n";
    } else {
      std::cout << format_status(r, static_cast<long long>(std::time(nullptr)));
    }
  });

  auto peer = std::make_shared<std::string>();
  auto count = std::make_shared<unsigned>(0);
  auto* ping = app.add_subcommand("ping", "Disco ping a peer; stops at the first direct pong unless -c");
  ping->add_option("peer", *peer, "Peer name or tailnet address")->required();
  ping->add_option("-c,--count", *count, "Number of pings (default: until a direct pong, at most 10)");
  ping->add_flag("--json", *json_out, "One JSON object per reply");
  ping->callback([socket, peer, count, json_out] {
    bool any_ok = false;
    std::string error;
    auto st = admin_call(*socket, {{"cmd", "ping"}, {"peer", *peer}, {"count", *count}}, [&](const json& j) {
      if (!j.value("ok", false)) {
        error = j.value("error", std::string("ping failed"));
        return false;
      }
      any_ok = any_ok || !j.value("timeout", false);
      std::cout << (*json_out ? j.dump() : format_pong(j)) << std::endl;
      return true;
    });
    if (!st) fail(st.error());
    if (!error.empty()) fail(error);
    if (!any_ok) throw CLI::RuntimeError(1);
  });

  auto* netcheck = app.add_subcommand("netcheck", "STUN results, NAT type and DERP latencies");
  netcheck->add_flag("--json", *json_out, "Print the JSON reply");
  netcheck->callback([socket, json_out] {
    json r = call_once(*socket, {{"cmd", "netcheck"}});
    std::cout << (*json_out ? r.dump(2) + "\n" : format_netcheck(r));
  });

  auto* audit = app.add_subcommand("audit", "Check the sandbox of the running children; non-zero on any failure");
  audit->add_flag("--json", *json_out, "Print the JSON reply");
  audit->callback([socket, json_out] {
    auto r = admin_call_once(*socket, {{"cmd", "audit"}});
    if (!r) fail(r.error());
    if (*json_out) {
      std::cout << r->dump(2) << "\n";
    } else {
      std::cout << r->value("table", std::string());
    }
    if (!r->value("pass", false)) throw CLI::RuntimeError(1);
  });

  auto* metrics = app.add_subcommand("metrics", "Prometheus text of every counter of all three processes");
  metrics->callback([socket] { std::cout << call_once(*socket, {{"cmd", "metrics"}}).value("text", std::string()); });

  auto* rebind = app.add_subcommand("rebind", "Rebind the underlay socket and re-probe paths");
  rebind->callback([socket] {
    json r = call_once(*socket, {{"cmd", "rebind"}});
    std::cout << "rebound: " << r.value("underlay", std::string("?")) << "\n";
  });

  auto watch = std::make_shared<bool>(false);
  auto* endpoints = app.add_subcommand("endpoints", "The endpoints netproc advertises");
  endpoints->add_flag("--json", *json_out, "Print JSON");
  endpoints->add_flag("--watch", *watch, "Keep printing each new set");
  endpoints->callback([socket, json_out, watch] {
    auto st = admin_call(*socket, {{"cmd", "endpoints"}, {"watch", *watch}}, [&](const json& j) {
      if (!j.value("ok", false)) fail(j.value("error", std::string("endpoints failed")));
      if (*json_out) {
        std::cout << j.dump() << std::endl;
      } else {
        for (const auto& e : j.value("endpoints", json::array())) std::cout << e.get<std::string>() << "\n";
        if (*watch) std::cout << "--" << std::endl;
      }
      return *watch;
    });
    if (!st) fail(st.error());
  });

  auto path = std::make_shared<std::string>();
  auto* netmap = app.add_subcommand("netmap", "Netmap operations");
  auto* apply = netmap->add_subcommand("apply", "Validate and apply a netmap file");
  apply->add_option("file", *path, "Netmap JSON file")->required()->check(CLI::ExistingFile);
  netmap->require_subcommand(1);
  apply->callback([socket, path] {
    char resolved[4096];
    const char* abs = realpath(path->c_str(), resolved);
    json r = call_once(*socket, {{"cmd", "netmap_apply"}, {"path", abs ? abs : *path}});
    std::cout << "applied generation " << r.value("generation", 0) << " (" << r.value("peers", 0) << " peers)\n";
  });
}

}  // namespace tw::cli
