// The checkpoint store (checkpoint/store.h, docs/checkpoint.md "The store"):
// creating and validating the file, refusing foreign and corrupt ones,
// falling back to the older metadata copy when the newer one is torn,
// epochs, region sets (begin, commit, clear, stale staging), allocation, and
// the one-server-per-store lock.
#include "checkpoint/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cstdio>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/checkpoint/temp_dir.h"

namespace holdfast::ckpt {
namespace {

using testing_support::TempDir;

constexpr uint64_t kMiB = 1 << 20;

SetRequest two_modules(const std::string& app, uint32_t workers, uint32_t slots) {
  SetRequest r;
  r.app = app;
  r.workers = workers;
  r.slots = slots;
  r.modules = {{kBaseModule, 1, 72}, {1, 1, 56}};
  return r;
}

testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// Every in-use region inside the data area and disjoint from every other.
testing::AssertionResult RegionsDisjoint(const StoreMeta& m) {
  std::vector<RegionEntry> used;
  for (const RegionEntry& r : m.regions) {
    if (r.in_use) used.push_back(r);
  }
  std::sort(used.begin(), used.end(),
            [](const RegionEntry& a, const RegionEntry& b) { return a.offset < b.offset; });
  for (size_t i = 0; i < used.size(); ++i) {
    if (used[i].offset < kDataOffset || used[i].offset % kPage != 0 ||
        used[i].offset + used[i].bytes() > m.store_bytes) {
      return testing::AssertionFailure() << "region at " << used[i].offset << " out of bounds";
    }
    if (i > 0 && used[i - 1].offset + used[i - 1].bytes() > used[i].offset) {
      return testing::AssertionFailure()
             << "regions at " << used[i - 1].offset << " and " << used[i].offset << " overlap";
    }
  }
  return testing::AssertionSuccess();
}

class StoreTest : public testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dir_.ok()); }

  std::string path() const { return dir_.file("store"); }

  std::unique_ptr<Store> open_store(uint64_t bytes = 16 * kMiB) {
    std::string error;
    std::unique_ptr<Store> s = Store::open(path(), bytes, &error);
    EXPECT_NE(s, nullptr) << error;
    return s;
  }

  // Opening must fail; returns why.
  std::string refusal(uint64_t bytes = 16 * kMiB) {
    std::string error;
    std::unique_ptr<Store> s = Store::open(path(), bytes, &error);
    EXPECT_EQ(s, nullptr);
    EXPECT_FALSE(error.empty());
    return error;
  }

  std::string contents() const {
    std::string out;
    const int fd = ::open(path().c_str(), O_RDONLY);
    if (fd < 0) return out;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    close(fd);
    return out;
  }

  void write_file(const std::string& data) const {
    const int fd = ::open(path().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    close(fd);
  }

  void flip_byte(uint64_t offset) const {
    const int fd = ::open(path().c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t b = 0;
    ASSERT_EQ(pread(fd, &b, 1, static_cast<off_t>(offset)), 1);
    b ^= 0xff;
    ASSERT_EQ(pwrite(fd, &b, 1, static_cast<off_t>(offset)), 1);
    close(fd);
  }

  // Reads metadata copy `copy` (0: A, 1: B) of the closed store.
  StoreMeta read_meta(int copy) const {
    StoreMeta m{};
    const int fd = ::open(path().c_str(), O_RDONLY);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(pread(fd, &m, sizeof m, static_cast<off_t>(copy * kMetaStride)),
              static_cast<ssize_t>(sizeof m));
    close(fd);
    return m;
  }

  // Writes `m` with a correct CRC as metadata copy `copy`.
  void write_meta(int copy, StoreMeta m) const {
    m.crc = meta_crc(m);
    const int fd = ::open(path().c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, &m, sizeof m, static_cast<off_t>(copy * kMetaStride)),
              static_cast<ssize_t>(sizeof m));
    close(fd);
  }

  // A writable mapping of the whole store file, as the dataplane has.
  uint8_t* map_store(const Store& s) {
    void* p = mmap(nullptr, s.bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, s.fd(), 0);
    EXPECT_NE(p, MAP_FAILED);
    if (p == MAP_FAILED) return nullptr;
    maps_.push_back({p, s.bytes()});
    return static_cast<uint8_t*>(p);
  }

  void TearDown() override {
    for (const auto& [p, n] : maps_) munmap(p, n);
  }

  static void write_slot(uint8_t* map, const RegionEntry& r, uint32_t index, uint64_t conn_id,
                         uint32_t seq) {
    SlotHeader h{};
    h.seq = seq;
    h.length = static_cast<uint16_t>(r.slot_size - sizeof(SlotHeader));
    h.module = static_cast<uint8_t>(r.module);
    h.schema = static_cast<uint8_t>(r.schema);
    h.conn_id = conn_id;
    std::memcpy(map + r.offset + uint64_t{index} * r.slot_size, &h, sizeof h);
  }

  static bool all_zero(const uint8_t* p, uint64_t n) {
    return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
  }

  TempDir dir_;
  std::vector<std::pair<void*, size_t>> maps_;
};

