// A checkpoint store for holdfast-bench, laid out as holdfast-ckptd lays out
// its store (checkpoint/store.cc) but without the server: a file in /dev/shm
// (or on a hugetlbfs mount), sized with ftruncate, mapped MAP_SHARED, and
// region sets of every module per worker from kDataOffset on, each region
// 4 KiB-aligned, in worker then module order (module_shapes()).
//
// The file is unlinked as soon as it is mapped: its pages belong to the open
// descriptor and the mapping, so nothing is left behind however the
// benchmark ends (an error exit, a signal, SIGKILL). Its memory is the same
// tmpfs (or hugetlbfs) memory the production store uses; puts go through
// the same WorkerCheckpoint code into a MAP_SHARED mapping of it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/client.h"
#include "checkpoint/writer.h"

namespace holdfast::bench {

class BenchStore {
 public:
  // Bytes a region set of `workers` workers x every module of
  // module_shapes(fragments) takes, `slots` connection slots per worker.
  static uint64_t set_bytes(uint32_t workers, uint32_t slots, uint32_t fragments);

  // Creates, sizes, maps and unlinks a store file of at least `bytes` in
  // `dir`. Returns nullptr and sets *error on failure.
  static std::unique_ptr<BenchStore> create(const std::string& dir, uint64_t bytes,
                                            std::string* error);
  ~BenchStore();
  BenchStore(const BenchStore&) = delete;
  BenchStore& operator=(const BenchStore&) = delete;

  // Lays out the next region set (number `set`, written in `epoch`).
  // Returns false when the store has no room for it.
  bool add_set(uint32_t set, uint32_t epoch, uint32_t workers, uint32_t slots, uint32_t fragments,
               ckpt::RegionSet* out, std::string* error);

  // Zeroes a set and gives its memory back (FALLOC_FL_PUNCH_HOLE), as
  // holdfast-ckptd does with a freed set: the next writes fault fresh pages
  // in, as they do in a freshly allocated set.
  void punch(const ckpt::RegionSet& set);
  // Zeroes a set by writing it, so that every page of it is present.
  void prefault(const ckpt::RegionSet& set);

  // Points one WorkerCheckpoint per worker at its regions of `set`.
  bool attach(const ckpt::RegionSet& set, std::vector<ckpt::WorkerCheckpoint>* writers,
              std::string* error);

  // Slots of module `module` in `set` holding a connection. Reading a hole
  // of a tmpfs file allocates its page: take resident_bytes() before.
  uint64_t used_slots(const ckpt::RegionSet& set, uint8_t module) const;

  uint8_t* data() const { return map_; }
  uint64_t bytes() const { return bytes_; }
  int fd() const { return fd_; }
  // Memory the file occupies (allocated blocks), in bytes.
  uint64_t resident_bytes() const;
  bool on_hugetlbfs() const { return hugetlbfs_; }
  const std::string& path() const { return path_; }

 private:
  BenchStore() = default;

  std::string path_;
  int fd_ = -1;
  uint8_t* map_ = nullptr;
  uint64_t bytes_ = 0;
  uint64_t next_offset_ = ckpt::kDataOffset;
  bool hugetlbfs_ = false;
};

// The directory --hugepages puts the store in when it is a hugetlbfs mount.
inline constexpr const char* kHugetlbfsDir = "/dev/hugepages";
bool is_hugetlbfs(const std::string& dir);

}  // namespace holdfast::bench
