// The per-worker flow table: buckets of (signature, position) pairs over a
// fixed entry array.
#include "dataplane/flow_table.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace holdfast {
namespace {

FlowKey key(uint32_t n, uint8_t zone = 0) {
  bool src_is_lo = false;
  return make_flow_key(IpAddr::from_v4_host(0x0a000000u + n),
                       static_cast<uint16_t>(1024 + n % 60000), IpAddr::from_v4_host(0xc0000201u),
                       443, kProtoTcp, zone, &src_is_lo);
}

std::unique_ptr<FlowTable> table(uint32_t capacity) {
  std::string error;
  auto t = FlowTable::create("ft_test", capacity, 0, &error);
  EXPECT_NE(t, nullptr) << error;
  return t;
}

TEST(FlowKey, BothDirectionsGiveOneKey) {
  const IpAddr a = IpAddr::from_v4_host(0x0a000001u);
  const IpAddr b = IpAddr::from_v4_host(0xc0000201u);
  bool a_lo = false;
  bool b_lo = true;
  const FlowKey k1 = make_flow_key(a, 40000, b, 80, kProtoTcp, 3, &a_lo);
  const FlowKey k2 = make_flow_key(b, 80, a, 40000, kProtoTcp, 3, &b_lo);
  EXPECT_EQ(k1, k2);
  EXPECT_NE(a_lo, b_lo);
  EXPECT_TRUE(a_lo);  // 10.0.0.1 sorts before 192.0.2.1
}

TEST(FlowKey, SameAddressOrdersByPort) {
  const IpAddr a = IpAddr::from_v4_host(0x7f000001u);
  bool lo = false;
  const FlowKey k1 = make_flow_key(a, 5000, a, 80, kProtoUdp, 0, &lo);
  EXPECT_FALSE(lo);
  EXPECT_EQ(k1.lo_port, 80);
  const FlowKey k2 = make_flow_key(a, 80, a, 5000, kProtoUdp, 0, &lo);
  EXPECT_TRUE(lo);
  EXPECT_EQ(k1, k2);
}

TEST(FlowKey, CanonicalOrderIsWhatMakeFlowKeyBuilds) {
  // Every key make_flow_key builds is in canonical order, and the same key
  // with its endpoints swapped is not, unless they are equal.
  const IpAddr v4a = IpAddr::from_v4_host(0x0a000001u);
  const IpAddr v4b = IpAddr::from_v4_host(0x0a000100u);  // differs in a later byte
  const IpAddr v6a = *IpAddr::parse("2001:db8::1");
  const IpAddr v6b = *IpAddr::parse("2001:db8::1:0");  // differs in the second half only
  const IpAddr v6c = *IpAddr::parse("2001:db9::");     // differs in the first half
  const std::pair<IpAddr, IpAddr> pairs[] = {{v4a, v4b}, {v4b, v4a}, {v6a, v6b},
                                             {v6b, v6a}, {v6a, v6c}, {v6c, v6b}};
  const std::pair<uint16_t, uint16_t> ports[] = {{80, 40000}, {40000, 80}, {7, 7}};
  for (const auto& [src, dst] : pairs) {
    for (const auto& [sport, dport] : ports) {
      bool lo = false;
      const FlowKey k = make_flow_key(src, sport, dst, dport, kProtoTcp, 0, &lo);
      EXPECT_TRUE(canonical_order(k));
      FlowKey swapped = k;
      std::swap(swapped.lo, swapped.hi);
      std::swap(swapped.lo_port, swapped.hi_port);
      EXPECT_FALSE(canonical_order(swapped));
    }
    bool lo = false;
    const FlowKey same = make_flow_key(src, 9, src, 9, kProtoUdp, 0, &lo);
    EXPECT_TRUE(canonical_order(same));
    FlowKey by_port = make_flow_key(src, 9, src, 10, kProtoUdp, 0, &lo);
    EXPECT_TRUE(canonical_order(by_port));
    std::swap(by_port.lo_port, by_port.hi_port);
    EXPECT_FALSE(canonical_order(by_port));
  }
}

TEST(FlowKey, ZoneAndProtocolSeparateFlows) {
  EXPECT_FALSE(key(1, 0) == key(1, 1));
  FlowKey udp = key(1);
  udp.proto = kProtoUdp;
  EXPECT_FALSE(key(1) == udp);
}

TEST(FlowTable, InsertLookupErase) {
  auto t = table(1024);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->capacity(), 1024u);
  EXPECT_EQ(t->size(), 0u);
  EXPECT_LT(t->lookup(key(1)), 0);