// ---------------------------------------------------------------------------
// Creating, reopening, refusing

TEST_F(StoreTest, CreatesAnEmptyStore) {
  std::unique_ptr<Store> s = open_store(8 * kMiB);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->bytes(), 8 * kMiB);
  EXPECT_EQ(s->used_bytes(), kDataOffset);
  EXPECT_EQ(s->meta().generation, 1u);
  EXPECT_EQ(s->meta().epoch, 0u);
  EXPECT_EQ(s->app("holdfast"), nullptr);
  EXPECT_EQ(std::memcmp(s->meta().magic, kMagic, sizeof kMagic), 0);

  struct stat st;
  ASSERT_EQ(stat(path().c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 8 * kMiB);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const StoreMeta a = read_meta(0);
  std::string why;
  EXPECT_TRUE(validate_meta(a, 8 * kMiB, &why)) << why;
}

TEST_F(StoreTest, TooSmallASizeStillHoldsTheMetadataAndOnePage) {
  std::unique_ptr<Store> s = open_store(1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->bytes(), kDataOffset + kPage);
}

TEST_F(StoreTest, ReopenKeepsEverythingAndIgnoresTheSize) {
  uint64_t generation = 0;
  std::vector<RegionEntry> before;
  {
    std::unique_ptr<Store> s = open_store(8 * kMiB);
    ASSERT_NE(s, nullptr);
    std::string error;
    const uint32_t epoch = s->next_epoch(&error);
    ASSERT_EQ(epoch, 1u) << error;
    const auto set = s->begin_set(two_modules("holdfast", 2, 100), 1, &error);
    ASSERT_TRUE(set.has_value()) << error;
    ASSERT_TRUE(s->commit_set("holdfast", *set, epoch, &error)) << error;
    generation = s->meta().generation;
    before = s->regions("holdfast", *set);
  }
  std::unique_ptr<Store> s = open_store(64 * kMiB);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->bytes(), 8 * kMiB);
  EXPECT_EQ(s->meta().generation, generation);
  EXPECT_EQ(s->meta().epoch, 1u);
  const AppEntry* a = s->app("holdfast");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->committed_set, 1u);
  EXPECT_EQ(a->data_epoch, 1u);
  EXPECT_EQ(a->staging_set, 0u);
  const std::vector<RegionEntry> after = s->regions("holdfast", 1);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].offset, before[i].offset);
    EXPECT_EQ(after[i].slot_count, before[i].slot_count);
  }
}

TEST_F(StoreTest, RefusesAForeignFileAndLeavesItAlone) {
  const std::string foreign(2 * kMiB, 'x');
  write_file(foreign);
  const std::string error = refusal();
  EXPECT_TRUE(Contains(error, path() + " is not a holdfast checkpoint store (bad magic)"));
  EXPECT_TRUE(Contains(error, "refusing to touch it"));
  EXPECT_FALSE(Contains(error, "corrupt"));
  EXPECT_EQ(contents(), foreign);
}

TEST_F(StoreTest, RefusesAFileTooSmallToBeAStore) {
  write_file("hello");
  EXPECT_TRUE(Contains(refusal(), "is not a holdfast checkpoint store (only 5 bytes)"));
  EXPECT_EQ(contents(), "hello");
}

TEST_F(StoreTest, RefusesADirectory) {
  ASSERT_EQ(mkdir(path().c_str(), 0700), 0);
  EXPECT_TRUE(Contains(refusal(), "cannot open " + path()));
}

