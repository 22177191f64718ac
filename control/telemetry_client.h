// A client of DPDK's telemetry socket (a SOCK_SEQPACKET Unix socket, v2
// protocol): on connect the server sends one JSON object with its version
// and max_output_len; then each "/command,params" message gets one JSON
// object back, {"/command": reply}.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace holdfast::ctl {

class TelemetryClient {
 public:
  TelemetryClient() = default;
  ~TelemetryClient();
  TelemetryClient(const TelemetryClient&) = delete;
  TelemetryClient& operator=(const TelemetryClient&) = delete;

  // Connects and reads the greeting. Returns false with *error naming the
  // path and what went wrong (no such socket: the dataplane is not running,
  // or runs with another --file-prefix or --no-telemetry).
  bool connect(const std::string& path, std::string* error);

  // Sends command (with params after a comma when not empty) and returns its
  // reply (the value under the command's name). A reply {"error": ...} is
  // returned as is; false with *error only when the socket fails.
  bool call(const std::string& command, const std::string& params, nlohmann::json* reply,
            std::string* error);

 private:
  int fd_ = -1;
  size_t max_output_ = 16384;
};

// Undoes the dataplane's flattening of nested replies: keys "a/b/c" become
// nested objects, and objects whose keys are 0..n-1 become arrays.
nlohmann::json unflatten(const nlohmann::json& j);

}  // namespace holdfast::ctl
