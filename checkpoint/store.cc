#include "checkpoint/store.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/crc.hpp>
#include <cerrno>
#include <cstring>

namespace holdfast::ckpt {
namespace {

constexpr long kHugetlbfsMagic = 0x958458f6;

std::string errno_text() {
  return std::strerror(errno);
}

uint64_t round_up(uint64_t v, uint64_t to) {
  return (v + to - 1) / to * to;
}

// Zeroes [offset, offset + bytes) of the store. Punching a hole both zeroes
// the range and gives its memory back (the file is sparse); filesystems that
// cannot punch get a memset.
void zero_range(int fd, uint8_t* map, uint64_t offset, uint64_t bytes) {
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                static_cast<off_t>(bytes)) != 0) {
    std::memset(map + offset, 0, bytes);
  }
}

bool app_field_ok(const char (&field)[kAppIdSize]) {
  const size_t n = strnlen(field, kAppIdSize);
  return n < kAppIdSize && app_id_valid(std::string_view(field, n));
}

}  // namespace

uint32_t meta_crc(const StoreMeta& m) {
  StoreMeta copy = m;
  copy.crc = 0;
  boost::crc_32_type crc;
  crc.process_bytes(&copy, sizeof copy);
  return crc.checksum();
}

bool validate_meta(const StoreMeta& m, uint64_t file_bytes, std::string* why) {
  if (std::memcmp(m.magic, kMagic, sizeof kMagic) != 0) {
    *why = "not a holdfast checkpoint store (bad magic)";
    return false;
  }
  if (m.layout_version != kLayoutVersion) {
    *why = "store layout version " + std::to_string(m.layout_version) + ", this build reads " +
           std::to_string(kLayoutVersion);
    return false;
  }
  if (m.meta_bytes != sizeof(StoreMeta)) {
    *why = "metadata size " + std::to_string(m.meta_bytes) + " is not " +
           std::to_string(sizeof(StoreMeta));
    return false;
  }
  if (meta_crc(m) != m.crc) {
    *why = "metadata checksum mismatch";
    return false;
  }
  if (m.store_bytes != file_bytes) {
    *why = "metadata says " + std::to_string(m.store_bytes) + " bytes, file has " +
           std::to_string(file_bytes);
    return false;
  }
  for (const AppEntry& a : m.apps) {
    if (a.in_use && !app_field_ok(a.app)) {
      *why = "application entry with an invalid name";
      return false;
    }
  }
  std::vector<const RegionEntry*> used;
  for (const RegionEntry& r : m.regions) {
    if (!r.in_use) continue;
    if (!app_field_ok(r.app) || r.slot_size < sizeof(SlotHeader) || r.slot_size % 8 != 0 ||
        r.offset % kPage != 0 || r.offset < kDataOffset || r.offset + r.bytes() > file_bytes ||
        r.offset + r.bytes() < r.offset) {
      *why = "region table entry out of bounds";
      return false;
    }
    used.push_back(&r);
  }
  std::sort(used.begin(), used.end(),
            [](const RegionEntry* a, const RegionEntry* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < used.size(); ++i) {
    if (used[i - 1]->offset + used[i - 1]->bytes() > used[i]->offset) {
      *why = "regions overlap";
      return false;
    }
  }
  return true;
}

std::unique_ptr<Store> Store::open(const std::string& path, uint64_t bytes, std::string* error) {
  std::unique_ptr<Store> s(new Store());
  s->path_ = path;
  bool created = false;
  s->fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (s->fd_ < 0 && errno == ENOENT) {
    s->fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    created = s->fd_ >= 0;
  }
  if (s->fd_ < 0) {
    *error = "cannot open " + path + ": " + errno_text();
    return nullptr;
  }
  // One server per store: a second one would hand out the same epochs.
  if (flock(s->fd_, LOCK_EX | LOCK_NB) != 0) {
    *error = path + " is in use by another holdfast-ckptd";
    return nullptr;
  }
  struct statfs fs;
  const bool hugetlb = fstatfs(s->fd_, &fs) == 0 && fs.f_type == kHugetlbfsMagic;
  if (created) {
    uint64_t size = round_up(std::max<uint64_t>(bytes, kDataOffset + kPage),
                             hugetlb ? static_cast<uint64_t>(fs.f_bsize) : kPage);
    if (ftruncate(s->fd_, static_cast<off_t>(size)) != 0) {
      *error = "cannot size " + path + " to " + std::to_string(size) + " bytes: " + errno_text();
      unlink(path.c_str());
      return nullptr;
    }
  }
  struct stat st;
  if (fstat(s->fd_, &st) != 0) {
    *error = "cannot stat " + path + ": " + errno_text();
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    *error = path + " is not a regular file";
    return nullptr;
  }
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < kDataOffset) {
    *error = path + " is not a holdfast checkpoint store (only " + std::to_string(file_bytes) +
             " bytes)";
    return nullptr;
  }
  void* map = mmap(nullptr, file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd_, 0);
  if (map == MAP_FAILED) {
    *error = "cannot map " + path + ": " + errno_text();
    return nullptr;
  }
  s->map_ = static_cast<uint8_t*>(map);

  if (created) {
    StoreMeta& m = s->meta_;
    std::memcpy(m.magic, kMagic, sizeof kMagic);
    m.layout_version = kLayoutVersion;
    m.meta_bytes = sizeof(StoreMeta);
    m.store_bytes = file_bytes;
    m.generation = 0;
    s->current_copy_ = 1;  // so that the first publish writes copy A
    if (!s->publish(error)) return nullptr;
    return s;
  }
  // Use the newest valid copy; say why when neither is.
  std::string why[2];
  const StoreMeta* copies[2] = {reinterpret_cast<const StoreMeta*>(s->map_),
                                reinterpret_cast<const StoreMeta*>(s->map_ + kMetaStride)};
  int best = -1;
  for (int i = 0; i < 2; ++i) {
    if (!validate_meta(*copies[i], file_bytes, &why[i])) continue;
    if (best < 0 || copies[i]->generation > copies[best]->generation) best = i;
  }
  if (best < 0) {
    // A foreign file fails the magic in both copies: say that, not "corrupt".
    const std::string kVersion = "store layout version";
    if (why[0] == why[1] && why[0].rfind("not a holdfast", 0) == 0) {
      *error = path + " is " + why[0] + "; refusing to touch it";
    } else if (why[0].rfind(kVersion, 0) == 0 || why[1].rfind(kVersion, 0) == 0) {
      // Another build's store is not corrupt: say which version it is.
      const std::string& which = why[0].rfind(kVersion, 0) == 0 ? why[0] : why[1];
      *error = path + " holds a " + which + "; refusing to use it";
    } else {
      *error = path + " is corrupt (copy A: " + why[0] + "; copy B: " + why[1] +
               "); refusing to use it — move it away to start with an empty store";
    }
    return nullptr;
  }
  std::memcpy(&s->meta_, copies[best], sizeof(StoreMeta));
  s->current_copy_ = best;
  return s;
}

