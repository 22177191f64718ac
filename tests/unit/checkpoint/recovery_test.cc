// Recovery tests: pipelines checkpoint into region sets laid out in a plain
// buffer (the store's data area, without holdfast-ckptd; a tmpfs file where
// holes matter), slots are damaged
// on purpose, and recover_connections rebuilds what it can into other
// pipelines, possibly with another worker count.
#include "checkpoint/recovery.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/slot_read.h"
#include "checkpoint/writer.h"
#include "dataplane/control.h"
#include "dataplane/parser.h"
#include "dataplane/steering.h"
#include "modules/tcp/tcp.h"
#include "tests/support/packet_builder.h"
#include "tests/support/sip_messages.h"

namespace holdfast::ckpt {
namespace {

// Default settings with `fragments` fragment records per worker.
inline PipelineSettings fragment_settings(uint32_t fragments) {
  PipelineSettings s;
  s.fragments = fragments;
  return s;
}

using namespace holdfast::test;

constexpr uint64_t kT0 = 1'700'000'000'000;  // ms
constexpr uint32_t kConnections = 256;
constexpr uint32_t kFragments = 64;
constexpr uint32_t kEpoch = 7;  // of the crashed run; recovery runs in 8

// A region set of `workers` x every module, carved out of one buffer.
struct FakeStore {
  std::vector<uint8_t> bytes;
  RegionSet set;

  FakeStore(uint32_t workers, uint32_t set_number, uint32_t slots = kConnections) {
    uint64_t offset = 0;
    for (uint32_t w = 0; w < workers; ++w) {
      for (const SlotShape& m : module_shapes(fragment_settings(kFragments))) {
        RegionEntry r{};
        r.worker = static_cast<uint16_t>(w);
        r.module = m.module;
        r.schema = m.schema;
        r.slot_size = m.slot_size;
        r.slot_count = m.slots != 0 ? std::min(m.slots, slots) : slots;
        r.offset = offset;
        r.in_use = 1;
        offset += (r.bytes() + kPage - 1) / kPage * kPage;
        set.regions.push_back(r);
      }
    }
    bytes.assign(offset, 0);
    set.set = set_number;
    set.epoch = kEpoch;
  }

  const RegionEntry& region(uint32_t worker, uint8_t module) const {
    for (const RegionEntry& r : set.regions) {
      if (r.worker == worker && r.module == module) return r;
    }
    std::abort();
  }
  SlotHeader* slot(uint32_t worker, uint8_t module, uint32_t i) {
    const RegionEntry& r = region(worker, module);
    return reinterpret_cast<SlotHeader*>(bytes.data() + r.offset + uint64_t{i} * r.slot_size);
  }
  // Slots of a module holding a connection (stable, non-empty).
  std::vector<std::pair<uint32_t, uint32_t>> used(uint8_t module) {
    std::vector<std::pair<uint32_t, uint32_t>> out;
    for (const RegionEntry& r : set.regions) {
      if (r.module != module) continue;
      for (uint32_t i = 0; i < r.slot_count; ++i) {
        if (slot(r.worker, module, i)->conn_id != 0) out.emplace_back(r.worker, i);
      }
    }
    return out;
  }
};

// One side of a crash: pipelines writing into a FakeStore's set.
struct Dataplane {
  std::unique_ptr<Policy> policy;
  ConnIdSource ids;
  std::unique_ptr<PinholeMail> mail;  // with more than one worker
  std::vector<std::unique_ptr<Pipeline>> pipelines;
  std::vector<WorkerCheckpoint> writers;

  Dataplane(uint32_t workers, uint32_t epoch, FakeStore* store, bool allow_outside = false,
            bool fail_open = false, const char* media_range = nullptr,
            uint32_t connections = kConnections) {
    Rule inside;
    inside.side = SideMatch::inside;
    inside.action = Action::allow;
    std::vector<Rule> rules = {inside};
    if (allow_outside) {
      Rule outside;
      outside.side = SideMatch::outside;
      outside.action = Action::allow;
      rules.push_back(outside);
    }
    std::string error;
    policy = Policy::compile(rules, Action::deny, &error);
    EXPECT_NE(policy, nullptr) << error;
    ids.epoch = epoch;
    PipelineSettings settings;
    settings.connections = connections;
    settings.fragments = kFragments;
    if (media_range != nullptr) {
      settings.sip.media_ranges[0] = *Cidr::parse(media_range, &error);
      settings.sip.range_count = 1;
    }
    if (workers > 1) {
      mail = PinholeMail::create(std::vector<int>(workers, 0), &error);
      EXPECT_NE(mail, nullptr) << error;
    }
    for (uint32_t w = 0; w < workers; ++w) {
      pipelines.push_back(Pipeline::create(settings, policy.get(), &ids, 0, &error));
      EXPECT_NE(pipelines.back(), nullptr) << error;
      pipelines.back()->set_steering(w, workers, mail.get());
    }
    if (store != nullptr) {
      writers.assign(workers, WorkerCheckpoint{});
      EXPECT_TRUE(attach_writers(store->bytes.data(), store->set, &writers, &error)) << error;
      for (uint32_t w = 0; w < workers; ++w) pipelines[w]->set_checkpoint(&writers[w], fail_open);
    }
  }

  std::vector<Pipeline*> raw() const {
    std::vector<Pipeline*> out;
    for (const auto& p : pipelines) out.push_back(p.get());
    return out;
  }

  Verdict send(const Bytes& frame, Side side, uint64_t ms = kT0) {
    ParsedPacket p;
    parse_frame(frame.data(), static_cast<uint32_t>(frame.size()), side, 0, {}, p);
    Pipeline& pipe = *pipelines[owner_worker(p, static_cast<uint32_t>(pipelines.size()))];
    Verdict v;
    pipe.process(&p, 1, ms * 1'000'000, &v);
    for (const auto& q : pipelines) q->read_mail();  // as workers do before their next receive
    return v;
  }

