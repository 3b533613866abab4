// Test tool: makes a live, sandboxed netproc call sendto() on its own underlay
// socket to a destination of our choosing, by ptrace syscall injection, and prints
// what the kernel answered. It plays a compromised netproc whose code calls sendto
// with any address (seccomp cannot see the address): whatever stops the datagram
// must be below the process, in the kernel.
//
//   egress_inject PID PORT IP:DSTPORT[,pktinfo=IFINDEX/SRCIP]...
//   (x86-64; run in the broker's namespace)
//
// With ",pktinfo=IFINDEX/SRCIP" the injected call is sendmsg() carrying an IP_PKTINFO
// control message that names the outgoing interface and the source address, as a
// compromised netproc would to push an approved destination and source out through
// another interface.
// PORT is the underlay port: the socket is found by its inode in /proc/net/udp and
// netproc's /proc/PID/fd. For each destination one line: "IP:PORT sent N" or
// "IP:PORT errno NAME". Exit status 0 when every injection ran (whatever the
// result), 1 on a tool failure.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
  const std::string why = std::generic_category().message(errno);
  (void)std::fprintf(stderr, "egress_inject: %s: %s\n", what.c_str(), why.c_str());
  std::_Exit(1);
}

// The inode of the UDP socket bound to `port` in this network namespace.
unsigned long udp_inode(unsigned port) {
  for (const char* table : {"/proc/net/udp", "/proc/net/udp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream ss(line);
      std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
      ss >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode;
      const auto colon = local.rfind(':');
      if (colon == std::string::npos) continue;
      if (std::stoul(local.substr(colon + 1), nullptr, 16) == port) return std::stoul(inode);
    }
  }
  return 0;
}

int fd_of_inode(pid_t pid, unsigned long inode) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  const std::string want = "socket:[" + std::to_string(inode) + "]";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) die("opendir " + dir);
  int found = -1;
  while (dirent* e = ::readdir(d)) {  // NOLINT(concurrency-mt-unsafe): one thread
    char target[128] = {};
    const std::string path = dir + "/" + e->d_name;
    const ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    if (n > 0 && want == target) found = std::atoi(e->d_name);
  }
  ::closedir(d);
  return found;
}

void poke(pid_t pid, std::uint64_t addr, const void* data, std::size_t len) {
  for (std::size_t off = 0; off < len; off += 8) {
    long word = 0;
    std::memcpy(&word, static_cast<const char*>(data) + off, std::min<std::size_t>(8, len - off));
    if (len - off < 8) {
      errno = 0;
      long old = ::ptrace(PTRACE_PEEKDATA, pid, addr + off, nullptr);
      if (errno != 0) die("peek");
      std::memcpy(reinterpret_cast<char*>(&old), &word, len - off);
      word = old;
    }
    if (::ptrace(PTRACE_POKEDATA, pid, addr + off, word) != 0) die("poke");
  }
}

void peek(pid_t pid, std::uint64_t addr, void* out, std::size_t len) {
  for (std::size_t off = 0; off < len; off += 8) {
    errno = 0;
    long word = ::ptrace(PTRACE_PEEKDATA, pid, addr + off, nullptr);
    if (errno != 0) die("peek");
    std::memcpy(static_cast<char*>(out) + off, &word, std::min<std::size_t>(8, len - off));
  }
}