TEST_F(StoreTest, RefusesACorruptFileSayingWhatIsWrongWithEachCopy) {
  {
    std::unique_ptr<Store> s = open_store();
    ASSERT_NE(s, nullptr);
    std::string error;
    ASSERT_NE(s->next_epoch(&error), 0u) << error;  // both copies now valid
  }
  flip_byte(offsetof(StoreMeta, apps) + 3);
  flip_byte(kMetaStride + offsetof(StoreMeta, regions) + 100);
  const std::string before = contents();
  const std::string error = refusal();
  EXPECT_TRUE(Contains(error, path() + " is corrupt"));
  EXPECT_TRUE(Contains(error, "copy A: metadata checksum mismatch"));
  EXPECT_TRUE(Contains(error, "copy B: metadata checksum mismatch"));
  EXPECT_TRUE(Contains(error, "move it away"));
  EXPECT_EQ(contents(), before);  // never repaired
}

TEST_F(StoreTest, RefusesAnotherLayoutVersion) {
  { ASSERT_NE(open_store(), nullptr); }
  StoreMeta a = read_meta(0);
  a.layout_version = kLayoutVersion + 1;
  write_meta(0, a);
  EXPECT_EQ(refusal(), path() + " holds a store layout version " +
                           std::to_string(kLayoutVersion + 1) + ", this build reads " +
                           std::to_string(kLayoutVersion) + "; refusing to use it");
}

TEST_F(StoreTest, TornNewerCopyFallsBackToTheOlderValidOne) {
  {
    std::unique_ptr<Store> s = open_store();
    ASSERT_NE(s, nullptr);  // generation 1 in copy A
    std::string error;
    ASSERT_EQ(s->next_epoch(&error), 1u);  // generation 2 in copy B
    ASSERT_EQ(s->next_epoch(&error), 2u);  // generation 3 in copy A
  }
  EXPECT_EQ(read_meta(0).generation, 3u);
  EXPECT_EQ(read_meta(1).generation, 2u);
  flip_byte(offsetof(StoreMeta, epoch));  // tear copy A
  {
    std::unique_ptr<Store> s = open_store();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->meta().generation, 2u);
    EXPECT_EQ(s->meta().epoch, 1u);
    // The next change goes into the torn copy, which becomes current again.
    std::string error;
    EXPECT_EQ(s->next_epoch(&error), 2u) << error;
  }
  EXPECT_EQ(read_meta(0).generation, 3u);
  std::unique_ptr<Store> s = open_store();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->meta().generation, 3u);
  EXPECT_EQ(s->meta().epoch, 2u);
}

TEST_F(StoreTest, ValidationCatchesBadRegionTables) {
  std::unique_ptr<Store> s = open_store(4 * kMiB);
  ASSERT_NE(s, nullptr);
  std::string error;
  ASSERT_TRUE(s->begin_set(two_modules("app", 1, 10), 1, &error).has_value()) << error;
  const StoreMeta good = s->meta();
  std::string why;
  ASSERT_TRUE(validate_meta(good, s->bytes(), &why)) << why;

  auto with_crc = [](StoreMeta m) {
    m.crc = meta_crc(m);
    return m;
  };
  const int first = 0;  // the set's regions take the first entries
  ASSERT_TRUE(good.regions[first].in_use && good.regions[first + 1].in_use);

  StoreMeta m = good;
  m.regions[first].offset = s->bytes();  // past the end
  EXPECT_FALSE(validate_meta(with_crc(m), s->bytes(), &why));
  EXPECT_EQ(why, "region table entry out of bounds");

  m = good;
  m.regions[first].offset += 8;  // not page-aligned
  EXPECT_FALSE(validate_meta(with_crc(m), s->bytes(), &why));
  EXPECT_EQ(why, "region table entry out of bounds");

  m = good;
  m.regions[first].slot_size = 12;
  EXPECT_FALSE(validate_meta(with_crc(m), s->bytes(), &why));
  EXPECT_EQ(why, "region table entry out of bounds");

  m = good;
  m.regions[first].offset = kDataOffset - kPage;  // over metadata copy B
  EXPECT_FALSE(validate_meta(with_crc(m), s->bytes(), &why));
  EXPECT_EQ(why, "region table entry out of bounds");

  m = good;
  m.regions[first + 1].offset = m.regions[first].offset;
  EXPECT_FALSE(validate_meta(with_crc(m), s->bytes(), &why));
  EXPECT_EQ(why, "regions overlap");

  m = good;
  m.regions[first].app[0] = '/';
  EXPECT_FALSE(validate_meta(with_crc(m), s->bytes(), &why));
  EXPECT_EQ(why, "region table entry out of bounds");

  m = good;
  m.apps[0].app[0] = ' ';
  EXPECT_FALSE(validate_meta(with_crc(m), s->bytes(), &why));
  EXPECT_EQ(why, "application entry with an invalid name");

  EXPECT_FALSE(validate_meta(good, s->bytes() + kPage, &why));
  EXPECT_TRUE(Contains(why, "bytes, file has"));

  m = good;
  m.meta_bytes -= 8;
  EXPECT_FALSE(validate_meta(with_crc(m), s->bytes(), &why));
  EXPECT_TRUE(Contains(why, "metadata size"));
}

