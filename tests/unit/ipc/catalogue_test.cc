#include "ipc/catalogue.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace tw::ipc {
namespace {

constexpr auto kNetSide = LinkKind::kBrokerNetproc;
constexpr auto kDataSide = LinkKind::kBrokerDataproc;

std::uint16_t t(MessageType m) { return static_cast<std::uint16_t>(m); }

TEST(Catalogue, EveryTypeHasOneRowWithAUniqueName) {
  std::set<std::string_view> names;
  for (std::uint16_t i = 1; find_entry(i) != nullptr; ++i) {
    EXPECT_EQ(t(find_entry(i)->type), i);
    EXPECT_TRUE(names.insert(find_entry(i)->name).second) << find_entry(i)->name;
  }
  EXPECT_EQ(names.size(), 24u);
  EXPECT_EQ(find_entry(0), nullptr);
  EXPECT_EQ(find_entry(25), nullptr);
  // The exit TUN carries its fd; our own addresses do not.
  EXPECT_FALSE(
      check_admissible(kDataSide, Role::kDataproc, Phase::kRunning, t(MessageType::kExitTunFd), 1));
  EXPECT_TRUE(
      check_admissible(kDataSide, Role::kDataproc, Phase::kRunning, t(MessageType::kExitTunFd), 0));
  EXPECT_FALSE(check_admissible(kDataSide, Role::kDataproc, Phase::kRunning,
                                t(MessageType::kSelfAddresses), 0));
  EXPECT_TRUE(check_admissible(kNetSide, Role::kNetproc, Phase::kRunning,
                               t(MessageType::kSelfAddresses), 0));
}

TEST(Catalogue, ChildAcceptsItsSetupOnlyBeforeRunning) {
  EXPECT_FALSE(check_admissible(kNetSide, Role::kNetproc, Phase::kSetup, t(MessageType::kNetprocSetup), 0));
  EXPECT_TRUE(check_admissible(kNetSide, Role::kNetproc, Phase::kRunning, t(MessageType::kNetprocSetup), 0));
  EXPECT_TRUE(find_entry(t(MessageType::kNetprocSetup))->ends_setup);
}

TEST(Catalogue, NetmapBeforeSetupIsOutOfPhase) {
  auto why = check_admissible(kNetSide, Role::kNetproc, Phase::kSetup, t(MessageType::kNetprocNetmap), 0);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("phase"), std::string::npos);
}

TEST(Catalogue, NetprocNeverAcceptsTheNodePrivateKeyMessage) {
  for (Phase p : {Phase::kSetup, Phase::kRunning}) {
    EXPECT_TRUE(check_admissible(kNetSide, Role::kNetproc, p, t(MessageType::kDataprocSetup), 0));
    EXPECT_TRUE(check_admissible(LinkKind::kNetprocDataproc, Role::kNetproc, p,
                                 t(MessageType::kDataprocSetup), 0));
  }
}

TEST(Catalogue, DataprocNeverAcceptsUdpSocketsOrDerpConnections) {
  EXPECT_TRUE(check_admissible(kDataSide, Role::kDataproc, Phase::kRunning, t(MessageType::kUdpSocket), 1));
  EXPECT_TRUE(check_admissible(kDataSide, Role::kDataproc, Phase::kRunning, t(MessageType::kDerpConn), 1));
  EXPECT_FALSE(check_admissible(kDataSide, Role::kDataproc, Phase::kRunning, t(MessageType::kTunFd), 1));
}

TEST(Catalogue, FdCarryingMessageNeedsExactlyItsFds) {
  auto type = t(MessageType::kUdpSocket);
  EXPECT_FALSE(check_admissible(kNetSide, Role::kNetproc, Phase::kRunning, type, 1));
  EXPECT_TRUE(check_admissible(kNetSide, Role::kNetproc, Phase::kRunning, type, 0));
  EXPECT_TRUE(check_admissible(kNetSide, Role::kNetproc, Phase::kRunning, type, 2));
}

TEST(Catalogue, FdOnAMessageWithoutFdsIsRefused) {
  auto why = check_admissible(kNetSide, Role::kNetproc, Phase::kRunning, t(MessageType::kNetprocNetmap), 1);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("fds"), std::string::npos);
}

TEST(Catalogue, BrokerAcceptsReadyOnlyDuringSetupAndRequestsOnlyAfter) {
  EXPECT_FALSE(check_admissible(kNetSide, Role::kBroker, Phase::kSetup, t(MessageType::kReady), 0));
  EXPECT_TRUE(check_admissible(kNetSide, Role::kBroker, Phase::kRunning, t(MessageType::kReady), 0));
  EXPECT_TRUE(check_admissible(kNetSide, Role::kBroker, Phase::kSetup, t(MessageType::kDerpDialRequest), 0));
  EXPECT_FALSE(check_admissible(kNetSide, Role::kBroker, Phase::kRunning, t(MessageType::kDerpDialRequest), 0));
  // Only netproc asks for DERP connections.
  EXPECT_TRUE(check_admissible(kDataSide, Role::kBroker, Phase::kRunning, t(MessageType::kDerpDialRequest), 0));
}

TEST(Catalogue, SealingIsOnlyAskedByNetprocAndAnsweredByDataproc) {
  auto link = LinkKind::kNetprocDataproc;
  EXPECT_EQ(initial_phase(link), Phase::kRunning);
  EXPECT_FALSE(check_admissible(link, Role::kDataproc, Phase::kRunning, t(MessageType::kSealClientInfoRequest), 0));
  EXPECT_TRUE(check_admissible(link, Role::kNetproc, Phase::kRunning, t(MessageType::kSealClientInfoRequest), 0));
  EXPECT_FALSE(check_admissible(link, Role::kNetproc, Phase::kRunning, t(MessageType::kSealClientInfoReply), 0));
  EXPECT_TRUE(check_admissible(link, Role::kDataproc, Phase::kRunning, t(MessageType::kSealClientInfoReply), 0));
  EXPECT_TRUE(check_admissible(link, Role::kDataproc, Phase::kRunning, t(MessageType::kShutdown), 0));
}

TEST(Catalogue, UnknownTypeIsRefused) {
  EXPECT_TRUE(check_admissible(kNetSide, Role::kNetproc, Phase::kRunning, 0, 0));
  EXPECT_TRUE(check_admissible(kNetSide, Role::kNetproc, Phase::kRunning, 999, 0));
}

TEST(Catalogue, SendersAreCheckedToo) {
  EXPECT_TRUE(may_send(kNetSide, Role::kBroker, MessageType::kUdpSocket));
  EXPECT_FALSE(may_send(kNetSide, Role::kNetproc, MessageType::kUdpSocket));
  EXPECT_FALSE(may_send(kDataSide, Role::kBroker, MessageType::kUdpSocket));
  EXPECT_TRUE(may_send(LinkKind::kNetprocDataproc, Role::kNetproc, MessageType::kSealClientInfoRequest));
}

}  // namespace
}  // namespace tw::ipc
