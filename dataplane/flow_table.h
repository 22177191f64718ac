// Per-worker tables: keys hashed into buckets of eight (signature,
// position) pairs, entries in an array indexed by position. The position
// doubles as the entry's slot everywhere else (checkpoint regions use the
// same index), so nothing allocates per connection.
//
// Why not rte_hash (which this table replaced, see docs/benchmarks.md):
// rte_hash keeps every key in a key store of its own, so a lookup waits for
// three lines in turn (bucket, key slot, then our entry), and an insert
// pays its bucket search, key copy and free-slot ring. Our entries hold
// their key already. Here a lookup reads a bucket line, then the entry's
// lines, which it needs anyway; with a table far beyond the caches that is
// one round of misses fewer per packet, and the bulk lookup overlaps every
// round of a burst.
//
// Layout: a power-of-two array of 64-byte buckets, at most 80% of their
// slots used at capacity. A key goes into the first bucket with a free slot
// from its home bucket (hash bits) on; every full bucket it passes counts
// one more key overflowing it. A lookup stops at the first bucket that
// holds the key or that nothing overflows, so misses cost one bucket read
// unless neighbours overflowed (F14's overflow counts rather than
// tombstones). Every one of `capacity` keys fits, whatever the collisions:
// the slots outnumber them. Bucket slots never move; positions come from a
// stack of free positions (first 0, 1, 2, ..., then the last freed).
//
// Shared-nothing: a table belongs to one worker, its only reader and
// writer. Entries are removed only between bursts (the cleaner), never
// while a burst holds positions from a bulk lookup.
#pragma once

#include <emmintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include <rte_hash_crc.h>

#include "dataplane/connection.h"

namespace holdfast {

namespace table_detail {
// DPDK memory (hugepages in production) on NUMA `socket`, 64-byte aligned
// and zeroed; nullptr when short.
void* alloc(size_t bytes, int socket);
void release(void* p);
inline constexpr uint32_t kHashSeed = 0x9e3779b9;
[[noreturn]] void inconsistent(uint32_t index);

struct alignas(64) Bucket {
  uint16_t sig[8];    // 0: the slot is free
  uint32_t pos[8];    // the entry of the key in that slot
  uint32_t overflow;  // keys placed beyond this bucket whose home is here or before
  uint32_t reserved[3];
};
static_assert(sizeof(Bucket) == 64, "a bucket is one cache line");

// The upper half of the hash, never 0 (which marks a free slot).
inline uint16_t signature(uint32_t hash) {
  const auto s = static_cast<uint16_t>(hash >> 16);
  return s != 0 ? s : 1;
}

// Bit 2i set: slot i holds sig.
inline uint32_t slots_with(const Bucket& b, uint16_t sig) {
  const __m128i sigs = _mm_load_si128(reinterpret_cast<const __m128i*>(b.sig));
  const __m128i eq = _mm_cmpeq_epi16(sigs, _mm_set1_epi16(static_cast<int16_t>(sig)));
  return static_cast<uint32_t>(_mm_movemask_epi8(eq)) & 0x5555u;
}
inline uint32_t first_slot(uint32_t mask) {
  return static_cast<uint32_t>(__builtin_ctz(mask)) / 2;
}

// Buckets for `capacity` keys at most 80% full, a power of two.
inline uint64_t bucket_count(uint32_t capacity) {
  const uint64_t need = (uint64_t{capacity} * 5 / 4 + 7) / 8;
  uint64_t n = 1;
  while (n < need) n <<= 1;
  return n;
}
}  // namespace table_detail

// Zeroes x with 16-byte stores when its size and alignment allow, else with
// memset. GCC 12 (generic tuning) turns a 128-byte memset into `rep stosq`,
// whose start-up alone costs more than eight stores: `perf` put a third of
// Pipeline::restore's samples on it in recovery.
template <typename T>
[[gnu::always_inline]] inline void zero_entry(T& x) {
  static_assert(std::is_trivially_copyable_v<T>);
  if constexpr (sizeof(T) % 16 == 0 && alignof(T) >= 16) {
    auto* p = reinterpret_cast<__m128i*>(&x);
    const __m128i z = _mm_setzero_si128();
#pragma GCC unroll 16
    for (size_t i = 0; i < sizeof(T) / 16; ++i) _mm_store_si128(p + i, z);
  } else {
    std::memset(static_cast<void*>(&x), 0, sizeof x);
  }
}

// Entry must be trivially copyable, have a `key` member of type Key and an
// in_use() that is false for an all-zero entry. Keys are compared as bytes
// (padding must be zero).
template <typename Key, typename Entry>
class HashedTable {
  static_assert(std::is_trivially_copyable_v<Key> && std::is_trivially_copyable_v<Entry>);
  static_assert(sizeof(Key) % 8 == 0, "keys are compared eight bytes at a time");
  using Bucket = table_detail::Bucket;