  const int32_t pos = t->insert(key(1));
  ASSERT_GE(pos, 0);
  EXPECT_LT(pos, 1024);
  EXPECT_EQ(t->size(), 1u);
  EXPECT_EQ(t->lookup(key(1)), pos);
  EXPECT_EQ(t->at(static_cast<uint32_t>(pos)).key, key(1));
  EXPECT_FALSE(t->at(static_cast<uint32_t>(pos)).in_use());  // zeroed but for the key
  EXPECT_LT(t->lookup(key(1, 1)), 0);

  t->at(static_cast<uint32_t>(pos)).id = 42;
  t->erase(static_cast<uint32_t>(pos));
  EXPECT_EQ(t->size(), 0u);
  EXPECT_LT(t->lookup(key(1)), 0);
  EXPECT_FALSE(t->at(static_cast<uint32_t>(pos)).in_use());
}

TEST(FlowTable, InsertEntryWritesTheWholeEntryOnce) {
  auto t = table(64);
  ASSERT_NE(t, nullptr);
  // Leave state behind in the entries, so what insert_entry hands out is
  // not already zero.
  for (uint32_t n = 1; n <= 64; ++n) {
    const int32_t p = t->insert(key(n));
    ASSERT_GE(p, 0);
    t->at(static_cast<uint32_t>(p)).packets[0] = 1000 + n;
  }
  for (uint32_t n = 1; n <= 64; ++n) t->erase(static_cast<uint32_t>(t->lookup(key(n))));

  for (uint32_t n = 100; n < 100 + 64; ++n) {
    Connection c{};
    c.key = key(n);
    c.id = n;
    c.last_seen_ms = 7 * n;
    c.packets[1] = 3;
    const int32_t p = t->insert_entry(c, FlowTable::hash(c.key));
    ASSERT_GE(p, 0) << n;
    EXPECT_EQ(t->lookup(key(n)), p);
    EXPECT_EQ(std::memcmp(&t->at(static_cast<uint32_t>(p)), &c, sizeof c), 0) << n;
  }
  EXPECT_EQ(t->size(), 64u);
  Connection extra{};
  extra.key = key(500);
  EXPECT_LT(t->insert_entry(extra, FlowTable::hash(extra.key)), 0);  // full
  EXPECT_EQ(t->size(), 64u);
  EXPECT_LT(t->lookup(key(500)), 0);
}

TEST(FlowTable, InsertedEntryIsZeroedEvenWhenReused) {
  auto t = table(64);
  ASSERT_NE(t, nullptr);
  const int32_t pos = t->insert(key(1));
  ASSERT_GE(pos, 0);
  Connection& c = t->at(static_cast<uint32_t>(pos));
  c.id = 7;
  c.last_seen_ms = 99;
  c.packets[1] = 5;
  t->erase(static_cast<uint32_t>(pos));
  // Fill the table so the freed slot is certainly handed out again.
  std::set<int32_t> seen;
  for (uint32_t n = 2; n < 2 + 64; ++n) {
    const int32_t p = t->insert(key(n));
    ASSERT_GE(p, 0) << n;
    seen.insert(p);
    const Connection& e = t->at(static_cast<uint32_t>(p));
    EXPECT_EQ(e.id, 0u);
    EXPECT_EQ(e.last_seen_ms, 0u);
    EXPECT_EQ(e.packets[1], 0u);
    EXPECT_EQ(e.key, key(n));
  }
  EXPECT_TRUE(seen.count(pos));
}

// Every byte, on both of its paths: 16-byte stores (a 128-byte, 64-byte
// aligned entry) and memset (a size that is not a multiple of 16).
TEST(ZeroEntry, ClearsEveryByte) {
  struct Odd {
    uint8_t bytes[56];
  };
  static_assert(sizeof(Connection) % 16 == 0 && sizeof(Odd) % 16 != 0);
  Connection c;
  Odd o;
  std::memset(static_cast<void*>(&c), 0xa5, sizeof c);
  std::memset(static_cast<void*>(&o), 0x5a, sizeof o);
  zero_entry(c);
  zero_entry(o);
  const auto* cb = reinterpret_cast<const uint8_t*>(&c);
  for (size_t i = 0; i < sizeof c; ++i) ASSERT_EQ(cb[i], 0) << "Connection byte " << i;
  for (size_t i = 0; i < sizeof o; ++i) ASSERT_EQ(o.bytes[i], 0) << "byte " << i;
}