  uint64_t connections() const {
    uint64_t n = 0;
    for (const auto& p : pipelines) n += p->flows().size();
    return n;
  }
};

Bytes tcp_frame(int client, bool from_client, uint8_t flags, uint32_t seq, uint32_t ack,
                size_t len = 0) {
  TcpSpec t;
  t.flags = flags;
  t.seq = seq;
  t.ack = ack;
  t.payload = Bytes(len, 0x55);
  Ipv4Spec ip;
  const std::string c = "10.0.0." + std::to_string(client);
  const std::string s = "192.0.2." + std::to_string(100 + client);
  t.sport = from_client ? 40000 : 443;
  t.dport = from_client ? 443 : 40000;
  ip.src = from_client ? c : s;
  ip.dst = from_client ? s : c;
  return eth_v4(ip, tcp(t));
}

constexpr uint8_t kSyn = tcpflag::kSyn;
constexpr uint8_t kAck = tcpflag::kAck;
constexpr uint8_t kPsh = tcpflag::kPsh;

// Opens `n` TCP connections through a full handshake and some data.
std::vector<uint64_t> open_tcp(Dataplane& d, int n) {
  std::vector<uint64_t> ids;
  for (int c = 1; c <= n; ++c) {
    const Verdict syn = d.send(tcp_frame(c, true, kSyn, 1000, 0), Side::inside);
    EXPECT_EQ(syn.reason, Reason::new_connection);
    EXPECT_EQ(d.send(tcp_frame(c, false, kSyn | kAck, 5000, 1001), Side::outside).reason,
              Reason::established);
    EXPECT_EQ(d.send(tcp_frame(c, true, kAck | kPsh, 1001, 5001, 100), Side::inside).reason,
              Reason::established);
    ids.push_back(syn.conn_id);
  }
  return ids;
}

// The next segment of connection c must pass on the recovered state, in its
// old connection.
void expect_continues(Dataplane& d, int c, uint64_t id) {
  const Verdict v =
      d.send(tcp_frame(c, false, kAck | kPsh, 5001, 1101, 50), Side::outside, kT0 + 10);
  EXPECT_EQ(v.reason, Reason::established) << "connection " << c;
  EXPECT_EQ(v.conn_id, id) << "connection " << c;
}

// The writer takes its sequence numbers from its own counter, never
// loading the slot's (checkpoint/writer.h): every write must still leave
// an even value the slot has not held, so a reader comparing before and
// after (slot_read.h) sees each write, and the writer counts its writes.
TEST(Recovery, EveryWriteLeavesANewEvenCounter) {
  FakeStore store(1, 1);
  Dataplane d(1, kEpoch + 1, &store);
  const uint8_t tcp_module = static_cast<uint8_t>(ModuleId::tcp);
  EXPECT_EQ(d.send(tcp_frame(1, true, kSyn, 1000, 0), Side::inside).reason, Reason::new_connection);
  const auto slots = store.used(tcp_module);
  ASSERT_EQ(slots.size(), 1u);
  const uint32_t pos = slots[0].second;
  EXPECT_EQ(d.writers[0].writes(kBaseModule), 1u);
  EXPECT_EQ(d.writers[0].writes(tcp_module), 1u);
  std::vector<uint32_t> seen = {store.slot(0, tcp_module, pos)->seq};
  // Each segment moves the TCP slice: a put of the TCP slot each time.
  EXPECT_EQ(d.send(tcp_frame(1, false, kSyn | kAck, 5000, 1001), Side::outside).reason,
            Reason::established);
  seen.push_back(store.slot(0, tcp_module, pos)->seq);
  for (uint32_t k = 0; k < 3; ++k) {
    EXPECT_EQ(
        d.send(tcp_frame(1, true, kAck | kPsh, 1001 + 100 * k, 5001, 100), Side::inside).reason,
        Reason::established);
    seen.push_back(store.slot(0, tcp_module, pos)->seq);
  }
  EXPECT_EQ(d.writers[0].writes(tcp_module), seen.size());
  for (size_t k = 0; k < seen.size(); ++k) {
    EXPECT_EQ(seen[k] % 2, 0u) << "write " << k;
    EXPECT_NE(seen[k], 0u) << "write " << k;
    for (size_t j = 0; j < k; ++j) EXPECT_NE(seen[j], seen[k]) << "writes " << j << ", " << k;
  }
  // A retransmission changes nothing, so nothing is written.
  EXPECT_EQ(d.send(tcp_frame(1, true, kAck | kPsh, 1001, 5001, 100), Side::inside).reason,
            Reason::established);
  EXPECT_EQ(store.slot(0, tcp_module, pos)->seq, seen.back());
  EXPECT_EQ(d.writers[0].writes(tcp_module), seen.size());
  SlotRead read;
  ASSERT_TRUE(read_slot(d.writers[0].region(tcp_module), pos, &read));
  EXPECT_TRUE(read.stable);
}

TEST(Recovery, RebuildsEveryConnectionOnAnotherWorkerCount) {
  FakeStore store(2, 1);
  Dataplane before(2, kEpoch, &store);
  const std::vector<uint64_t> ids = open_tcp(before, 20);
  // A UDP flow that was answered, and a ping.
  UdpSpec u;
  Ipv4Spec q;
  q.src = "10.0.0.50";
  q.dst = "192.0.2.53";
  EXPECT_EQ(before.send(eth_v4(q, udp(u)), Side::inside).reason, Reason::new_connection);
  IcmpSpec e;
  e.rest = echo_rest(7, 1);
  EXPECT_EQ(before.send(eth_v4(q, icmp4(e)), Side::inside).reason, Reason::new_connection);

  FakeStore next(3, 2);
  Dataplane after(3, kEpoch + 1, &next);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.restored.at("tcp"), 20u);
  EXPECT_EQ(report.restored.at("udp"), 1u);
  EXPECT_EQ(report.restored.at("icmp"), 1u);
  EXPECT_TRUE(report.discarded.empty()) << report.text();
  EXPECT_EQ(report.workers_before, 2u);
  EXPECT_EQ(report.workers_now, 3u);
  EXPECT_EQ(after.connections(), 22u);
  for (int c = 1; c <= 20; ++c) expect_continues(after, c, ids[c - 1]);
  // Recovered connections are in the new set too, ready for the next crash.
  EXPECT_EQ(next.used(kBaseModule).size(), 22u);
  EXPECT_EQ(next.used(static_cast<uint8_t>(ModuleId::tcp)).size(), 20u);
  // New connections get the new epoch.
  const Verdict fresh = after.send(tcp_frame(99, true, kSyn, 1, 0), Side::inside);
  EXPECT_EQ(fresh.conn_id >> kConnCounterBits, kEpoch + 1);
}

// Each new worker's table rebuilt on a thread of its own (RecoveryOptions):
// with the same worker count each thread scans the old region of its
// worker; with another count a thread meets connections of workers that
// are not its own and leaves them for the serial pass. Either way the
// outcome is one thread's: the same connections in the same workers, the
// same counts, the same new set.
TEST(Recovery, ThreadsRebuildWhatOneThreadRebuilds) {
  FakeStore store(2, 1);
  Dataplane before(2, kEpoch, &store);
  const std::vector<uint64_t> ids = open_tcp(before, 40);
  const uint8_t tcp_module = static_cast<uint8_t>(ModuleId::tcp);
  // Damage in both old regions: a torn base, a slice of an unknown schema.
  std::vector<int> damaged;
  auto client_of = [&](uint32_t w, uint32_t slot) {
    const uint64_t id = store.slot(w, kBaseModule, slot)->conn_id;
    return static_cast<int>(std::find(ids.begin(), ids.end(), id) - ids.begin()) + 1;
  };
  for (uint32_t w = 0; w < 2; ++w) {
    std::vector<uint32_t> slots;
    for (const auto& [worker, slot] : store.used(kBaseModule)) {
      if (worker == w) slots.push_back(slot);
    }
    ASSERT_GE(slots.size(), 2u) << "worker " << w;
    damaged.push_back(client_of(w, slots[0]));
    store.slot(w, kBaseModule, slots[0])->seq |= 1;
    damaged.push_back(client_of(w, slots[1]));
    store.slot(w, tcp_module, slots[1])->schema = 99;
  }

  struct Outcome {
    RecoveryReport report;
    std::vector<std::vector<uint64_t>> ids;  // per new worker, sorted
    size_t new_bases = 0;
  };
  auto recover = [&](uint32_t workers, uint32_t threads) {
    FakeStore next(workers, 2);
    Dataplane after(workers, kEpoch + 1, &next);
    Outcome o;
    o.report = recover_connections(store.bytes.data(), store.bytes.size(), -1, store.set,
                                   after.raw(), kEpoch + 1, RecoveryOptions{threads});
    for (const auto& p : after.pipelines) {
      std::vector<uint64_t> in;
      p->flows().for_each([&](uint32_t, const Connection& c) { in.push_back(c.id); });
      std::sort(in.begin(), in.end());
      o.ids.push_back(in);
    }
    o.new_bases = next.used(kBaseModule).size();
    for (int c = 1; c <= 40; ++c) {
      if (std::find(damaged.begin(), damaged.end(), c) != damaged.end()) continue;
      expect_continues(after, c, ids[c - 1]);
    }
    return o;
  };
  for (uint32_t workers : {2u, 3u, 1u}) {
    const Outcome one = recover(workers, 1);
    EXPECT_EQ(one.report.threads, 1u);
    EXPECT_EQ(one.report.restored.at("tcp"), 36u) << one.report.text();
    EXPECT_EQ(one.report.discarded.at("torn"), 2u) << one.report.text();
    EXPECT_EQ(one.report.discarded.at("unknown_schema"), 2u) << one.report.text();
    EXPECT_EQ(one.new_bases, 36u);
    const Outcome two = recover(workers, 2);
    // Never more threads than workers before (2) or now.
    EXPECT_EQ(two.report.threads, std::min(workers, 2u)) << "workers " << workers;
    EXPECT_EQ(two.report.to_json()["threads"], two.report.threads);
    EXPECT_NE(two.report.text().find(" on " + std::to_string(two.report.threads) + " thread"),
              std::string::npos)
        << two.report.text();
    EXPECT_EQ(two.report.restored, one.report.restored) << "workers " << workers;
    EXPECT_EQ(two.report.discarded, one.report.discarded) << "workers " << workers;
    EXPECT_EQ(two.ids, one.ids) << "workers " << workers;
    EXPECT_EQ(two.new_bases, one.new_bases) << "workers " << workers;
  }
}

TEST(Recovery, DamagedSlotsAreCountedAndDiscardedNeverTrusted) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  const std::vector<uint64_t> ids = open_tcp(before, 10);
  const auto bases = store.used(kBaseModule);
  ASSERT_EQ(bases.size(), 10u);
  const uint8_t tcp_module = static_cast<uint8_t>(ModuleId::tcp);
  // Which client each base slot belongs to, by its connection ID.
  auto client_of = [&](uint32_t slot) {
    const uint64_t id = store.slot(0, kBaseModule, slot)->conn_id;
    for (size_t c = 0; c < ids.size(); ++c) {
      if (ids[c] == id) return static_cast<int>(c + 1);
    }
    return 0;
  };
  std::vector<int> damaged;
  const uint32_t a = bases[0].second, b = bases[1].second, c = bases[2].second, d = bases[3].second,
                 e = bases[4].second, f = bases[5].second;
  // a: torn base (the crash hit it mid-write).
  store.slot(0, kBaseModule, a)->seq |= 1;
  damaged.push_back(client_of(a));
  // b: the TCP slice carries another connection's ID.
  store.slot(0, tcp_module, b)->conn_id ^= 0x1234;
  damaged.push_back(client_of(b));
  // c: garbage over the whole base slot.
  damaged.push_back(client_of(c));
  std::memset(reinterpret_cast<uint8_t*>(store.slot(0, kBaseModule, c)) + 4, 0xa5, 68);
  // d: a slice schema this build does not know.
  store.slot(0, tcp_module, d)->schema = 99;
  damaged.push_back(client_of(d));
  // e: the base slot erased, its slice left behind (an orphan).
  damaged.push_back(client_of(e));
  store.slot(0, kBaseModule, e)->conn_id = 0;
  // f: a slice that fails the module's own validation (state out of range).
  reinterpret_cast<TcpSlice*>(reinterpret_cast<uint8_t*>(store.slot(0, tcp_module, f)) +
                              sizeof(SlotHeader))
      ->state = static_cast<TcpState>(42);
  damaged.push_back(client_of(f));
  const uint32_t g = bases[6].second, h = bases[7].second;
  // g: a torn slice (the crash hit the slice's put).
  store.slot(0, tcp_module, g)->seq |= 1;
  damaged.push_back(client_of(g));
  // h: a slice whose length is not the module's.
  store.slot(0, tcp_module, h)->length = 12;
  damaged.push_back(client_of(h));

