// The node's key file: TOML with the node and disco private keys in their text forms.
//
//   # tailwarden key file: keep it secret (mode 0600)
//   node_private  = "privkey:<64 hex>"
//   disco_private = "discoprivkey:<64 hex>"
//   machine_private = "privkey:<64 hex>"   # control-plane machine key (optional;
//                                          # needed with control_url)
//
// Loading refuses a file readable or writable by group or others, and unknown keys.
#pragma once

#include <optional>
#include <string>

#include "common/keys.h"
#include "common/machine_key.h"
#include "common/result.h"

namespace tw {

struct NodeKeys {
  NodePrivate node;
  DiscoPrivate disco;
  std::optional<MachinePrivate> machine;  // only the control client (ctlproc) gets it
};

NodeKeys generate_node_keys();
// Parses key-file text; `origin` names the file in errors.
Result<NodeKeys> parse_key_file_text(const std::string& text, const std::string& origin);
// Checks the file: regular, not a symlink, mode 0600 or stricter, owned by the
// effective uid loading it; then parses.
Result<NodeKeys> load_key_file(const std::string& path);
// Writes atomically (temp file + rename) with mode 0600; refuses to overwrite unless
// `overwrite`.
Status write_key_file(const std::string& path, const NodeKeys& keys, bool overwrite);
std::string key_file_text(const NodeKeys& keys);

}  // namespace tw
