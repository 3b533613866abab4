// What a sandboxed child must still be able to do: each test forks, loads the real
// filter and does the work its process does, exiting 0 only if every step worked.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>
#include <sodium.h>

// After <netinet/in.h>: the kernel header defers to glibc only in this order.
#include <linux/netfilter_ipv4.h>  // SO_ORIGINAL_DST

#include "tests/unit/policy/sandbox_child.h"

namespace tw::policy {
namespace {

using testing::enter_sandbox;
using testing::require;

// `...` is a braced block; the lambda around it is parenthesised so its commas pass.
#define EXPECT_WORKS_IN_SANDBOX(role, ...) \
  EXPECT_EXIT((testing::run_sandboxed(role, [&] __VA_ARGS__)), ::testing::ExitedWithCode(0), "")

class AllowedInBoth : public ::testing::TestWithParam<ProcessRole> {};

TEST_P(AllowedInBoth, EventfdDoorbellRingsAndIsRead) {
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  EXPECT_WORKS_IN_SANDBOX(GetParam(), {
    std::uint64_t one = 1;
    require(::write(efd, &one, sizeof one) == sizeof one, "eventfd write");
    std::uint64_t got = 0;
    require(::read(efd, &got, sizeof got) == sizeof got && got == 1, "eventfd read");
  });
  ::close(efd);
}

// A control channel made before the sandbox carries a descriptor (SCM_RIGHTS), as
// the broker hands over a DERP connection or a fresh ring.
TEST_P(AllowedInBoth, ControlChannelReceivesADescriptor) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  int passed = ::eventfd(7, EFD_CLOEXEC);
  ASSERT_GE(passed, 0);
  EXPECT_WORKS_IN_SANDBOX(GetParam(), {
    char tag = 'R';
    iovec iov{&tag, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &passed, sizeof(int));
    require(::sendmsg(sv[0], &msg, 0) == 1, "sendmsg with SCM_RIGHTS");

    char got_tag = 0;
    iovec riov{&got_tag, 1};
    alignas(cmsghdr) char rcontrol[CMSG_SPACE(sizeof(int))] = {};
    msghdr rmsg{};
    rmsg.msg_iov = &riov;
    rmsg.msg_iovlen = 1;
    rmsg.msg_control = rcontrol;
    rmsg.msg_controllen = sizeof rcontrol;
    require(::recvmsg(sv[1], &rmsg, MSG_CMSG_CLOEXEC) == 1 && got_tag == 'R', "recvmsg");
    cmsghdr* rc = CMSG_FIRSTHDR(&rmsg);
    require(rc != nullptr && rc->cmsg_type == SCM_RIGHTS, "an fd arrived");
    int fd = -1;
    std::memcpy(&fd, CMSG_DATA(rc), sizeof(int));
    int type = 0;
    socklen_t len = sizeof type;
    require(::getsockopt(sv[1], SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET,
            "getsockopt(SO_TYPE) validates a socket");
    struct stat st {};
    require(::fstat(fd, &st) == 0, "fstat of the received fd");
    std::uint64_t v = 0;
    require(::read(fd, &v, sizeof v) == sizeof v && v == 7, "read the received eventfd");
    require(::close(fd) == 0, "close");
  });
  ::close(passed);
  ::close(sv[0]);
  ::close(sv[1]);
}

// The rings: a memfd from the broker, mapped shared, never executable.
TEST_P(AllowedInBoth, RingMemoryMapsWithoutExecute) {
  int mfd = ::memfd_create("tw-policy-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(mfd, 0);
  ASSERT_EQ(::ftruncate(mfd, 65536), 0);
  ASSERT_EQ(::fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
  EXPECT_WORKS_IN_SANDBOX(GetParam(), {
    require(::fcntl(mfd, F_GET_SEALS) & F_SEAL_SHRINK, "F_GET_SEALS");
    void* ring = ::mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    require(ring != MAP_FAILED, "mmap ring");
    static_cast<volatile char*>(ring)[100] = 1;
    require(::mprotect(ring, 4096, PROT_READ) == 0, "mprotect read-only");
    require(::munmap(ring, 65536) == 0, "munmap");
    void* anon = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    require(anon != MAP_FAILED, "anonymous mmap");
    require(::madvise(anon, 1 << 20, MADV_DONTNEED) == 0, "madvise");
  });
  ::close(mfd);
}

TEST_P(AllowedInBoth, ThreadsStartAndJoin) {
  EXPECT_WORKS_IN_SANDBOX(GetParam(), {
    std::atomic<int> ran{0};
    std::thread t([&] { ran = 1; });
    t.join();
    require(ran == 1, "thread ran");
    // clone3 answers ENOSYS so glibc keeps using clone, whose flags the filter checks.
    errno = 0;
    require(::syscall(SYS_clone3, nullptr, 0) == -1 && errno == ENOSYS, "clone3 is ENOSYS");
  });
}

TEST_P(AllowedInBoth, RandomnessComesFromGetrandom) {
  EXPECT_WORKS_IN_SANDBOX(GetParam(), {
    unsigned char buf[32] = {};
    require(::getrandom(buf, sizeof buf, 0) == sizeof buf, "getrandom");
  });
}

// Key handling as both children do it: sodium_init() before the sandbox, then
// guarded, locked key memory and fresh key pairs inside it.
TEST_P(AllowedInBoth, SodiumKeyMemoryAndKeyGenerationWork) {
  ASSERT_GE(sodium_init(), 0);
  EXPECT_WORKS_IN_SANDBOX(GetParam(), {
    auto* secret = static_cast<unsigned char*>(sodium_malloc(crypto_box_SECRETKEYBYTES));
    require(secret != nullptr, "sodium_malloc (guard pages, mlock)");
    unsigned char pub[crypto_box_PUBLICKEYBYTES];
    require(crypto_box_keypair(pub, secret) == 0, "crypto_box_keypair");
    require(sodium_mprotect_readonly(secret) == 0, "sodium_mprotect_readonly");
    sodium_free(secret);
  });
}

// An Asio loop built before the sandbox (as a child's main does) runs timers, posts
// from another thread and reads a doorbell after it.
TEST_P(AllowedInBoth, AsioLoopRunsTimersAndDoorbells) {
  EXPECT_EXIT(
      {
        boost::asio::io_context io;
        int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        boost::asio::posix::stream_descriptor doorbell(io, efd);
        boost::asio::steady_timer timer(io);
        enter_sandbox(GetParam());
        bool timer_fired = false;
        bool rang = false;
        std::uint64_t value = 0;
        timer.expires_after(std::chrono::milliseconds(5));
        timer.async_wait([&](const boost::system::error_code& ec) { timer_fired = !ec; });
        doorbell.async_read_some(boost::asio::buffer(&value, sizeof value),
                                 [&](const boost::system::error_code& ec, std::size_t n) {
                                   rang = !ec && n == sizeof value && value == 1;
                                 });
        std::thread producer([&] {
          std::uint64_t one = 1;
          require(::write(efd, &one, sizeof one) == sizeof one, "ring the doorbell");
        });
        io.run_for(std::chrono::seconds(5));
        producer.join();
        require(timer_fired, "timer fired");
        require(rang, "doorbell read through Asio");
        ::_exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// stdio probes isatty() with TCGETS; that answers ENOTTY instead of killing.
TEST_P(AllowedInBoth, LoggingToStderrWorks) {
  EXPECT_WORKS_IN_SANDBOX(GetParam(), {
    require(::isatty(STDERR_FILENO) == 0, "isatty answers no");
    std::fprintf(stderr, "sandboxed child logs\n");
    std::fflush(stderr);
  });
}

// A failed assertion in a child dies of SIGABRT, not of a sandbox violation, so its
// cause is not misreported.
TEST_P(AllowedInBoth, AbortStillRaisesSigabrt) {
  EXPECT_EXIT(
      (testing::run_sandboxed(GetParam(), [] { std::abort(); })),
      ::testing::KilledBySignal(SIGABRT), "");
}

INSTANTIATE_TEST_SUITE_P(Roles, AllowedInBoth,
                         ::testing::Values(ProcessRole::kNetproc, ProcessRole::kDataproc,
                                           ProcessRole::kCtlproc, ProcessRole::kExitproc),
                         testing::role_param_name);

// netproc's underlay I/O: batched datagrams on a UDP socket bound before the sandbox.
TEST(NetprocSandbox, UnderlaySocketSendsAndReceivesBatches) {
  int a = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int b = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(b, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::getsockname(b, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  EXPECT_WORKS_IN_SANDBOX(ProcessRole::kNetproc, {
    char payload[2][4] = {{'w', 'g', '0', '1'}, {'w', 'g', '0', '2'}};
    iovec iov[2] = {{payload[0], 4}, {payload[1], 4}};
    mmsghdr out[2] = {};
    for (int i = 0; i < 2; ++i) {
      out[i].msg_hdr.msg_name = &sa;
      out[i].msg_hdr.msg_namelen = sizeof sa;
      out[i].msg_hdr.msg_iov = &iov[i];
      out[i].msg_hdr.msg_iovlen = 1;
    }
    require(::sendmmsg(a, out, 2, 0) == 2, "sendmmsg");
    char in_buf[2][16];
    iovec in_iov[2] = {{in_buf[0], 16}, {in_buf[1], 16}};
    mmsghdr in[2] = {};
    for (int i = 0; i < 2; ++i) {
      in[i].msg_hdr.msg_iov = &in_iov[i];
      in[i].msg_hdr.msg_iovlen = 1;
    }
    timespec wait{2, 0};
    require(::recvmmsg(b, in, 2, MSG_WAITFORONE, &wait) >= 1, "recvmmsg");
    require(::sendto(a, "x", 1, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 1, "sendto");
    sockaddr_in local{};
    socklen_t local_len = sizeof local;
    require(::getsockname(b, reinterpret_cast<sockaddr*>(&local), &local_len) == 0, "getsockname");
  });
  ::close(a);
  ::close(b);
}

// exitproc's flow work on sockets made before the sandbox (as the broker makes them):
// accept4 on the listener, SO_ORIGINAL_DST (no redirect here: ENOENT, not a kill),
// SO_LINGER 0 for a reset, recvfrom/sendto on a UDP socket, half-close.
TEST(ExitprocSandbox, AcceptOriginalDstLingerAndUdpWork) {
  int lst = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lst, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lst, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(lst, 4), 0);
  socklen_t sl = sizeof sa;
  ASSERT_EQ(::getsockname(lst, reinterpret_cast<sockaddr*>(&sa), &sl), 0);
  int cli = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(cli, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  int u1 = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int u2 = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in ua{};
  ua.sin_family = AF_INET;
  ua.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(u1, reinterpret_cast<sockaddr*>(&ua), sizeof ua), 0);
  socklen_t ul = sizeof ua;
  ASSERT_EQ(::getsockname(u1, reinterpret_cast<sockaddr*>(&ua), &ul), 0);
  ASSERT_EQ(::sendto(u2, "q", 1, 0, reinterpret_cast<sockaddr*>(&ua), sizeof ua), 1);
  EXPECT_WORKS_IN_SANDBOX(ProcessRole::kExitproc, {
    const int fd = ::accept4(lst, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    require(fd >= 0, "accept4");
    sockaddr_in dst{};
    socklen_t dl = sizeof dst;
    require(::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dl) == -1 && errno == ENOENT,
            "SO_ORIGINAL_DST answers ENOENT without a redirect");
    require(::shutdown(fd, SHUT_WR) == 0, "half-close");
    linger lg{1, 0};
    require(::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0, "SO_LINGER");
    require(::close(fd) == 0, "close");
    char b = 0;
    sockaddr_in from{};
    socklen_t fl = sizeof from;
    require(::recvfrom(u1, &b, 1, 0, reinterpret_cast<sockaddr*>(&from), &fl) == 1 && b == 'q',
            "recvfrom");
    require(::sendto(u1, "a", 1, 0, reinterpret_cast<sockaddr*>(&from), fl) == 1, "sendto");
  });
  for (int fd : {lst, cli, u1, u2}) ::close(fd);
}

}  // namespace
}  // namespace tw::policy