Store::~Store() {
  if (map_ != nullptr) munmap(map_, meta_.store_bytes);
  if (fd_ >= 0) close(fd_);
}

bool Store::publish(std::string* error) {
  if (meta_.store_bytes == 0) {
    *error = "store not initialised";
    return false;
  }
  meta_.generation += 1;
  meta_.crc = meta_crc(meta_);
  const int target = 1 - current_copy_;
  uint8_t* dst = map_ + static_cast<size_t>(target) * kMetaStride;
  std::memcpy(dst, &meta_, sizeof meta_);
  // The copy is complete before anyone can take it for current; msync makes
  // it reach the file on filesystems that are not memory (hugetlbfs and
  // tmpfs need nothing, but it is cheap at control-path rates).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (msync(dst - (reinterpret_cast<uintptr_t>(dst) % kPage), kMetaStride, MS_SYNC) != 0) {
    *error = "cannot sync store metadata: " + errno_text();
    return false;
  }
  current_copy_ = target;
  return true;
}

uint32_t Store::next_epoch(std::string* error) {
  if (meta_.epoch >= kMaxEpoch) {
    *error =
        "all " + std::to_string(kMaxEpoch) + " epochs are used up; clear the store to start again";
    return 0;
  }
  meta_.epoch += 1;
  if (!publish(error)) return 0;
  return meta_.epoch;
}

const AppEntry* Store::app(const std::string& app) const {
  for (const AppEntry& a : meta_.apps) {
    if (a.in_use && app_equals(a.app, app)) return &a;
  }
  return nullptr;
}

std::vector<RegionEntry> Store::regions(const std::string& app, uint32_t set) const {
  std::vector<RegionEntry> out;
  for (const RegionEntry& r : meta_.regions) {
    if (r.in_use && r.set == set && app_equals(r.app, app)) out.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const RegionEntry& a, const RegionEntry& b) {
    return a.worker != b.worker ? a.worker < b.worker : a.module < b.module;
  });
  return out;
}

uint64_t Store::used_bytes() const {
  uint64_t n = kDataOffset;
  for (const RegionEntry& r : meta_.regions) {
    if (r.in_use) n += round_up(r.bytes(), kPage);
  }
  return n;
}