TEST(FlowTable, FillsToExactlyCapacity) {
  // The extendable bucket table admits every one of `capacity` keys.
  for (uint32_t capacity : {64u, 1000u, 4096u}) {
    auto t = table(capacity);
    ASSERT_NE(t, nullptr);
    std::set<int32_t> positions;
    for (uint32_t n = 0; n < capacity; ++n) {
      const int32_t pos = t->insert(key(n));
      ASSERT_GE(pos, 0) << "key " << n << " of " << capacity;
      ASSERT_LT(pos, static_cast<int32_t>(capacity));
      positions.insert(pos);
      t->at(static_cast<uint32_t>(pos)).id = n + 1;
    }
    EXPECT_EQ(positions.size(), capacity);
    EXPECT_EQ(t->size(), capacity);
    EXPECT_EQ(t->insert(key(capacity)), -1);
    EXPECT_EQ(t->size(), capacity);
    // Everything is still where it was put.
    for (uint32_t n = 0; n < capacity; ++n) {
      const int32_t pos = t->lookup(key(n));
      ASSERT_GE(pos, 0);
      EXPECT_EQ(t->at(static_cast<uint32_t>(pos)).id, n + 1);
    }
    // One out, one in.
    t->erase(static_cast<uint32_t>(t->lookup(key(5))));
    EXPECT_GE(t->insert(key(capacity)), 0);
    EXPECT_EQ(t->insert(key(capacity + 1)), -1);
  }
}

TEST(FlowTable, BulkLookupGivesTheSamePositions) {
  auto t = table(1024);
  ASSERT_NE(t, nullptr);
  std::vector<int32_t> expected(FlowTable::kMaxBulk, -1);
  std::vector<FlowKey> keys;
  for (uint32_t n = 0; n < FlowTable::kMaxBulk; ++n) keys.push_back(key(n));
  for (uint32_t n = 0; n < FlowTable::kMaxBulk; n += 3) {
    expected[n] = t->insert(keys[n]);
    ASSERT_GE(expected[n], 0);
  }
  std::vector<const FlowKey*> ptrs;
  for (const FlowKey& k : keys) ptrs.push_back(&k);
  std::vector<uint32_t> hashes;
  for (const FlowKey& k : keys) hashes.push_back(FlowTable::hash(k));
  std::vector<int32_t> positions(FlowTable::kMaxBulk, 12345);
  t->lookup_bulk(ptrs.data(), hashes.data(), FlowTable::kMaxBulk, positions.data());
  for (uint32_t n = 0; n < FlowTable::kMaxBulk; ++n) {
    if (n % 3 == 0) {
      EXPECT_EQ(positions[n], expected[n]) << n;
    } else {
      EXPECT_LT(positions[n], 0) << n;
    }
  }
  // A short burst too.
  t->lookup_bulk(ptrs.data(), hashes.data(), 1, positions.data());
  EXPECT_EQ(positions[0], expected[0]);
}

TEST(FlowTable, SweepVisitsEveryEntryOncePerCapacitySteps) {
  const uint32_t capacity = 256;
  auto t = table(capacity);
  ASSERT_NE(t, nullptr);
  std::set<uint32_t> in_use;
  for (uint32_t n = 0; n < 100; ++n) {
    const int32_t pos = t->insert(key(n));
    ASSERT_GE(pos, 0);
    t->at(static_cast<uint32_t>(pos)).id = n + 1;
    in_use.insert(static_cast<uint32_t>(pos));
  }
  // Budgets that do and do not divide the capacity; several rounds.
  for (uint32_t budget : {16u, 100u, 7u}) {
    std::vector<int> visits(capacity, 0);
    uint32_t steps = 0;
    while (steps < 3 * capacity) {
      t->sweep(budget, [&](uint32_t index, Connection& c) {
        EXPECT_TRUE(c.in_use());
        ++visits[index];
      });
      steps += budget;
    }
    // After at least three whole rounds, every entry in use was seen three
    // or four times (a partial fourth round) and free entries never.
    for (uint32_t i = 0; i < capacity; ++i) {
      if (in_use.count(i)) {
        EXPECT_GE(visits[i], 3) << i;
        EXPECT_LE(visits[i], 4) << i;
      } else {
        EXPECT_EQ(visits[i], 0) << i;
      }
    }
  }
}

