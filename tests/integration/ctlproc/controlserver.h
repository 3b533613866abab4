// Test helpers shared by the ctlproc tests against Tailscale's testcontrol: the
// controlserver process (tests/interop/controlserver) with its line-based command
// channel, a loopback dial, and the one-time Go build of the server.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/bytes.h"

namespace tw::ctl::testing {

using Clock = std::chrono::steady_clock;

// One controlserver process with a line-based command channel.
class ControlServer {
 public:
  bool start(const std::vector<std::string>& args, std::string* why) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return false;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      std::vector<char*> argv;
      std::string bin = TW_CONTROLSERVER;
      argv.push_back(bin.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
    std::string line = read_line(20000);
    if (line.rfind("URL http://", 0) != 0) {
      *why = "controlserver did not print its URL: \"" + line + "\"";
      return false;
    }
    authority_ = line.substr(11);
    auto colon = authority_.rfind(':');
    port_ = static_cast<std::uint16_t>(std::stoi(authority_.substr(colon + 1)));
    return true;
  }
  ~ControlServer() {
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::string command(const std::string& cmd) {
    std::string line = cmd + "\n";
    if (write(to_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return "";
    return read_line(10000);
  }
  const std::string& authority() const { return authority_; }
  std::uint16_t port() const { return port_; }

 private:
  std::string read_line(int timeout_ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return "";
      pollfd p{from_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char tmp[65536];
      ssize_t n = read(from_, tmp, sizeof tmp);
      if (n <= 0) return "";
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  std::string buf_;
  std::string authority_;
  std::uint16_t port_ = 0;
};

inline int dial(std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

inline bool write_all(int fd, ByteView b) {
  while (!b.empty()) {
    ssize_t n = write(fd, b.data(), b.size());
    if (n <= 0) return false;
    b = b.subspan(static_cast<std::size_t>(n));
  }
  return true;
}

// Builds the controlserver once per test process; false (with *skip set) when no Go
// toolchain is installed, false with *skip unset when the build failed.
inline bool build_controlserver(bool* skip) {
  static int state = 0;  // 0 not tried, 1 ok, 2 failed
  *skip = false;
  if (std::string(TW_GO).empty() || std::string(TW_GO).find("NOTFOUND") != std::string::npos) {
    *skip = true;
    return false;
  }
  if (state == 0) {
    const std::string cmd = "cd '" + std::string(TW_CONTROLSERVER_SRC) +
                            "' && GOFLAGS=-mod=readonly '" + std::string(TW_GO) + "' build -o '" +
                            TW_CONTROLSERVER + "' . 1>&2";
    state = std::system(cmd.c_str()) == 0 ? 1 : 2;
  }
  return state == 1;
}

}  // namespace tw::ctl::testing