  FakeStore next(1, 2);
  Dataplane after(1, kEpoch + 1, &next);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.restored.at("tcp"), 2u) << report.text();
  EXPECT_EQ(report.discarded.at("torn"), 2u) << report.text();        // a, g
  EXPECT_EQ(report.discarded.at("bad_length"), 1u) << report.text();  // h
  // c's garbage base fails the schema check first, d's slice has a schema
  // from the future.
  EXPECT_EQ(report.discarded.at("unknown_schema"), 2u) << report.text();
  // Slices with no base to attach to: a's, b's (wrong ID), c's and e's.
  EXPECT_EQ(report.discarded.at("orphan_slice"), 4u) << report.text();
  EXPECT_EQ(report.discarded.at("invalid_slice"), 1u) << report.text();  // f
  // Bases whose slice never attached: b, d, f, g, h.
  EXPECT_EQ(report.discarded.at("missing_slice"), 5u) << report.text();
  EXPECT_EQ(after.connections(), 2u);
  for (int client = 1; client <= 10; ++client) {
    const bool lost = std::find(damaged.begin(), damaged.end(), client) != damaged.end();
    const Verdict v =
        after.send(tcp_frame(client, false, kAck | kPsh, 5001, 1101, 50), Side::outside, kT0 + 10);
    if (lost) {
      EXPECT_EQ(v.reason, Reason::tcp_mid_stream) << "client " << client;
    } else {
      EXPECT_EQ(v.reason, Reason::established) << "client " << client;
      EXPECT_EQ(v.conn_id, ids[client - 1]);
    }
  }
}

// A region whose slots are smaller than the type read from them (a set
// that is not what it claims): the read stops at the slot's end.
TEST(SlotRead, ASlotTooSmallForItsTypeIsABadLengthAndIsNotReadPastItsEnd) {
  constexpr uint32_t kSlotSize = sizeof(SlotHeader) + 8;
  static_assert(sizeof(TcpSlice) > 8);
  alignas(8) uint8_t bytes[8 * kSlotSize];
  std::memset(bytes, 0xee, sizeof bytes);
  SlotHeader header{};
  header.seq = 2;
  header.length = sizeof(TcpSlice);  // more than the slot holds
  header.module = static_cast<uint8_t>(ModuleId::tcp);
  header.schema = TcpModule::kSchemaVersion;
  header.conn_id = 7;
  std::memcpy(bytes, &header, sizeof header);
  const MappedRegion r{bytes, kSlotSize, 8, TcpModule::kSchemaVersion};

  SlotHeader read{};
  TcpSlice slice;
  std::memset(static_cast<void*>(&slice), 0x11, sizeof slice);
  bool stable = false;
  ASSERT_TRUE(read_slot_as(r, 0, &read, &slice, &stable));
  EXPECT_TRUE(stable);
  EXPECT_EQ(read.conn_id, 7u);
  EXPECT_EQ(read.length, 8u);  // cut to the room the slot has
  EXPECT_STREQ(slot_mismatch(read, static_cast<uint8_t>(ModuleId::tcp), TcpModule::kSchemaVersion,
                             sizeof(TcpSlice)),
               "bad_length");
  // The slot's 8 bytes of room are copied, nothing after them (the next
  // slot's bytes are 0xee too).
  const auto* p = reinterpret_cast<const uint8_t*>(&slice);
  EXPECT_TRUE(std::all_of(p, p + 8, [](uint8_t x) { return x == 0xee; }));
  EXPECT_TRUE(std::all_of(p + 8, p + sizeof slice, [](uint8_t x) { return x == 0x11; }));

  // The same slot with room enough is read whole.
  std::memset(static_cast<void*>(&slice), 0x11, sizeof slice);
  alignas(8) uint8_t roomy[sizeof(SlotHeader) + sizeof(TcpSlice)];
  std::memset(roomy, 0x22, sizeof roomy);
  std::memcpy(roomy, &header, sizeof header);
  const MappedRegion big{roomy, sizeof roomy, 1, TcpModule::kSchemaVersion};
  ASSERT_TRUE(read_slot_as(big, 0, &read, &slice, &stable));
  EXPECT_TRUE(stable);
  EXPECT_EQ(read.length, sizeof(TcpSlice));
  EXPECT_TRUE(std::all_of(p, p + sizeof slice, [](uint8_t x) { return x == 0x22; }));

  // An odd counter: read, but not stable.
  reinterpret_cast<SlotHeader*>(roomy)->seq = 3;
  ASSERT_TRUE(read_slot_as(big, 0, &read, &slice, &stable));
  EXPECT_FALSE(stable);
}