TEST(FlowTable, SweepOfWholeCapacityVisitsEachEntryExactlyOnce) {
  auto t = table(128);
  ASSERT_NE(t, nullptr);
  for (uint32_t n = 0; n < 128; ++n) ASSERT_GE(t->insert(key(n)), 0);
  for (uint32_t n = 0; n < 128; ++n) t->at(static_cast<uint32_t>(t->lookup(key(n)))).id = 1;
  t->sweep(5, [](uint32_t, Connection&) {});  // cursor mid-table
  std::vector<int> visits(128, 0);
  t->sweep(1000, [&](uint32_t index, Connection&) { ++visits[index]; });  // capped at capacity
  for (int v : visits) EXPECT_EQ(v, 1);
}

TEST(FlowTable, SweepMayEraseWhatItVisits) {
  auto t = table(64);
  ASSERT_NE(t, nullptr);
  for (uint32_t n = 0; n < 40; ++n) {
    const int32_t pos = t->insert(key(n));
    ASSERT_GE(pos, 0);
    t->at(static_cast<uint32_t>(pos)).id = n + 1;
  }
  t->sweep(64, [&](uint32_t index, Connection& c) {
    if (c.id % 2 == 0) t->erase(index);
  });
  EXPECT_EQ(t->size(), 20u);
  for (uint32_t n = 0; n < 40; ++n) {
    EXPECT_EQ(t->lookup(key(n)) >= 0, (n + 1) % 2 == 1) << n;
  }
  uint32_t count = 0;
  t->for_each([&](uint32_t, const Connection&) { ++count; });
  EXPECT_EQ(count, 20u);
}

// Keys whose home is one bucket: the first eight fill it, the rest go on
// into the next buckets and must still be found, also after keys before
// them leave and others take their slots.
TEST(FlowTable, KeysOverflowingTheirHomeBucketAreFoundAndErased) {
  const uint32_t capacity = 64;
  const uint64_t buckets = table_detail::bucket_count(capacity);
  ASSERT_EQ(buckets, 16u);
  // The last bucket, so that the overflow wraps around to bucket 0.
  std::vector<uint32_t> same_home;
  for (uint32_t n = 0; same_home.size() < 30; ++n) {
    if ((FlowTable::hash(key(n)) & (buckets - 1)) == buckets - 1) same_home.push_back(n);
  }
  auto t = table(capacity);
  ASSERT_NE(t, nullptr);
  std::map<uint32_t, int32_t> where;
  for (size_t i = 0; i < 20; ++i) {
    const int32_t pos = t->insert(key(same_home[i]));
    ASSERT_GE(pos, 0) << i;
    t->at(static_cast<uint32_t>(pos)).id = same_home[i] + 1;
    where[same_home[i]] = pos;
  }
  auto check = [&] {
    std::vector<FlowKey> keys;
    for (uint32_t n : same_home) keys.push_back(key(n));
    std::vector<const FlowKey*> ptrs;
    std::vector<uint32_t> hashes;
    for (const FlowKey& k : keys) {
      ptrs.push_back(&k);
      hashes.push_back(FlowTable::hash(k));
    }
    std::vector<int32_t> bulk(keys.size());
    t->lookup_bulk(ptrs.data(), hashes.data(), static_cast<uint32_t>(keys.size()), bulk.data());
    for (size_t i = 0; i < same_home.size(); ++i) {
      const auto it = where.find(same_home[i]);
      const int32_t want = it == where.end() ? -1 : it->second;
      EXPECT_EQ(t->lookup(keys[i]), want) << i;
      EXPECT_EQ(bulk[i], want) << i;
    }
    EXPECT_EQ(t->size(), where.size());
  };
  check();
  // The first three (in the home bucket) leave; three new keys of the same
  // home take their slots; the overflowed keys stay reachable.
  for (size_t i = 0; i < 3; ++i) {
    t->erase(static_cast<uint32_t>(where[same_home[i]]));
    where.erase(same_home[i]);
  }
  check();
  for (size_t i = 20; i < 23; ++i) {
    const int32_t pos = t->insert(key(same_home[i]));
    ASSERT_GE(pos, 0);
    where[same_home[i]] = pos;
  }
  check();
  // All out: the overflow counts are back to zero, so a full table fits
  // again and every key of it is found.
  for (const auto& [n, pos] : where) t->erase(static_cast<uint32_t>(pos));
  where.clear();
  check();
  for (uint32_t n = 1000; n < 1000 + capacity; ++n) ASSERT_GE(t->insert(key(n)), 0) << n;
  for (uint32_t n = 1000; n < 1000 + capacity; ++n) EXPECT_GE(t->lookup(key(n)), 0) << n;
  EXPECT_EQ(t->insert(key(5000)), -1);
}

