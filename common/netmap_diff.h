// Comparing two netmaps (the one in force and the next).
#pragma once

#include <vector>

#include "common/netmap.h"

namespace tw {

// Peers present in both netmaps (same node key) whose disco key changed: the peer
// restarted, so a WireGuard session with it is dead weight. Tailscale resets the
// session on such a change so the handshake starts over at once (measured in
// tests/interop, scenario 6); without that, traffic waits for the WireGuard
// keepalive and rekey timeouts (about 15 s).
std::vector<NodePublic> peers_with_new_disco_key(const Netmap& before, const Netmap& after);

}  // namespace tw
