#include "common/keyfile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/secret_file.h"

namespace tw {
namespace {

std::string where(const std::string& origin, const toml::source_region& src) {
  return origin + ":" + std::to_string(src.begin.line);
}

}  // namespace

NodeKeys generate_node_keys() {
  return NodeKeys{NodePrivate::generate(), DiscoPrivate::generate(), MachinePrivate::generate()};
}

std::string key_file_text(const NodeKeys& keys) {
  return "# tailwarden key file: keep it secret (mode 0600)\n"
         "node_private = \"" + keys.node.to_string() + "\"\n"
         "disco_private = \"" + keys.disco.to_string() + "\"\n" +
         (keys.machine ? "machine_private = \"" + keys.machine->to_string() + "\"\n" : std::string());
}

Result<NodeKeys> parse_key_file_text(const std::string& text, const std::string& origin) {
  toml::table tbl;
  try {
    tbl = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return make_error(origin + ":" + std::to_string(e.source().begin.line) + ": " +
                      std::string(e.description()));
  }
  NodeKeys keys;
  bool have_node = false;
  bool have_disco = false;
  for (const auto& [k, node] : tbl) {
    const std::string key(k.str());
    const auto* s = node.as_string();
    if (key != "node_private" && key != "disco_private" && key != "machine_private") {
      return make_error(where(origin, node.source()) + ": unknown key \"" + key + "\"");
    }
    if (s == nullptr) {
      return make_error(where(origin, node.source()) + ": " + key + ": expected a string");
    }
    if (key == "node_private") {
      auto r = NodePrivate::parse(s->get());
      if (!r) return make_error(where(origin, node.source()) + ": node_private: " + r.error());
      keys.node = *r;
      have_node = true;
    } else if (key == "machine_private") {
      auto r = MachinePrivate::parse(s->get());
      if (!r) return make_error(where(origin, node.source()) + ": machine_private: " + r.error());
      keys.machine = *r;
    } else {
      auto r = DiscoPrivate::parse(s->get());
      if (!r) return make_error(where(origin, node.source()) + ": disco_private: " + r.error());
      keys.disco = *r;
      have_disco = true;
    }
  }
  if (!have_node) return make_error(origin + ": missing node_private");
  if (!have_disco) return make_error(origin + ": missing disco_private");
  return keys;
}

Result<NodeKeys> load_key_file(const std::string& path) {
  auto text = read_owner_only_file(path, std::size_t{64} * 1024, "access private keys",
                                   "too large for a key file");
  if (!text) return make_error(text.error());
  auto r = parse_key_file_text(*text, path);
  secure_wipe(text->data(), text->size());
  return r;
}

Status write_key_file(const std::string& path, const NodeKeys& keys, bool overwrite) {
  if (!overwrite && ::access(path.c_str(), F_OK) == 0) {
    return make_error(path + ": exists; refusing to overwrite");
  }
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(tmp + ": cannot create: " + std::strerror(errno));
  std::string text = key_file_text(keys);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  secure_wipe(text.data(), text.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return make_error(path + ": cannot write: " + std::strerror(errno));
  }
  return ok_status();
}

}  // namespace tw