// Random inserts, erases and lookups near capacity against a std::map.
TEST(FlowTable, AgreesWithAMapUnderRandomChurnNearCapacity) {
  for (uint32_t capacity : {50u, 200u, 1000u}) {
    auto t = table(capacity);
    ASSERT_NE(t, nullptr);
    std::mt19937 rng(capacity);
    const uint32_t universe = capacity * 3;
    std::map<uint32_t, int32_t> model;  // key number -> position
    std::vector<uint32_t> owner(capacity, ~0u);
    for (int op = 0; op < 40000; ++op) {
      const uint32_t n = rng() % universe;
      const auto it = model.find(n);
      switch (rng() % 4) {
        case 0:
        case 1:  // insert (more often than erase, so the table stays near full)
          if (it == model.end()) {
            const int32_t pos = t->insert(key(n));
            if (model.size() == capacity) {
              ASSERT_EQ(pos, -1);
              break;
            }
            ASSERT_GE(pos, 0);
            ASSERT_LT(pos, static_cast<int32_t>(capacity));
            ASSERT_EQ(owner[static_cast<size_t>(pos)], ~0u) << "position handed out twice";
            owner[static_cast<size_t>(pos)] = n;
            t->at(static_cast<uint32_t>(pos)).id = n + 1;
            model[n] = pos;
          }
          break;
        case 2:
          if (it != model.end()) {
            t->erase(static_cast<uint32_t>(it->second));
            owner[static_cast<size_t>(it->second)] = ~0u;
            model.erase(it);
          }
          break;
        default: {
          std::vector<FlowKey> keys;
          for (int k = 0; k < 100; ++k) keys.push_back(key(rng() % universe));
          std::vector<const FlowKey*> ptrs;
          std::vector<uint32_t> hashes;
          for (const FlowKey& k : keys) {
            ptrs.push_back(&k);
            hashes.push_back(FlowTable::hash(k));
          }
          int32_t bulk[100];  // more than kMaxBulk: looked up in chunks
          t->lookup_bulk(ptrs.data(), hashes.data(), 100, bulk);
          for (size_t k = 0; k < keys.size(); ++k) {
            const int32_t single = t->lookup(keys[k]);
            ASSERT_EQ(bulk[k], single);
            if (single >= 0) {
              ASSERT_EQ(t->at(static_cast<uint32_t>(single)).key, keys[k]);
              ASSERT_EQ(t->at(static_cast<uint32_t>(single)).id,
                        owner[static_cast<size_t>(single)] + 1);
            }
          }
          break;
        }
      }
      ASSERT_EQ(t->size(), model.size());
    }
    for (const auto& [n, pos] : model) ASSERT_EQ(t->lookup(key(n)), pos) << n;
    for (uint32_t n = 0; n < universe; ++n) {
      if (!model.count(n)) {
        ASSERT_LT(t->lookup(key(n)), 0) << n;
      }
    }
  }
}

TEST(FlowTable, ImpossibleCapacityIsAnErrorNotACrash) {
  std::string error;
  auto t = FlowTable::create("ft_zero", 0, 0, &error);
  EXPECT_EQ(t, nullptr);
  EXPECT_NE(error.find("the size must be 1 to"), std::string::npos) << error;
  error.clear();
  t = FlowTable::create("ft_huge", FlowTable::kMaxCapacity + 1, 0, &error);
  EXPECT_EQ(t, nullptr);
  EXPECT_NE(error.find("the size must be 1 to"), std::string::npos) << error;
}

}  // namespace
}  // namespace holdfast