TEST_F(StoreTest, ASecondOpenOfTheSameStoreIsRefused) {
  std::unique_ptr<Store> first = open_store();
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(Contains(refusal(), path() + " is in use by another holdfast-ckptd"));
  first.reset();
  EXPECT_NE(open_store(), nullptr);
}

// ---------------------------------------------------------------------------
// Epochs

TEST_F(StoreTest, EpochsPersistAndIncreaseAcrossReopen) {
  {
    std::unique_ptr<Store> s = open_store();
    ASSERT_NE(s, nullptr);
    std::string error;
    for (uint32_t e = 1; e <= 3; ++e) EXPECT_EQ(s->next_epoch(&error), e) << error;
  }
  for (int round = 0; round < 2; ++round) {
    std::unique_ptr<Store> s = open_store();
    ASSERT_NE(s, nullptr);
    std::string error;
    EXPECT_EQ(s->next_epoch(&error), 4u + static_cast<uint32_t>(round)) << error;
  }
}

TEST_F(StoreTest, EpochsRunOutWithAMessage) {
  { ASSERT_NE(open_store(), nullptr); }
  StoreMeta a = read_meta(0);
  a.epoch = kMaxEpoch - 1;
  write_meta(0, a);
  std::unique_ptr<Store> s = open_store();
  ASSERT_NE(s, nullptr);
  std::string error;
  EXPECT_EQ(s->next_epoch(&error), kMaxEpoch);
  EXPECT_EQ(s->next_epoch(&error), 0u);
  EXPECT_TRUE(Contains(error, "epochs are used up"));
}

// ---------------------------------------------------------------------------
// Region sets

TEST_F(StoreTest, BeginSetGivesOneRegionPerWorkerAndModule) {
  std::unique_ptr<Store> s = open_store();
  ASSERT_NE(s, nullptr);
  std::string error;
  const auto set = s->begin_set(two_modules("holdfast", 3, 1000), 1, &error);
  ASSERT_TRUE(set.has_value()) << error;
  EXPECT_EQ(*set, 1u);
  const AppEntry* a = s->app("holdfast");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->staging_set, 1u);
  EXPECT_EQ(a->committed_set, 0u);
  const std::vector<RegionEntry> regions = s->regions("holdfast", 1);
  ASSERT_EQ(regions.size(), 6u);
  for (size_t i = 0; i < regions.size(); ++i) {
    EXPECT_EQ(regions[i].worker, i / 2);
    EXPECT_EQ(regions[i].module, i % 2 == 0 ? kBaseModule : 1);
    EXPECT_EQ(regions[i].slot_size, i % 2 == 0 ? 72u : 56u);
    EXPECT_EQ(regions[i].schema, 1u);
    EXPECT_EQ(regions[i].slot_count, 1000u);
    EXPECT_EQ(regions[i].set, 1u);
  }
  EXPECT_TRUE(RegionsDisjoint(s->meta()));
  EXPECT_TRUE(s->regions("other", 1).empty());
  EXPECT_TRUE(s->regions("holdfast", 2).empty());
}

TEST_F(StoreTest, BeginSetRefusesBadRequests) {
  std::unique_ptr<Store> s = open_store();
  ASSERT_NE(s, nullptr);
  std::string error;
  EXPECT_FALSE(s->begin_set(two_modules("bad app", 1, 10), 1, &error).has_value());
  EXPECT_EQ(error, "invalid application id");
  EXPECT_FALSE(s->begin_set(two_modules("app", 0, 10), 1, &error).has_value());
  EXPECT_EQ(error, "empty layout");
  EXPECT_FALSE(s->begin_set(two_modules("app", 1, 0), 1, &error).has_value());
  EXPECT_EQ(error, "empty layout");
  SetRequest none = two_modules("app", 1, 10);
  none.modules.clear();
  EXPECT_FALSE(s->begin_set(none, 1, &error).has_value());
  EXPECT_EQ(error, "empty layout");
  EXPECT_EQ(s->meta().generation, 1u);  // nothing was written
}

