// Admin requests: each is answered from the broker's own state, or by asking a
// child over its control channel (StatusRequest topics) and merging the replies.
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "broker/atomic_file.h"
#include "broker/daemon.h"

namespace tw::broker {

using nlohmann::json;

namespace {

// Children are untrusted (docs/design.md: failure posture): their JSON is parsed without exceptions
// and read only through type-checked accessors; anything not an object is null.
json parse_or_null(const std::optional<std::string>& body) {
  if (!body) return nullptr;
  auto j = json::parse(*body, nullptr, false);
  return j.is_discarded() || !j.is_object() ? json(nullptr) : j;
}

// The peer objects of a child's status reply, by their "id" (a u32); malformed
// entries are skipped.
std::map<std::uint32_t, json> peers_by_id(const json& reply) {
  std::map<std::uint32_t, json> out;
  if (!reply.is_object()) return out;
  auto peers = reply.find("peers");
  if (peers == reply.end() || !peers->is_array()) return out;
  for (const auto& p : *peers) {
    if (!p.is_object()) continue;
    auto id = p.find("id");
    if (id == p.end() || !id->is_number_unsigned() || id->get<std::uint64_t>() > UINT32_MAX)
      continue;
    out[static_cast<std::uint32_t>(id->get<std::uint64_t>())] = p;
  }
  return out;
}

bool string_equals(const json& j, const char* key, const char* want) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() && it->get_ref<const std::string&>() == want;
}

// The reply to {"cmd":"endpoints"}, and the content of the endpoints file: one
// schema (docs/schemas/endpoints.schema.json) for both.
json endpoints_reply(const std::vector<IpPort>& endpoints) {
  json eps = json::array();
  for (const auto& e : endpoints) eps.push_back(e.to_string());
  return {{"ok", true}, {"endpoints", eps}};
}

std::string region_code(const DerpMap& m, std::int64_t id) {
  const DerpRegion* r = m.region(id);
  if (r == nullptr) return id == 0 ? "" : std::to_string(id);
  return r->region_code.empty() ? std::to_string(id) : r->region_code;
}

}  // namespace

void Daemon::child_request(ipc::Role role, const std::string& topic,
                           std::function<void(std::optional<std::string>)> done) {
  child_call(
      role,
      [&topic](std::uint32_t id) {
        return ipc::AnyMessage(ipc::StatusRequest{id, topic});
      },
      std::move(done));
}

void Daemon::child_call(ipc::Role role, const std::function<ipc::AnyMessage(std::uint32_t)>& make,
                        std::function<void(std::optional<std::string>)> done) {
  auto* c = child(role);
  if (c == nullptr || !c->ready || !c->link || !c->link->is_open()) return done(std::nullopt);
  const std::uint32_t id = next_request_id_++;
  if (!c->link->send(make(id))) return done(std::nullopt);
  pending_[id] = PendingRequest{role, std::move(done)};
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, std::chrono::seconds(7));
  timer->async_wait([this, id, timer](boost::system::error_code ec) {
    if (ec) return;
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    auto f = std::move(it->second.done);
    pending_.erase(it);
    expired_ids_.push_back(id);
    if (expired_ids_.size() > 256) expired_ids_.pop_front();
    f(std::nullopt);
  });
}

void Daemon::on_admin(const AdminRequest& req, std::shared_ptr<AdminResponder> r) {
  auto reply_status = [r](Status st, json extra) {
    if (st) {
      extra["ok"] = true;
      r->send(extra);
    } else {
      r->send({{"ok", false}, {"error", st.error()}});
    }
    r->finish();
  };
  switch (req.cmd) {
    // With an exit node, exitproc's counters are fetched first (at most 1 s).
    case AdminCommand::kStatus:
      if (exit_) return exit_->refresh([this, r] { admin_status(r); });
      return admin_status(r);
    case AdminCommand::kAudit: return admin_audit(r);
    case AdminCommand::kMetrics:
      if (exit_) return exit_->refresh([this, r] { admin_metrics(r); });
      return admin_metrics(r);
    case AdminCommand::kPing: return admin_ping(req, r);
    case AdminCommand::kEndpoints: return admin_endpoints(req, r);
    case AdminCommand::kNetcheck:
      return child_request(ipc::Role::kNetproc, "netcheck", [r](std::optional<std::string> body) {
        json j = parse_or_null(body);
        if (!j.is_object()) {
          r->send({{"ok", false}, {"error", "netproc is not running"}});
        } else {
          j["ok"] = true;
          r->send(j);
        }
        r->finish();
      });
    case AdminCommand::kRebind:
      return rebind([this, reply_status](Status st) {
        std::string where = udp_ ? std::string(udp_->v6 ? "[::]:" : "0.0.0.0:") + std::to_string(udp_->port) : "inert";
        reply_status(st, {{"underlay", where}});
      });
    case AdminCommand::kNetmapApply:
      return apply_netmap_file(req.path, [this, reply_status](Status st) {
        reply_status(st, {{"generation", netmap_.generation()}, {"peers", netmap_.netmap().peers.size()}});
      });
  }
}

