#include "cli/admin_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tw::cli {

Status admin_call(const std::string& socket_path, const nlohmann::json& request,
                  const std::function<bool(const nlohmann::json&)>& on_line) {
  sockaddr_un sa{};
  if (socket_path.size() >= sizeof sa.sun_path) return make_error(socket_path + ": path too long");
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(std::string("socket: ") + std::strerror(errno));
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    std::string err = std::strerror(errno);
    ::close(fd);
    return make_error("cannot reach tailwardend at " + socket_path + ": " + err);
  }
  const std::string line = request.dump() + "\n";
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    ::close(fd);
    return make_error("admin socket: write failed");
  }
  std::string buf;
  char chunk[8192];
  for (;;) {
    auto nl = buf.find('\n');
    if (nl != std::string::npos) {
      auto j = nlohmann::json::parse(buf.substr(0, nl), nullptr, false);
      buf.erase(0, nl + 1);
      if (j.is_discarded() || !j.is_object()) {
        ::close(fd);
        return make_error("admin socket: malformed reply from tailwardend");
      }
      if (!on_line(j)) break;
      continue;
    }
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, static_cast<std::size_t>(n));
    if (buf.size() > (16u << 20)) {
      ::close(fd);
      return make_error("admin socket: reply too large");
    }
  }
  ::close(fd);
  return ok_status();
}

Result<nlohmann::json> admin_call_once(const std::string& socket_path, const nlohmann::json& request) {
  nlohmann::json reply;
  bool got = false;
  auto st = admin_call(socket_path, request, [&](const nlohmann::json& j) {
    reply = j;
    got = true;
    return false;
  });
  if (!st) return Error{st.error()};
  if (!got) return make_error("tailwardend closed the connection without a reply");
  if (!reply.value("ok", false)) {
    return make_error(reply.value("error", std::string("request failed")));
  }
  return reply;
}

}  // namespace tw::cli