TEST_F(StoreTest, CommitMakesTheSetCommittedAndFreesThePreviousOne) {
  std::unique_ptr<Store> s = open_store();
  ASSERT_NE(s, nullptr);
  uint8_t* map = map_store(*s);
  ASSERT_NE(map, nullptr);
  std::string error;
  const auto first = s->begin_set(two_modules("holdfast", 1, 100), 1, &error);
  ASSERT_TRUE(first.has_value()) << error;
  ASSERT_TRUE(s->commit_set("holdfast", *first, 7, &error)) << error;
  const std::vector<RegionEntry> old_regions = s->regions("holdfast", *first);
  for (const RegionEntry& r : old_regions) write_slot(map, r, 5, 0xabcdef, 2);

  const auto second = s->begin_set(two_modules("holdfast", 1, 100), 1, &error);
  ASSERT_TRUE(second.has_value()) << error;
  EXPECT_EQ(*second, 2u);
  const AppEntry* a = s->app("holdfast");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->committed_set, 1u);
  EXPECT_EQ(a->staging_set, 2u);
  EXPECT_EQ(a->data_epoch, 7u);
  // Until the commit, the data to recover from is untouched.
  EXPECT_EQ(s->regions("holdfast", 1).size(), 2u);
  for (const RegionEntry& r : old_regions) EXPECT_EQ(s->count_used_slots(r), 1u);

  ASSERT_TRUE(s->commit_set("holdfast", *second, 8, &error)) << error;
  a = s->app("holdfast");
  EXPECT_EQ(a->committed_set, 2u);
  EXPECT_EQ(a->staging_set, 0u);
  EXPECT_EQ(a->data_epoch, 8u);
  EXPECT_TRUE(s->regions("holdfast", 1).empty());
  for (const RegionEntry& r : old_regions) EXPECT_TRUE(all_zero(map + r.offset, r.bytes()));
}

TEST_F(StoreTest, CommitRefusesAnythingButTheStagingSet) {
  std::unique_ptr<Store> s = open_store();
  ASSERT_NE(s, nullptr);
  std::string error;
  EXPECT_FALSE(s->commit_set("holdfast", 1, 1, &error));
  EXPECT_EQ(error, "set 1 is not the staging set of holdfast");
  const auto set = s->begin_set(two_modules("holdfast", 1, 10), 1, &error);
  ASSERT_TRUE(set.has_value()) << error;
  EXPECT_FALSE(s->commit_set("holdfast", *set + 1, 1, &error));
  EXPECT_FALSE(s->commit_set("holdfast", 0, 1, &error));
  EXPECT_FALSE(s->commit_set("other", *set, 1, &error));
  ASSERT_TRUE(s->commit_set("holdfast", *set, 1, &error)) << error;
  EXPECT_FALSE(s->commit_set("holdfast", *set, 1, &error));  // not twice
  EXPECT_EQ(error, "set 1 is not the staging set of holdfast");
}

