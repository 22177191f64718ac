#include "checkpoint/client.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "checkpoint/protocol.h"
#include "checkpoint/writer.h"
#include "control/log.h"

namespace holdfast::ckpt {
namespace {

constexpr int kReplyTimeoutMs = 10'000;

int connect_unix(const std::string& path, std::string* error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    *error = "socket path too long: " + path;
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  if (::connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    *error = "cannot reach holdfast-ckptd at " + path + ": " + std::strerror(errno);
    close(s);
    return -1;
  }
  return s;
}

std::optional<RegionSet> parse_set(const nlohmann::json& j, std::string* error) {
  if (!j.is_object()) return std::nullopt;
  RegionSet set;
  try {
    set.set = j.at("set").get<uint32_t>();
    set.epoch = j.value("epoch", 0u);
    for (const auto& r : j.at("regions")) {
      auto region = region_from_json(r, error);
      if (!region) return std::nullopt;
      set.regions.push_back(*region);
    }
  } catch (const nlohmann::json::exception& e) {
    *error = std::string("bad region set from holdfast-ckptd: ") + e.what();
    return std::nullopt;
  }
  return set;
}

}  // namespace

bool read_token_file(const std::string& path, std::string* token, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read token file " + path;
    return false;
  }
  std::getline(in, *token);
  if (token->empty()) {
    *error = "token file " + path + " is empty";
    return false;
  }
  return true;
}

std::unique_ptr<Client> Client::connect(const ClientOptions& options, const Layout& layout,
                                        std::string* error) {
  std::unique_ptr<Client> c(new Client());
  c->options_ = options;
  if (!options.token_file.empty() && !read_token_file(options.token_file, &c->token_, error)) {
    return nullptr;
  }
  nlohmann::json modules = nlohmann::json::array();
  for (const SlotShape& m : layout.modules) {
    nlohmann::json shape = {{"module", m.module}, {"schema", m.schema}, {"slot_size", m.slot_size}};
    if (m.slots != 0) shape["slots"] = m.slots;
    modules.push_back(shape);
  }
  nlohmann::json hello = {{"type", "hello"},
                          {"app", options.app},
                          {"role", "writer"},
                          {"layout",
                           {{"workers", layout.workers},
                            {"slots", layout.slots},
                            {"min_slots", layout.min_slots},
                            {"modules", modules}}}};
  int fd = -1;
  if (!c->hello(hello, error, &fd)) return nullptr;
  return c;
}

std::unique_ptr<Client> Client::connect_reader(const ClientOptions& options, std::string* error) {
  std::unique_ptr<Client> c(new Client());
  c->options_ = options;
  if (!options.token_file.empty() && !read_token_file(options.token_file, &c->token_, error)) {
    return nullptr;
  }
  const nlohmann::json hello = {{"type", "hello"}, {"app", options.app}, {"role", "reader"}};
  int fd = -1;
  if (!c->hello(hello, error, &fd)) return nullptr;
  return c;
}

