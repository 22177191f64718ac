#include "control/telemetry_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace holdfast::ctl {
namespace {

constexpr int kReplyTimeoutMs = 30000;  // a reload of a big table takes a while

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Objects keyed 0..n-1 become arrays, recursively.
nlohmann::json arrays_of(nlohmann::json j) {
  if (!j.is_object()) return j;
  bool sequence = !j.empty();
  size_t i = 0;
  for (auto it = j.begin(); it != j.end() && sequence; ++it, ++i) {
    sequence = all_digits(it.key());
  }
  for (auto& [key, value] : j.items()) value = arrays_of(value);
  if (!sequence) return j;
  std::vector<std::pair<unsigned long, nlohmann::json>> items;
  for (auto& [key, value] : j.items()) items.emplace_back(std::stoul(key), value);
  std::sort(items.begin(), items.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t k = 0; k < items.size(); ++k) {
    if (items[k].first != k) return j;
  }
  nlohmann::json out = nlohmann::json::array();
  for (auto& item : items) out.push_back(std::move(item.second));
  return out;
}

}  // namespace

TelemetryClient::~TelemetryClient() {
  if (fd_ >= 0) close(fd_);
}

bool TelemetryClient::connect(const std::string& path, std::string* error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    *error = "telemetry socket path too long: " + path;
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    *error = "cannot reach the dataplane at " + path + ": " + std::strerror(e);
    if (e == ENOENT || e == ECONNREFUSED) {
      *error += " (is holdfast running, with this --file-prefix and without --no-telemetry?)";
    }
    return false;
  }
  nlohmann::json hello;
  std::string ignored;
  if (!call("", "", &hello, error)) return false;
  max_output_ = hello.value("max_output_len", size_t{16384});
  return true;
}

bool TelemetryClient::call(const std::string& command, const std::string& params,
                           nlohmann::json* reply, std::string* error) {
  if (!command.empty()) {
    const std::string message = params.empty() ? command : command + "," + params;
    if (send(fd_, message.data(), message.size(), MSG_NOSIGNAL) < 0) {
      *error = std::string("telemetry socket: ") + std::strerror(errno);
      return false;
    }
  }
  pollfd p{fd_, POLLIN, 0};
  const int ready = poll(&p, 1, kReplyTimeoutMs);
  if (ready <= 0) {
    *error = ready == 0 ? "the dataplane did not answer within 30 s"
                        : std::string("telemetry socket: ") + std::strerror(errno);
    return false;
  }
  std::vector<char> buffer(max_output_ + 1);
  const ssize_t n = recv(fd_, buffer.data(), buffer.size(), 0);
  if (n <= 0) {
    *error = n == 0 ? "the dataplane closed the telemetry connection (too many clients?)"
                    : std::string("telemetry socket: ") + std::strerror(errno);
    return false;
  }
  const nlohmann::json j = nlohmann::json::parse(buffer.data(), buffer.data() + n, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *error = "the dataplane's reply is not JSON";
    return false;
  }
  if (command.empty()) {
    *reply = j;
    return true;
  }
  const auto it = j.find(command);
  if (it == j.end()) {
    *error = "the dataplane does not know " + command + " (not a holdfast dataplane?)";
    return false;
  }
  *reply = it->is_null() ? nlohmann::json::object() : *it;
  return true;
}

nlohmann::json unflatten(const nlohmann::json& j) {
  if (!j.is_object()) return j;
  nlohmann::json out = nlohmann::json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    nlohmann::json* at = &out;
    const std::string& key = it.key();
    size_t from = 0;
    for (size_t slash; (slash = key.find('/', from)) != std::string::npos; from = slash + 1) {
      nlohmann::json& next = (*at)[key.substr(from, slash - from)];
      if (!next.is_object()) next = nlohmann::json::object();
      at = &next;
    }
    (*at)[key.substr(from)] = unflatten(it.value());
  }
  return arrays_of(out);
}

}  // namespace holdfast::ctl
