#include "ipc/catalogue.h"

#include <array>

namespace tw::ipc {
namespace {

constexpr std::uint8_t kBrokerToChild = kBrokerToNetproc | kBrokerToDataproc;
constexpr std::uint8_t kChildToBroker = kNetprocToBroker | kDataprocToBroker;

using T = MessageType;
constexpr std::array<CatalogueEntry, 24> kCatalogue{{
    // type                     name                     routes              fds phases ends_setup
    {T::kNetprocSetup, "NetprocSetup", kBrokerToNetproc, 0, kInSetup, true},
    {T::kNetprocNetmap, "NetprocNetmap", kBrokerToNetproc, 0, kInRunning, false},
    {T::kUdpSocket, "UdpSocket", kBrokerToNetproc, 1, kInRunning, false},
    {T::kDerpConn, "DerpConn", kBrokerToNetproc, 1, kInRunning, false},
    {T::kDerpDialFailed, "DerpDialFailed", kBrokerToNetproc, 0, kInRunning, false},
    {T::kShutdown, "Shutdown", kBrokerToChild, 0, kInAnyPhase, false},
    {T::kRingReset, "RingReset", kBrokerToChild, 0, kInRunning, false},
    {T::kStatusRequest, "StatusRequest", kBrokerToChild, 0, kInRunning, false},
    {T::kStatusReply, "StatusReply", kChildToBroker, 0, kInRunning, false},
    {T::kReady, "Ready", kChildToBroker, 0, kInSetup, true},
    {T::kDerpDialRequest, "DerpDialRequest", kNetprocToBroker, 0, kInRunning, false},
    {T::kEndpointsUpdate, "EndpointsUpdate", kNetprocToBroker, 0, kInRunning, false},
    {T::kDataprocSetup, "DataprocSetup", kBrokerToDataproc, 0, kInSetup, true},
    {T::kDataprocNetmap, "DataprocNetmap", kBrokerToDataproc, 0, kInRunning, false},
    {T::kTunFd, "TunFd", kBrokerToDataproc, 1, kInRunning, false},
    {T::kSealClientInfoRequest, "SealClientInfoRequest", kNetprocToDataproc, 0, kInRunning, false},
    {T::kSealClientInfoReply, "SealClientInfoReply", kDataprocToNetproc, 0, kInRunning, false},
    {T::kRegisterCandidates, "RegisterCandidates", kNetprocToBroker, 0, kInRunning, false},
    {T::kCandidatesVerdict, "CandidatesVerdict", kBrokerToNetproc, 0, kInRunning, false},
    {T::kOperatorPing, "OperatorPing", kBrokerToNetproc, 0, kInRunning, false},
    {T::kReleaseUdp, "ReleaseUdp", kBrokerToNetproc, 0, kInRunning, false},
    {T::kSelfAddresses, "SelfAddresses", kBrokerToDataproc, 0, kInRunning, false},
    {T::kExitTunFd, "ExitTunFd", kBrokerToDataproc, 1, kInRunning, false},
    {T::kDataprocFilter, "DataprocFilter", kBrokerToDataproc, 0, kInRunning, false},
}};

constexpr bool catalogue_is_dense() {
  for (std::size_t i = 0; i < kCatalogue.size(); ++i) {
    if (static_cast<std::size_t>(kCatalogue[i].type) != i + 1) return false;
    if (kCatalogue[i].fds > kMaxFdsPerMessage) return false;
  }
  return true;
}
static_assert(catalogue_is_dense(), "catalogue rows must be in type order from 1");

}  // namespace

const CatalogueEntry* find_entry(std::uint16_t type) {
  if (type == 0 || type > kCatalogue.size()) return nullptr;
  return &kCatalogue[type - 1];
}

std::string_view message_name(MessageType type) {
  const auto* e = find_entry(static_cast<std::uint16_t>(type));
  return e ? e->name : "unknown";
}

std::uint8_t route_bit(Role from, Role to) {
  if (from == Role::kBroker && to == Role::kNetproc) return kBrokerToNetproc;
  if (from == Role::kNetproc && to == Role::kBroker) return kNetprocToBroker;
  if (from == Role::kBroker && to == Role::kDataproc) return kBrokerToDataproc;
  if (from == Role::kDataproc && to == Role::kBroker) return kDataprocToBroker;
  if (from == Role::kNetproc && to == Role::kDataproc) return kNetprocToDataproc;
  if (from == Role::kDataproc && to == Role::kNetproc) return kDataprocToNetproc;
  return 0;
}

LinkKind link_between(Role a, Role b) {
  if (a == Role::kBroker || b == Role::kBroker) {
    Role child = a == Role::kBroker ? b : a;
    return child == Role::kNetproc ? LinkKind::kBrokerNetproc : LinkKind::kBrokerDataproc;
  }
  return LinkKind::kNetprocDataproc;
}

Role peer_role(LinkKind link, Role self) {
  switch (link) {
    case LinkKind::kBrokerNetproc:
      return self == Role::kBroker ? Role::kNetproc : Role::kBroker;
    case LinkKind::kBrokerDataproc:
      return self == Role::kBroker ? Role::kDataproc : Role::kBroker;
    case LinkKind::kNetprocDataproc:
      break;
  }
  return self == Role::kNetproc ? Role::kDataproc : Role::kNetproc;
}

Phase initial_phase(LinkKind link) {
  return link == LinkKind::kNetprocDataproc ? Phase::kRunning : Phase::kSetup;
}

std::string_view role_name(Role r) {
  switch (r) {
    case Role::kBroker:
      return "broker";
    case Role::kNetproc:
      return "netproc";
    case Role::kDataproc:
      break;
  }
  return "dataproc";
}

std::optional<std::string> check_admissible(LinkKind link, Role self, Phase phase,
                                            std::uint16_t type, std::size_t fd_count) {
  const CatalogueEntry* e = find_entry(type);
  if (!e) return "unknown message type " + std::to_string(type);
  std::string name(e->name);
  if ((e->routes & route_bit(peer_role(link, self), self)) == 0) {
    return name + " is not sent from " + std::string(role_name(peer_role(link, self))) + " to " +
           std::string(role_name(self));
  }
  std::uint8_t phase_bit = phase == Phase::kSetup ? kInSetup : kInRunning;
  if ((e->phases & phase_bit) == 0) {
    return name + " not allowed in the " + (phase == Phase::kSetup ? "setup" : "running") +
           " phase";
  }
  if (fd_count != e->fds) {
    return name + " arrived with " + std::to_string(fd_count) + " fds, expected " +
           std::to_string(e->fds);
  }
  return std::nullopt;
}

bool may_send(LinkKind link, Role self, MessageType type) {
  const CatalogueEntry* e = find_entry(static_cast<std::uint16_t>(type));
  return e && (e->routes & route_bit(self, peer_role(link, self))) != 0;
}

}  // namespace tw::ipc