void Daemon::admin_status(std::shared_ptr<AdminResponder> r) {
  child_request(ipc::Role::kNetproc, "status", [this, r](std::optional<std::string> nbody) {
    child_request(ipc::Role::kDataproc, "status", [this, r, nj = parse_or_null(nbody)](std::optional<std::string> dbody) {
      json dj = parse_or_null(dbody);
      const Netmap& nm = netmap_.netmap();
      const std::map<std::uint32_t, json> net_peers = peers_by_id(nj), data_peers = peers_by_id(dj);
      json self = {{"name", nm.self.name},
                   {"node_key", nm.self.node_key.to_string()},
                   {"address", nm.self.addresses.empty() ? "" : nm.self.addresses[0].addr.to_string()},
                   {"home_derp", region_code(nm.derp_map, nm.self.home_derp)},
                   {"inert", !udp_.has_value()},
                   {"underlay_port", udp_ ? udp_->port : 0},
                   {"endpoints", json::array()},
                   {"children_running", nj.is_object() && dj.is_object()},
                   {"pids", {{"broker", ::getpid()},
                             {"netproc", child(ipc::Role::kNetproc) ? child(ipc::Role::kNetproc)->pid : -1},
                             {"dataproc", child(ipc::Role::kDataproc) ? child(ipc::Role::kDataproc)->pid : -1}}}};
      for (const auto& e : endpoints_) self["endpoints"].push_back(e.to_string());
      json peers = json::array();
      for (const auto& p : nm.peers) {
        const std::uint32_t id = netmap_.peer_id(p.node_key);
        json out = {{"name", p.name},
                    {"id", id},
                    {"node_key", p.node_key.to_string()},
                    {"address", p.addresses.empty() ? "" : p.addresses[0].addr.to_string()},
                    {"wireguard_only", p.wireguard_only},
                    {"path", "none"}};
        if (auto it = net_peers.find(id); it != net_peers.end()) {
          for (auto& [k, v] : it->second.items()) {
            if (k != "id") out[k] = v;
          }
          if (auto dr = it->second.find("derp_region");
              dr != it->second.end() && dr->is_number_integer()) {
            out["derp_region"] = region_code(nm.derp_map, dr->get<std::int64_t>());
          }
        }
        if (auto it = data_peers.find(id); it != data_peers.end()) {
          for (auto& [k, v] : it->second.items()) {
            if (k != "id") out[k] = v;
          }
        }
        peers.push_back(std::move(out));
      }
      json reply = {{"ok", true}, {"self", self}, {"peers", peers}, {"netmap_generation", netmap_.generation()}};
      if (control_) {
        const ControlStatus& cs = control_->status();
        json c = {{"url", cs.url}, {"state", cs.state}, {"maps", cs.maps}, {"reconnects", cs.reconnects},
                  {"bytes_in", cs.bytes_in}, {"bytes_out", cs.bytes_out}, {"pid", cs.pid}};
        if (!cs.auth_url.empty()) c["auth_url"] = cs.auth_url;
        if (!cs.error.empty()) c["error"] = cs.error;
        if (!cs.user.empty()) c["user"] = cs.user;
        if (!cs.key_expiry.empty()) c["key_expiry"] = cs.key_expiry;
        c["key_expired"] = cs.key_expired;
        c["expired_peers"] = cs.expired_peers;
        reply["control"] = std::move(c);
      }
      if (exit_) reply["exit"] = exit_status_json();
      r->send(reply);
      r->finish();
    });
  });
}