TEST_F(StoreTest, AStaleStagingSetIsFreedByTheNextBeginSet) {
  std::unique_ptr<Store> s = open_store();
  ASSERT_NE(s, nullptr);
  uint8_t* map = map_store(*s);
  ASSERT_NE(map, nullptr);
  std::string error;
  const auto committed = s->begin_set(two_modules("holdfast", 1, 50), 1, &error);
  ASSERT_TRUE(committed.has_value()) << error;
  ASSERT_TRUE(s->commit_set("holdfast", *committed, 1, &error)) << error;
  const RegionEntry kept = s->regions("holdfast", *committed)[0];
  write_slot(map, kept, 0, 42, 2);

  // A writer got set 2 and died before committing it.
  const auto stale = s->begin_set(two_modules("holdfast", 1, 50), 1, &error);
  ASSERT_TRUE(stale.has_value()) << error;
  const std::vector<RegionEntry> stale_regions = s->regions("holdfast", *stale);
  for (const RegionEntry& r : stale_regions) {
    for (uint32_t i = 0; i < r.slot_count; ++i) write_slot(map, r, i, 1000 + i, 2);
  }

  const auto next = s->begin_set(two_modules("holdfast", 1, 50), 1, &error);
  ASSERT_TRUE(next.has_value()) << error;
  EXPECT_EQ(*next, 3u);
  const AppEntry* a = s->app("holdfast");
  EXPECT_EQ(a->staging_set, 3u);
  EXPECT_EQ(a->committed_set, *committed);
  EXPECT_TRUE(s->regions("holdfast", *stale).empty());
  EXPECT_FALSE(s->commit_set("holdfast", *stale, 2, &error));
  // The stale set's bytes are gone, wherever the new set landed, and the
  // new set starts empty; the committed data is untouched.
  for (const RegionEntry& r : stale_regions) EXPECT_TRUE(all_zero(map + r.offset, r.bytes()));
  for (const RegionEntry& r : s->regions("holdfast", *next)) {
    EXPECT_EQ(s->count_used_slots(r), 0u);
  }
  EXPECT_EQ(s->count_used_slots(kept), 1u);
  EXPECT_TRUE(RegionsDisjoint(s->meta()));
}

TEST_F(StoreTest, ClearForgetsOneApplication) {
  std::unique_ptr<Store> s = open_store();
  ASSERT_NE(s, nullptr);
  uint8_t* map = map_store(*s);
  ASSERT_NE(map, nullptr);
  std::string error;
  for (const char* app : {"one", "two"}) {
    const auto set = s->begin_set(two_modules(app, 2, 20), 1, &error);
    ASSERT_TRUE(set.has_value()) << error;
    ASSERT_TRUE(s->commit_set(app, *set, 1, &error)) << error;
    for (const RegionEntry& r : s->regions(app, *set)) write_slot(map, r, 3, 77, 4);
  }
  ASSERT_TRUE(s->begin_set(two_modules("one", 2, 20), 1, &error).has_value()) << error;
  const std::vector<RegionEntry> gone = s->regions("one", 1);
  ASSERT_TRUE(s->clear("one", &error)) << error;
  const AppEntry* one = s->app("one");
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one->committed_set, 0u);
  EXPECT_EQ(one->staging_set, 0u);
  EXPECT_EQ(one->data_epoch, 0u);
  EXPECT_TRUE(s->regions("one", 1).empty());
  EXPECT_TRUE(s->regions("one", 2).empty());
  for (const RegionEntry& r : gone) EXPECT_TRUE(all_zero(map + r.offset, r.bytes()));
  const AppEntry* two = s->app("two");
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(two->committed_set, 1u);
  for (const RegionEntry& r : s->regions("two", 1)) EXPECT_EQ(s->count_used_slots(r), 1u);

  const uint64_t generation = s->meta().generation;
  EXPECT_TRUE(s->clear("never-seen", &error));
  EXPECT_EQ(s->meta().generation, generation);  // nothing to write
  // Set numbers are not reused after a clear.
  const auto again = s->begin_set(two_modules("one", 1, 20), 1, &error);
  ASSERT_TRUE(again.has_value()) << error;
  EXPECT_EQ(*again, 3u);
}

// ---------------------------------------------------------------------------
// Allocation

TEST_F(StoreTest, AllocationReusesFreedSpace) {
  std::unique_ptr<Store> s = open_store(8 * kMiB);
  ASSERT_NE(s, nullptr);
  std::string error;
  std::vector<uint64_t> offsets_of_first;
  uint64_t most_used = 0;
  for (uint32_t round = 0; round < 20; ++round) {
    const auto set = s->begin_set(two_modules("holdfast", 2, 5000), 5000, &error);
    ASSERT_TRUE(set.has_value()) << "round " << round << ": " << error;
    ASSERT_TRUE(s->commit_set("holdfast", *set, round + 1, &error)) << error;
    std::vector<uint64_t> offsets;
    for (const RegionEntry& r : s->regions("holdfast", *set)) offsets.push_back(r.offset);
    if (round == 0) offsets_of_first = offsets;
    // Sets alternate between two places: the one just freed and the other.
    if (round % 2 == 0) {
      EXPECT_EQ(offsets, offsets_of_first) << "round " << round;
    } else {
      EXPECT_NE(offsets, offsets_of_first) << "round " << round;
    }
    most_used = std::max(most_used, s->used_bytes());
    EXPECT_TRUE(RegionsDisjoint(s->meta()));
  }
  // 20 sets of 1.28 MB each went through an 8 MiB store.
  EXPECT_LT(most_used, 4 * kMiB);
}

