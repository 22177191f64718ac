// Reading one slot of the store under its sequence counter (the other half
// of WorkerCheckpoint::put): recovery reads a crashed writer's set,
// holdfastctl a live one.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "checkpoint/client.h"
#include "checkpoint/writer.h"

namespace holdfast::ckpt {

// A slot read under its sequence counter: stable only if the counter was
// even and unchanged across the copy (a live writer is possible for a
// reader; after a crash the counter simply stays odd if torn).
struct SlotRead {
  SlotHeader header;
  alignas(8) uint8_t payload[kMaxSlicePayload];
  bool stable;
};

// slot_runs() (store_format.h) for a region as mapped in this process.
class StoreExtents {
 public:
  // fd: the store file, mapped from offset 0 at `store`; -1: unknown, and
  // every slot is visited.
  StoreExtents(int fd, const uint8_t* store) : fd_(fd), store_(store) {}

  using Run = SlotRun;
  std::vector<Run> runs(const MappedRegion& r) const {
    if (r.slots == nullptr) return {};
    return slot_runs(fd_, static_cast<uint64_t>(r.slots - store_), r.slot_size, r.slot_count);
  }

 private:
  int fd_;
  const uint8_t* store_;
};

namespace detail {
// The slot's header and its first min(n, room) payload bytes into dst,
// under the sequence counter. A header whose length claims more than the
// slot's room has it cut to the room, so a length check refuses it and no
// reader takes bytes past the slot for its payload. Returns false for an
// empty slot (stable, no connection); *stable: whether the copy can be
// trusted.
[[gnu::always_inline]] inline bool read_slot_bytes(const MappedRegion& r, uint32_t i,
                                                   SlotHeader* header, void* dst, size_t n,
                                                   bool* stable) {
  const SlotHeader* h = r.slot(i);
  const uint32_t before = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
  // Most slots of a set are empty: stable and without a connection.
  if (before % 2 == 0 && __atomic_load_n(&h->conn_id, __ATOMIC_RELAXED) == 0) return false;
  std::memcpy(header, h, sizeof(SlotHeader));
  const size_t room = r.slot_size - sizeof(SlotHeader);
  const uint8_t* payload = reinterpret_cast<const uint8_t*>(h) + sizeof(SlotHeader);
  // Two calls, so that a constant n (read_slot_as) is copied inline.
  if (n <= room) {
    std::memcpy(dst, payload, n);
  } else {
    std::memcpy(dst, payload, room);
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint32_t after = __atomic_load_n(&h->seq, __ATOMIC_RELAXED);
  *stable = before == after && before % 2 == 0;
  if (header->length > room) header->length = static_cast<uint16_t>(room);
  return header->conn_id != 0 || !*stable;
}
}  // namespace detail

// Returns false for an empty slot (stable, no connection); otherwise copies
// it into *out, with out->stable telling whether the copy can be trusted.
inline bool read_slot(const MappedRegion& r, uint32_t i, SlotRead* out) {
  return detail::read_slot_bytes(r, i, &out->header, out->payload, sizeof out->payload,
                                 &out->stable);
}

// read_slot() for a payload of a known type, copied once, straight where it
// is wanted (recovery's pass copies every slot of a set): the header into
// *header and the payload's first sizeof(T) bytes into *payload, under the
// same sequence check, with *stable telling whether both can be trusted.
// A slot with no room for a T has its header's length cut to the room it
// has, so slot_mismatch() calls it bad_length. Returns false for an empty
// slot.
template <typename T>
inline bool read_slot_as(const MappedRegion& r, uint32_t i, SlotHeader* header, T* payload,
                         bool* stable) {
  static_assert(std::is_trivially_copyable_v<T>);
  return detail::read_slot_bytes(r, i, header, static_cast<void*>(payload), sizeof(T), stable);
}

// Why a stable slot's header cannot be module `module`'s slice of schema
// `schema` and `length` bytes ("unknown_schema", "bad_length"), or nullptr
// when it can. The names are the counters recovery and holdfastctl report.
inline const char* slot_mismatch(const SlotHeader& h, uint8_t module, uint16_t schema,
                                 size_t length) {
  if (h.module != module || h.schema != schema) return "unknown_schema";
  if (h.length != length) return "bad_length";
  return nullptr;
}

// Why a stable slot cannot be read as module `module`'s slice of schema
// `schema` and `length` bytes ("unknown_schema", "bad_length"), or nullptr
// when it can. The names are the counters recovery and holdfastctl report.
inline const char* slot_mismatch(const SlotRead& s, uint8_t module, uint16_t schema,
                                 size_t length) {
  return slot_mismatch(s.header, module, schema, length);
}

// The regions of `set`, by worker and module, as mapped at `store` (a
// region of no module this build knows, or reaching past the store's end,
// stays unmapped and is counted in *bad). One entry per worker up to the
// highest worker the set names.
inline std::vector<std::array<MappedRegion, kModuleSlots>> map_regions(const uint8_t* store,
                                                                       uint64_t store_bytes,
                                                                       const RegionSet& set,
                                                                       uint64_t* bad) {
  uint32_t workers = 0;
  for (const RegionEntry& r : set.regions) {
    if (r.worker + 1u > workers) workers = r.worker + 1u;
  }
  std::vector<std::array<MappedRegion, kModuleSlots>> out(workers);
  for (const RegionEntry& r : set.regions) {
    if (r.module >= kModuleSlots || r.offset + r.bytes() > store_bytes) {
      ++*bad;
      continue;
    }
    MappedRegion& m = out[r.worker][r.module];
    m.slots = const_cast<uint8_t*>(store) + r.offset;
    m.slot_size = r.slot_size;
    m.slot_count = r.slot_count;
    m.schema = r.schema;
  }
  return out;
}

}  // namespace holdfast::ckpt