void Daemon::admin_audit(std::shared_ptr<AdminResponder> r) {
  std::vector<AuditRow> rows;
  rows.push_back({"broker", "sandbox mode strict", config_.sandbox_mode == SandboxMode::kStrict,
                  std::string(to_string(config_.sandbox_mode))});
  rows.push_back({"broker", "underlay socket bound (not inert)", udp_.has_value(),
                  udp_ ? "port " + std::to_string(udp_->port) : "inert: DERP only"});
  rows.push_back({"broker", "not dumpable (no core file with the keys)",
                  ::prctl(PR_GET_DUMPABLE) == 0,
                  ::prctl(PR_GET_DUMPABLE) == 0 ? "PR_SET_DUMPABLE 0" : "dumpable"});
  rows.push_back({"broker", "underlay egress allowlist enforced by the kernel",
                  allowlist_ != nullptr,
                  allowlist_ ? "nftables table inet " + allowlist_->table()
                             : std::string("unenforced (egress_allowlist = \"unenforced\")")});
  for (auto role : {ipc::Role::kNetproc, ipc::Role::kDataproc}) {
    const ChildHandle* c = child(role);
    const std::string name(ipc::role_name(role));
    if (c == nullptr || c->pid <= 0) {
      rows.push_back({name, "process running", false, "not running"});
      continue;
    }
    auto more = audit_child(name, c->pid, ::getpid(), c->expected_fds, role == ipc::Role::kNetproc);
    rows.insert(rows.end(), more.begin(), more.end());
  }
  if (control_) {
    // The one TCP destination besides DERP, and the process that uses it.
    rows.push_back({"broker", "control dials only the configured address", true,
                    config_.control_address ? config_.control_address->to_string() : ""});
    const pid_t pid = control_->status().pid;
    if (pid <= 0) {
      rows.push_back({"ctlproc", "process running", false, "not running"});
    } else {
      auto more = audit_child("ctlproc", pid, ::getpid(), control_->expected_fds(), true);
      rows.insert(rows.end(), more.begin(), more.end());
    }
  }
  if (exit_) exit_audit_rows(rows);
  bool pass = true;
  json jrows = json::array();
  for (const auto& row : rows) {
    pass = pass && row.pass;
    jrows.push_back({{"process", row.process}, {"check", row.check}, {"pass", row.pass}, {"detail", row.detail}});
  }
  r->send({{"ok", true}, {"pass", pass}, {"rows", jrows}, {"table", format_audit_table(rows)}});
  r->finish();
}

void Daemon::admin_metrics(std::shared_ptr<AdminResponder> r) {
  child_request(ipc::Role::kNetproc, "metrics", [this, r](std::optional<std::string> n) {
    child_request(ipc::Role::kDataproc, "metrics", [this, r, n](std::optional<std::string> d) {
      update_kernel_drop_counter();
      std::string text = "# broker\n" + metrics_.prometheus_text();
      // Each child's text is its own: a missing final newline must not glue the
      // next section's header onto it.
      auto section = [&text](const char* name, const std::optional<std::string>& body) {
        text += std::string("# ") + name + "\n" + body.value_or("# (not running)\n");
        if (text.back() != '\n') text += '\n';
      };
      section("netproc", n);
      section("dataproc", d);
      if (exit_) section("exitproc", exit_metrics_text());
      r->send({{"ok", true}, {"text", text}});
      r->finish();
    });
  });
}