// A tmpfs file (/dev/shm, as holdfast-ckptd's default store), unlinked at
// once, mapped from offset 0.
struct TmpfsFile {
  int fd = -1;
  uint8_t* map = nullptr;
  uint64_t size = 0;

  explicit TmpfsFile(uint64_t bytes) : size(bytes) {
    char path[] = "/dev/shm/holdfast-recovery-test.XXXXXX";
    fd = mkostemp(path, O_CLOEXEC);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    unlink(path);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT_NE(m, MAP_FAILED);
    map = static_cast<uint8_t*>(m);
  }
  ~TmpfsFile() {
    munmap(map, size);
    close(fd);
  }
  // Bytes of memory the file holds (its pages that are not holes).
  uint64_t allocated() const {
    struct stat st;
    fstat(fd, &st);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
};

TEST(StoreExtents, VisitsEverySlotThatCanHoldSomethingAndReadsNoHole) {
  TmpfsFile file(64 * kPage);
  MappedRegion r;
  r.slots = file.map + kPage;  // the region starts on the second page
  r.slot_size = 72;
  r.slot_count = static_cast<uint32_t>(60 * kPage / r.slot_size);
  // As puts write them: slot 3 (region page 0), and a slot that starts on
  // region page 5 and ends on page 6.
  const uint32_t straddling = static_cast<uint32_t>(6 * kPage / r.slot_size);
  ASSERT_GT((straddling + 1) * r.slot_size, 6 * kPage);
  for (uint32_t i : {3u, straddling}) {
    std::memset(r.slot(i), 0x11, r.slot_size);
    r.slot(i)->seq = 2;
  }
  // A byte at the start of region page 10, inside a slot whose start (on
  // page 9) no put ever wrote: it cannot hold anything.
  file.map[kPage + 10 * kPage] = 1;
  const uint64_t before = file.allocated();
  EXPECT_EQ(before, 4 * kPage);

  const StoreExtents extents(file.fd, file.map);
  std::vector<uint32_t> seen;
  for (const auto& run : extents.runs(r)) {
    for (uint32_t i = run.first; i < run.end; ++i) seen.push_back(i);
  }
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());  // each once
  EXPECT_NE(std::find(seen.begin(), seen.end(), 3u), seen.end());
  EXPECT_NE(std::find(seen.begin(), seen.end(), straddling), seen.end());
  // The slots starting on the four pages that are not holes.
  EXPECT_LE(seen.size(), 4 * kPage / r.slot_size + 4);
  // Reading them allocates nothing, and finds the two.
  SlotRead s;
  uint32_t held = 0;
  for (uint32_t i : seen) held += read_slot(r, i, &s) ? 1 : 0;
  EXPECT_EQ(held, 2u);
  EXPECT_EQ(file.allocated(), before);

  // Without the file: every slot.
  const auto all = StoreExtents(-1, file.map).runs(r);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].first, 0u);
  EXPECT_EQ(all[0].end, r.slot_count);
}

TEST(Recovery, ReadsNoPageTheOldSetNeverWrote) {
  // Many more slots than connections, as a store sized for a busy day.
  constexpr uint32_t kSlots = 16384;
  FakeStore store(2, 1, kSlots);
  Dataplane before(2, kEpoch, &store);
  const std::vector<uint64_t> ids = open_tcp(before, 20);
  // The set in a tmpfs file, holes where nothing was written.
  TmpfsFile file(store.bytes.size());
  for (uint64_t page = 0; page < store.bytes.size(); page += kPage) {
    const uint8_t* p = store.bytes.data() + page;
    if (std::any_of(p, p + kPage, [](uint8_t b) { return b != 0; })) {
      std::memcpy(file.map + page, p, kPage);
    }
  }
  const uint64_t allocated = file.allocated();
  ASSERT_LT(allocated, store.bytes.size() / 20);

  FakeStore next(1, 2, kSlots);
  Dataplane after(1, kEpoch + 1, &next);
  const RecoveryReport report =
      recover_connections(file.map, file.size, file.fd, store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.restored.at("tcp"), 20u) << report.text();
  EXPECT_TRUE(report.discarded.empty()) << report.text();
  EXPECT_EQ(file.allocated(), allocated);
  for (int c = 1; c <= 20; ++c) expect_continues(after, c, ids[c - 1]);
}

TEST(Recovery, DuplicatesFutureIdsAndKeysOutOfOrderAreRefused) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  open_tcp(before, 3);
  const auto bases = store.used(kBaseModule);
  const RegionEntry& base = store.region(0, kBaseModule);
  const RegionEntry& tcp = store.region(0, static_cast<uint8_t>(ModuleId::tcp));
  // A copy of the first connection in a free slot: the same key twice.
  const uint32_t spare = kConnections - 1;
  std::memcpy(store.slot(0, kBaseModule, spare), store.slot(0, kBaseModule, bases[0].second),
              base.slot_size);
  std::memcpy(store.slot(0, static_cast<uint8_t>(ModuleId::tcp), spare),
              store.slot(0, static_cast<uint8_t>(ModuleId::tcp), bases[0].second), tcp.slot_size);
  // The second connection claims an epoch not handed out yet.
  store.slot(0, kBaseModule, bases[1].second)->conn_id = make_conn_id(kEpoch + 5, 1);
  // The third's endpoints swapped: no packet would ever find that key.
  auto* third = reinterpret_cast<BaseSlice*>(store.slot(0, kBaseModule, bases[2].second) + 1);
  std::swap(third->lo, third->hi);
  std::swap(third->lo_port, third->hi_port);

  Dataplane after(1, kEpoch + 1, nullptr);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.restored.at("tcp"), 1u) << report.text();
  EXPECT_EQ(report.discarded.at("duplicate"), 1u) << report.text();
  EXPECT_EQ(report.discarded.at("invalid_base"), 2u) << report.text();
}

TEST(Recovery, ConnectionsTheCurrentRulesDenyAreClosed) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store, /*allow_outside=*/true);
  open_tcp(before, 3);
  // One connection opened from outside, allowed then.
  const Bytes syn = tcp_frame(9, false, kSyn, 7000, 0);
  EXPECT_EQ(before.send(syn, Side::outside).reason, Reason::new_connection);
  // The new rules allow only the inside.
  Dataplane after(1, kEpoch + 1, nullptr, /*allow_outside=*/false);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.discarded.at("policy_denied"), 1u) << report.text();
  EXPECT_EQ(report.restored.at("tcp"), 3u) << report.text();
  EXPECT_EQ(report.rules_classified, 4u) << report.text();
  EXPECT_EQ(report.rules_unchanged, 0u) << report.text();
  EXPECT_EQ(after.connections(), 3u);
}

