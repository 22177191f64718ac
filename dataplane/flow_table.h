// Per-worker tables: a DPDK rte_hash from key to entry index, and the
// entries in an array indexed by the position rte_hash assigns to each key.
// The position doubles as the entry's slot everywhere else (checkpoint
// regions use the same index), so nothing allocates per connection.
//
// Shared-nothing: a table belongs to one worker, its only reader and writer,
// so rte_hash is created without concurrency flags. Entries are removed
// only between bursts (the cleaner), never while a burst holds positions
// from a bulk lookup. rte_hash moves bucket entries on cuckoo displacement
// but never a key's position, so positions stay valid across inserts.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include <rte_hash_crc.h>

#include "dataplane/connection.h"

struct rte_hash;

namespace holdfast {

namespace table_detail {
// Untyped rte_hash plumbing shared by every HashedTable instantiation.
rte_hash* create_hash(const char* prefix, uint32_t capacity, uint32_t key_len, int socket,
                      std::string* error);
void* alloc_entries(size_t bytes, int socket);
void free_entries(void* p);
void free_hash(rte_hash* h);
inline constexpr uint32_t kHashSeed = 0x9e3779b9;
void lookup_bulk(const rte_hash* h, const void** keys, const uint32_t* hashes, uint32_t n,
                 int32_t* positions);
int32_t lookup(const rte_hash* h, const void* key, uint32_t hash);
int32_t add(rte_hash* h, const void* key, uint32_t hash);
int32_t del(rte_hash* h, const void* key);
[[noreturn]] void inconsistent(uint32_t index, int32_t hash_says);
}  // namespace table_detail

// Entry must be trivially copyable, have a `key` member of type Key and an
// in_use() that is false for an all-zero entry.
template <typename Key, typename Entry>
class HashedTable {
  static_assert(std::is_trivially_copyable_v<Key> && std::is_trivially_copyable_v<Entry>);

 public:
  // Largest burst lookup_bulk accepts (RTE_HASH_LOOKUP_BULK_MAX).
  static constexpr uint32_t kMaxBulk = 64;

  // All memory for `capacity` entries is taken here, on NUMA `socket`.
  // Returns nullptr and sets *error when DPDK memory is short.
  static std::unique_ptr<HashedTable> create(const char* name, uint32_t capacity, int socket,
                                             std::string* error) {
    std::unique_ptr<HashedTable> t(new HashedTable());
    t->capacity_ = capacity;
    t->hash_ = table_detail::create_hash(name, capacity, sizeof(Key), socket, error);
    if (t->hash_ == nullptr) return nullptr;
    t->entries_ =
        static_cast<Entry*>(table_detail::alloc_entries(sizeof(Entry) * capacity, socket));
    if (t->entries_ == nullptr) {
      *error = "cannot allocate " + std::to_string((sizeof(Entry) * capacity) >> 20) + " MiB for " +
               std::to_string(capacity) + " " + name +
               " entries (give DPDK more memory: -m or hugepages)";
      return nullptr;
    }
    return t;
  }
  ~HashedTable() {
    table_detail::free_entries(entries_);
    table_detail::free_hash(hash_);
  }
  HashedTable(const HashedTable&) = delete;
  HashedTable& operator=(const HashedTable&) = delete;

  // The hash rte_hash uses for key (CRC32-C, inline), computed once per
  // packet and passed to the lookups and the insert.
  static uint32_t hash(const Key& key) {
    return rte_hash_crc(&key, sizeof key, table_detail::kHashSeed);
  }

  // positions[i] receives the entry index of keys[i], or a negative value.
  void lookup_bulk(const Key* const* keys, const uint32_t* hashes, uint32_t n,
                   int32_t* positions) const {
    table_detail::lookup_bulk(hash_,
                              const_cast<const void**>(reinterpret_cast<const void* const*>(keys)),
                              hashes, n, positions);
  }
  int32_t lookup(const Key& key, uint32_t h) const { return table_detail::lookup(hash_, &key, h); }
  int32_t lookup(const Key& key) const { return lookup(key, hash(key)); }

  // Adds a key that is not in the table; returns its entry index with the
  // entry zeroed but for the key, or -1 when the table is full.
  int32_t insert(const Key& key, uint32_t h) {
    const int32_t pos = table_detail::add(hash_, &key, h);
    if (pos < 0) return -1;
    std::memset(static_cast<void*>(&entries_[pos]), 0, sizeof(Entry));
    entries_[pos].key = key;
    ++size_;
    return pos;
  }
  int32_t insert(const Key& key) { return insert(key, hash(key)); }
  // Removes the entry at index, which must be in use.
  void erase(uint32_t index) {
    Entry& e = entries_[index];
    int32_t pos = table_detail::del(hash_, &e.key);
    // The hash and the array move in step; a mismatch is memory corruption
    // and forwarding on would apply the wrong state.
    if (pos != static_cast<int32_t>(index)) table_detail::inconsistent(index, pos);
    std::memset(static_cast<void*>(&e), 0, sizeof e);
    --size_;
  }

  Entry& at(uint32_t index) { return entries_[index]; }
  const Entry& at(uint32_t index) const { return entries_[index]; }
  void prefetch(uint32_t index) const { __builtin_prefetch(&entries_[index], 1, 3); }

  uint32_t capacity() const { return capacity_; }
  uint32_t size() const { return size_; }

  // Visits the next `budget` entries after the sweep cursor and calls
  // fn(index, entry) for each one in use; fn may erase it.
  template <typename Fn>
  void sweep(uint32_t budget, Fn&& fn) {
    for (uint32_t i = 0; i < budget && i < capacity_; ++i) {
      const uint32_t index = cursor_;
      cursor_ = cursor_ + 1 == capacity_ ? 0 : cursor_ + 1;
      if (entries_[index].in_use()) fn(index, entries_[index]);
    }
  }
  // Calls fn(index, entry) for every entry in use (control path).
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (uint32_t i = 0; i < capacity_; ++i) {
      if (entries_[i].in_use()) fn(i, entries_[i]);
    }
  }

 private:
  HashedTable() = default;

  rte_hash* hash_ = nullptr;
  Entry* entries_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t size_ = 0;
  uint32_t cursor_ = 0;
};

using FlowTable = HashedTable<FlowKey, Connection>;

}  // namespace holdfast
