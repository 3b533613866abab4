// Talks to tailwardend's admin socket: sends one JSON request line and reads reply
// lines until the broker closes the connection.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"

namespace tw::cli {

constexpr const char* kDefaultAdminSocket = "/run/tailwarden/tailwarden.sock";

// Calls `on_line` for each reply object; stops early if it returns false.
Status admin_call(const std::string& socket_path, const nlohmann::json& request,
                  const std::function<bool(const nlohmann::json&)>& on_line);

// One request, one reply (the first line); an {"ok":false} reply becomes an error.
Result<nlohmann::json> admin_call_once(const std::string& socket_path, const nlohmann::json& request);

}  // namespace tw::cli