bool Store::allocate(const SetRequest& req, uint32_t set, uint32_t slots, StoreMeta* meta) const {
  // Extents in use, sorted, to find first-fit gaps in.
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (const RegionEntry& r : meta->regions) {
    if (r.in_use) used.emplace_back(r.offset, r.offset + round_up(r.bytes(), kPage));
  }
  for (uint32_t w = 0; w < req.workers; ++w) {
    for (const ModuleShape& m : req.modules) {
      // A module with a slot count of its own (the fragment records) shrinks
      // in proportion when the store cannot hold the whole request.
      const uint32_t count =
          m.slots == 0 ? slots
                       : static_cast<uint32_t>(std::max<uint64_t>(
                             1, uint64_t{m.slots} * slots / std::max<uint32_t>(req.slots, 1)));
      const uint64_t need = round_up(uint64_t{m.slot_size} * count, kPage);
      std::sort(used.begin(), used.end());
      uint64_t at = kDataOffset;
      for (const auto& [begin, end] : used) {
        if (begin >= at + need) break;
        at = std::max(at, end);
      }
      if (at + need > meta->store_bytes) return false;
      RegionEntry* e = nullptr;
      for (RegionEntry& r : meta->regions) {
        if (!r.in_use) {
          e = &r;
          break;
        }
      }
      if (e == nullptr) return false;
      *e = RegionEntry{};
      std::memcpy(e->app, req.app.data(), req.app.size());
      e->set = set;
      e->module = m.module;
      e->schema = m.schema;
      e->worker = static_cast<uint16_t>(w);
      e->in_use = 1;
      e->slot_size = m.slot_size;
      e->slot_count = count;
      e->offset = at;
      used.emplace_back(at, at + need);
    }
  }
  return true;
}

AppEntry* Store::prepare_app(StoreMeta& meta, const std::string& app, std::string* error) {
  AppEntry* a = nullptr;
  for (AppEntry& e : meta.apps) {
    if (e.in_use && app_equals(e.app, app)) a = &e;
  }
  if (a == nullptr) {
    for (AppEntry& e : meta.apps) {
      if (!e.in_use) {
        a = &e;
        break;
      }
    }
    if (a == nullptr) {
      *error = "the store already holds " + std::to_string(kMaxApps) + " applications";
      return nullptr;
    }
    *a = AppEntry{};
    std::memcpy(a->app, app.data(), app.size());
    a->in_use = 1;
    a->next_set = 1;
  }
  // A staging set nobody committed belongs to a writer that died before it
  // forwarded anything: it holds nothing to keep.
  if (a->staging_set != 0) {
    for (RegionEntry& r : meta.regions) {
      if (r.in_use && r.set == a->staging_set && app_equals(r.app, app)) r = RegionEntry{};
    }
    a->staging_set = 0;
  }
  return a;
}