void wait_stopped(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, __WALL) != pid) die("waitpid");
  if (!WIFSTOPPED(status)) {
    errno = 0;
    die("tracee did not stop");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    (void)std::fprintf(stderr, "usage: egress_inject PID PORT IP:PORT...\n");
    return 1;
  }
  const pid_t pid = static_cast<pid_t>(std::atoi(argv[1]));
  const unsigned port = static_cast<unsigned>(std::atoi(argv[2]));
  const unsigned long inode = udp_inode(port);
  if (inode == 0) {
    errno = 0;
    die("no UDP socket on port " + std::to_string(port));
  }
  const int fd = fd_of_inode(pid, inode);
  if (fd < 0) {
    errno = 0;
    die("netproc holds no fd for the underlay socket");
  }

  if (::ptrace(PTRACE_SEIZE, pid, nullptr, nullptr) != 0) die("PTRACE_SEIZE");
  // Stop it where it sits; an event loop waits in a syscall almost all the time, and
  // the two bytes before its rip are then a `syscall` instruction we can reuse.
  user_regs_struct saved{};
  for (int attempt = 0;; ++attempt) {
    if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) die("PTRACE_INTERRUPT");
    wait_stopped(pid);
    if (::ptrace(PTRACE_GETREGS, pid, nullptr, &saved) != 0) die("GETREGS");
    errno = 0;
    const long insn = ::ptrace(PTRACE_PEEKTEXT, pid, saved.rip - 2, nullptr);
    if (errno == 0 && (insn & 0xffff) == 0x050f) break;
    if (attempt > 50) {
      errno = 0;
      die("netproc never stopped in a syscall");
    }
    if (::ptrace(PTRACE_CONT, pid, nullptr, nullptr) != 0) die("PTRACE_CONT");
    ::usleep(10000);
  }

  // Scratch space well below the red zone; its old bytes are put back afterwards.
  const std::uint64_t scratch = (saved.rsp - 2048) & ~std::uint64_t{15};
  // Layout: sockaddr at 0, payload at 32, iovec at 64, msghdr at 80, cmsg at 144.
  char backup[192];
  peek(pid, scratch, backup, sizeof backup);
  const char payload[] = "tw-egress-probe";

  int rc = 0;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto comma = arg.find(',');
    const std::string dst = arg.substr(0, comma);
    const auto colon = dst.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(std::atoi(dst.c_str() + colon + 1)));
    if (colon == std::string::npos ||
        ::inet_pton(AF_INET, dst.substr(0, colon).c_str(), &sa.sin_addr) != 1) {
      (void)std::fprintf(stderr, "egress_inject: bad destination %s\n", arg.c_str());
      rc = 1;
      continue;
    }
    // ",pktinfo=IFINDEX/SRCIP": the interface and source of an IP_PKTINFO cmsg.
    bool pktinfo = false;
    in_pktinfo pi{};
    if (comma != std::string::npos) {
      const std::string opt = arg.substr(comma + 1);
      const auto slash = opt.find('/');
      if (opt.rfind("pktinfo=", 0) != 0 || slash == std::string::npos ||
          ::inet_pton(AF_INET, opt.substr(slash + 1).c_str(), &pi.ipi_spec_dst) != 1) {
        (void)std::fprintf(stderr, "egress_inject: bad option in %s\n", arg.c_str());
        rc = 1;
        continue;
      }
      pi.ipi_ifindex = std::atoi(opt.c_str() + 8);
      pktinfo = true;
    }
    poke(pid, scratch, &sa, sizeof sa);
    poke(pid, scratch + 32, payload, sizeof payload - 1);
    user_regs_struct r = saved;
    r.rip = saved.rip - 2;
    r.orig_rax = static_cast<unsigned long long>(-1);  // no syscall restart on resume
    r.rdi = static_cast<unsigned long long>(fd);
    if (pktinfo) {
      // The pointers below are addresses in the traced process (its scratch page),
      // written there with poke(): integer to pointer is the point here.
      // NOLINTBEGIN(performance-no-int-to-ptr)
      const iovec iov{reinterpret_cast<void*>(scratch + 32), sizeof payload - 1};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(in_pktinfo))] = {};
      msghdr mh{};
      mh.msg_name = reinterpret_cast<void*>(scratch);
      mh.msg_namelen = sizeof sa;
      mh.msg_iov = reinterpret_cast<iovec*>(scratch + 64);
      mh.msg_iovlen = 1;
      mh.msg_control = reinterpret_cast<void*>(scratch + 144);
      // NOLINTEND(performance-no-int-to-ptr)
      mh.msg_controllen = sizeof control;
      cmsghdr* c = reinterpret_cast<cmsghdr*>(control);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
      static_assert(sizeof(msghdr) <= 64 && sizeof control <= 48);
      poke(pid, scratch + 64, &iov, sizeof iov);
      poke(pid, scratch + 80, &mh, sizeof mh);
      poke(pid, scratch + 144, control, sizeof control);
      r.rax = SYS_sendmsg;
      r.rsi = scratch + 80;
      r.rdx = 0;
    } else {
      r.rax = SYS_sendto;
      r.rsi = scratch + 32;
      r.rdx = sizeof payload - 1;
      r.r10 = 0;
      r.r8 = scratch;
      r.r9 = sizeof sa;
    }
    if (::ptrace(PTRACE_SETREGS, pid, nullptr, &r) != 0) die("SETREGS");
    if (::ptrace(PTRACE_SINGLESTEP, pid, nullptr, nullptr) != 0) die("SINGLESTEP");
    wait_stopped(pid);
    user_regs_struct after{};
    if (::ptrace(PTRACE_GETREGS, pid, nullptr, &after) != 0) die("GETREGS");
    const long result = static_cast<long>(after.rax);
    if (result >= 0) {
      std::printf("%s sent %ld\n", arg.c_str(), result);
    } else {
      std::printf("%s errno %s\n", arg.c_str(), strerrorname_np(static_cast<int>(-result)));
    }
    (void)std::fflush(stdout);
  }
  poke(pid, scratch, backup, sizeof backup);
  if (::ptrace(PTRACE_SETREGS, pid, nullptr, &saved) != 0) die("SETREGS restore");
  if (::ptrace(PTRACE_DETACH, pid, nullptr, nullptr) != 0) die("DETACH");
  return rc;
}
