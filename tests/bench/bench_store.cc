#include "tests/bench/bench_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "checkpoint/recovery.h"

namespace holdfast::bench {
namespace {

// Default settings with `fragments` fragment records per worker.
inline PipelineSettings fragment_settings(uint32_t fragments) {
  PipelineSettings s;
  s.fragments = fragments;
  return s;
}

constexpr long kHugetlbfsMagic = 0x958458f6;

uint64_t round_up(uint64_t v, uint64_t to) {
  return (v + to - 1) / to * to;
}

// A module's slot count in a set, as holdfast-ckptd gives it when the
// whole request fits: its own count if it has one, else the layout's.
uint32_t slot_count(const ckpt::SlotShape& m, uint32_t slots) {
  return m.slots != 0 ? m.slots : slots;
}

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

bool is_hugetlbfs(const std::string& dir) {
  struct statfs fs;
  return statfs(dir.c_str(), &fs) == 0 && fs.f_type == kHugetlbfsMagic;
}

uint64_t BenchStore::set_bytes(uint32_t workers, uint32_t slots, uint32_t fragments) {
  uint64_t bytes = 0;
  for (const ckpt::SlotShape& m : ckpt::module_shapes(fragment_settings(fragments))) {
    bytes += round_up(uint64_t{m.slot_size} * slot_count(m, slots), ckpt::kPage);
  }
  return bytes * workers;
}

std::unique_ptr<BenchStore> BenchStore::create(const std::string& dir, uint64_t bytes,
                                               std::string* error) {
  std::unique_ptr<BenchStore> s(new BenchStore());
  std::string path = dir + "/holdfast-bench.XXXXXX";
  s->fd_ = mkostemp(path.data(), O_CLOEXEC);
  if (s->fd_ < 0) {
    *error = "cannot create a store file in " + dir + ": " + errno_text();
    return nullptr;
  }
  s->path_ = path;
  struct statfs fs;
  s->hugetlbfs_ = fstatfs(s->fd_, &fs) == 0 && fs.f_type == kHugetlbfsMagic;
  // As holdfast-ckptd sizes a new store: whole pages of the file system.
  const uint64_t page = s->hugetlbfs_ ? static_cast<uint64_t>(fs.f_bsize) : ckpt::kPage;
  const uint64_t size = round_up(ckpt::kDataOffset + bytes, page);
  if (ftruncate(s->fd_, static_cast<off_t>(size)) != 0) {
    *error = "cannot size " + path + " to " + std::to_string(size) + " bytes: " + errno_text();
    unlink(path.c_str());
    return nullptr;
  }
  void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd_, 0);
  // Mapped or not, the name is no longer needed.
  unlink(path.c_str());
  if (map == MAP_FAILED) {
    *error = "cannot map " + path + ": " + errno_text();
    return nullptr;
  }
  s->map_ = static_cast<uint8_t*>(map);
  s->bytes_ = size;
  return s;
}

BenchStore::~BenchStore() {
  if (map_ != nullptr) munmap(map_, bytes_);
  if (fd_ >= 0) close(fd_);
}

bool BenchStore::add_set(uint32_t set, uint32_t epoch, uint32_t workers, uint32_t slots,
                         uint32_t fragments, ckpt::RegionSet* out, std::string* error) {
  ckpt::RegionSet rs;
  rs.set = set;
  rs.epoch = epoch;
  uint64_t offset = next_offset_;
  for (uint32_t w = 0; w < workers; ++w) {
    for (const ckpt::SlotShape& m : ckpt::module_shapes(fragment_settings(fragments))) {
      ckpt::RegionEntry r{};
      std::memcpy(r.app, "holdfast-bench", sizeof "holdfast-bench");
      r.set = set;
      r.worker = static_cast<uint16_t>(w);
      r.module = m.module;
      r.schema = m.schema;
      r.slot_size = m.slot_size;
      r.slot_count = slot_count(m, slots);
      r.offset = offset;
      r.in_use = 1;
      offset += round_up(r.bytes(), ckpt::kPage);
      rs.regions.push_back(r);
    }
  }
  if (offset > bytes_) {
    *error = "the benchmark's store has no room for a set of " + std::to_string(workers) + " x " +
             std::to_string(slots) + " slots";
    return false;
  }
  next_offset_ = offset;
  *out = std::move(rs);
  return true;
}

void BenchStore::punch(const ckpt::RegionSet& set) {
  for (const ckpt::RegionEntry& r : set.regions) {
    const uint64_t len = round_up(r.bytes(), ckpt::kPage);
    // hugetlbfs punches whole huge pages only: write the rest.
    if (hugetlbfs_ || fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                static_cast<off_t>(r.offset), static_cast<off_t>(len)) != 0) {
      std::memset(map_ + r.offset, 0, len);
    }
  }
}

void BenchStore::prefault(const ckpt::RegionSet& set) {
  for (const ckpt::RegionEntry& r : set.regions) {
    std::memset(map_ + r.offset, 0, round_up(r.bytes(), ckpt::kPage));
  }
}

bool BenchStore::attach(const ckpt::RegionSet& set, std::vector<ckpt::WorkerCheckpoint>* writers,
                        std::string* error) {
  return ckpt::attach_writers(map_, set, writers, error);
}

uint64_t BenchStore::used_slots(const ckpt::RegionSet& set, uint8_t module) const {
  uint64_t n = 0;
  for (const ckpt::RegionEntry& r : set.regions) {
    if (r.module != module) continue;
    for (uint32_t i = 0; i < r.slot_count; ++i) {
      const auto* h =
          reinterpret_cast<const ckpt::SlotHeader*>(map_ + r.offset + uint64_t{i} * r.slot_size);
      if (h->seq % 2 == 0 && h->conn_id != 0) ++n;
    }
  }
  return n;
}

uint64_t BenchStore::resident_bytes() const {
  struct stat st;
  if (fstat(fd_, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace holdfast::bench
