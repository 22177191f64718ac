#include "checkpoint/recovery.h"

#include <pthread.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <unordered_set>
#include <utility>

#include "checkpoint/slot_read.h"
#include "checkpoint/writer.h"
#include "dataplane/steering.h"
#include "modules/l4_dispatch.h"

namespace holdfast::ckpt {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Discarded slots and connections, per reason.
using Discards = std::map<std::string, uint64_t>;

// A slot worth looking at: holding something, and not torn (which is
// counted). Its header goes to *header and its payload's first sizeof(T)
// bytes, copied once, to *payload (read_slot_as).
template <typename T>
bool read_stable(const MappedRegion& r, uint32_t i, SlotHeader* header, T* payload,
                 Discards* discarded) {
  bool stable = false;
  if (!read_slot_as(r, i, header, payload, &stable)) return false;
  if (!stable) ++(*discarded)["torn"];
  return stable;
}
bool read_stable(const MappedRegion& r, uint32_t i, SlotRead* out, Discards* discarded) {
  out->stable = read_stable(r, i, &out->header, &out->payload, discarded);
  return out->stable;
}

// k: key_of(b), or store_key's, whose padding is zero by construction:
// only the order of its endpoints is left to check.
bool base_valid(const BaseSlice& b, const FlowKey& k, uint64_t conn_id, uint32_t epoch_now) {
  const uint64_t epoch = conn_id >> kConnCounterBits;
  if (epoch == 0 || epoch >= epoch_now) return false;  // IDs come from earlier epochs only
  const auto l4 = static_cast<ModuleId>(b.l4);
  if (l4 != l4_module_for(b.proto)) return false;
  if (b.flags & ~(Connection::kOriginIsLo | Connection::kOriginInside | Connection::kHasL7)) {
    return false;
  }
  if ((b.flags & Connection::kHasL7) && l4 != ModuleId::tcp && l4 != ModuleId::udp) return false;
  if (k.lo.is_v4() != k.hi.is_v4()) return false;
  return canonical_order(k);
}

// Reads the layer-4 slice of connection conn_id from slot i of region r
// straight into the connection being staged, and validates it there.
// Returns false when there is no valid one, counting why when the slot
// held something (torn, orphan_slice, unknown_schema, bad_length,
// invalid_slice).
bool stage_slice(Connection* staged, ModuleId module, uint64_t conn_id, const MappedRegion& r,
                 uint32_t i, Discards* discarded) {
  return visit_l4(module, [&]<typename M>(M) {
    using Slice = typename M::Slice;
    Slice& slice = staged->slice<Slice>();
    SlotHeader h;
    if (!read_stable(r, i, &h, &slice, discarded)) return false;
    const char* why;
    if (h.conn_id != conn_id || h.module != static_cast<uint8_t>(module)) {
      why = "orphan_slice";
    } else {
      why = slot_mismatch(h, static_cast<uint8_t>(module), M::kSchemaVersion, sizeof(Slice));
      if (why == nullptr && M::valid(slice)) return true;
      if (why == nullptr) why = "invalid_slice";
    }
    ++(*discarded)[why];
    return false;
  });
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

using Runs = std::vector<StoreExtents::Run>;

uint64_t slots_in(const Runs& runs) {
  uint64_t n = 0;
  for (const StoreExtents::Run& r : runs) n += r.end - r.first;
  return n;
}

// The pages of the new set that the write phase is going to fill. A new
// set comes from holdfast-ckptd as holes (never written, or punched when
// freed), so each page costs its writer a fault that allocates and zeroes
// it: at 1M connections most of the write phase. A second thread faults
// them in (MADV_POPULATE_WRITE, which leaves their contents alone) while
// phase 1 rebuilds the flow tables. Which pages: connections go to
// positions 0, 1, 2, ... of a fresh table, so for about `per_worker`
// connections a worker writes the first per_worker slots of its base
// region, and of a layer-4 module's region when that module had enough
// connections (`share` of the old ones) to touch most of those pages too;
// a sparse module's few pages are left to fault as they are written. Only
// an estimate of what will be written either way, never a change of what
// is: a failure (an older kernel) just leaves the faults to the writer.
std::vector<std::pair<uint8_t*, uint64_t>> pages_to_prefault(
    const std::vector<Pipeline*>& pipelines, uint64_t per_worker,
    const std::array<uint64_t, kModuleSlots>& share) {
  std::vector<std::pair<uint8_t*, uint64_t>> out;
  if (per_worker == 0) return out;
  for (const Pipeline* p : pipelines) {
    const WorkerCheckpoint* w = p->checkpoint();
    if (w == nullptr) continue;
    for (uint8_t m :
         {kBaseModule, static_cast<uint8_t>(ModuleId::tcp), static_cast<uint8_t>(ModuleId::udp),
          static_cast<uint8_t>(ModuleId::icmp), static_cast<uint8_t>(ModuleId::other)}) {
      const MappedRegion& r = w->region(m);
      if (r.slots == nullptr) continue;
      const uint64_t bytes = std::min<uint64_t>(per_worker, r.slot_count) * r.slot_size;
      // Dense: on average at least four of its slots per page.
      const uint64_t pages = (bytes + kPage - 1) / kPage;
      if (m != kBaseModule && share[m] < 4 * pages * pipelines.size()) continue;
      out.emplace_back(r.slots, pages * kPage);
    }
  }
  return out;
}

// Runs work beside the calling thread until join(), on the lcore given
// (a worker lcore waiting to be launched: the workers start after
// recovery), on a DPDK control thread (kControlThread: on the process's
// cores that are not lcores), on a plain thread (kPlainThread, which
// inherits the caller's affinity: in a process with an EAL, the main
// lcore's core), or at once on this thread (kInline, or when it cannot be
// started).
class Beside {
 public:
  static constexpr int kControlThread = -1;
  static constexpr int kPlainThread = -2;
  static constexpr int kInline = -3;

  Beside(std::function<void()> work, int where) : work_(std::move(work)) {
    if (where >= 0 && rte_eal_remote_launch(on_lcore, this, static_cast<unsigned>(where)) == 0) {
      lcore_ = where;
      return;
    }
    if (where == kControlThread &&
        rte_ctrl_thread_create(&thread_, "hf-recovery", nullptr, on_thread, this) == 0) {
      threaded_ = true;
      return;
    }
    if (where == kPlainThread && pthread_create(&thread_, nullptr, on_thread, this) == 0) {
      threaded_ = true;
      return;
    }
    work_();
  }
  ~Beside() { join(); }
  Beside(const Beside&) = delete;  // the running work points at this object
  Beside& operator=(const Beside&) = delete;
  void join() {
    if (lcore_ >= 0) rte_eal_wait_lcore(static_cast<unsigned>(lcore_));
    if (threaded_) pthread_join(thread_, nullptr);
    lcore_ = -1;
    threaded_ = false;
  }

 private:
  static int on_lcore(void* self) {
    static_cast<Beside*>(self)->work_();
    return 0;
  }
  static void* on_thread(void* self) {
    static_cast<Beside*>(self)->work_();
    return nullptr;
  }
  std::function<void()> work_;
  int lcore_ = -1;
  bool threaded_ = false;
  pthread_t thread_{};
};

// The cores recovery may use beside the calling thread, each handed out
// once: the worker lcores waiting to be launched, else (no worker lcore
// waits) DPDK control threads, one per core of the process that is not an
// lcore's; then `plain` plain threads, which share the caller's core where
// the EAL pinned it (only when a number of threads was asked for).
class SpareCores {
 public:
  explicit SpareCores(uint32_t plain) : plain_(plain) {
    if (rte_lcore_count() == 0) return;
    unsigned lcore;
    RTE_LCORE_FOREACH_WORKER(lcore) {
      if (rte_eal_get_lcore_state(lcore) == WAIT) lcores_.push_back(static_cast<int>(lcore));
    }
    if (lcores_.empty()) {
      const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
      if (cpus > static_cast<long>(rte_lcore_count())) {
        control_ = static_cast<uint32_t>(cpus - rte_lcore_count());
      }
    }
  }
  uint32_t left() const {
    return static_cast<uint32_t>(lcores_.size() - next_) + control_ + plain_;
  }
  // Starts work on the next spare core, or runs it at once when none is left.
  std::unique_ptr<Beside> start(std::function<void()> work) {
    int where = Beside::kInline;
    if (next_ < lcores_.size()) {
      where = lcores_[next_++];
    } else if (control_ > 0) {
      --control_;
      where = Beside::kControlThread;
    } else if (plain_ > 0) {
      --plain_;
      where = Beside::kPlainThread;
    }
    return std::make_unique<Beside>(std::move(work), where);
  }

 private:
  std::vector<int> lcores_;
  size_t next_ = 0;
  uint32_t control_ = 0;
  uint32_t plain_ = 0;
};

// Runs fn(t) for t in [0, threads): t = 0 on the calling thread, the
// others on the cores `cores` has left (at once, in turn, where none is),
// and returns when all are done, their cores free again.
void run_team(SpareCores cores, uint32_t threads, const std::function<void(uint32_t)>& fn) {
  std::vector<std::unique_ptr<Beside>> team;
  for (uint32_t t = 1; t < threads; ++t) team.push_back(cores.start([&fn, t] { fn(t); }));
  fn(0);
  for (auto& b : team) b->join();
}

// What placed[] holds for an old slot whose connection was not restored:
// kNone, and a layer-7 record naming it is an orphan; kGone, and the
// connection is already counted (missing_slice, policy_denied), so its
// layer-7 records go with it without being counted again.
constexpr uint64_t kNone = ~uint64_t{0};
constexpr uint64_t kGone = ~uint64_t{1};
constexpr uint8_t kNoModule = 0xff;

// The schema version of a layer-7 record's slice.
template <typename Slice>
struct SchemaOf;
template <>
struct SchemaOf<FtpSlice> {
  static constexpr uint16_t kVersion = FtpModule::kSchemaVersion;
};
template <>
struct SchemaOf<SipSession> {
  static constexpr uint16_t kVersion = SipModule::kSchemaVersion;
};
template <>
struct SchemaOf<SipCall> {
  static constexpr uint16_t kVersion = SipModule::kSchemaVersion;
};

struct At {
  uint32_t worker;
  uint32_t position;
};

// What the threads of phase 1 share. A thread writes only the placed and
// taken entries of the old regions it scans, and the positions (and
// tables) of the new workers it owns.
struct Rebuild {
  const std::vector<std::array<MappedRegion, kModuleSlots>>& old;
  const std::vector<std::array<Runs, kModuleSlots>>& data;
  const std::vector<Pipeline*>& pipelines;
  uint32_t epoch_now;
  // Per old worker, the digest of the rules its rules record vouches for
  // (0: none, its connections are classified).
  std::vector<uint64_t> rules;
  std::vector<std::vector<uint64_t>> placed;  // old slot -> new worker << 32 | pos
  std::vector<std::vector<uint8_t>> taken;    // old slot -> the module whose slice
                                              // there its base took (kNoModule: none)
  // Restored, per new worker, each list on a cache line of its own: the
  // threads push to theirs at every connection.
  struct alignas(64) Positions {
    std::vector<uint32_t> list;
  };
  std::vector<Positions> positions;
};

// One thread's findings, added to the report once every thread is done.
struct Share {
  Discards discarded;
  // Per module, as a map lookup per connection would cost as much as the
  // rest.
  uint64_t restored[kModuleSlots] = {};
  uint64_t classified = 0;
  uint64_t unchanged = 0;
  std::unordered_set<uint64_t> denied_masters;  // connections the current rules deny
  // Restored connections admitted through a master, and those a layer-7
  // module followed: looked at again once all are in place.
  std::vector<At> related;
  std::vector<At> followed;
  // Old base slots (worker, slot) whose connection another thread's worker
  // owns: taken up after the threads, on one.
  std::vector<std::pair<uint32_t, uint32_t>> deferred;
};

// Per old worker, the digest its rules record vouches for, or 0 where it
// has none (a reload was re-checking its table, or a set written before
// the record existed) or the record cannot be trusted (counted).
std::vector<uint64_t> vouched_rules(const std::vector<std::array<MappedRegion, kModuleSlots>>& old,
                                    Discards* discarded) {
  std::vector<uint64_t> rules(old.size(), 0);
  for (size_t w = 0; w < old.size(); ++w) {
    const MappedRegion& r = old[w][kRulesModule];
    if (r.slots == nullptr || r.slot_count == 0) continue;
    SlotHeader h;
    RulesRecord record;
    if (!read_stable(r, 0, &h, &record, discarded)) continue;
    if (const char* why = slot_mismatch(h, kRulesModule, kRulesSchema, sizeof record)) {
      ++(*discarded)[why];
      continue;
    }
    if (h.conn_id != kNoConnection) {
      ++(*discarded)["invalid_slice"];
      continue;
    }
    rules[w] = record.digest;
  }
  return rules;
}

// Phase 1 for the new workers o with o % threads == thread: each
// connection whole, in one pass over the old slots: its base, its layer-4
// slice from the same old slot of the module the base names, and the
// current rules' verdict, before it goes into the flow table of the worker
// that owns its address pair now. Every restored entry is written once,
// while it is in cache. They go in batches: one bulk lookup per owner
// first brings every key's hash buckets into cache with the misses
// overlapping, and the rules judge a batch per call.
class Rebuilder {
 public:
  Rebuilder(Rebuild* r, Share* out, uint32_t thread, uint32_t threads)
      : r_(*r), out_(*out), thread_(thread), threads_(threads) {
    // Owners by the hash's RETA entry, looked up: worker_for_hash and the
    // thread's share are two divisions by a count known only now, which
    // `perf` found among the pass's costliest instructions.
    const auto workers = static_cast<uint32_t>(r_.pipelines.size());
    for (uint32_t j = 0; j < kRetaSpan; ++j) {
      owner_[j] = worker_for_hash(j, workers);
      mine_[j] = owner_[j] % threads_ == thread_;
    }
  }
  ~Rebuilder() { flush(); }
  Rebuilder(const Rebuilder&) = delete;
  Rebuilder& operator=(const Rebuilder&) = delete;

  // Old base slot i of old worker w.
  void slot(uint32_t w, uint32_t i) {
    const MappedRegion& base = r_.old[w][kBaseModule];
    SlotHeader h;
    BaseSlice b;
    if (!read_stable(base, i, &h, &b, &out_.discarded)) return;
    if (const char* why = slot_mismatch(h, kBaseModule, kBaseSchema, sizeof(BaseSlice))) {
      ++out_.discarded[why];
      return;
    }
    Pending& e = batch_[batched_];
    Connection& c = e.conn;
    zero_entry(c);
    store_key(b, &c.key);
    if (!base_valid(b, c.key, h.conn_id, r_.epoch_now)) {
      ++out_.discarded["invalid_base"];
      return;
    }
    const uint32_t entry =
        r_.pipelines.size() == 1 ? 0 : address_pair_hash(c.key.lo, c.key.hi) % kRetaSpan;
    e.owner = owner_[entry];
    if (!mine_[entry]) {
      out_.deferred.emplace_back(w, i);
      return;
    }
    // Its layer-4 slice: in the same old slot of its module's region,
    // carrying its connection ID.
    const auto module = static_cast<ModuleId>(b.l4);
    const MappedRegion& r = r_.old[w][b.l4];
    bool complete = false;
    if (r.slots != nullptr && i < r.slot_count) {
      r_.taken[w][i] = b.l4;
      complete = stage_slice(&c, module, h.conn_id, r, i, &out_.discarded);
    }
    if (!complete) {
      ++out_.discarded["missing_slice"];
      r_.placed[w][i] = kGone;
      return;
    }
    c.id = h.conn_id;
    c.last_seen_ms = b.last_seen_ms;
    c.l4 = module;
    c.flags = b.flags;
    c.master_id = b.master_id;
    c.created_s = b.created_s;
    c.l7 = ModuleId::none;
    e.hash = FlowTable::hash(c.key);
    e.old_worker = w;
    e.slot = i;
    if (++batched_ == kBatch) flush();
  }

  void flush() {
    const FlowKey* keys[kBatch];
    uint32_t hashes[kBatch];
    int32_t found[kBatch];
    const Connection* conns[kBatch];
    bool allowed[kBatch];
    uint32_t index[kBatch];
    for (uint32_t owner = thread_; owner < r_.pipelines.size(); owner += threads_) {
      uint32_t k = 0;
      for (uint32_t j = 0; j < batched_; ++j) {
        if (batch_[j].owner != owner) continue;
        keys[k] = &batch_[j].conn.key;
        conns[k] = &batch_[j].conn;
        hashes[k] = batch_[j].hash;
        index[k++] = j;
      }
      if (k == 0) continue;
      Pipeline& p = *r_.pipelines[owner];
      p.flows().lookup_bulk(keys, hashes, k, found);
      judge(p, conns, index, k, allowed);
      for (uint32_t i = 0; i < k; ++i) {
        const Pending& e = batch_[index[i]];
        const Connection& c = e.conn;
        uint64_t& placed = r_.placed[e.old_worker][e.slot];
        // A related connection (an FTP data connection) was admitted by its
        // master's expectation, not by a rule: it stays unless its master
        // is now denied, which is known once every master has been judged.
        if (c.master_id == 0 && !allowed[i]) {
          ++out_.discarded["policy_denied"];
          out_.denied_masters.insert(c.id);
          placed = kGone;
          continue;
        }
        bool duplicate = false;
        const int32_t pos = p.restore(c, e.hash, &duplicate);
        if (pos < 0) {
          ++out_.discarded[duplicate ? "duplicate" : "table_full"];
          ++out_.discarded["orphan_slice"];  // its slice, as for any base not restored
          continue;
        }
        placed = uint64_t{owner} << 32 | static_cast<uint32_t>(pos);
        r_.positions[owner].list.push_back(static_cast<uint32_t>(pos));
        ++out_.restored[static_cast<size_t>(c.l4)];
        const At at{owner, static_cast<uint32_t>(pos)};
        if (c.master_id != 0) out_.related.push_back(at);
        if (c.flags & Connection::kHasL7) out_.followed.push_back(at);
      }
    }
    batched_ = 0;
  }

 private:
  struct Pending {
    Connection conn;
    uint32_t hash;
    uint32_t owner;
    uint32_t old_worker;
    uint32_t slot;
  };
  static constexpr uint32_t kBatch = FlowTable::kMaxBulk;
  static_assert(kBatch <= Policy::kMaxBulk);

  // allowed[i]: whether owner p's rules admit conns[i] (batch_[index[i]]).
  // A related connection is not judged by a rule (flush); one whose old
  // worker vouched for the rules p has now was admitted by them, and
  // classifying it again would give the same answer at some 40% of the
  // whole pass's time.
  void judge(const Pipeline& p, const Connection* const* conns, const uint32_t* index, uint32_t k,
             bool* allowed) {
    const uint64_t digest = p.policy()->digest();
    const Connection* ask[kBatch];
    uint32_t asked[kBatch];
    uint32_t q = 0;
    for (uint32_t i = 0; i < k; ++i) {
      allowed[i] = true;
      if (conns[i]->master_id != 0) continue;
      if (r_.rules[batch_[index[i]].old_worker] == digest) {
        ++out_.unchanged;
        continue;
      }
      ask[q] = conns[i];
      asked[q++] = i;
    }
    if (q == 0) return;
    bool verdict[kBatch];
    p.admits(ask, q, verdict);
    for (uint32_t j = 0; j < q; ++j) allowed[asked[j]] = verdict[j];
    out_.classified += q;
  }

  Rebuild& r_;
  Share& out_;
  uint32_t thread_;
  uint32_t threads_;
  uint32_t owner_[kRetaSpan];
  bool mine_[kRetaSpan];
  Pending batch_[kBatch];
  uint32_t batched_ = 0;
};

}  // namespace

std::vector<SlotShape> module_shapes(const PipelineSettings& settings) {
  return {
      {kBaseModule, kBaseSchema, slot_size_for(sizeof(BaseSlice))},
      {static_cast<uint8_t>(ModuleId::tcp), TcpModule::kSchemaVersion,
       slot_size_for(sizeof(TcpSlice))},
      {static_cast<uint8_t>(ModuleId::udp), UdpModule::kSchemaVersion,
       slot_size_for(sizeof(UdpModule::Slice))},
      {static_cast<uint8_t>(ModuleId::icmp), IcmpModule::kSchemaVersion,
       slot_size_for(sizeof(IcmpSlice))},
      {static_cast<uint8_t>(ModuleId::other), OtherModule::kSchemaVersion,
       slot_size_for(sizeof(OtherModule::Slice))},
      {static_cast<uint8_t>(ModuleId::ftp), FtpModule::kSchemaVersion,
       slot_size_for(sizeof(L7Record<FtpSlice>)), std::max<uint32_t>(settings.ftp.sessions, 1)},
      {static_cast<uint8_t>(ModuleId::sip), SipModule::kSchemaVersion,
       slot_size_for(sizeof(L7Record<SipSession>)), std::max<uint32_t>(settings.sip.sessions, 1)},
      {kFragmentModule, kFragmentSchema, slot_size_for(sizeof(FragmentRecord)), settings.fragments},
      {kSipCallModule, SipModule::kSchemaVersion, slot_size_for(sizeof(L7Record<SipCall>)),
       std::max<uint32_t>(settings.sip.calls, 1)},
      {kRulesModule, kRulesSchema, slot_size_for(sizeof(RulesRecord)), 1},
  };
}

bool attach_writers(uint8_t* store, const RegionSet& set, std::vector<WorkerCheckpoint>* writers,
                    std::string* error) {
  const size_t modules = module_shapes(PipelineSettings{}).size();
  std::vector<size_t> found(writers->size(), 0);
  for (const RegionEntry& r : set.regions) {
    if (r.worker >= writers->size() || r.module >= kModuleSlots) {
      *error = "region set does not match this dataplane's workers or modules";
      return false;
    }
    MappedRegion m;
    m.slots = store + r.offset;
    m.slot_size = r.slot_size;
    m.slot_count = r.slot_count;
    m.schema = r.schema;
    (*writers)[r.worker].set_region(static_cast<uint8_t>(r.module), m);
    ++found[r.worker];
  }
  for (size_t w = 0; w < writers->size(); ++w) {
    if (found[w] != modules) {
      *error = "region set lacks regions for worker " + std::to_string(w);
      return false;
    }
  }
  return true;
}

uint64_t RecoveryReport::restored_total() const {
  uint64_t n = 0;
  for (const auto& [proto, count] : restored) n += count;
  return n;
}

nlohmann::json RecoveryReport::to_json() const {
  return {{"from_set", from_set},
          {"from_epoch", from_epoch},
          {"epoch", epoch},
          {"workers_before", workers_before},
          {"workers_now", workers_now},
          {"threads", threads},
          {"restored", restored},
          {"restored_total", restored_total()},
          {"restored_l7", restored_l7},
          {"sip_calls", sip_calls},
          {"sip_media_linked", sip_media_linked},
          {"fragment_records", fragments},
          {"discarded", discarded},
          {"rules", {{"classified", rules_classified}, {"unchanged", rules_unchanged}}},
          {"phase_ms", phase_ms},
          {"total_ms", total_ms}};
}

std::string RecoveryReport::text() const {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line,
                "Recovery from set %u (epoch %u, %u worker%s) into epoch %u (%u worker%s): "
                "%llu connections restored in %.1f ms\n",
                from_set, from_epoch, workers_before, workers_before == 1 ? "" : "s", epoch,
                workers_now, workers_now == 1 ? "" : "s",
                static_cast<unsigned long long>(restored_total()), total_ms);
  out += line;
  out += "  restored:";
  for (const auto& [proto, n] : restored) {
    std::snprintf(line, sizeof line, " %s %llu", proto.c_str(), static_cast<unsigned long long>(n));
    out += line;
  }
  for (const auto& [module, n] : restored_l7) {
    std::snprintf(line, sizeof line, " (%s sessions %llu)", module.c_str(),
                  static_cast<unsigned long long>(n));
    out += line;
  }
  if (sip_calls != 0) {
    std::snprintf(line, sizeof line, " (sip calls %llu, media linked %llu)",
                  static_cast<unsigned long long>(sip_calls),
                  static_cast<unsigned long long>(sip_media_linked));
    out += line;
  }
  std::snprintf(line, sizeof line, ", fragment records %llu",
                static_cast<unsigned long long>(fragments));
  out += line;
  out += "\n  discarded:";
  if (discarded.empty()) out += " none";
  for (const auto& [why, n] : discarded) {
    std::snprintf(line, sizeof line, " %s %llu", why.c_str(), static_cast<unsigned long long>(n));
    out += line;
  }
  if (rules_classified + rules_unchanged != 0) {  // 0: nothing judged, or an older report
    std::snprintf(line, sizeof line,
                  "\n  rules: %llu connections classified again, %llu admitted by these very "
                  "rules before the crash",
                  static_cast<unsigned long long>(rules_classified),
                  static_cast<unsigned long long>(rules_unchanged));
    out += line;
  }
  out += "\n  phases:";
  for (const char* phase : {"connections", "layer7", "check", "fragments", "write"}) {
    auto it = phase_ms.find(phase);
    if (it == phase_ms.end()) continue;
    std::snprintf(line, sizeof line, " %s %.1f ms", phase, it->second);
    out += line;
  }
  if (threads != 0) {  // 0: a report from before threads were counted
    std::snprintf(line, sizeof line, " (connections and write on %u thread%s)", threads,
                  threads == 1 ? "" : "s");
    out += line;
  }
  out += "\n";
  return out;
}

