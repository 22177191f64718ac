// The dataplane's side of the store: one worker's regions and the two
// operations every module uses, put and erase (docs/checkpoint.md).
//
// Theory of operation: the store is mapped into the dataplane; slot i of a
// worker's region for module m belongs to the connection at position i of
// that worker's flow table. put() writes a slot under its sequence counter
// (odd while the slot is being written, even when stable), so a crash tears
// at most the one slot being written and recovery can tell it is torn. It is
// a handful of plain stores into shared memory: no system call, no lock, no
// allocation, and it is done before the packet that caused the change is
// transmitted (output commit). A process crash cannot lose a store that
// has executed: the memory belongs to the store file, not to the process.
#pragma once

#include <immintrin.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "checkpoint/store_format.h"
#include "dataplane/connection.h"

namespace holdfast::ckpt {

// The base layer as stored: the connection's identity and direction, when
// it was created and last seen. The connection ID is in the slot header.
struct BaseSlice {
  uint8_t lo[16];
  uint8_t hi[16];
  uint16_t lo_port;
  uint16_t hi_port;
  uint8_t proto;
  uint8_t zone;
  uint8_t flags;  // Connection::k*
  uint8_t l4;     // ModuleId of the layer-4 module holding the other slice
  uint64_t master_id;
  uint32_t created_s;
  uint32_t last_seen_ms;
};
static_assert(sizeof(BaseSlice) == 56, "base slot: 16-byte header + 56 = 72 bytes");
static_assert(std::is_trivially_copyable_v<BaseSlice>);
inline constexpr uint16_t kBaseSchema = 1;

inline BaseSlice base_of(const Connection& c) {
  BaseSlice b;
  std::memcpy(b.lo, c.key.lo.bytes.data(), 16);
  std::memcpy(b.hi, c.key.hi.bytes.data(), 16);
  b.lo_port = c.key.lo_port;
  b.hi_port = c.key.hi_port;
  b.proto = c.key.proto;
  b.zone = c.key.zone;
  b.flags = c.flags;
  b.l4 = static_cast<uint8_t>(c.l4);
  b.master_id = c.master_id;
  b.created_s = c.created_s;
  b.last_seen_ms = c.last_seen_ms;
  return b;
}

// The base's key, written into *k as three 16-byte stores. The base's
// first 38 bytes are laid out as the key's (checked below); the third
// store takes the ports, protocol and zone with the rest masked to the
// key's zero padding. Built field by field on the stack instead, the key
// was then copied with 16-byte loads of those narrow stores, which the
// core cannot forward: `perf` put 15% of the samples of recovery's
// per-connection pass on that one stall.
inline void store_key(const BaseSlice& b, FlowKey* k) {
  static_assert(offsetof(BaseSlice, lo) == offsetof(FlowKey, lo) &&
                offsetof(BaseSlice, hi) == offsetof(FlowKey, hi) &&
                offsetof(BaseSlice, lo_port) == offsetof(FlowKey, lo_port) &&
                offsetof(BaseSlice, hi_port) == offsetof(FlowKey, hi_port) &&
                offsetof(BaseSlice, proto) == offsetof(FlowKey, proto) &&
                offsetof(BaseSlice, zone) == offsetof(FlowKey, zone) &&
                offsetof(FlowKey, pad) == 38 && sizeof(FlowKey) == 48 && sizeof(BaseSlice) >= 48);
  const auto* from = reinterpret_cast<const __m128i*>(&b);
  auto* to = reinterpret_cast<__m128i*>(k);
  const __m128i keep = _mm_set_epi64x(0, 0x0000ffffffffffff);  // bytes 32..37
  _mm_storeu_si128(to, _mm_loadu_si128(from));
  _mm_storeu_si128(to + 1, _mm_loadu_si128(from + 1));
  _mm_storeu_si128(to + 2, _mm_and_si128(_mm_loadu_si128(from + 2), keep));
}

inline FlowKey key_of(const BaseSlice& b) {
  FlowKey k;
  store_key(b, &k);
  return k;
}

// Module numbers in the store: kBaseModule, then the ModuleIds (layer 4,
// then layer 7), the pipeline's fragment records, SIP's call records (the
// SIP module's second region: ModuleId::sip holds its sessions), then the
// worker's rules record.
inline constexpr size_t kModuleSlots = 10;
inline constexpr uint8_t kFragmentModule = 7;
inline constexpr uint16_t kFragmentSchema = 1;
inline constexpr uint8_t kSipCallModule = 8;
inline constexpr uint8_t kRulesModule = 9;
inline constexpr uint16_t kRulesSchema = 1;

// The rules record, a worker's one slot of kRulesModule: while it holds a
// digest, every connection of the worker's slots that was admitted by a
// rule was admitted by the rules of that digest (Policy::digest), and
// recovery under rules of the same digest need not classify them again.
// Empty (erased) while a reload re-checks the table.
struct RulesRecord {
  uint64_t digest;
  uint32_t rules;  // how many (for people reading the store)
  uint8_t default_action;
  uint8_t reserved[3];
};
static_assert(sizeof(RulesRecord) == 16 && std::is_trivially_copyable_v<RulesRecord>);
// Slot header connection ID of a fragment record that belongs to no
// connection (0 would mark the slot empty).
inline constexpr uint64_t kNoConnection = ~uint64_t{0};
// Largest slice any module stores (recovery's read buffer).
inline constexpr size_t kMaxSlicePayload = 4096;

// Regions of the base layer and the layer-4 modules are positional: slot i
// belongs to the connection at flow-table position i. Layer-7 modules and
// fragment records have slots of their own, fewer than connections.
inline constexpr bool positional(uint8_t module) {
  return module <= static_cast<uint8_t>(ModuleId::other);
}

// A layer-7 slice as stored: the worker's pool keeps it like this, so a put
// is one copy. position is the connection's flow-table position when it was
// written, which recovery maps to the connection restored from there.
template <typename Slice>
struct L7Record {
  uint32_t position;
  uint32_t reserved;
  Slice slice;
};

// One region as mapped in this process.
struct MappedRegion {
  uint8_t* slots = nullptr;  // nullptr: no region for this module
  uint32_t slot_size = 0;
  uint32_t slot_count = 0;
  uint16_t schema = 0;

