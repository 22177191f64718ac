// A worker's pool of layer-7 records (FTP sessions, SIP sessions, SIP
// calls): allocated once at start, handed out from a stack of free
// indices, so the packet path never allocates. A record is stored as the
// checkpoint store keeps it (ckpt::L7Record: the connection's position and
// the slice), so checkpointing one is a single copy; index i of the pool is
// slot i of the module's store region.
//
// Not an rte_mempool: records are addressed by a 16-bit index that the
// connection and the store both hold, which a mempool does not give.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "checkpoint/writer.h"
#include "dataplane/flow_table.h"

namespace holdfast {

template <typename Slice>
class L7Pool {
 public:
  using Record = ckpt::L7Record<Slice>;
  static constexpr uint32_t kMaxRecords = 0xffff;

  // Sets aside n records (n <= kMaxRecords) on `socket`; false and *error
  // when there is no memory.
  bool init(uint32_t n, int socket, const char* what, std::string* error) {
    if (n > kMaxRecords) {
      *error = std::string("at most ") + std::to_string(kMaxRecords) + " " + what + " per worker";
      return false;
    }
    const uint32_t room = n == 0 ? 1 : n;
    records_.reset(static_cast<Record*>(table_detail::alloc(sizeof(Record) * room, socket)));
    if (!records_) {
      *error = "cannot allocate " + std::to_string(sizeof(Record) * n >> 10) + " KiB for " +
               std::to_string(n) + " " + what;
      return false;
    }
    free_.reset(new uint16_t[room]);
    // Handed out from index 0 up.
    for (uint32_t i = 0; i < n; ++i) free_[i] = static_cast<uint16_t>(n - 1 - i);
    free_count_ = n;
    capacity_ = n;
    return true;
  }

  // A free record, or nullptr; *index is its index.
  Record* take(uint16_t* index) {
    if (free_count_ == 0) return nullptr;
    *index = free_[--free_count_];
    return &records_[*index];
  }
  void give(uint16_t index) { free_[free_count_++] = index; }

  Record& operator[](uint32_t i) { return records_[i]; }
  const Record& operator[](uint32_t i) const { return records_[i]; }
  uint32_t capacity() const { return capacity_; }
  uint32_t in_use() const { return capacity_ - free_count_; }

 private:
  struct Deleter {
    void operator()(void* p) const { table_detail::release(p); }
  };
  std::unique_ptr<Record[], Deleter> records_;
  std::unique_ptr<uint16_t[]> free_;
  uint32_t free_count_ = 0;
  uint32_t capacity_ = 0;
};

}  // namespace holdfast