TEST_F(StoreTest, FewerSlotsWhenTheStoreIsSmallButNeverBelowTheMinimum) {
  std::unique_ptr<Store> s = open_store(2 * kMiB);
  ASSERT_NE(s, nullptr);
  std::string error;
  const auto set = s->begin_set(two_modules("holdfast", 2, 100000), 1000, &error);
  ASSERT_TRUE(set.has_value()) << error;
  const std::vector<RegionEntry> regions = s->regions("holdfast", *set);
  ASSERT_EQ(regions.size(), 4u);
  const uint32_t got = regions[0].slot_count;
  EXPECT_LT(got, 100000u);
  EXPECT_GE(got, 1000u);
  for (const RegionEntry& r : regions) EXPECT_EQ(r.slot_count, got);
  EXPECT_TRUE(RegionsDisjoint(s->meta()));
  // As many as fit: one slot more would not.
  EXPECT_GT(s->used_bytes() + 2 * (72 + 56) + 4 * kPage, s->bytes());

  // The committed set stays while a new one needs more than what is left.
  ASSERT_TRUE(s->commit_set("holdfast", *set, 1, &error)) << error;
  const uint64_t generation = s->meta().generation;
  const auto full = s->begin_set(two_modules("holdfast", 2, 100000), 5000, &error);
  EXPECT_FALSE(full.has_value());
  EXPECT_TRUE(Contains(error,
                       "store full: 2 MiB cannot hold 5000 connections x 2 workers (128 "
                       "bytes each)"));
  EXPECT_TRUE(Contains(error, "--size-mb"));
  EXPECT_EQ(s->meta().generation, generation);
  EXPECT_EQ(s->app("holdfast")->staging_set, 0u);
  EXPECT_EQ(s->regions("holdfast", *set).size(), 4u);
}

// The fragment records have a table of their own size; when the store cannot
// hold the whole request they shrink in proportion with the connections.
TEST_F(StoreTest, AModuleMayHaveItsOwnSlotCount) {
  std::unique_ptr<Store> s = open_store(64 * kMiB);
  ASSERT_NE(s, nullptr);
  std::string error;
  SetRequest req = two_modules("holdfast", 1, 10000);
  req.modules.push_back({7, 1, 72, 500});
  const auto set = s->begin_set(req, 1, &error);
  ASSERT_TRUE(set.has_value()) << error;
  for (const RegionEntry& r : s->regions("holdfast", *set)) {
    EXPECT_EQ(r.slot_count, r.module == 7 ? 500u : 10000u) << r.module;
  }
  EXPECT_TRUE(RegionsDisjoint(s->meta()));

  std::unique_ptr<Store> small = nullptr;
  s.reset();
  ASSERT_EQ(std::remove(path().c_str()), 0);
  small = open_store(2 * kMiB);
  ASSERT_NE(small, nullptr);
  SetRequest big = two_modules("holdfast", 1, 100000);
  big.modules.push_back({7, 1, 72, 10000});
  const auto shrunk = small->begin_set(big, 1, &error);
  ASSERT_TRUE(shrunk.has_value()) << error;
  uint32_t connections = 0;
  uint32_t fragments = 0;
  for (const RegionEntry& r : small->regions("holdfast", *shrunk)) {
    (r.module == 7 ? fragments : connections) = r.slot_count;
  }
  EXPECT_LT(connections, 100000u);
  EXPECT_NEAR(static_cast<double>(fragments), connections / 10.0, 1.0);
}

