#include "checkpoint/recovery.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_set>

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

// A slot worth looking at: holding something, and not torn (which is
// counted).
bool read_stable(const MappedRegion& r, uint32_t i, SlotRead* out, RecoveryReport* report) {
  if (!read_slot(r, i, out)) return false;
  if (!out->stable) ++report->discarded["torn"];
  return out->stable;
}

bool base_valid(const BaseSlice& b, uint64_t conn_id, uint32_t epoch_now) {
  const uint64_t epoch = conn_id >> kConnCounterBits;
  if (epoch == 0 || epoch >= epoch_now) return false;  // IDs come from earlier epochs only
  const auto l4 = static_cast<ModuleId>(b.l4);
  if (l4 != l4_module_for(b.proto)) return false;
  if (b.flags & ~(Connection::kOriginIsLo | Connection::kOriginInside | Connection::kHasL7)) {
    return false;
  }
  if ((b.flags & Connection::kHasL7) && l4 != ModuleId::tcp && l4 != ModuleId::udp) return false;
  const FlowKey k = key_of(b);
  if (k.lo.is_v4() != k.hi.is_v4()) return false;
  // Canonical order, as make_flow_key builds it.
  bool lo_first = false;
  const FlowKey again = make_flow_key(k.lo, k.lo_port, k.hi, k.hi_port, k.proto, k.zone, &lo_first);
  return lo_first && again == k;
}

// Validates and copies a module slice into the restored connection.
bool attach(Pipeline& p, uint32_t position, ModuleId module, const SlotRead& s,
            std::map<std::string, uint64_t>* discarded) {
  return visit_l4(module, [&]<typename M>(M) {
    using Slice = typename M::Slice;
    if (const char* why =
            slot_mismatch(s, static_cast<uint8_t>(module), M::kSchemaVersion, sizeof(Slice))) {
      ++(*discarded)[why];
      return false;
    }
    Slice slice;
    std::memcpy(&slice, s.payload, sizeof slice);
    if (!M::valid(slice)) {
      ++(*discarded)["invalid_slice"];
      return false;
    }
    p.restore_slice(position, &slice, sizeof slice);
    return true;
  });
}

constexpr uint64_t kNone = ~uint64_t{0};

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
          {"restored", restored},
          {"restored_total", restored_total()},
          {"restored_l7", restored_l7},
          {"sip_calls", sip_calls},
          {"sip_media_linked", sip_media_linked},
          {"fragment_records", fragments},
          {"discarded", discarded},
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
  out += "\n  phases:";
  for (const char* phase : {"base", "modules", "check", "fragments", "write"}) {
    auto it = phase_ms.find(phase);
    if (it == phase_ms.end()) continue;
    std::snprintf(line, sizeof line, " %s %.1f ms", phase, it->second);
    out += line;
  }
  out += "\n";
  return out;
}