// Connections admitted by the very rules recovery runs under are not
// classified again (their old worker's rules record holds the rules'
// digest): the same answer, without the classifier's time.
TEST(Recovery, ConnectionsOfUnchangedRulesAreNotClassifiedAgain) {
  FakeStore store(2, 1);
  Dataplane before(2, kEpoch, &store, /*allow_outside=*/true);
  const std::vector<uint64_t> ids = open_tcp(before, 6);
  EXPECT_EQ(before.send(tcp_frame(9, false, kSyn, 7000, 0), Side::outside).reason,
            Reason::new_connection);
  // The same rules compiled anew, on one worker and on three.
  for (uint32_t workers : {1u, 3u}) {
    Dataplane after(workers, kEpoch + 1, nullptr, /*allow_outside=*/true);
    const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                      store.set, after.raw(), kEpoch + 1);
    EXPECT_EQ(report.restored.at("tcp"), 7u) << report.text();
    EXPECT_EQ(report.rules_unchanged, 7u) << report.text();
    EXPECT_EQ(report.rules_classified, 0u) << report.text();
    EXPECT_TRUE(report.discarded.empty()) << report.text();
    EXPECT_NE(report.text().find("0 connections classified again, 7 admitted by these very rules"),
              std::string::npos)
        << report.text();
    for (int c = 1; c <= 6; ++c) expect_continues(after, c, ids[c - 1]);
  }
}

// A rules record that cannot be trusted vouches for nothing.
TEST(Recovery, ATornRulesRecordIsCountedAndEveryConnectionClassified) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  open_tcp(before, 3);
  store.slot(0, kRulesModule, 0)->seq |= 1;
  Dataplane after(1, kEpoch + 1, nullptr);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.discarded.at("torn"), 1u) << report.text();
  EXPECT_EQ(report.rules_classified, 3u) << report.text();
  EXPECT_EQ(report.restored.at("tcp"), 3u) << report.text();
}

// A reload takes the new rules for new connections at once and re-checks
// the old ones a slice at a time. A crash in between leaves connections of
// both rule sets, so the record must vouch for neither: here a connection
// only the new rules admit must not survive a restart under the old ones.
// Once the reload is done, the record vouches for the new rules.
TEST(Recovery, ACrashDuringAReloadClassifiesEveryConnection) {
  constexpr uint32_t kMany = 2 * kControlBudget;  // a reload of two slices
  FakeStore store(1, 1, kMany);
  Dataplane before(1, kEpoch, &store, /*allow_outside=*/false, false, nullptr, kMany);
  open_tcp(before, 3);
  Dataplane wider(1, kEpoch, nullptr, /*allow_outside=*/true);  // for its rules
  Pipeline& worker = *before.pipelines[0];
  std::vector<uint64_t> hits(wider.policy->rules().size() + 1, 0);
  ControlRequest reload;
  reload.op = ControlOp::reload;
  reload.policy = wider.policy.get();
  reload.hits = &hits;
  ASSERT_FALSE(worker.serve_control(reload));  // the first slice
  EXPECT_EQ(before.send(tcp_frame(9, false, kSyn, 7000, 0), Side::outside).reason,
            Reason::new_connection);

  auto recover_under = [&](bool allow_outside) {
    Dataplane after(1, kEpoch + 1, nullptr, allow_outside, false, nullptr, kMany);
    return recover_connections(store.bytes.data(), store.bytes.size(), -1, store.set, after.raw(),
                               kEpoch + 1);
  };
  RecoveryReport report = recover_under(/*allow_outside=*/false);
  EXPECT_EQ(report.rules_classified, 4u) << report.text();
  EXPECT_EQ(report.discarded.at("policy_denied"), 1u) << report.text();
  EXPECT_EQ(report.restored.at("tcp"), 3u) << report.text();

  while (!worker.serve_control(reload)) {
  }
  report = recover_under(/*allow_outside=*/true);
  EXPECT_EQ(report.rules_unchanged, 4u) << report.text();
  EXPECT_EQ(report.rules_classified, 0u) << report.text();
  report = recover_under(/*allow_outside=*/false);
  EXPECT_EQ(report.rules_classified, 4u) << report.text();
  EXPECT_EQ(report.discarded.at("policy_denied"), 1u) << report.text();
}

// A new rule set given to a worker that has connections does not judge
// them (only a reload does): the record vouches for no rules from then on.
TEST(Recovery, NewRulesOverOpenConnectionsVouchForNone) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store, /*allow_outside=*/true);
  open_tcp(before, 2);
  EXPECT_EQ(before.send(tcp_frame(9, false, kSyn, 7000, 0), Side::outside).reason,
            Reason::new_connection);
  Dataplane narrower(1, kEpoch, nullptr);
  before.pipelines[0]->set_policy(narrower.policy.get());
  Dataplane after(1, kEpoch + 1, nullptr);  // the narrower rules
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.rules_classified, 3u) << report.text();
  EXPECT_EQ(report.discarded.at("policy_denied"), 1u) << report.text();
}

TEST(Recovery, FragmentRecordsSurvive) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  UdpSpec u;
  u.payload = Bytes(40, 0x33);
  Ipv4Spec first;
  first.src = "10.0.0.1";
  first.dst = "192.0.2.10";
  first.id = 0x7777;
  first.more_fragments = true;
  const Bytes whole = finish_v4(udp(u), first.src, first.dst);
  Ipv4Spec later = first;
  later.more_fragments = false;
  later.frag_offset = 24;
  const Verdict v = before.send(
      ether(kEtherIpv4, ipv4_raw(first, kProtoUdp, Bytes(whole.begin(), whole.begin() + 24))),
      Side::inside);
  ASSERT_EQ(v.reason, Reason::new_connection);

  FakeStore next(2, 2);
  Dataplane after(2, kEpoch + 1, &next);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.fragments, 1u) << report.text();
  const Verdict rest = after.send(
      ether(kEtherIpv4, ipv4_raw(later, kProtoUdp, Bytes(whole.begin() + 24, whole.end()))),
      Side::inside, kT0 + 5);
  EXPECT_EQ(rest.reason, Reason::fragment);
  EXPECT_EQ(rest.conn_id, v.conn_id);
  EXPECT_EQ(next.used(kFragmentModule).size(), 1u);
}

// An FTP control segment: client 10.0.0.1:40000 <-> server 192.0.2.10:21.
Bytes ftp_segment(bool from_client, uint8_t flags, uint32_t seq, uint32_t ack,
                  const std::string& text) {
  TcpSpec t;
  t.flags = flags;
  t.seq = seq;
  t.ack = ack;
  t.payload = Bytes(text.begin(), text.end());
  t.sport = from_client ? 40000 : 21;
  t.dport = from_client ? 21 : 40000;
  Ipv4Spec ip;
  ip.src = from_client ? "10.0.0.1" : "192.0.2.10";
  ip.dst = from_client ? "192.0.2.10" : "10.0.0.1";
  return eth_v4(ip, tcp(t));
}

// The server's active-mode data SYN to the client's port 30000 + k.
Bytes active_data_syn(int k) {
  TcpSpec t;
  t.flags = kSyn;
  t.seq = 9000;
  t.sport = 20;
  t.dport = static_cast<uint16_t>(30000 + k);
  Ipv4Spec ip;
  ip.src = "192.0.2.10";
  ip.dst = "10.0.0.1";
  return eth_v4(ip, tcp(t));
}