  SlotHeader* slot(uint32_t i) const {
    return reinterpret_cast<SlotHeader*>(slots + uint64_t{i} * slot_size);
  }
};

// One worker's regions of the set it writes.
class WorkerCheckpoint {
 public:
  void set_region(uint8_t module, const MappedRegion& r) {
    regions_[module] = r;
    slots_ = 0xffffffffu;
    for (size_t m = 0; m < kModuleSlots; ++m) {
      if (!positional(static_cast<uint8_t>(m)) || regions_[m].slots == nullptr) continue;
      if (regions_[m].slot_count < slots_) slots_ = regions_[m].slot_count;
    }
  }
  const MappedRegion& region(uint8_t module) const { return regions_[module]; }

  // Connections at positions from slots() on have no slot (a store too
  // small for the flow table): the store is full for them.
  uint32_t slots() const { return slots_; }
  bool covers(uint32_t position) const { return position < slots_; }
  bool covers_fragment(uint32_t position) const {
    return position < regions_[kFragmentModule].slot_count;
  }
  // Whether slot `slot` of a non-positional region exists.
  bool covers_slot(uint8_t module, uint32_t slot) const {
    return slot < regions_[module].slot_count;
  }

  // A write only stores into the slot, never loads from it. The sequence
  // number comes from this writer's own counter, not from the slot: a load
  // would wait for the slot's cache line (not in cache at 100k connections
  // and more), and nothing after it could retire meanwhile, so every
  // packet that changes state would pay a whole memory latency. Stores
  // wait in the store buffer while the core goes on. The counter's next
  // even value also serves a reader's before/after comparison
  // (slot_read.h): every write leaves a value the slot has not held in
  // this writer's life, which starts on a zeroed set (until the counter
  // wraps, after 2^31 writes).
  void put(uint8_t module, uint32_t position, uint64_t conn_id, const void* slice,
           uint32_t length) {
    const MappedRegion& r = regions_[module];
    SlotHeader* h = r.slot(position);
    const uint32_t seq = next_seq();
    // Odd while writing. The release fence keeps the slice's stores after
    // the odd counter (x86 stores are ordered; this stops the compiler).
    __atomic_store_n(&h->seq, seq - 1, __ATOMIC_RELAXED);
    std::atomic_thread_fence(std::memory_order_release);
    h->length = static_cast<uint16_t>(length);
    h->module = module;
    h->schema = static_cast<uint8_t>(r.schema);
    h->conn_id = conn_id;
    std::memcpy(reinterpret_cast<uint8_t*>(h) + sizeof(SlotHeader), slice, length);
    __atomic_store_n(&h->seq, seq, __ATOMIC_RELEASE);
    ++writes_[module];
  }

  void put_base(uint32_t position, const Connection& c) {
    const BaseSlice b = base_of(c);
    put(kBaseModule, position, c.id, &b, sizeof b);
  }

  template <typename Slice>
  void put_slice(ModuleId module, uint32_t position, uint64_t conn_id, const Slice& s) {
    put(static_cast<uint8_t>(module), position, conn_id, &s, sizeof s);
  }

  void erase(uint8_t module, uint32_t position) {
    const MappedRegion& r = regions_[module];
    SlotHeader* h = r.slot(position);
    const uint32_t seq = next_seq();
    __atomic_store_n(&h->seq, seq - 1, __ATOMIC_RELAXED);
    std::atomic_thread_fence(std::memory_order_release);
    h->conn_id = 0;
    h->length = 0;
    __atomic_store_n(&h->seq, seq, __ATOMIC_RELEASE);
    ++writes_[module];
  }

  // Asks for the cache lines of a slot a put is likely to write soon, so
  // the put's stores find them (a slot may straddle two lines).
  void prefetch(uint8_t module, uint32_t position) const {
    const MappedRegion& r = regions_[module];
    const auto* first = reinterpret_cast<const uint8_t*>(r.slot(position));
    __builtin_prefetch(first, 1, 3);
    __builtin_prefetch(first + r.slot_size - 1, 1, 3);
  }

  // Puts and erases of module's slots so far.
  uint64_t writes(uint8_t module) const { return writes_[module]; }

 private:
  uint32_t next_seq() {
    seq_ += 2;
    return seq_;
  }

  MappedRegion regions_[kModuleSlots];
  uint32_t slots_ = 0;
  uint32_t seq_ = 0;  // the even value the last write left
  uint64_t writes_[kModuleSlots] = {};
};

}  // namespace holdfast::ckpt