RecoveryReport recover_connections(const uint8_t* store, uint64_t store_bytes,
                                   const RegionSet& from, const std::vector<Pipeline*>& pipelines,
                                   uint32_t epoch_now) {
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
  if (bad_regions != 0) report.discarded["bad_region"] += bad_regions;
  const auto old_workers = static_cast<uint32_t>(old.size());
  report.workers_before = old_workers;

  // Phase 1: base layers, placed by the owner of their address pair now.
  // They go in batches: one bulk lookup per owner first brings every key's
  // hash buckets into cache with the misses overlapping, so the lookup and
  // insert of each restore() find them there instead of waiting for each
  // in turn (at 1M connections the buckets are far beyond the caches).
  auto phase = Clock::now();
  const auto workers = static_cast<uint32_t>(pipelines.size());
  std::vector<std::vector<uint64_t>> placed(old_workers);  // old slot -> new worker << 32 | pos
  SlotRead s;
  struct Pending {
    FlowKey key;
    BaseSlice base;
    uint64_t id;
    uint32_t hash;
    uint32_t owner;
    uint32_t slot;
  };
  constexpr uint32_t kBatch = FlowTable::kMaxBulk;
  Pending batch[kBatch];
  uint32_t batched = 0;
  auto restore_batch = [&](uint32_t w) {
    const FlowKey* keys[kBatch];
    uint32_t hashes[kBatch];
    int32_t found[kBatch];
    for (uint32_t owner = 0; owner < workers; ++owner) {
      uint32_t k = 0;
      for (uint32_t j = 0; j < batched; ++j) {
        if (batch[j].owner != owner) continue;
        keys[k] = &batch[j].key;
        hashes[k++] = batch[j].hash;
      }
      if (k != 0) pipelines[owner]->flows().lookup_bulk(keys, hashes, k, found);
    }
    for (uint32_t j = 0; j < batched; ++j) {
      const Pending& e = batch[j];
      const BaseSlice& b = e.base;
      bool duplicate = false;
      const int32_t pos =
          pipelines[e.owner]->restore(e.key, e.hash, e.id, static_cast<ModuleId>(b.l4), b.flags,
                                      b.master_id, b.created_s, b.last_seen_ms, &duplicate);
      if (pos < 0) {
        ++report.discarded[duplicate ? "duplicate" : "table_full"];
        continue;
      }
      placed[w][e.slot] = uint64_t{e.owner} << 32 | static_cast<uint32_t>(pos);
    }
    batched = 0;
  };
  for (uint32_t w = 0; w < old_workers; ++w) {
    const MappedRegion& base = old[w][kBaseModule];
    if (base.slots == nullptr) continue;
    placed[w].assign(base.slot_count, kNone);
    for (uint32_t i = 0; i < base.slot_count; ++i) {
      if (!read_stable(base, i, &s, &report)) continue;
      if (const char* why = slot_mismatch(s, kBaseModule, kBaseSchema, sizeof(BaseSlice))) {
        ++report.discarded[why];
        continue;
      }
      Pending& e = batch[batched];
      std::memcpy(&e.base, s.payload, sizeof e.base);
      if (!base_valid(e.base, s.header.conn_id, epoch_now)) {
        ++report.discarded["invalid_base"];
        continue;
      }
      e.key = key_of(e.base);
      e.hash = FlowTable::hash(e.key);
      e.owner = worker_for_hash(address_pair_hash(e.key.lo, e.key.hi), workers);
      e.id = s.header.conn_id;
      e.slot = i;
      if (++batched == kBatch) restore_batch(w);
    }
    restore_batch(w);
  }
  report.phase_ms["base"] = ms_since(phase);

  // Phase 2: every module's slices, attached by connection ID.
  phase = Clock::now();
  std::vector<std::vector<bool>> complete(workers);
  for (uint32_t w = 0; w < workers; ++w) {
    complete[w].assign(pipelines[w]->flows().capacity(), false);
  }
  // Counted here and added to the report once: a map lookup per
  // connection would cost as much as the attach.
  uint64_t attached[kModuleSlots] = {};
  for (uint32_t w = 0; w < old_workers; ++w) {
    for (ModuleId module : {ModuleId::tcp, ModuleId::udp, ModuleId::icmp, ModuleId::other}) {
      const MappedRegion& r = old[w][static_cast<size_t>(module)];
      if (r.slots == nullptr) continue;
      for (uint32_t i = 0; i < r.slot_count; ++i) {
        if (!read_stable(r, i, &s, &report)) continue;
        const uint64_t where = i < placed[w].size() ? placed[w][i] : kNone;
        if (where == kNone) {
          ++report.discarded["orphan_slice"];
          continue;
        }
        const auto nw = static_cast<uint32_t>(where >> 32);
        const auto pos = static_cast<uint32_t>(where);
        const Connection& c = pipelines[nw]->flows().at(pos);
        if (c.id != s.header.conn_id || c.l4 != module ||
            s.header.module != static_cast<uint8_t>(module)) {
          ++report.discarded["orphan_slice"];
          continue;
        }
        if (attach(*pipelines[nw], pos, module, s, &report.discarded)) {
          complete[nw][pos] = true;
          ++attached[static_cast<size_t>(module)];
        }
      }
    }
  }
  for (ModuleId module : {ModuleId::tcp, ModuleId::udp, ModuleId::icmp, ModuleId::other}) {
    report.restored[module_name(module)] += attached[static_cast<size_t>(module)];
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
      for (uint32_t i = 0; i < r.slot_count; ++i) {
        if (!read_stable(r, i, &s, &report)) continue;
        if (const char* why = slot_mismatch(s, module, SchemaOf<Slice>::kVersion, sizeof(Record))) {
          ++report.discarded[why];
          continue;
        }
        // Records are large: validate in place, copy once.
        const auto* record = reinterpret_cast<const Record*>(s.payload);
        const uint64_t where =
            record->position < placed[w].size() ? placed[w][record->position] : kNone;
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
  report.phase_ms["modules"] = ms_since(phase);

  // Phase 3: bases whose slice never came, and the current rules.
  phase = Clock::now();
  std::vector<std::vector<uint32_t>> kept(workers);
  for (uint32_t w = 0; w < old_workers; ++w) {
    for (uint64_t where : placed[w]) {
      if (where == kNone) continue;
      const auto nw = static_cast<uint32_t>(where >> 32);
      const auto pos = static_cast<uint32_t>(where);
      if (complete[nw][pos]) {
        kept[nw].push_back(pos);
        const Connection& c = pipelines[nw]->flows().at(pos);
        if ((c.flags & Connection::kHasL7) && c.l7 == ModuleId::none) {
          // Followed by a layer-7 module whose slice did not come back: the
          // connection goes on, but what it announces from now is not seen.
          ++report.discarded["l7_slice_missing"];
          pipelines[nw]->forget_l7(pos);
        }
      } else {
        ++report.discarded["missing_slice"];
        const ModuleId l7 = pipelines[nw]->flows().at(pos).l7;
        if (l7 != ModuleId::none) --report.restored_l7[module_name(l7)];
        pipelines[nw]->drop_restored(pos);
        deliver_mail();
      }
    }
  }
  // A related connection (an FTP data connection) was admitted by its
  // master's expectation, not by a rule: it stays unless its master is now
  // denied. Masters may live on other workers, so every worker's rules are
  // checked first.
  std::vector<std::unique_ptr<bool[]>> allowed(workers);
  std::unordered_set<uint64_t> denied_masters;
  for (uint32_t nw = 0; nw < workers; ++nw) {
    allowed[nw].reset(new bool[kept[nw].size()]);
    pipelines[nw]->admits(kept[nw].data(), static_cast<uint32_t>(kept[nw].size()),
                          allowed[nw].get());
    for (size_t k = 0; k < kept[nw].size(); ++k) {
      const Connection& c = pipelines[nw]->flows().at(kept[nw][k]);
      if (c.master_id == 0 && !allowed[nw][k]) denied_masters.insert(c.id);
    }
  }
  for (uint32_t nw = 0; nw < workers; ++nw) {
    for (size_t k = 0; k < kept[nw].size(); ++k) {
      const uint32_t pos = kept[nw][k];
      const Connection& c = pipelines[nw]->flows().at(pos);
      const bool keep = c.master_id != 0 ? denied_masters.count(c.master_id) == 0 : allowed[nw][k];
      if (keep) {
        pipelines[nw]->count_restored(pos);
        continue;
      }
      ++report.discarded["policy_denied"];
      --report.restored[module_name(c.l4)];
      if (c.l7 != ModuleId::none) --report.restored_l7[module_name(c.l7)];
      pipelines[nw]->drop_restored(pos);
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
    for (uint32_t i = 0; i < r.slot_count; ++i) {
      if (!read_stable(r, i, &s, &report)) continue;
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
  for (Pipeline* p : pipelines) p->checkpoint_all();
  report.phase_ms["write"] = ms_since(phase);
  report.total_ms = ms_since(start);
  return report;
}

}  // namespace holdfast::ckpt
