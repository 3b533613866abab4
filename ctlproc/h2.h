// An HTTP/2 client session (h2c with prior knowledge) over libnghttp2, with no I/O of
// its own: decrypted bytes go in with feed(), bytes to encrypt come out of
// take_output(). One session carries every request of a control connection.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

struct nghttp2_session;

namespace tw::ctl {

struct H2Handlers {
  // Response headers complete; `status` is :status.
  std::function<void(int status)> on_headers;
  // A chunk of the response body.
  std::function<void(ByteView data)> on_data;
  // The stream ended; error_code 0 means a clean end (END_STREAM).
  std::function<void(std::uint32_t error_code)> on_close;
};

struct H2Stats {
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t streams = 0;
};

class H2Client {
 public:
  // `authority` is the :authority of every request (the control host).
  explicit H2Client(std::string authority);
  ~H2Client();
  H2Client(const H2Client&) = delete;
  H2Client& operator=(const H2Client&) = delete;

  Status init_error() const { return init_; }
  // Starts a request; returns the stream id or an error.
  Result<std::int32_t> request(const std::string& method, const std::string& path,
                               std::vector<std::pair<std::string, std::string>> headers,
                               std::string body, H2Handlers handlers);
  // Cancels a stream (RST_STREAM CANCEL); its on_close still runs.
  void cancel(std::int32_t stream_id);
  // Consumes bytes from the server. Error: protocol violation (the session is dead).
  Status feed(ByteView in);
  // Everything the session wants to send now.
  Bytes take_output();
  // False once GOAWAY was received/sent and no streams remain, or after an error.
  bool alive() const;
  std::size_t open_streams() const { return streams_.size(); }
  const H2Stats& stats() const { return stats_; }

 private:
  struct StreamState {
    H2Handlers handlers;
    std::string body;
    std::size_t sent = 0;
    int status = 0;
  };
  friend struct H2Callbacks;

  std::string authority_;
  nghttp2_session* session_ = nullptr;
  Status init_ = ok_status();
  std::map<std::int32_t, std::unique_ptr<StreamState>> streams_;
  H2Stats stats_;
  bool dead_ = false;
};

}  // namespace tw::ctl
