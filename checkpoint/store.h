// holdfast-ckptd's view of the store file: creating or validating it,
// handing out epochs, allocating region sets, committing and clearing them.
// Only the server uses this class; it is the only writer of the metadata.
// Not thread-safe: the server calls it from its one event loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/store_format.h"

namespace holdfast::ckpt {

// One module's slots as a writer asks for them.
struct ModuleShape {
  uint16_t module = 0;
  uint16_t schema = 0;
  uint32_t slot_size = 0;
  uint32_t slots = 0;  // this module's own slot count; 0: the request's
};

struct SetRequest {
  std::string app;
  uint32_t workers = 0;
  uint32_t slots = 0;  // per worker and module: the flow table capacity
  std::vector<ModuleShape> modules;
};

class Store {
 public:
  // Opens the store at `path`, validating it, or creates it with `bytes`
  // when it does not exist. Refuses (nullptr, *error says why) a file that
  // is not a store, is of another layout version, is corrupt in both
  // metadata copies, or is served by another holdfast-ckptd.
  static std::unique_ptr<Store> open(const std::string& path, uint64_t bytes, std::string* error);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  const StoreMeta& meta() const { return meta_; }
  uint64_t bytes() const { return meta_.store_bytes; }
  uint64_t used_bytes() const;

  // A new epoch, persisted before it is returned; 0 when exhausted.
  uint32_t next_epoch(std::string* error);

  // Allocates a region set for req.app, as many slots as requested if they
  // fit, fewer if not (never fewer than `min_slots`). Any earlier staging
  // set of the app is freed first. Returns the set number.
  std::optional<uint32_t> begin_set(const SetRequest& req, uint32_t min_slots, std::string* error);
  // Makes `set` the committed set of `app` (the one to recover from) and
  // frees the previously committed one.
  bool commit_set(const std::string& app, uint32_t set, uint32_t epoch, std::string* error);
  // Forgets all data of `app`.
  bool clear(const std::string& app, std::string* error);

  const AppEntry* app(const std::string& app) const;
  std::vector<RegionEntry> regions(const std::string& app, uint32_t set) const;

  // Slots of `region` holding a stable, non-empty slot (for query/stats).
  uint64_t count_used_slots(const RegionEntry& region) const;

 private:
  Store() = default;
  // Writes meta_ with generation + 1 into the copy that is not current.
  bool publish(std::string* error);
  bool allocate(const SetRequest& req, uint32_t set, uint32_t slots, StoreMeta* meta) const;
  // Zeroes (and gives back the memory of) regions in use in `before` that
  // `after` no longer has.
  void release_freed(const StoreMeta& before, const StoreMeta& after);
  // Finds or adds the entry of `app` in `meta` and frees a stale staging set.
  static AppEntry* prepare_app(StoreMeta& meta, const std::string& app, std::string* error);

  std::string path_;
  int fd_ = -1;
  uint8_t* map_ = nullptr;
  StoreMeta meta_{};  // the current metadata
  int current_copy_ = 0;
};

// Validates one metadata copy of a store of `file_bytes`; on failure returns
// false and says why.
bool validate_meta(const StoreMeta& m, uint64_t file_bytes, std::string* why);
uint32_t meta_crc(const StoreMeta& m);

}  // namespace holdfast::ckpt