TEST_F(StoreTest, RegionsNeverOverlap) {
  std::unique_ptr<Store> s = open_store(32 * kMiB);
  ASSERT_NE(s, nullptr);
  std::string error;
  uint32_t seed = 12345;
  auto rnd = [&seed](uint32_t n) {
    seed = seed * 1103515245 + 12345;
    return (seed >> 8) % n;
  };
  const char* apps[] = {"a", "b", "c", "d"};
  for (int step = 0; step < 200; ++step) {
    const std::string app = apps[rnd(4)];
    const uint32_t action = rnd(10);
    if (action < 6) {
      SetRequest req = two_modules(app, 1 + rnd(4), 1 + rnd(20000));
      if (rnd(2) != 0) req.modules.push_back({2, 1, 24});
      const auto set = s->begin_set(req, 1, &error);
      if (set.has_value() && rnd(3) != 0) {
        ASSERT_TRUE(s->commit_set(app, *set, 1, &error)) << error;
      }
    } else if (action < 7) {
      ASSERT_TRUE(s->clear(app, &error)) << error;
    } else {
      const AppEntry* a = s->app(app);
      if (a != nullptr && a->staging_set != 0) {
        ASSERT_TRUE(s->commit_set(app, a->staging_set, 2, &error)) << error;
      }
    }
    ASSERT_TRUE(RegionsDisjoint(s->meta())) << "step " << step;
    std::string why;
    ASSERT_TRUE(validate_meta(s->meta(), s->bytes(), &why)) << why;
  }
  // And what was written reopens.
  s.reset();
  EXPECT_NE(open_store(), nullptr);
}

TEST_F(StoreTest, TheRegionTableFillsUpWithAClearMessage) {
  std::unique_ptr<Store> s = open_store(16 * kMiB);
  ASSERT_NE(s, nullptr);
  std::string error;
  SetRequest big;
  big.workers = 64;
  big.slots = 1;
  for (uint16_t m = 0; m < 8; ++m) big.modules.push_back({m, 1, 16});
  for (const char* app : {"a", "b"}) {
    big.app = app;
    const auto set = s->begin_set(big, 1, &error);
    ASSERT_TRUE(set.has_value()) << error;
    ASSERT_TRUE(s->commit_set(app, *set, 1, &error)) << error;
  }
  const auto none = s->begin_set(two_modules("c", 1, 1), 1, &error);
  EXPECT_FALSE(none.has_value());
  EXPECT_EQ(error,
            "region table full: the layout needs 2 regions (1 workers x 2 modules), the store has "
            "0 free; clear applications that are no longer used");
  ASSERT_TRUE(s->clear("a", &error)) << error;
  EXPECT_TRUE(s->begin_set(two_modules("c", 1, 1), 1, &error).has_value()) << error;
}

TEST_F(StoreTest, AtMostEightApplications) {
  std::unique_ptr<Store> s = open_store();
  ASSERT_NE(s, nullptr);
  std::string error;
  for (size_t i = 0; i < kMaxApps; ++i) {
    ASSERT_TRUE(s->begin_set(two_modules("app" + std::to_string(i), 1, 1), 1, &error)) << error;
  }
  EXPECT_FALSE(s->begin_set(two_modules("one-too-many", 1, 1), 1, &error).has_value());
  EXPECT_EQ(error, "the store already holds 8 applications");
}

// ---------------------------------------------------------------------------
// Counting slots

TEST_F(StoreTest, CountsStableNonEmptySlotsOnly) {
  std::unique_ptr<Store> s = open_store(64 * kMiB);
  ASSERT_NE(s, nullptr);
  uint8_t* map = map_store(*s);
  ASSERT_NE(map, nullptr);
  std::string error;
  const auto set = s->begin_set(two_modules("holdfast", 1, 200000), 1, &error);
  ASSERT_TRUE(set.has_value()) << error;
  const RegionEntry base = s->regions("holdfast", *set)[0];
  ASSERT_EQ(base.slot_size, 72u);
  EXPECT_EQ(s->count_used_slots(base), 0u);
  write_slot(map, base, 0, 1, 2);                    // first slot
  write_slot(map, base, 455, 2, 0);                  // header across a page boundary
  write_slot(map, base, 100000, 3, 10);              // far into the region
  write_slot(map, base, base.slot_count - 1, 4, 2);  // last slot
  write_slot(map, base, 7, 5, 3);                    // being written: not counted
  write_slot(map, base, 8, 0, 2);                    // empty
  EXPECT_EQ(s->count_used_slots(base), 4u);

  // Counting reads the file, so it gives no memory to the holes between.
  struct stat before;
  struct stat after;
  ASSERT_EQ(fstat(s->fd(), &before), 0);
  EXPECT_EQ(s->count_used_slots(base), 4u);
  ASSERT_EQ(fstat(s->fd(), &after), 0);
  EXPECT_EQ(after.st_blocks, before.st_blocks);
}

}  // namespace
}  // namespace holdfast::ckpt
