// One filled-in example of every control message, for codec tests and fuzz seeds.
#pragma once

#include <vector>

#include "ipc/messages.h"

namespace tw::ipc::testing {

inline KeyBytes key_of(std::uint8_t seed) {
  KeyBytes k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + i);
  return k;
}

inline NetprocPeer sample_netproc_peer(std::uint32_t id) {
  NetprocPeer p;
  p.peer_id = id;
  p.node_key = NodePublic(key_of(static_cast<std::uint8_t>(id)));
  p.disco_key = DiscoPublic(key_of(static_cast<std::uint8_t>(id + 100)));
  p.endpoints = {*IpPort::parse("198.18.0.7:41641"), *IpPort::parse("[2001:db8::7]:41641")};
  p.home_derp = 9;
  p.name = "peer-" + std::to_string(id) + ".tailnet.example";
  return p;
}

inline DataprocPeer sample_dataproc_peer(std::uint32_t id) {
  DataprocPeer p;
  p.peer_id = id;
  p.node_key = NodePublic(key_of(static_cast<std::uint8_t>(id)));
  p.allowed_ips = {IpPrefix{*IpAddr::parse("100.64.0.7"), 32},
                   IpPrefix{*IpAddr::parse("fd7a:115c:a1e0::"), 48},
                   IpPrefix{*IpAddr::parse("0.0.0.0"), 0}};
  return p;
}

inline std::vector<AnyMessage> sample_messages() {
  NetprocSetup setup;
  setup.generation = 7;
  setup.disco_private = DiscoPrivate(key_of(1));
  setup.node_public = NodePublic(key_of(2));
  setup.listen_port = 41641;
  setup.flags = NetprocSetup::kFlagIpv6;
  setup.home_derp = 900;

  NetprocNetmap nm;
  nm.generation = 3;
  nm.peers = {sample_netproc_peer(1), sample_netproc_peer(2)};
  nm.derp_map_json = R"({"Regions":{"9":{"RegionID":9}}})";
  nm.home_derp = 9;

  DataprocFilter filter;
  filter.generation = 3;
  filter.enabled = true;
  filter.filter.rules.push_back(
      FilterRule{{6, 17},
                 {*IpPrefix::parse("100.64.0.0/10"), *IpPrefix::parse("fd7a:115c:a1e0::/48")},
                 {FilterDst{*IpPrefix::parse("100.64.0.1/32"), 22, 22},
                  FilterDst{*IpPrefix::parse("::/0"), 0, 65535}}});

  DataprocNetmap dm;
  dm.generation = 3;
  dm.peers = {sample_dataproc_peer(1), sample_dataproc_peer(2)};

  DataprocSetup dsetup;
  dsetup.node_private = NodePrivate(key_of(3));

  return {
      setup,
      nm,
      UdpSocket{2},
      DerpConn{9, "derp9a"},
      DerpDialFailed{9, "derp9a", "egress policy refused"},
      Shutdown{"operator asked"},
      RingReset{4},
      StatusRequest{11, "metrics"},
      StatusReply{11, "# TYPE x counter\nx 1\n"},
      Ready{},
      DerpDialRequest{9, "derp9a"},
      EndpointsUpdate{{*IpPort::parse("198.18.0.1:41641")}},
      dsetup,
      dm,
      TunFd{1280},
      SealClientInfoRequest{5, NodePublic(key_of(4)), Bytes{'{', '}'}},
      SealClientInfoReply{5, Bytes(24 + 16 + 2, 0xab)},
      RegisterCandidates{
          6, 2, {*IpPort::parse("198.18.5.5:41641"), *IpPort::parse("198.18.5.6:1")}},
      CandidatesVerdict{
          6, 2, 45, {*IpPort::parse("198.18.5.5:41641")}, {*IpPort::parse("10.0.0.1:1")}},
      OperatorPing{7, 2},
      ReleaseUdp{8},
      SelfAddresses{{*IpPrefix::parse("100.64.0.1/32"), *IpPrefix::parse("fd7a:115c:a1e0::1/128")}},
      ExitTunFd{1280},
      filter,
  };
}

}  // namespace tw::ipc::testing