void Daemon::admin_ping(const AdminRequest& req, std::shared_ptr<AdminResponder> r) {
  const NetmapPeer* peer = netmap_.find_peer(req.peer);
  if (peer == nullptr) {
    r->send({{"ok", false}, {"error", "no peer named or addressed \"" + req.peer + "\" in the netmap"}});
    return r->finish();
  }
  if (peer->wireguard_only) {
    r->send({{"ok", false}, {"error", peer->name + " is a wireguard_only peer: it does not speak disco"}});
    return r->finish();
  }
  struct PingLoop {
    std::uint32_t id;
    std::string name, address;
    std::uint32_t count;  // 0: until the first direct pong (at most 10)
    std::uint32_t sent = 0;
  };
  auto loop = std::make_shared<PingLoop>(PingLoop{netmap_.peer_id(peer->node_key), peer->name,
                                                  peer->addresses.empty() ? "" : peer->addresses[0].addr.to_string(),
                                                  req.count});
  auto step = std::make_shared<std::function<void()>>();
  *step = [this, r, loop, step]() {
    if (r->closed()) return;
    ++loop->sent;
    child_call(
        ipc::Role::kNetproc,
        [id = loop->id](std::uint32_t rid) {
          return ipc::AnyMessage(ipc::OperatorPing{rid, id});
        },
        [this, r, loop, step](const std::optional<std::string>& body) {
          json j = parse_or_null(body);
          if (!j.is_object()) {
            r->send({{"ok", false}, {"error", "netproc is not running"}});
            return r->finish();
          }
          j["ok"] = true;
          j["peer"] = loop->name;
          j["address"] = loop->address;
          if (auto dr = j.find("derp_region"); dr != j.end() && dr->is_number_integer()) {
            j["derp_region"] = region_code(netmap_.netmap().derp_map, dr->get<std::int64_t>());
          }
          r->send(j);
          const bool direct = string_equals(j, "via", "direct");
          const bool more =
              loop->count == 0 ? (!direct && loop->sent < 10) : loop->sent < loop->count;
          if (!more) return r->finish();
          auto t = std::make_shared<boost::asio::steady_timer>(io_, std::chrono::milliseconds(200));
          t->async_wait([t, step](boost::system::error_code ec) {
            if (!ec) (*step)();
          });
        });
  };
  (*step)();
}

void Daemon::admin_endpoints(const AdminRequest& req, std::shared_ptr<AdminResponder> r) {
  r->send(endpoints_reply(endpoints_));
  if (req.watch) {
    endpoint_watchers_.push_back(r);
  } else {
    r->finish();
  }
}

void Daemon::on_endpoints_update(std::vector<IpPort> endpoints) {
  if (endpoints_pending_) endpoints_coalesced_.inc();
  endpoints_pending_ = std::move(endpoints);
  if (endpoints_timer_armed_) return;
  auto flush = [this] {
    endpoints_timer_armed_ = false;
    if (!endpoints_pending_) return;
    auto next = std::move(*endpoints_pending_);
    endpoints_pending_.reset();
    endpoints_published_ = std::chrono::steady_clock::now();
    if (next == endpoints_) return;  // netproc re-announces unchanged sets
    endpoints_ = std::move(next);
    publish_endpoints();
    forward_endpoints_to_control();
  };
  const auto due = endpoints_published_ + std::chrono::seconds(1);
  if (std::chrono::steady_clock::now() >= due) return flush();
  endpoints_timer_armed_ = true;
  endpoints_timer_.expires_at(due);
  endpoints_timer_.async_wait([flush](boost::system::error_code ec) {
    if (!ec) flush();
  });
}

void Daemon::publish_endpoints() {
  const json reply = endpoints_reply(endpoints_);
  spdlog::info("endpoints: {}", reply["endpoints"].dump());
  std::vector<std::shared_ptr<AdminResponder>> alive;
  for (auto& r : endpoint_watchers_) {
    if (!r->closed()) {
      r->send(reply);
      alive.push_back(r);
    }
  }
  endpoint_watchers_ = std::move(alive);
  write_endpoints_file();
}

void Daemon::write_endpoints_file() {
  if (!config_.endpoints_file) return;
  // Exactly the line `tailwarden endpoints --json` prints.
  std::string content = endpoints_reply(endpoints_).dump() + "\n";
  if (content == endpoints_file_content_) return;
  endpoints_file_content_ = content;
  // The rewrite (write, fsync, rename) runs on its own thread: a slow disk never
  // stalls the event loop. One thread: rewrites land in order.
  boost::asio::post(file_pool_,
                    [this, path = config_.endpoints_file->path, content = std::move(content)] {
                      auto st = replace_file_atomically(path, content, 0644);
                      if (st) return;
                      boost::asio::post(io_, [this, error = st.error(), content] {
                        endpoints_file_failures_.inc();
                        spdlog::error("endpoints file: {}", error);
                        if (endpoints_file_content_ == content)
                          endpoints_file_content_.reset();  // the next change retries
                      });
                    });
}

}  // namespace tw::broker