RecoveryReport recover_connections(const uint8_t* store, uint64_t store_bytes, int store_fd,
                                   const RegionSet& from, const std::vector<Pipeline*>& pipelines,
                                   uint32_t epoch_now, const RecoveryOptions& options) {
  const auto start = Clock::now();
  RecoveryReport report;
  report.from_set = from.set;
  report.from_epoch = from.epoch;
  report.epoch = epoch_now;
  report.workers_now = static_cast<uint32_t>(pipelines.size());
  for (ModuleId m : {ModuleId::tcp, ModuleId::udp, ModuleId::icmp, ModuleId::other}) {
    report.restored[module_name(m)] = 0;
  }
  report.restored_l7[module_name(ModuleId::ftp)] = 0;
  report.restored_l7[module_name(ModuleId::sip)] = 0;

  // The old set's regions by worker and module.
  uint64_t bad_regions = 0;
  const auto old = map_regions(store, store_bytes, from, &bad_regions);
  // Where the old set holds anything (the rest is never read).
  const StoreExtents extents(store_fd, store);
  std::vector<std::array<Runs, kModuleSlots>> data(old.size());
  std::array<uint64_t, kModuleSlots> data_slots{};
  for (size_t w = 0; w < old.size(); ++w) {
    for (size_t m = 0; m < kModuleSlots; ++m) {
      data[w][m] = extents.runs(old[w][m]);
      data_slots[m] += slots_in(data[w][m]);
    }
  }
  if (bad_regions != 0) report.discarded["bad_region"] += bad_regions;
  const auto old_workers = static_cast<uint32_t>(old.size());
  report.workers_before = old_workers;

  // Phase 1: connections (Rebuilder), in parallel where cores are spare:
  // each thread takes the new workers o with o % threads == thread and
  // scans the old regions w with w % threads == thread. With as many
  // workers as before, the connections of old worker w all belong to new
  // worker w (the same hash picks them), so no table is written by two
  // threads and nothing is shared but reads; a connection another thread's
  // worker owns is left for a serial pass after them.
  auto phase = Clock::now();
  const auto workers = static_cast<uint32_t>(pipelines.size());
  SpareCores cores(options.threads > 1 ? options.threads - 1 : 0);
  uint32_t threads = std::min({workers, old_workers, 1 + cores.left()});
  if (options.threads != 0) threads = std::min(threads, options.threads);
  threads = std::max(threads, 1u);
  report.threads = threads;
  // The pages of the new set, faulted in on a core that is left (else the
  // writers take the faults). At most this many connections come back,
  // spread over the workers by hash: a little slack for the unevenness.
  const uint64_t per_worker = data_slots[kBaseModule] / workers * 51 / 50 + 64;
  std::unique_ptr<Beside> prefault;
  if (cores.left() >= threads) {
    prefault = cores.start([ranges = pages_to_prefault(pipelines, per_worker, data_slots)] {
      for (const auto& [begin, bytes] : ranges) madvise(begin, bytes, MADV_POPULATE_WRITE);
    });
  }
  std::vector<uint64_t> rules = vouched_rules(old, &report.discarded);
  Rebuild rebuild{old, data, pipelines, epoch_now, std::move(rules), {}, {}, {}};
  rebuild.placed.resize(old_workers);
  rebuild.taken.resize(old_workers);
  rebuild.positions.resize(workers);
  std::vector<Share> shares(threads);
  run_team(cores, threads, [&](uint32_t t) {
    Rebuilder rebuilder(&rebuild, &shares[t], t, threads);
    for (uint32_t w = t; w < old_workers; w += threads) {
      const MappedRegion& base = old[w][kBaseModule];
      if (base.slots == nullptr) continue;
      rebuild.placed[w].assign(base.slot_count, kNone);
      rebuild.taken[w].assign(base.slot_count, kNoModule);
      for (const auto& [first, end] : data[w][kBaseModule])
        for (uint32_t i = first; i < end; ++i) rebuilder.slot(w, i);
    }
  });
  {
    Rebuilder serial(&rebuild, &shares[0], 0, 1);
    for (const Share& share : shares) {
      for (const auto& [w, i] : share.deferred) serial.slot(w, i);
    }
  }
  std::unordered_set<uint64_t> denied_masters;
  std::vector<At> related;
  std::vector<At> followed;
  for (Share& share : shares) {
    for (const auto& [why, n] : share.discarded) report.discarded[why] += n;
    for (ModuleId module : {ModuleId::tcp, ModuleId::udp, ModuleId::icmp, ModuleId::other}) {
      report.restored[module_name(module)] += share.restored[static_cast<size_t>(module)];
    }
    report.rules_classified += share.classified;
    report.rules_unchanged += share.unchanged;
    denied_masters.merge(share.denied_masters);
    related.insert(related.end(), share.related.begin(), share.related.end());
    followed.insert(followed.end(), share.followed.begin(), share.followed.end());
  }
  const auto& placed = rebuild.placed;
  const auto& taken = rebuild.taken;
  SlotRead s;
  report.phase_ms["connections"] = ms_since(phase);

  // Phase 2: layer-4 slices no base took are orphans; then the layer-7
  // records.
  phase = Clock::now();
  for (uint32_t w = 0; w < old_workers; ++w) {
    for (ModuleId module : {ModuleId::tcp, ModuleId::udp, ModuleId::icmp, ModuleId::other}) {
      const auto m = static_cast<uint8_t>(module);
      const MappedRegion& r = old[w][m];
      if (r.slots == nullptr) continue;
      for (const auto& [first, end] : data[w][m])
        for (uint32_t i = first; i < end; ++i) {
          if (i < taken[w].size() && taken[w][i] == m) continue;
          if (read_stable(r, i, &s, &report.discarded)) ++report.discarded["orphan_slice"];
        }
    }
  }
  // Layer-7 records: each names the position its connection had, which maps
  // to the connection restored from there; the connection ID must match.
  // fn(record, new worker, position) returns nullptr or why it was not
  // restored.
  auto each_l7 = [&]<typename Slice>(uint8_t module, const auto& fn) {
    using Record = L7Record<Slice>;
    for (uint32_t w = 0; w < old_workers; ++w) {
      const MappedRegion& r = old[w][module];
      if (r.slots == nullptr) continue;
      for (const auto& [first, end] : data[w][module])
        for (uint32_t i = first; i < end; ++i) {
          if (!read_stable(r, i, &s, &report.discarded)) continue;
          if (const char* why =
                  slot_mismatch(s, module, SchemaOf<Slice>::kVersion, sizeof(Record))) {
            ++report.discarded[why];
            continue;
          }
          // Records are large: validate in place, copy once.
          const auto* record = reinterpret_cast<const Record*>(s.payload);
          const uint64_t where =
              record->position < placed[w].size() ? placed[w][record->position] : kNone;
          if (where == kGone) continue;  // its connection is counted already
          if (where == kNone) {
            ++report.discarded["orphan_slice"];
            continue;
          }
          const auto nw = static_cast<uint32_t>(where >> 32);
          const auto pos = static_cast<uint32_t>(where);
          if (pipelines[nw]->flows().at(pos).id != s.header.conn_id) {
            ++report.discarded["orphan_slice"];
            continue;
          }
          if (const char* why = fn(*record, nw, pos)) ++report.discarded[why];
        }
    }
  };
  // A session attaches to a connection marked as followed and not yet
  // given one.
  auto unclaimed = [&](uint32_t nw, uint32_t pos) {
    const Connection& c = pipelines[nw]->flows().at(pos);
    return (c.flags & Connection::kHasL7) && c.l7 == ModuleId::none;
  };
  each_l7.operator()<FtpSlice>(
      static_cast<uint8_t>(ModuleId::ftp),
      [&](const L7Record<FtpSlice>& r, uint32_t nw, uint32_t pos) -> const char* {
        if (!unclaimed(nw, pos)) return "orphan_slice";
        if (!FtpModule::valid(r.slice)) return "invalid_slice";
        if (!pipelines[nw]->restore_ftp(pos, r.slice)) return "ftp_sessions_full";
        ++report.restored_l7[module_name(ModuleId::ftp)];
        return nullptr;
      });
  each_l7.operator()<SipSession>(
      static_cast<uint8_t>(ModuleId::sip),
      [&](const L7Record<SipSession>& r, uint32_t nw, uint32_t pos) -> const char* {
        if (!unclaimed(nw, pos)) return "orphan_slice";
        if (!SipModule::valid(r.slice)) return "invalid_slice";
        if (!pipelines[nw]->restore_sip_session(pos, r.slice)) return "sip_sessions_full";
        ++report.restored_l7[module_name(ModuleId::sip)];
        return nullptr;
      });
  // Pinholes whose address pair another worker owns, and their closing
  // when a call's connection is dropped, go to that worker as mail
  // (dataplane/pinhole_mail.h): delivered after every call, so that no
  // ring fills.
  auto deliver_mail = [&] {
    for (Pipeline* p : pipelines) p->read_mail();
  };
  // Calls after their sessions: each joins the session of its signalling
  // connection.
  each_l7.operator()<SipCall>(
      kSipCallModule, [&](const L7Record<SipCall>& r, uint32_t nw, uint32_t pos) -> const char* {
        if (!SipModule::valid(r.slice)) return "invalid_slice";
        const char* why = pipelines[nw]->restore_sip_call(pos, r.slice);
        deliver_mail();
        if (why != nullptr) return why;
        ++report.sip_calls;
        return nullptr;
      });
  report.phase_ms["layer7"] = ms_since(phase);

  // Phase 3: what needed every connection in place first.
  phase = Clock::now();
  for (const At& at : followed) {
    const Connection& c = pipelines[at.worker]->flows().at(at.position);
    if (c.l7 == ModuleId::none) {
      // Followed by a layer-7 module whose slice did not come back: the
      // connection goes on, but what it announces from now is not seen.
      ++report.discarded["l7_slice_missing"];
      pipelines[at.worker]->forget_l7(at.position);
    }
  }
  if (!denied_masters.empty()) {
    for (const At& at : related) {
      const Connection& c = pipelines[at.worker]->flows().at(at.position);
      if (denied_masters.count(c.master_id) == 0) continue;
      ++report.discarded["policy_denied"];
      --report.restored[module_name(c.l4)];
      if (c.l7 != ModuleId::none) --report.restored_l7[module_name(c.l7)];
      pipelines[at.worker]->drop_restored(at.position);
      deliver_mail();
    }
  }
  // Media connections join the calls whose pinholes admitted them (a
  // sweep of every table, so only when a SIP session came back).
  if (report.restored_l7[module_name(ModuleId::sip)] != 0) {
    report.sip_media_linked += Pipeline::relink_sip_media(pipelines);
  }
  report.phase_ms["check"] = ms_since(phase);

  // Fragment records: what later fragments of a datagram in flight are told.
  phase = Clock::now();
  for (uint32_t w = 0; w < old_workers; ++w) {
    const MappedRegion& r = old[w][kFragmentModule];
    if (r.slots == nullptr) continue;
    for (const auto& [first, end] : data[w][kFragmentModule])
      for (uint32_t i = first; i < end; ++i) {
        if (!read_stable(r, i, &s, &report.discarded)) continue;
        if (s.header.module != kFragmentModule || s.header.schema != kFragmentSchema ||
            s.header.length != sizeof(FragmentRecord)) {
          ++report.discarded["unknown_schema"];
          continue;
        }
        FragmentRecord record;
        std::memcpy(&record, s.payload, sizeof record);
        const uint64_t epoch = record.conn_id >> kConnCounterBits;
        if (!record.used || static_cast<size_t>(record.reason) >= kReasonCount ||
            record.key.src.is_v4() != record.key.dst.is_v4() || record.key.side > 1 ||
            (record.conn_id != 0 && (epoch == 0 || epoch >= epoch_now))) {
          ++report.discarded["invalid_fragment"];
          continue;
        }
        const uint32_t owner =
            worker_for_hash(address_pair_hash(record.key.src, record.key.dst), workers);
        if (pipelines[owner]->restore_fragment(record)) {
          ++report.fragments;
        } else {
          ++report.discarded["fragment_not_restored"];
        }
      }
  }
  report.phase_ms["fragments"] = ms_since(phase);

  // Phase 4: into the new set, before anything is forwarded.
  phase = Clock::now();
  if (prefault) prefault->join();
  run_team(cores, threads, [&](uint32_t t) {
    for (uint32_t w = t; w < workers; w += threads) {
      pipelines[w]->checkpoint_restored(rebuild.positions[w].list);
    }
  });
  report.phase_ms["write"] = ms_since(phase);
  report.total_ms = ms_since(start);
  return report;
}

}  // namespace holdfast::ckpt