bool Client::hello(const nlohmann::json& request, std::string* error, int* fd) {
  nlohmann::json msg = request;
  if (!token_.empty()) msg["token"] = token_;
  sock_ = connect_unix(options_.socket, error);
  if (sock_ < 0) return false;
  nlohmann::json reply;
  if (!send_message(sock_, msg, -1, error) ||
      !receive_message(sock_, &reply, fd, kReplyTimeoutMs, error)) {
    disconnect();
    return false;
  }
  if (reply.value("type", "") != "welcome") {
    *error = "holdfast-ckptd refused: " + reply.value("error", reply.dump());
    if (*fd >= 0) close(*fd);
    disconnect();
    return false;
  }
  const bool resume = msg.contains("resume");
  const bool reader = msg.value("role", "") == "reader";
  if (!resume) {
    if (*fd < 0) {
      *error = "holdfast-ckptd sent no store descriptor";
      disconnect();
      return false;
    }
    const uint64_t bytes = reply.value("store_bytes", uint64_t{0});
    void* map =
        mmap(nullptr, bytes, reader ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    // Kept: recovery asks it where the store's holes are (slot_read.h).
    if (store_fd_ >= 0) close(store_fd_);
    store_fd_ = *fd;
    *fd = -1;
    if (map == MAP_FAILED) {
      *error = std::string("cannot map the checkpoint store: ") + std::strerror(errno);
      disconnect();
      return false;
    }
    map_ = static_cast<uint8_t*>(map);
    map_bytes_ = bytes;
    epoch_ = reply.value("epoch", 0u);
    if (epoch_ == 0 || epoch_ > kMaxEpoch) {
      *error = "holdfast-ckptd handed out an invalid epoch";
      disconnect();
      return false;
    }
    recover_ = parse_set(reply["recover"], error);
    if (!reply["recover"].is_null() && !recover_) {
      disconnect();
      return false;
    }
    if (!reader) {
      auto write = parse_set(reply["write"], error);
      if (!write) {
        if (error->empty()) *error = "holdfast-ckptd sent no region set to write";
        disconnect();
        return false;
      }
      write_ = *write;
    }
    // Every region must lie inside the mapping.
    for (const auto* set : {&write_, recover_ ? &*recover_ : nullptr}) {
      if (set == nullptr) continue;
      for (const RegionEntry& r : set->regions) {
        if (r.offset + r.bytes() > map_bytes_ || r.module >= kModuleSlots) {
          *error = "holdfast-ckptd described a region outside the store";
          disconnect();
          return false;
        }
      }
    }
  } else if (*fd >= 0) {
    close(*fd);  // already mapped
    *fd = -1;
  }
  return true;
}

Client::~Client() {
  disconnect();
  if (map_ != nullptr) munmap(map_, map_bytes_);
  if (store_fd_ >= 0) close(store_fd_);
}

void Client::disconnect() {
  if (sock_ >= 0) close(sock_);
  sock_ = -1;
}

bool Client::request(const nlohmann::json& msg, nlohmann::json* reply, std::string* error) {
  if (sock_ < 0) {
    *error = "not connected to holdfast-ckptd";
    return false;
  }
  int fd = -1;
  if (!send_message(sock_, msg, -1, error) ||
      !receive_message(sock_, reply, &fd, kReplyTimeoutMs, error)) {
    disconnect();
    return false;
  }
  if (fd >= 0) close(fd);
  if (reply->value("type", "") == "error") {
    *error = "holdfast-ckptd: " + reply->value("error", std::string("error"));
    return false;
  }
  return true;
}

bool Client::commit(std::string* error) {
  nlohmann::json reply;
  if (!request({{"type", "commit"}, {"set", write_.set}}, &reply, error)) return false;
  committed_ = true;
  return true;
}

bool Client::send_report(const nlohmann::json& report, std::string* error) {
  nlohmann::json reply;
  return request({{"type", "report"}, {"report", report}}, &reply, error);
}

uint32_t Client::renew_epoch(std::string* error) {
  nlohmann::json reply;
  if (!request({{"type", "epoch"}}, &reply, error)) return 0;
  const uint32_t e = reply.value("epoch", 0u);
  if (e == 0 || e > kMaxEpoch) {
    *error = "holdfast-ckptd handed out an invalid epoch";
    return 0;
  }
  return e;
}

bool Client::maintain() {
  if (sock_ >= 0) {
    // The server never speaks unasked: readable means it closed or died.
    pollfd p{sock_, POLLIN, 0};
    if (poll(&p, 1, 0) == 0) return true;
    disconnect();
    ++outages_;
    log(LogLevel::warning, "checkpoint",
        "lost holdfast-ckptd at %s; forwarding continues on the mapped store, reconnecting",
        options_.socket.c_str());
  }
  if (!committed_) return false;
  std::string error;
  int fd = -1;
  const nlohmann::json resume = {{"type", "hello"},
                                 {"app", options_.app},
                                 {"role", "writer"},
                                 {"resume", {{"set", write_.set}, {"epoch", epoch_}}}};
  if (!hello(resume, &error, &fd)) return false;
  log(LogLevel::info, "checkpoint", "reattached to holdfast-ckptd at %s (set %u, epoch %u)",
      options_.socket.c_str(), write_.set, epoch_);
  return true;
}

}  // namespace holdfast::ckpt