std::optional<uint32_t> Store::begin_set(const SetRequest& req, uint32_t min_slots,
                                         std::string* error) {
  if (!app_id_valid(req.app)) {
    *error = "invalid application id";
    return std::nullopt;
  }
  if (req.workers == 0 || req.modules.empty() || req.slots == 0) {
    *error = "empty layout";
    return std::nullopt;
  }
  if (req.workers * req.modules.size() > kMaxRegions) {
    *error = "layout needs " + std::to_string(req.workers * req.modules.size()) +
             " regions, the store holds at most " + std::to_string(kMaxRegions);
    return std::nullopt;
  }
  StoreMeta base = meta_;
  AppEntry* a = prepare_app(base, req.app, error);
  if (a == nullptr) return std::nullopt;
  // Without this the allocation below fails for every slot count and the
  // error would blame the store's size.
  const size_t need = req.workers * req.modules.size();
  const size_t free_entries =
      static_cast<size_t>(std::count_if(std::begin(base.regions), std::end(base.regions),
                                        [](const RegionEntry& r) { return !r.in_use; }));
  if (free_entries < need) {
    *error = "region table full: the layout needs " + std::to_string(need) + " regions (" +
             std::to_string(req.workers) + " workers x " + std::to_string(req.modules.size()) +
             " modules), the store has " + std::to_string(free_entries) +
             " free; clear applications that are no longer used";
    return std::nullopt;
  }
  const uint32_t set = a->next_set++;
  a->staging_set = set;

  // As many slots as fit: all of them if possible, else the most between
  // min_slots and the request.
  uint32_t best = 0;
  StoreMeta next = base;
  if (allocate(req, set, req.slots, &next)) {
    best = req.slots;
  } else {
    uint32_t lo = std::max<uint32_t>(min_slots, 1);
    uint32_t hi = req.slots - 1;
    while (lo <= hi) {
      const uint32_t mid = lo + (hi - lo) / 2;
      StoreMeta trial = base;
      if (allocate(req, set, mid, &trial)) {
        best = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    next = base;
    if (best == 0 || !allocate(req, set, best, &next)) {
      uint64_t per_slot = 0;
      for (const ModuleShape& m : req.modules) per_slot += m.slot_size;
      *error = "store full: " + std::to_string(meta_.store_bytes >> 20) + " MiB cannot hold " +
               std::to_string(std::max<uint32_t>(min_slots, 1)) + " connections x " +
               std::to_string(req.workers) + " workers (" + std::to_string(per_slot) +
               " bytes each) beside the data it keeps; give holdfast-ckptd a larger --size-mb";
      return std::nullopt;
    }
  }
  // New regions start empty (an earlier region's bytes would look like
  // connections), before the metadata that names them exists. Regions this
  // frees (a stale staging set) are released only once it no longer does.
  for (const RegionEntry& r : next.regions) {
    if (r.in_use && r.set == set && app_equals(r.app, req.app)) {
      zero_range(fd_, map_, r.offset, round_up(r.bytes(), kPage));
    }
  }
  const StoreMeta before = meta_;
  meta_ = next;
  if (!publish(error)) return std::nullopt;
  release_freed(before, meta_);
  return set;
}

void Store::release_freed(const StoreMeta& before, const StoreMeta& after) {
  for (size_t i = 0; i < kMaxRegions; ++i) {
    const RegionEntry& r = before.regions[i];
    if (!r.in_use) continue;
    const RegionEntry& now = after.regions[i];
    if (now.in_use && now.offset == r.offset && now.set == r.set) continue;
    zero_range(fd_, map_, r.offset, round_up(r.bytes(), kPage));
  }
}

bool Store::commit_set(const std::string& app, uint32_t set, uint32_t epoch, std::string* error) {
  AppEntry* a = nullptr;
  for (AppEntry& e : meta_.apps) {
    if (e.in_use && app_equals(e.app, app)) a = &e;
  }
  if (a == nullptr || a->staging_set != set || set == 0) {
    *error = "set " + std::to_string(set) + " is not the staging set of " + app;
    return false;
  }
  const uint32_t old = a->committed_set;
  const StoreMeta before = meta_;
  for (RegionEntry& r : meta_.regions) {
    if (r.in_use && old != 0 && r.set == old && app_equals(r.app, app)) r = RegionEntry{};
  }
  a->committed_set = set;
  a->staging_set = 0;
  a->data_epoch = epoch;
  // The old set's data goes only once the metadata no longer points at it.
  if (!publish(error)) return false;
  release_freed(before, meta_);
  return true;
}

bool Store::clear(const std::string& app, std::string* error) {
  const StoreMeta before = meta_;
  bool found = false;
  for (RegionEntry& r : meta_.regions) {
    if (r.in_use && app_equals(r.app, app)) {
      r = RegionEntry{};
      found = true;
    }
  }
  for (AppEntry& e : meta_.apps) {
    if (e.in_use && app_equals(e.app, app)) {
      e.committed_set = e.staging_set = 0;
      e.data_epoch = 0;
      found = true;
    }
  }
  if (!found) return true;
  if (!publish(error)) return false;
  release_freed(before, meta_);
  return true;
}

uint64_t Store::count_used_slots(const RegionEntry& region) const {
  // Reads the file rather than the mapping, and only where it has data
  // (slot_runs): a read fault on a hole of a tmpfs mapping allocates the
  // page, so scanning through the map would give every region its full
  // memory.
  const uint64_t slot = region.slot_size;
  if (slot < sizeof(SlotHeader) || region.offset + region.bytes() > meta_.store_bytes) return 0;
  constexpr uint64_t kChunkSlots = 256;
  std::vector<uint8_t> buffer(kChunkSlots * slot);
  uint64_t n = 0;
  for (const SlotRun& run : slot_runs(fd_, region.offset, region.slot_size, region.slot_count)) {
    for (uint64_t i = run.first; i < run.end;) {
      const uint64_t count = std::min<uint64_t>(kChunkSlots, run.end - i);
      const size_t want = static_cast<size_t>(count * slot);
      const ssize_t got =
          pread(fd_, buffer.data(), want, static_cast<off_t>(region.offset + i * slot));
      if (got != static_cast<ssize_t>(want)) return n;
      for (uint64_t k = 0; k < count; ++k) {
        SlotHeader h;
        std::memcpy(&h, buffer.data() + k * slot, sizeof h);
        if (h.conn_id != 0 && h.seq % 2 == 0) ++n;
      }
      i += count;
    }
  }
  return n;
}

}  // namespace holdfast::ckpt
