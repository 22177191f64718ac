// The dataplane's connection to holdfast-ckptd (control path only): hello,
// the mapped store, commit, report, and reattaching after the server
// restarts. See docs/checkpoint.md for the protocol.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/store_format.h"

namespace holdfast::ckpt {

struct ClientOptions {
  std::string socket;  // holdfast-ckptd's control socket
  std::string app = "holdfast";
  std::string token_file;  // empty: no token
};

// One module's regions as the writer asks for them.
struct SlotShape {
  uint8_t module = 0;
  uint16_t schema = 0;
  uint32_t slot_size = 0;
  uint32_t slots = 0;  // 0: the layout's slots
};

struct Layout {
  uint32_t workers = 1;
  uint32_t slots = 0;      // per worker and module: the flow table capacity
  uint32_t min_slots = 1;  // fewer than slots: store full beyond them
  std::vector<SlotShape> modules;
};

struct RegionSet {
  uint32_t set = 0;
  uint32_t epoch = 0;  // of the writer that committed it (recover only)
  std::vector<RegionEntry> regions;
};

class Client {
 public:
  // Connects as the application's writer and asks for a region set of
  // `layout`. Returns nullptr and sets *error (naming the socket) on failure.
  static std::unique_ptr<Client> connect(const ClientOptions& options, const Layout& layout,
                                         std::string* error);
  // Connects as a reader of the application's committed set (holdfastctl):
  // the store is mapped read-only, recover() is the set, there is none to
  // write.
  static std::unique_ptr<Client> connect_reader(const ClientOptions& options, std::string* error);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  uint32_t epoch() const { return epoch_; }
  // The committed set to recover from, if the store has one.
  const std::optional<RegionSet>& recover() const { return recover_; }
  // The set this dataplane writes.
  const RegionSet& write() const { return write_; }
  // The whole store, mapped read-write (read-only for a reader).
  uint8_t* store() const { return map_; }
  uint64_t store_bytes() const { return map_bytes_; }
  // The store file the mapping is of (-1 before hello).
  int store_fd() const { return store_fd_; }

  // Makes the written set the one to recover from (before forwarding).
  bool commit(std::string* error);
  bool send_report(const nlohmann::json& report, std::string* error);
  // A further epoch, for when the connection counters of this one run out
  // (the hello epoch stays the one resume and recovery know). 0 on failure.
  uint32_t renew_epoch(std::string* error);

  // Called periodically by a control thread: notices a lost server and
  // reattaches (hello with "resume") when it is back. Returns connected().
  bool maintain();
  bool connected() const { return sock_ >= 0; }
  uint64_t outages() const { return outages_; }

 private:
  Client() = default;
  bool hello(const nlohmann::json& request, std::string* error, int* fd);
  bool request(const nlohmann::json& msg, nlohmann::json* reply, std::string* error);
  void disconnect();

  ClientOptions options_;
  std::string token_;
  int sock_ = -1;
  uint8_t* map_ = nullptr;
  int store_fd_ = -1;
  uint64_t map_bytes_ = 0;
  uint32_t epoch_ = 0;
  std::optional<RegionSet> recover_;
  RegionSet write_;
  bool committed_ = false;
  uint64_t outages_ = 0;
};

// Reads a token file (first line, without the newline).
bool read_token_file(const std::string& path, std::string* token, std::string* error);

}  // namespace holdfast::ckpt