std::string port_command(int k) {
  const int port = 30000 + k;
  return "PORT 10,0,0,1," + std::to_string(port / 256) + "," + std::to_string(port % 256) + "\r\n";
}

// An FTP session: handshake, then PORT for data port 30000 + 1, which a data
// connection takes, then PORT for 30000 + 2, left pending. Returns the
// control connection's ID and the client's next sequence number.
std::pair<uint64_t, uint32_t> ftp_session(Dataplane& d) {
  const Verdict syn = d.send(ftp_segment(true, kSyn, 1000, 0, ""), Side::inside);
  EXPECT_EQ(syn.reason, Reason::new_connection);
  d.send(ftp_segment(false, kSyn | kAck, 5000, 1001, ""), Side::outside);
  uint32_t seq = 1001;
  for (int k : {1, 2}) {
    const std::string cmd = port_command(k);
    EXPECT_EQ(d.send(ftp_segment(true, kAck | kPsh, seq, 5001, cmd), Side::inside).reason,
              Reason::established);
    seq += static_cast<uint32_t>(cmd.size());
    if (k == 1) {
      EXPECT_EQ(d.send(active_data_syn(1), Side::outside).reason, Reason::expected);
    }
  }
  return {syn.conn_id, seq};
}

TEST(Recovery, FtpSessionsAndTheirPendingExpectationsSurvive) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  const auto [control, seq] = ftp_session(before);
  EXPECT_EQ(store.used(static_cast<uint8_t>(ModuleId::ftp)).size(), 1u);

  FakeStore next(2, 2);
  Dataplane after(2, kEpoch + 1, &next);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.restored.at("tcp"), 2u) << report.text();  // control and data
  EXPECT_EQ(report.restored_l7.at("ftp"), 1u) << report.text();
  EXPECT_TRUE(report.discarded.empty()) << report.text();
  // The pending expectation came back with its master: the data connection
  // announced before the crash is admitted after it.
  const Verdict data = after.send(active_data_syn(2), Side::outside, kT0 + 10);
  EXPECT_EQ(data.reason, Reason::expected);
  // The control stream is read on from where it was: a new announcement
  // after the crash opens a pinhole too.
  EXPECT_EQ(
      after.send(ftp_segment(true, kAck | kPsh, seq, 5001, port_command(3)), Side::inside, kT0 + 20)
          .reason,
      Reason::established);
  EXPECT_EQ(after.send(active_data_syn(3), Side::outside, kT0 + 30).reason, Reason::expected);
  // And the new set holds the session again.
  EXPECT_EQ(next.used(static_cast<uint8_t>(ModuleId::ftp)).size(), 1u);
  uint64_t restored = 0;
  for (const auto& p : after.pipelines) restored += p->counters().ftp.sessions_restored;
  EXPECT_EQ(restored, 1u);
  (void)control;
}

TEST(Recovery, ARelatedConnectionGoesWithItsDeniedMaster) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  const auto [control, seq] = ftp_session(before);  // control and data, on the inside's rule
  // The new rules deny everything: the control connection by its rule, the
  // data connection (which no rule ever admitted) with its master. Two
  // workers, so that master and data may be judged on different ones.
  FakeStore next(2, 2);
  Dataplane after(2, kEpoch + 1, &next);
  std::string error;
  const std::unique_ptr<Policy> deny_all = Policy::compile({}, Action::deny, &error);
  ASSERT_NE(deny_all, nullptr) << error;
  for (const auto& p : after.pipelines) p->set_policy(deny_all.get());
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.discarded.at("policy_denied"), 2u) << report.text();
  EXPECT_EQ(report.restored.at("tcp"), 0u) << report.text();
  EXPECT_EQ(report.restored_l7.at("ftp"), 0u) << report.text();
  EXPECT_EQ(report.discarded.size(), 1u) << report.text();  // the FTP record goes uncounted
  EXPECT_EQ(after.connections(), 0u);
  uint64_t restored = 0;
  for (const auto& p : after.pipelines) {
    for (uint64_t n : p->counters().restored) restored += n;
  }
  EXPECT_EQ(restored, 0u);
  EXPECT_EQ(after.send(active_data_syn(1), Side::outside, kT0 + 10).reason, Reason::default_deny);
  (void)control;
  (void)seq;
}

TEST(Recovery, AnFtpSessionWithoutItsSliceGoesOnAsPlainTcp) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  const auto [control, seq] = ftp_session(before);
  // The FTP slot was torn by the crash.
  const auto ftp_slots = store.used(static_cast<uint8_t>(ModuleId::ftp));
  ASSERT_EQ(ftp_slots.size(), 1u);
  store.slot(0, static_cast<uint8_t>(ModuleId::ftp), ftp_slots[0].second)->seq |= 1;

  FakeStore next(1, 2);
  Dataplane after(1, kEpoch + 1, &next);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.discarded.at("torn"), 1u) << report.text();
  EXPECT_EQ(report.discarded.at("l7_slice_missing"), 1u) << report.text();
  EXPECT_EQ(report.restored.at("tcp"), 2u) << report.text();
  // The control connection passes; what it announced is lost.
  EXPECT_EQ(
      after.send(ftp_segment(true, kAck | kPsh, seq, 5001, "NOOP\r\n"), Side::inside, kT0 + 10)
          .conn_id,
      control);
  EXPECT_EQ(after.send(active_data_syn(2), Side::outside, kT0 + 20).reason, Reason::default_deny);
}

TEST(Recovery, AnFtpSliceNamingAnotherConnectionIsAnOrphan) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  ftp_session(before);
  const auto ftp_slots = store.used(static_cast<uint8_t>(ModuleId::ftp));
  ASSERT_EQ(ftp_slots.size(), 1u);
  // Point the record at the data connection's position instead.
  SlotHeader* h = store.slot(0, static_cast<uint8_t>(ModuleId::ftp), ftp_slots[0].second);
  auto* record =
      reinterpret_cast<L7Record<FtpSlice>*>(reinterpret_cast<uint8_t*>(h) + sizeof(SlotHeader));
  const auto bases = store.used(kBaseModule);
  ASSERT_EQ(bases.size(), 2u);
  record->position = record->position == bases[0].second ? bases[1].second : bases[0].second;

  FakeStore next(1, 2);
  Dataplane after(1, kEpoch + 1, &next);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.discarded.at("orphan_slice"), 1u) << report.text();
  EXPECT_EQ(report.discarded.at("l7_slice_missing"), 1u) << report.text();
  EXPECT_EQ(report.restored_l7.at("ftp"), 0u) << report.text();
}

