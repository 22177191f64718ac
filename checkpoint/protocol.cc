#include "checkpoint/protocol.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace holdfast::ckpt {
namespace {

constexpr int kSendTimeoutMs = 5000;

std::string errno_text() {
  return std::strerror(errno);
}

// Waits until sock is readable; false on timeout or error.
bool wait_readable(int sock, int timeout_ms, std::string* error) {
  pollfd p{sock, POLLIN, 0};
  for (;;) {
    const int rc = poll(&p, 1, timeout_ms);
    if (rc > 0) return true;
    if (rc == 0) {
      *error = "timed out waiting for holdfast-ckptd";
      return false;
    }
    if (errno != EINTR) {
      *error = "poll: " + errno_text();
      return false;
    }
  }
}

// Reads exactly n bytes, collecting a descriptor if one arrives.
bool read_exact(int sock, uint8_t* out, size_t n, int* fd, int timeout_ms, std::string* error) {
  size_t got = 0;
  while (got < n) {
    if (!wait_readable(sock, timeout_ms, error)) return false;
    iovec iov{out + got, n - got};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      *error = "receive: " + errno_text();
      return false;
    }
    if (r == 0) {
      *error = "holdfast-ckptd closed the connection";
      return false;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
          c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int received;
        std::memcpy(&received, CMSG_DATA(c), sizeof received);
        if (*fd >= 0) close(*fd);  // at most one per message; keep the last
        *fd = received;
      }
    }
    got += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

long send_with_fd(int sock, const void* data, size_t n, int fd, int flags) {
  iovec iov{const_cast<void*>(data), n};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return sendmsg(sock, &m, flags | MSG_NOSIGNAL);
}

bool send_message(int sock, const nlohmann::json& msg, int fd, std::string* error) {
  const std::string body = msg.dump();
  if (body.size() > kMaxMessage) {
    *error = "message of " + std::to_string(body.size()) + " bytes exceeds the protocol limit";
    return false;
  }
  std::string frame(4, '\0');
  const uint32_t n = static_cast<uint32_t>(body.size());
  frame[0] = static_cast<char>(n >> 24);
  frame[1] = static_cast<char>(n >> 16);
  frame[2] = static_cast<char>(n >> 8);
  frame[3] = static_cast<char>(n);
  frame += body;
  size_t sent = 0;
  bool fd_sent = fd < 0;
  while (sent < frame.size()) {
    const long w =
        send_with_fd(sock, frame.data() + sent, frame.size() - sent, fd_sent ? -1 : fd, 0);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // A non-blocking socket with a full buffer: wait for room.
        pollfd p{sock, POLLOUT, 0};
        const int rc = poll(&p, 1, kSendTimeoutMs);
        if (rc > 0 || (rc < 0 && errno == EINTR)) continue;
        *error = rc == 0 ? "send: timed out, the peer does not read" : "poll: " + errno_text();
        return false;
      }
      *error = "send: " + errno_text();
      return false;
    }
    fd_sent = true;
    sent += static_cast<size_t>(w);
  }
  return true;
}

namespace {

bool receive_frame(int sock, nlohmann::json* msg, int* fd, int timeout_ms, std::string* error) {
  uint8_t len[4];
  if (!read_exact(sock, len, 4, fd, timeout_ms, error)) return false;
  const uint32_t n =
      uint32_t{len[0]} << 24 | uint32_t{len[1]} << 16 | uint32_t{len[2]} << 8 | uint32_t{len[3]};
  if (n == 0 || n > kMaxMessage) {
    *error = "bad frame length " + std::to_string(n);
    return false;
  }
  std::string body(n, '\0');
  if (!read_exact(sock, reinterpret_cast<uint8_t*>(body.data()), n, fd, timeout_ms, error)) {
    return false;
  }
  *msg = nlohmann::json::parse(body, nullptr, false);
  if (msg->is_discarded() || !msg->is_object()) {
    *error = "message is not a JSON object";
    return false;
  }
  return true;
}

}  // namespace

bool receive_message(int sock, nlohmann::json* msg, int* fd, int timeout_ms, std::string* error) {
  *fd = -1;
  if (receive_frame(sock, msg, fd, timeout_ms, error)) return true;
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
  return false;
}

void FrameDecoder::feed(const uint8_t* data, size_t n) {
  buffer_.insert(buffer_.end(), data, data + n);
}

FrameDecoder::Status FrameDecoder::next(std::string* payload) {
  if (buffer_.size() < 4) return Status::need_more;
  const uint32_t n = uint32_t{buffer_[0]} << 24 | uint32_t{buffer_[1]} << 16 |
                     uint32_t{buffer_[2]} << 8 | uint32_t{buffer_[3]};
  if (n == 0 || n > kMaxMessage) return Status::bad_length;
  if (buffer_.size() < 4 + size_t{n}) return Status::need_more;
  payload->assign(reinterpret_cast<const char*>(buffer_.data()) + 4, n);
  buffer_.erase(buffer_.begin(), buffer_.begin() + 4 + n);
  return Status::frame;
}

nlohmann::json region_to_json(const RegionEntry& r) {
  return {{"worker", r.worker},       {"module", r.module},         {"schema", r.schema},
          {"slot_size", r.slot_size}, {"slot_count", r.slot_count}, {"offset", r.offset}};
}

bool get_uint(const nlohmann::json& j, const char* key, uint64_t min, uint64_t max, uint64_t* out,
              std::string* error) {
  if (!j.is_object()) {
    *error = "not an object";
    return false;
  }
  const auto it = j.find(key);
  if (it == j.end()) {
    *error = std::string("\"") + key + "\" is missing";
    return false;
  }
  if (!it->is_number_unsigned() || it->get<uint64_t>() < min || it->get<uint64_t>() > max) {
    *error = std::string("\"") + key + "\" must be an integer from " + std::to_string(min) +
             " to " + std::to_string(max);
    return false;
  }
  *out = it->get<uint64_t>();
  return true;
}

std::optional<RegionEntry> region_from_json(const nlohmann::json& j, std::string* error) {
  uint64_t worker, module, schema, slot_size, slot_count, offset;
  std::string why;
  if (!get_uint(j, "worker", 0, UINT16_MAX, &worker, &why) ||
      !get_uint(j, "module", 0, UINT16_MAX, &module, &why) ||
      !get_uint(j, "schema", 0, UINT16_MAX, &schema, &why) ||
      !get_uint(j, "slot_size", sizeof(SlotHeader), UINT32_MAX, &slot_size, &why) ||
      !get_uint(j, "slot_count", 0, UINT32_MAX, &slot_count, &why) ||
      !get_uint(j, "offset", 0, UINT64_MAX, &offset, &why)) {
    *error = "bad region description: " + why;
    return std::nullopt;
  }
  if (slot_size % 8 != 0 || offset % kPage != 0) {
    *error = "bad region description: slot size or offset";
    return std::nullopt;
  }
  RegionEntry r{};
  r.worker = static_cast<uint16_t>(worker);
  r.module = static_cast<uint16_t>(module);
  r.schema = static_cast<uint16_t>(schema);
  r.slot_size = static_cast<uint32_t>(slot_size);
  r.slot_count = static_cast<uint32_t>(slot_count);
  r.offset = offset;
  r.in_use = 1;
  return r;
}

}  // namespace holdfast::ckpt
