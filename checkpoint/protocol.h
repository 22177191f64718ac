// The control protocol's framing (docs/checkpoint.md): a 4-byte big-endian
// length, then that many bytes of one JSON object. A file descriptor may ride
// along with a message (SCM_RIGHTS). These are the blocking helpers both
// sides use on a connected Unix stream socket; the server's event loop
// decodes incoming frames with FrameDecoder.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/store_format.h"

namespace holdfast::ckpt {

inline constexpr uint32_t kMaxMessage = 65536;

// Regions in one set (workers x modules), so that a welcome, which lists the
// set to recover from and the new one, fits in one message: 64 workers x 5
// modules. The server also measures each welcome before allocating.
inline constexpr uint32_t kMaxSetRegions = 320;

// One sendmsg of data[0, n) with fd attached when fd >= 0 (SCM_RIGHTS).
// Returns what sendmsg returns (bytes sent, or -1 with errno).
long send_with_fd(int sock, const void* data, size_t n, int fd, int flags);

// Sends msg as one frame, with fd attached when fd >= 0. Returns false and
// sets *error on failure.
bool send_message(int sock, const nlohmann::json& msg, int fd, std::string* error);

// Receives one frame within timeout_ms (-1: wait forever). A descriptor that
// came with it is stored in *fd (else -1); the caller owns it. Returns false
// and sets *error on timeout, a closed peer, a bad frame or bad JSON; a
// descriptor that came with a failed message is closed, never returned.
bool receive_message(int sock, nlohmann::json* msg, int* fd, int timeout_ms, std::string* error);

// Incremental decoding of a byte stream into frames (server side).
class FrameDecoder {
 public:
  // Appends received bytes.
  void feed(const uint8_t* data, size_t n);
  enum class Status { need_more, frame, bad_length };
  // Takes the next complete frame's payload out of the buffer.
  Status next(std::string* payload);
  // Bytes received and not yet taken as a frame.
  size_t buffered() const { return buffer_.size(); }

 private:
  std::vector<uint8_t> buffer_;
};

// Member `key` of the object `j` as an integer from min to max. JSON
// numbers convert silently (-1 to 65535, 1.5 to 1), so messages are read
// through this. Returns false and says why, naming the key.
bool get_uint(const nlohmann::json& j, const char* key, uint64_t min, uint64_t max, uint64_t* out,
              std::string* error);

// A region as the protocol describes it.
nlohmann::json region_to_json(const RegionEntry& r);
std::optional<RegionEntry> region_from_json(const nlohmann::json& j, std::string* error);

}  // namespace holdfast::ckpt