TEST(Recovery, ACrashBetweenTheDataConnectionAndItsMastersUpdateKeepsTheTransfer) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  const Verdict syn = before.send(ftp_segment(true, kSyn, 1000, 0, ""), Side::inside);
  before.send(ftp_segment(false, kSyn | kAck, 5000, 1001, ""), Side::outside);
  before.send(ftp_segment(true, kAck | kPsh, 1001, 5001, port_command(1)), Side::inside);
  // The FTP slot as it was before the data connection used the expectation.
  const auto ftp_slots = store.used(static_cast<uint8_t>(ModuleId::ftp));
  ASSERT_EQ(ftp_slots.size(), 1u);
  SlotHeader* h = store.slot(0, static_cast<uint8_t>(ModuleId::ftp), ftp_slots[0].second);
  const RegionEntry& r = store.region(0, static_cast<uint8_t>(ModuleId::ftp));
  const std::vector<uint8_t> pending(reinterpret_cast<uint8_t*>(h),
                                     reinterpret_cast<uint8_t*>(h) + r.slot_size);
  const Verdict data = before.send(active_data_syn(1), Side::outside);
  ASSERT_EQ(data.reason, Reason::expected);
  // The crash came after the data connection was written, before the
  // master's slice was: put the old slot back.
  std::memcpy(h, pending.data(), pending.size());

  FakeStore next(1, 2);
  Dataplane after(1, kEpoch + 1, &next);
  const RecoveryReport report = recover_connections(store.bytes.data(), store.bytes.size(), -1,
                                                    store.set, after.raw(), kEpoch + 1);
  EXPECT_EQ(report.restored.at("tcp"), 2u) << report.text();
  // The retransmitted SYN belongs to the data connection, with its master.
  const Verdict again = after.send(active_data_syn(1), Side::outside, kT0 + 1000);
  EXPECT_EQ(again.reason, Reason::established);
  EXPECT_EQ(again.conn_id, data.conn_id);
  uint64_t master = 0;
  after.pipelines[0]->flows().for_each([&](uint32_t, const Connection& c) {
    if (c.id == data.conn_id) master = c.master_id;
  });
  EXPECT_EQ(master, syn.conn_id);
}

TEST(Recovery, AFullStoreRefusesNewConnectionsOrForwardsThemUnprotected) {
  // Three slots per region: a fresh table hands out positions 0, 1, 2, ...
  for (bool fail_open : {false, true}) {
    FakeStore store(1, 1, 3);
    Dataplane d(1, kEpoch, &store, false, fail_open);
    const std::vector<uint64_t> ids = open_tcp(d, 3);
    const Verdict fourth = d.send(tcp_frame(4, true, kSyn, 1000, 0), Side::inside);
    if (fail_open) {
      EXPECT_EQ(fourth.reason, Reason::new_connection);
      EXPECT_EQ(d.pipelines[0]->counters().unprotected, 1u);
      // It lives, but not in the store.
      EXPECT_EQ(store.used(kBaseModule).size(), 3u);
    } else {
      EXPECT_EQ(fourth.reason, Reason::ckpt_store_full);
      EXPECT_EQ(d.connections(), 3u);
    }
    // The connections that have slots are unaffected.
    const Verdict v = d.send(tcp_frame(2, false, kAck | kPsh, 5001, 1101, 10), Side::outside);
    EXPECT_EQ(v.reason, Reason::established);
    EXPECT_EQ(v.conn_id, ids[1]);
  }
}

// SIP: a call from the inside caller (UDP signalling allowed by the inside
// rule); media from outside passes only through the call's pinholes.
Bytes sip_datagram(bool from_caller, const std::string& text) {
  UdpSpec u;
  u.sport = from_caller ? 5061 : 5060;
  u.dport = from_caller ? 5060 : 5061;
  u.payload = Bytes(text.begin(), text.end());
  Ipv4Spec ip;
  ip.src = from_caller ? "10.0.0.10" : "198.51.100.20";
  ip.dst = from_caller ? "198.51.100.20" : "10.0.0.10";
  return eth_v4(ip, udp(u));
}

Bytes rtp_datagram(bool from_caller) {
  UdpSpec u;
  u.sport = from_caller ? 20000 : 30000;
  u.dport = from_caller ? 30000 : 20000;
  u.payload = Bytes(172, 0x80);
  Ipv4Spec ip;
  ip.src = from_caller ? "10.0.0.10" : "198.51.100.20";
  ip.dst = from_caller ? "198.51.100.20" : "10.0.0.10";
  return eth_v4(ip, udp(u));
}

// INVITE with the caller's audio on 20000, 200 with the callee's on 30000,
// ACK. Returns the signalling connection's ID.
uint64_t sip_call_up(Dataplane& d) {
  const Verdict invite = d.send(
      sip_datagram(true,
                   test::request("INVITE", "c1", 1, test::sdp("10.0.0.10", {{"audio", 20000}}))),
      Side::inside);
  EXPECT_EQ(invite.reason, Reason::new_connection);
  EXPECT_EQ(
      d.send(sip_datagram(false, test::response(200, "c1", 1, "INVITE",
                                                test::sdp("198.51.100.20", {{"audio", 30000}}))),
             Side::outside)
          .reason,
      Reason::established);
  EXPECT_EQ(d.send(sip_datagram(true, test::request("ACK", "c1", 1)), Side::inside).reason,
            Reason::established);
  return invite.conn_id;
}

RecoveryReport crash_and_recover(FakeStore& store, Dataplane& after) {
  return recover_connections(store.bytes.data(), store.bytes.size(), -1, store.set, after.raw(),
                             kEpoch + 1);
}

TEST(Recovery, ASipCallAnsweredBeforeTheCrashAdmitsItsFirstMediaAfterIt) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  const uint64_t signalling = sip_call_up(before);
  EXPECT_EQ(store.used(static_cast<uint8_t>(ModuleId::sip)).size(), 1u);
  EXPECT_EQ(store.used(kSipCallModule).size(), 1u);

  FakeStore next(2, 2);
  Dataplane after(2, kEpoch + 1, &next);
  const RecoveryReport report = crash_and_recover(store, after);
  EXPECT_EQ(report.restored_l7.at("sip"), 1u) << report.text();
  EXPECT_EQ(report.sip_calls, 1u) << report.text();
  EXPECT_TRUE(report.discarded.empty()) << report.text();
  // The first RTP, from outside, is admitted by the restored pinhole.
  const Verdict media = after.send(rtp_datagram(false), Side::outside, kT0 + 10);
  EXPECT_EQ(media.reason, Reason::expected);
  EXPECT_EQ(after.send(rtp_datagram(true), Side::inside, kT0 + 20).conn_id, media.conn_id);
  // The new set holds the session and the call again.
  EXPECT_EQ(next.used(static_cast<uint8_t>(ModuleId::sip)).size(), 1u);
  EXPECT_EQ(next.used(kSipCallModule).size(), 1u);
  // A BYE after the crash still ends the call and closes its media.
  EXPECT_EQ(
      after.send(sip_datagram(true, test::request("BYE", "c1", 2)), Side::inside, kT0 + 30).conn_id,
      signalling);
  EXPECT_EQ(after.send(rtp_datagram(false), Side::outside, kT0 + 40).reason, Reason::default_deny);
  EXPECT_EQ(next.used(kSipCallModule).size(), 0u);
}

TEST(Recovery, SipMediaFlowingAtTheCrashGoesOnAndTheByeStillClosesIt) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  const uint64_t signalling = sip_call_up(before);
  const Verdict media = before.send(rtp_datagram(false), Side::outside);
  ASSERT_EQ(media.reason, Reason::expected);

  FakeStore next(1, 2);
  Dataplane after(1, kEpoch + 1, &next);
  const RecoveryReport report = crash_and_recover(store, after);
  EXPECT_EQ(report.restored.at("udp"), 2u) << report.text();  // signalling and media
  EXPECT_EQ(report.sip_media_linked, 1u) << report.text();
  const Verdict again = after.send(rtp_datagram(true), Side::inside, kT0 + 10);
  EXPECT_EQ(again.reason, Reason::established);
  EXPECT_EQ(again.conn_id, media.conn_id);
  after.send(sip_datagram(false, test::request("BYE", "c1", 2)), Side::outside, kT0 + 20);
  uint64_t closed = 0;
  for (const auto& p : after.pipelines) closed += p->counters().sip.media_closed;
  EXPECT_EQ(closed, 1u);
  EXPECT_EQ(after.send(rtp_datagram(false), Side::outside, kT0 + 30).reason, Reason::default_deny);
  (void)signalling;
}

