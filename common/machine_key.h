// The machine key of the control protocol (ts2021): Tailscale's "mkey:" public form;
// its private form is "privkey:" as for a node key, kept in its own key-file field
// (machine_private) and handed only to ctlproc.
#pragma once

#include <string_view>

#include "common/keys.h"

namespace tw {

struct MachineKeyTag {
  static constexpr std::string_view kPublicPrefix = "mkey:";
  static constexpr std::string_view kPrivatePrefix = "privkey:";
  static constexpr std::string_view kName = "machine";
};
using MachinePublic = PublicKey<MachineKeyTag>;
using MachinePrivate = PrivateKey<MachineKeyTag>;

}  // namespace tw
