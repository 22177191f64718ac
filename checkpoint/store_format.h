// The checkpoint store: one shared-memory file owned by holdfast-ckptd and
// written one-sidedly by the dataplane (docs/checkpoint.md).
//
//   offset 0              metadata copy A  (StoreMeta)
//   offset kMetaStride    metadata copy B
//   offset 2*kMetaStride  data: regions of slots, each 4 KiB-aligned
//
// Metadata: which applications have data, and the region table. It is
// written only by holdfast-ckptd, always into the copy that is not current,
// with a generation one higher and a CRC; the valid copy with the higher
// generation is current. A crash while writing tears only the copy being
// written, and the other one still describes the store.
//
// Regions: one per (application, region set, worker, module). A region set
// is one start of the dataplane: it writes the set it was given while it may
// still recover from the previous, committed one. Slot i of a worker's
// regions belongs to the connection at position i of that worker's flow
// table. Each slot is a SlotHeader followed by the module's slice, written
// under a sequence counter that is odd while the slot is being written.
//
// Everything here is plain data with fixed sizes, checked at compile time.
// It is the on-disk (on-shm) format: changing a layout means a new
// kLayoutVersion.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

namespace holdfast::ckpt {

inline constexpr char kMagic[8] = {'H', 'F', 'S', 'T', 'O', 'R', 'E', '1'};
inline constexpr uint32_t kLayoutVersion = 1;
inline constexpr size_t kMaxApps = 8;
// Two sets of the largest dataplane (64 workers x 5 modules) must fit at
// once while a restarted writer still recovers from its committed set.
inline constexpr size_t kMaxRegions = 1024;
inline constexpr size_t kAppIdSize = 32;  // including the terminating NUL
inline constexpr size_t kPage = 4096;

// Module number 0 in the store is the base layer; layer-4 and layer-7
// modules use their ModuleId (modules/module.h).
inline constexpr uint8_t kBaseModule = 0;

struct RegionEntry {
  char app[kAppIdSize];
  uint32_t set;        // region set (one dataplane start) it belongs to
  uint16_t module;     // kBaseModule or a ModuleId
  uint16_t schema;     // slice schema version the writer uses
  uint16_t worker;     // owning worker of the writing dataplane
  uint16_t in_use;     // 0: free table entry
  uint32_t slot_size;  // bytes per slot, SlotHeader included, multiple of 8
  uint32_t slot_count;
  uint32_t reserved;
  uint64_t offset;  // from the start of the file, kPage-aligned
  uint64_t bytes() const { return uint64_t{slot_size} * slot_count; }
};
static_assert(sizeof(RegionEntry) == 64);
static_assert(std::is_trivially_copyable_v<RegionEntry>);

struct AppEntry {
  char app[kAppIdSize];
  uint32_t committed_set;  // the set to recover from; 0: none
  uint32_t staging_set;    // handed to the running writer, not yet committed; 0: none
  uint32_t data_epoch;     // epoch of the writer of the committed set
  uint32_t next_set;       // next set number to hand out
  uint32_t in_use;
  uint32_t reserved[3];
};
static_assert(sizeof(AppEntry) == 64);

struct StoreMeta {
  char magic[8];
  uint32_t layout_version;
  uint32_t meta_bytes;  // sizeof(StoreMeta), as a sanity check
  uint64_t store_bytes;
  uint64_t generation;  // +1 per metadata change
  uint32_t epoch;       // the last epoch handed out
  uint32_t crc;         // CRC-32 of this copy computed with crc = 0
  AppEntry apps[kMaxApps];
  RegionEntry regions[kMaxRegions];
};
static_assert(std::is_trivially_copyable_v<StoreMeta>);

inline constexpr size_t kMetaStride = (sizeof(StoreMeta) + kPage - 1) / kPage * kPage;
inline constexpr size_t kDataOffset = 2 * kMetaStride;

struct SlotHeader {
  uint32_t seq;     // even: stable; odd: being written
  uint16_t length;  // payload bytes
  uint8_t module;
  uint8_t schema;
  uint64_t conn_id;  // 0: empty slot
};
static_assert(sizeof(SlotHeader) == 16);

inline constexpr uint32_t slot_size_for(size_t payload) {
  return static_cast<uint32_t>((sizeof(SlotHeader) + payload + 7) / 8 * 8);
}

// The slots that can hold anything, of `count` slots of `size` bytes from
// byte `begin` of the store file fd. A store on tmpfs (the default,
// /dev/shm) keeps the pages no writer touched as holes, which read as
// zeros: empty slots. Reading one through a mapping would make the kernel
// allocate it, so a scan of a large, mostly empty set would both take long
// (a page fault per 4 KiB) and fill the store's memory.
// lseek(SEEK_DATA/SEEK_HOLE) names the stretches that are not holes (a page
// that was swapped out counts as data). A slot can hold something only if
// its header lies in one of them: every put writes the header, at the
// slot's start, first. Where the file system does not keep holes
// (hugetlbfs answers "all data"), or cannot tell, every slot is listed.
struct SlotRun {
  uint32_t first;
  uint32_t end;  // runs of slots [first, end), in order, each slot at most once
};
inline std::vector<SlotRun> slot_runs(int fd, uint64_t begin, uint32_t size, uint32_t count) {
  std::vector<SlotRun> out;
  if (count == 0) return out;
  if (fd < 0 || size < sizeof(SlotHeader)) {
    out.push_back({0, count});
    return out;
  }
  const uint64_t end = begin + uint64_t{count} * size;
  // The first slot starting at or after byte `at` of the file.
  auto slot_from = [&](uint64_t at) {
    return static_cast<uint32_t>(std::min<uint64_t>(count, (at - begin + size - 1) / size));
  };
  uint64_t at = begin;
  while (at < end) {
    const off_t data = lseek(fd, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) {
      // ENXIO: only holes from here to the end of the file; anything else:
      // cannot tell, so list the rest.
      if (errno != ENXIO) out.push_back({slot_from(at), count});
      break;
    }
    if (static_cast<uint64_t>(data) >= end) break;
    const off_t hole = lseek(fd, data, SEEK_HOLE);
    const uint64_t stop = hole <= data ? end : std::min(end, static_cast<uint64_t>(hole));
    const uint32_t first = slot_from(static_cast<uint64_t>(data));
    // Slots whose header ends by `stop`.
    const uint32_t last =
        stop < begin + sizeof(SlotHeader) ? 0 : slot_from(stop - sizeof(SlotHeader) + 1);
    if (first < last) out.push_back({first, last});
    at = stop;
  }
  return out;
}

// Connection IDs carry a 24-bit epoch above a 40-bit counter.
inline constexpr uint32_t kMaxEpoch = (1u << 24) - 1;

inline bool app_id_valid(std::string_view id) {
  if (id.empty() || id.size() >= kAppIdSize) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

inline bool app_equals(const char (&field)[kAppIdSize], std::string_view id) {
  return strnlen(field, kAppIdSize) == id.size() && std::memcmp(field, id.data(), id.size()) == 0;
}

}  // namespace holdfast::ckpt
