// The control-message catalogue: every message type the three processes exchange,
// in one table. For each type it says which process may send it to which, how many
// file descriptors ride along, and in which phase of the link it is allowed, so
// that every receiver can refuse what it should never see.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tw::ipc {

enum class Role : std::uint8_t { kBroker, kNetproc, kDataproc };

// A control link joins two roles; its phase starts at Setup (or Running for
// netproc<->dataproc, which has no handshake of its own).
enum class LinkKind : std::uint8_t { kBrokerNetproc, kBrokerDataproc, kNetprocDataproc };

enum class Phase : std::uint8_t { kSetup = 1, kRunning = 2 };

enum class MessageType : std::uint16_t {
  kNetprocSetup = 1,            // broker -> netproc, Setup
  kNetprocNetmap = 2,           // broker -> netproc
  kUdpSocket = 3,               // broker -> netproc, 1 fd
  kDerpConn = 4,                // broker -> netproc, 1 fd
  kDerpDialFailed = 5,          // broker -> netproc
  kShutdown = 6,                // broker -> child
  kRingReset = 7,               // broker -> child
  kStatusRequest = 8,           // broker -> child
  kStatusReply = 9,             // child -> broker
  kReady = 10,                  // child -> broker, Setup
  kDerpDialRequest = 11,        // netproc -> broker
  kEndpointsUpdate = 12,        // netproc -> broker
  kDataprocSetup = 13,          // broker -> dataproc, Setup
  kDataprocNetmap = 14,         // broker -> dataproc
  kTunFd = 15,                  // broker -> dataproc, 1 fd
  kSealClientInfoRequest = 16,  // netproc -> dataproc
  kSealClientInfoReply = 17,    // dataproc -> netproc
  kRegisterCandidates = 18,     // netproc -> broker
  kCandidatesVerdict = 19,      // broker -> netproc
  kOperatorPing = 20,           // broker -> netproc (answered with a StatusReply)
  kReleaseUdp = 21,             // broker -> netproc (answered with a StatusReply)
  kSelfAddresses = 22,          // broker -> dataproc: our own tailnet addresses
  kExitTunFd = 23,              // broker -> dataproc, 1 fd: the exit namespace's TUN
  kDataprocFilter = 24,         // broker -> dataproc
};

// Bit set of (sender, receiver) pairs.
enum Route : std::uint8_t {
  kBrokerToNetproc = 1 << 0,
  kNetprocToBroker = 1 << 1,
  kBrokerToDataproc = 1 << 2,
  kDataprocToBroker = 1 << 3,
  kNetprocToDataproc = 1 << 4,
  kDataprocToNetproc = 1 << 5,
};

enum PhaseMask : std::uint8_t {
  kInSetup = 1 << 0,
  kInRunning = 1 << 1,
  kInAnyPhase = kInSetup | kInRunning,
};

struct CatalogueEntry {
  MessageType type;
  std::string_view name;
  std::uint8_t routes;  // Route bits
  std::uint8_t fds;     // exact number of SCM_RIGHTS fds
  std::uint8_t phases;  // PhaseMask bits, as seen by the receiver
  bool ends_setup;      // receiving it moves the receiver's link to Running
};

// Most fds any message carries; a receiver makes room for a few more so that it
// can see (and close) surplus ones.
constexpr std::size_t kMaxFdsPerMessage = 1;

const CatalogueEntry* find_entry(std::uint16_t type);
std::string_view message_name(MessageType type);
std::uint8_t route_bit(Role from, Role to);
LinkKind link_between(Role a, Role b);
Role peer_role(LinkKind link, Role self);
Phase initial_phase(LinkKind link);
std::string_view role_name(Role r);

// Why a received message must be refused, or nullopt if it is admissible for a
// receiver playing `self` on `link` in `phase` that got `fd_count` fds with it.
std::optional<std::string> check_admissible(LinkKind link, Role self, Phase phase,
                                            std::uint16_t type, std::size_t fd_count);

// Whether `self` may send this type on `link` at all (a sender-side bug check).
bool may_send(LinkKind link, Role self, MessageType type);

}  // namespace tw::ipc