TEST(Recovery, SipMediaTheCallHadNotRecordedYetIsLinkedByItsPinhole) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  sip_call_up(before);
  // The call's slot as it was before the media connection was recorded.
  const auto calls = store.used(kSipCallModule);
  ASSERT_EQ(calls.size(), 1u);
  SlotHeader* h = store.slot(0, kSipCallModule, calls[0].second);
  const RegionEntry& r = store.region(0, kSipCallModule);
  const std::vector<uint8_t> unlinked(reinterpret_cast<uint8_t*>(h),
                                      reinterpret_cast<uint8_t*>(h) + r.slot_size);
  ASSERT_EQ(before.send(rtp_datagram(false), Side::outside).reason, Reason::expected);
  // The crash came after the media connection was written, before its call.
  std::memcpy(h, unlinked.data(), unlinked.size());

  FakeStore next(1, 2);
  Dataplane after(1, kEpoch + 1, &next);
  const RecoveryReport report = crash_and_recover(store, after);
  EXPECT_EQ(report.sip_media_linked, 1u) << report.text();
  after.send(sip_datagram(true, test::request("BYE", "c1", 2)), Side::inside, kT0 + 20);
  EXPECT_EQ(after.send(rtp_datagram(true), Side::inside, kT0 + 30).reason, Reason::new_connection);
}

TEST(Recovery, ASipCallWhoseRecordIsTornIsLostButItsSignallingGoesOn) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  const uint64_t signalling = sip_call_up(before);
  const auto calls = store.used(kSipCallModule);
  ASSERT_EQ(calls.size(), 1u);
  store.slot(0, kSipCallModule, calls[0].second)->seq |= 1;

  FakeStore next(1, 2);
  Dataplane after(1, kEpoch + 1, &next);
  const RecoveryReport report = crash_and_recover(store, after);
  EXPECT_EQ(report.discarded.at("torn"), 1u) << report.text();
  EXPECT_EQ(report.restored_l7.at("sip"), 1u) << report.text();
  EXPECT_EQ(report.sip_calls, 0u) << report.text();
  // The call's pinholes are gone; the signalling connection passes.
  EXPECT_EQ(after.send(rtp_datagram(false), Side::outside, kT0 + 10).reason, Reason::default_deny);
  EXPECT_EQ(
      after.send(sip_datagram(true, test::request("BYE", "c1", 2)), Side::inside, kT0 + 20).conn_id,
      signalling);
}

TEST(Recovery, ASipCallRecordOfAnotherConnectionIsAnOrphan) {
  FakeStore store(1, 1);
  Dataplane before(1, kEpoch, &store);
  sip_call_up(before);
  const auto calls = store.used(kSipCallModule);
  ASSERT_EQ(calls.size(), 1u);
  SlotHeader* h = store.slot(0, kSipCallModule, calls[0].second);
  h->conn_id += 1;  // not the signalling connection's ID

  FakeStore next(1, 2);
  Dataplane after(1, kEpoch + 1, &next);
  const RecoveryReport report = crash_and_recover(store, after);
  EXPECT_EQ(report.discarded.at("orphan_slice"), 1u) << report.text();
  EXPECT_EQ(report.sip_calls, 0u) << report.text();
}

Bytes udp_datagram(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport) {
  UdpSpec u;
  u.sport = sport;
  u.dport = dport;
  u.payload = Bytes(172, 0x80);
  Ipv4Spec ip;
  ip.src = src;
  ip.dst = dst;
  return eth_v4(ip, udp(u));
}

// The callee answers with a media gateway's address (in media_ranges) whose
// pair with the caller another worker owns than the signalling's: its
// pinholes and media live there. After a crash, into 1, 2 or 3 workers, the
// media flowing at the crash goes on, linked to its call wherever either
// landed; a stream not yet opened comes in through a re-opened pinhole;
// the BYE closes both.
TEST(Recovery, SipMediaOnAnotherWorkerThanItsCallSurvivesAndTheByeClosesIt) {
  const auto owner = [](const std::string& a, const std::string& b) {
    return worker_for_hash(address_pair_hash(*IpAddr::parse(a), *IpAddr::parse(b)), 2);
  };
  std::string gateway;
  for (int host = 1; host < 255 && gateway.empty(); ++host) {
    const std::string a = "203.0.113." + std::to_string(host);
    if (owner(a, "10.0.0.10") != owner("10.0.0.10", "198.51.100.20")) gateway = a;
  }
  ASSERT_FALSE(gateway.empty());
  for (uint32_t workers_after : {1u, 2u, 3u}) {
    SCOPED_TRACE(workers_after);
    FakeStore store(2, 1);
    Dataplane before(2, kEpoch, &store, false, false, "203.0.113.0/24");
    before.send(sip_datagram(true, test::request("INVITE", "c1", 1,
                                                 test::sdp("10.0.0.10", {{"audio", 20000}}))),
                Side::inside);
    before.send(sip_datagram(false, test::response(200, "c1", 1, "INVITE",
                                                   test::sdp(gateway.c_str(), {{"audio", 30000}}))),
                Side::outside);
    before.send(sip_datagram(true, test::request("ACK", "c1", 1)), Side::inside);
    const Verdict media =
        before.send(udp_datagram(gateway, 30000, "10.0.0.10", 20000), Side::outside);
    ASSERT_EQ(media.reason, Reason::expected);

    FakeStore next(workers_after, 2);
    Dataplane after(workers_after, kEpoch + 1, &next, false, false, "203.0.113.0/24");
    const RecoveryReport report = crash_and_recover(store, after);
    EXPECT_EQ(report.sip_calls, 1u) << report.text();
    EXPECT_EQ(report.sip_media_linked, 1u) << report.text();
    EXPECT_TRUE(report.discarded.empty()) << report.text();
    const Verdict again =
        after.send(udp_datagram("10.0.0.10", 20000, gateway, 30000), Side::inside, kT0 + 10);
    EXPECT_EQ(again.reason, Reason::established);
    EXPECT_EQ(again.conn_id, media.conn_id);
    const Verdict rtcp =
        after.send(udp_datagram(gateway, 30001, "10.0.0.10", 20001), Side::outside, kT0 + 20);
    EXPECT_EQ(rtcp.reason, Reason::expected);
    after.send(sip_datagram(true, test::request("BYE", "c1", 2)), Side::inside, kT0 + 30);
    uint64_t closed = 0;
    uint64_t lost = 0;
    for (const auto& p : after.pipelines) {
      closed += p->counters().sip.media_closed;
      lost += p->counters().sip.mail_lost;
    }
    EXPECT_EQ(closed, 2u);
    EXPECT_EQ(lost, 0u);
    EXPECT_EQ(after.send(udp_datagram(gateway, 30000, "10.0.0.10", 20000), Side::outside, kT0 + 40)
                  .reason,
              Reason::default_deny);
    EXPECT_EQ(after.send(udp_datagram(gateway, 30001, "10.0.0.10", 20001), Side::outside, kT0 + 50)
                  .reason,
              Reason::default_deny);
    for (const auto& p : after.pipelines) EXPECT_EQ(p->expectations().size(), 0u);
  }
}

}  // namespace
}  // namespace holdfast::ckpt
