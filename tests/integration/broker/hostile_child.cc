// Test-only stand-in for tailwarden-netproc: a compromised netproc, spawned by the
// real broker (TW_LIBEXEC_DIR points at a directory where tailwarden-netproc is this
// binary). It speaks the IPC protocol well enough to get past setup, then:
//   * floods DERP dial requests (one region) and endpoint updates;
//   * answers every StatusRequest and OperatorPing with malformed bodies: JSON of the
//     wrong shapes ({"peers":[1]}, {"via":1}, ids that are strings, arrays instead of
//     objects) and bytes that are not UTF-8;
//   * when the file "hostile.mode" next to it says "wrong-id", answers with the
//     request id the broker just gave the other child (dataproc), and a made-up one;
//     when it says "peer-garbage", writes bytes that are no IPC frame to dataproc.
// It writes what came back to "hostile.report" next to it (dial answers by kind).
// It is not sandboxed: it is the attacker, not the thing under test.
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "common/child_fds.h"
#include "ipc/control_link.h"

namespace {

std::string g_dir;

std::string read_mode() {
  std::ifstream in(g_dir + "/hostile.mode");
  std::string m;
  std::getline(in, m);
  return m;
}

struct Report {
  int dial_failed_rate = 0;
  int dial_failed_other = 0;
  int dial_conn = 0;
  int status_requests = 0;
  void write() const {
    std::ofstream out(g_dir + "/hostile.report.tmp");
    out << "dial_failed_rate " << dial_failed_rate << "\n"
        << "dial_failed_other " << dial_failed_other << "\n"
        << "dial_conn " << dial_conn << "\n"
        << "status_requests " << status_requests << "\n";
    out.close();
    (void)::rename((g_dir + "/hostile.report.tmp").c_str(), (g_dir + "/hostile.report").c_str());
  }
};

}  // namespace

// A test tool: an exception escaping main aborts it, and the test reports that.
int main(int, char** argv) {  // NOLINT(bugprone-exception-escape)
  std::string self = argv[0];
  g_dir = self.substr(0, self.rfind('/'));
  boost::asio::io_context io(1);
  tw::ipc::ControlLink broker(io, tw::ipc::UniqueFd(tw::child_fd::kBrokerControl),
                              tw::ipc::LinkKind::kBrokerNetproc, tw::ipc::Role::kNetproc);
  Report report;
  int answer = 0;
  auto reply = [&](std::uint32_t id, std::string body) {
    const std::string mode = read_mode();
    if (mode == "peer-garbage") {
      // Garbage on the netproc<->dataproc link: the real dataproc must refuse it and
      // both children must be restarted, not the link silently left dead.
      const char junk[] = "\xff\xfe not a TWIP frame";
      const ssize_t n = ::send(tw::child_fd::kPeerControl, junk, sizeof junk, MSG_DONTWAIT);
      (void)std::fprintf(stderr, "hostile: %zd bytes of garbage to dataproc\n", n);
    }
    if (mode == "wrong-id") {
      // The broker numbers requests in order and asks netproc, then dataproc: id + 1
      // is dataproc's. Then one nobody was ever given.
      (void)broker.send(tw::ipc::StatusReply{id + 1, R"({"peers":[]})"});
      (void)broker.send(tw::ipc::StatusReply{id + 100000, "{}"});
    }
    (void)broker.send(tw::ipc::StatusReply{id, std::move(body)});
  };
  // Floods, once set up: 500 DERP dial requests and 500 endpoint updates, as fast
  // as the control channel takes them (its send queue must not overflow, or our own
  // link would give up on the broker).
  boost::asio::steady_timer timer(io);
  int dials = 0, updates = 0;
  std::function<void()> flood = [&] {
    for (int i = 0; i < 10 && dials < 500; ++i) {
      if (broker.send(tw::ipc::DerpDialRequest{900, "900a"})) ++dials;
    }
    for (int i = 0; i < 10 && updates < 500; ++i) {
      tw::ipc::EndpointsUpdate u;
      u.endpoints.push_back(
          tw::IpPort{tw::IpAddr::v4(198, 18, 16, static_cast<std::uint8_t>(updates % 200)), 41641});
      if (broker.send(u)) ++updates;
    }
    if (dials >= 500 && updates >= 500) return;
    timer.expires_after(std::chrono::milliseconds(5));
    timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) flood();
    });
  };
  broker.start(
      [&](tw::ipc::ReceivedMessage m) {
        if (std::holds_alternative<tw::ipc::NetprocSetup>(m.message)) {
          (void)broker.send(tw::ipc::Ready{});
          flood();
        } else if (auto* f = std::get_if<tw::ipc::DerpDialFailed>(&m.message)) {
          (f->reason.find("rate") != std::string::npos ? report.dial_failed_rate
                                                       : report.dial_failed_other)++;
          report.write();
        } else if (std::holds_alternative<tw::ipc::DerpConn>(m.message)) {
          ++report.dial_conn;
          report.write();
        } else if (auto* s = std::get_if<tw::ipc::StatusRequest>(&m.message)) {
          ++report.status_requests;
          report.write();
          static const char* kBodies[] = {
              R"({"peers":[1]})",
              R"({"peers":[{"id":"x","path":1,"derp_region":"y"},{"id":-1},{"id":1e30},null]})",
              "{\"peers\":[{\"id\":1,\"name\":\"\xff\xfe\"}],\"x\":\"\xc3\"}",
              "[1,2,3]",
              "x 1\n\xff\xfe\xfd\n",
              R"({"derp":7,"peers":{"id":1}})",
          };
          reply(s->request_id, kBodies[answer++ % 6]);
        } else if (auto* p = std::get_if<tw::ipc::OperatorPing>(&m.message)) {
          static const char* kPongs[] = {R"({"via":1})", R"({"via":"direct","derp_region":"x"})",
                                         "\xff", "[]"};
          reply(p->request_id, kPongs[answer++ % 4]);
        }
      },
      [&](const std::string&) { io.stop(); });
  io.run();
  return 0;
}