 public:
  // Keys lookup_bulk() handles in one go (a longer call goes in chunks).
  static constexpr uint32_t kMaxBulk = 64;
  static constexpr uint32_t kMaxCapacity = 1u << 30;

  // All memory for `capacity` entries is taken here, on NUMA `socket`.
  // Returns nullptr and sets *error when DPDK memory is short.
  static std::unique_ptr<HashedTable> create(const char* name, uint32_t capacity, int socket,
                                             std::string* error) {
    if (capacity == 0 || capacity > kMaxCapacity) {
      *error = std::string("cannot create ") + name + " table for " + std::to_string(capacity) +
               " entries: the size must be 1 to " + std::to_string(kMaxCapacity);
      return nullptr;
    }
    std::unique_ptr<HashedTable> t(new HashedTable());
    t->capacity_ = capacity;
    const uint64_t buckets = table_detail::bucket_count(capacity);
    t->mask_ = static_cast<uint32_t>(buckets - 1);
    const uint64_t bytes = buckets * sizeof(Bucket) + uint64_t{capacity} * sizeof(Entry) +
                           uint64_t{capacity} * sizeof(uint32_t);
    t->buckets_ = static_cast<Bucket*>(table_detail::alloc(buckets * sizeof(Bucket), socket));
    t->entries_ = static_cast<Entry*>(table_detail::alloc(sizeof(Entry) * capacity, socket));
    t->free_ = static_cast<uint32_t*>(table_detail::alloc(sizeof(uint32_t) * capacity, socket));
    if (t->buckets_ == nullptr || t->entries_ == nullptr || t->free_ == nullptr) {
      *error = "cannot allocate " + std::to_string(bytes >> 20) + " MiB for " +
               std::to_string(capacity) + " " + name +
               " entries (give DPDK more memory: -m or hugepages)";
      return nullptr;
    }
    for (uint32_t i = 0; i < capacity; ++i) t->free_[i] = capacity - 1 - i;
    t->free_count_ = capacity;
    return t;
  }
  ~HashedTable() {
    table_detail::release(free_);
    table_detail::release(entries_);
    table_detail::release(buckets_);
  }
  HashedTable(const HashedTable&) = delete;
  HashedTable& operator=(const HashedTable&) = delete;

  // CRC32-C of the key, computed once per packet and passed to the lookups
  // and the insert: the low bits choose the home bucket, the high 16 bits
  // are the signature.
  static uint32_t hash(const Key& key) {
    return rte_hash_crc(&key, sizeof key, table_detail::kHashSeed);
  }

  // positions[i] receives the entry index of keys[i], or -1. The buckets
  // of all n keys are fetched first, then the entries their signatures
  // name, so each round's misses overlap; the hits' entries are then in
  // cache for whoever uses them next.
  void lookup_bulk(const Key* const* keys, const uint32_t* hashes, uint32_t n,
                   int32_t* positions) const {
    for (uint32_t done = 0; done < n; done += kMaxBulk) {
      lookup_chunk(keys + done, hashes + done, std::min(n - done, kMaxBulk), positions + done);
    }
  }
  int32_t lookup(const Key& key, uint32_t h) const {
    return lookup_from(h & mask_, key, table_detail::signature(h));
  }
  int32_t lookup(const Key& key) const { return lookup(key, hash(key)); }

  // Adds a key that is not in the table (h = hash(key)); returns its entry
  // index with the entry zeroed but for the key, or -1 when the table is
  // full.
  int32_t insert(const Key& key, uint32_t h) {
    const int32_t pos = claim(h);
    if (pos < 0) return -1;
    zero_entry(entries_[pos]);
    entries_[pos].key = key;
    return pos;
  }
  int32_t insert(const Key& key) { return insert(key, hash(key)); }
  // The same for a whole entry (its key not in the table, h = hash of it),
  // written once: recovery's restore, which would otherwise zero the entry
  // and then overwrite it.
  int32_t insert_entry(const Entry& e, uint32_t h) {
    const int32_t pos = claim(h);
    if (pos >= 0) entries_[pos] = e;
    return pos;
  }
  // Removes the entry at index, which must be in use.
  void erase(uint32_t index) {
    Entry& e = entries_[index];
    const uint32_t h = hash(e.key);
    const uint16_t sig = table_detail::signature(h);
    uint32_t b = h & mask_;
    for (uint32_t step = 0; step <= mask_; ++step) {
      Bucket& k = buckets_[b];
      for (uint32_t m = table_detail::slots_with(k, sig); m != 0; m &= m - 1) {
        const uint32_t slot = table_detail::first_slot(m);
        if (k.pos[slot] != index) continue;
        k.sig[slot] = 0;
        zero_entry(e);
        free_[free_count_++] = index;
        --size_;
        return;
      }
      // The key went past this bucket when it was inserted.
      if (k.overflow == 0) break;
      --k.overflow;
      b = (b + 1) & mask_;
    }
    // The buckets and the entries move in step; a mismatch is memory
    // corruption, and forwarding on would apply the wrong state.
    table_detail::inconsistent(index);
  }

  Entry& at(uint32_t index) { return entries_[index]; }
  const Entry& at(uint32_t index) const { return entries_[index]; }
  // A hint only. Prefetch helpers must stay this small (or be forced
  // inline): GCC 12 counts a prefetch as no side effect, takes a helper
  // that loads and prefetches (a bucket read, then its entry) for a pure
  // function, and deletes the calls it has not inlined yet (seen in the
  // objects of a helper of that shape: docs/benchmarks.md, staged bursts).
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

  // A free entry for a key of hash h, entered in the first bucket from
  // h's home with an open slot; the entry is left as it was. -1: full.
  int32_t claim(uint32_t h) {
    if (free_count_ == 0) return -1;
    const uint16_t sig = table_detail::signature(h);
    uint32_t b = h & mask_;
    uint32_t open = table_detail::slots_with(buckets_[b], 0);
    while (open == 0) {  // ends: the slots outnumber the keys
      ++buckets_[b].overflow;
      b = (b + 1) & mask_;
      open = table_detail::slots_with(buckets_[b], 0);
    }
    const uint32_t pos = free_[--free_count_];
    const uint32_t slot = table_detail::first_slot(open);
    buckets_[b].sig[slot] = sig;
    buckets_[b].pos[slot] = pos;
    ++size_;
    return static_cast<int32_t>(pos);
  }

  static bool equal(const Key& a, const Key& b) {
    uint64_t diff = 0;
    for (size_t i = 0; i < sizeof(Key); i += 8) {
      uint64_t x;
      uint64_t y;
      std::memcpy(&x, reinterpret_cast<const char*>(&a) + i, 8);
      std::memcpy(&y, reinterpret_cast<const char*>(&b) + i, 8);
      diff |= x ^ y;
    }
    return diff == 0;
  }

  // lookup_bulk() of at most kMaxBulk keys.
  void lookup_chunk(const Key* const* keys, const uint32_t* hashes, uint32_t n,
                    int32_t* positions) const {
    for (uint32_t i = 0; i < n; ++i) __builtin_prefetch(&buckets_[hashes[i] & mask_], 0, 3);
    uint32_t hits[kMaxBulk];
    for (uint32_t i = 0; i < n; ++i) {
      const Bucket& b = buckets_[hashes[i] & mask_];
      hits[i] = table_detail::slots_with(b, table_detail::signature(hashes[i]));
      if (hits[i] != 0) {
        const Entry& e = entries_[b.pos[table_detail::first_slot(hits[i])]];
        __builtin_prefetch(&e, 1, 3);
        __builtin_prefetch(&e.key, 0, 3);
      }
    }
    // The home bucket is searched here, with the matches found above, and
    // lookup_from() only takes over past an overflowing one: calling it for
    // every key instead was 1.1 to 1.2 times slower per packet (two ABBA
    // rounds, 1k to 1M connections).
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t home = hashes[i] & mask_;
      const Bucket& b = buckets_[home];
      int32_t found = -1;
      for (uint32_t m = hits[i]; m != 0; m &= m - 1) {
        const uint32_t pos = b.pos[table_detail::first_slot(m)];
        if (equal(entries_[pos].key, *keys[i])) {
          found = static_cast<int32_t>(pos);
          break;
        }
      }
      if (found < 0 && b.overflow != 0) {
        found = lookup_from((home + 1) & mask_, *keys[i], table_detail::signature(hashes[i]));
      }
      positions[i] = found;
    }
  }
  // The key's entry, searching from bucket b on: its home, or a bucket
  // after it when the ones before overflowed.
  int32_t lookup_from(uint32_t b, const Key& key, uint16_t sig) const {
    for (uint32_t step = 0; step <= mask_; ++step) {
      const Bucket& k = buckets_[b];
      for (uint32_t m = table_detail::slots_with(k, sig); m != 0; m &= m - 1) {
        const uint32_t pos = k.pos[table_detail::first_slot(m)];
        if (equal(entries_[pos].key, key)) return static_cast<int32_t>(pos);
      }
      if (k.overflow == 0) return -1;
      b = (b + 1) & mask_;
    }
    return -1;
  }

  Bucket* buckets_ = nullptr;
  Entry* entries_ = nullptr;
  uint32_t* free_ = nullptr;  // free positions, the next on top
  uint32_t mask_ = 0;         // buckets - 1
  uint32_t capacity_ = 0;
  uint32_t size_ = 0;
  uint32_t free_count_ = 0;
  uint32_t cursor_ = 0;
};

using FlowTable = HashedTable<FlowKey, Connection>;

}  // namespace holdfast
