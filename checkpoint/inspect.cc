#include "checkpoint/inspect.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "checkpoint/slot_read.h"
#include "dataplane/pipeline.h"
#include "modules/l4_dispatch.h"

namespace holdfast::ckpt {

std::string StoredConnection::client() const {
  return (flags & Connection::kOriginIsLo) ? key.lo.to_string(key.lo_port)
                                           : key.hi.to_string(key.hi_port);
}

std::string StoredConnection::server() const {
  return (flags & Connection::kOriginIsLo) ? key.hi.to_string(key.hi_port)
                                           : key.lo.to_string(key.lo_port);
}

nlohmann::json StoredConnection::to_json(uint64_t now_ms) const {
  nlohmann::json j = {
      {"id", id},
      {"worker", worker},
      {"protocol", module_name(l4)},
      {"state", state},
      {"client", client()},
      {"server", server()},
      {"zone", key.zone},
      {"origin", (flags & Connection::kOriginInside) ? "inside" : "outside"},
      {"age_s", now_ms / 1000 >= created_s ? now_ms / 1000 - created_s : 0},
      // last seen reaches the store once a second
      {"idle_s", static_cast<uint32_t>(static_cast<uint32_t>(now_ms) - last_seen_ms) / 1000}};
  if (master_id != 0) j["master"] = master_id;
  if (l7 == ModuleId::ftp) {
    j["l7"] = module_name(l7);
    j["pending_expectations"] = pending_expectations;
  } else if (l7 == ModuleId::sip) {
    j["l7"] = module_name(l7);
    j["calls"] = nlohmann::json::array();
    for (const Call& c : calls) {
      j["calls"].push_back(
          {{"call_id", c.call_id},
           {"state", c.state},
           {"media", c.media},
           {"age_s", now_ms / 1000 >= c.started_s ? now_ms / 1000 - c.started_s : 0}});
    }
  }
  return j;
}

StoredSet read_set(const uint8_t* store, uint64_t store_bytes, int store_fd, const RegionSet& set) {
  StoredSet out;
  uint64_t bad_regions = 0;
  const auto regions = map_regions(store, store_bytes, set, &bad_regions);
  const StoreExtents extents(store_fd, store);
  if (bad_regions != 0) out.skipped["bad_region"] += bad_regions;
  auto slice_ok = [&](const SlotRead& s, uint8_t module, uint16_t schema, size_t length) {
    if (!s.stable) {
      ++out.skipped["torn"];
      return false;
    }
    if (const char* why = slot_mismatch(s, module, schema, length)) {
      ++out.skipped[why];
      return false;
    }
    return true;
  };

  SlotRead s;
  for (uint32_t worker = 0; worker < regions.size(); ++worker) {
    const auto& mods = regions[worker];
    const MappedRegion& base = mods[kBaseModule];
    if (base.slots == nullptr) continue;
    std::map<uint32_t, size_t> at_position;  // position -> index in out.connections
    for (const auto& [first, end] : extents.runs(base))
      for (uint32_t i = first; i < end; ++i) {
        if (!read_slot(base, i, &s) || !slice_ok(s, kBaseModule, kBaseSchema, sizeof(BaseSlice))) {
          continue;
        }
        BaseSlice b;
        std::memcpy(&b, s.payload, sizeof b);
        StoredConnection c;
        c.worker = worker;
        c.position = i;
        c.id = s.header.conn_id;
        c.master_id = b.master_id;
        c.key = key_of(b);
        c.flags = b.flags;
        c.l4 = static_cast<ModuleId>(b.l4);
        c.state = "-";
        c.created_s = b.created_s;
        c.last_seen_ms = b.last_seen_ms;
        at_position[i] = out.connections.size();
        out.connections.push_back(c);
      }
    // Layer-4 slices at the same positions, with the same connection ID.
    for (ModuleId m : {ModuleId::tcp, ModuleId::udp, ModuleId::icmp, ModuleId::other}) {
      const MappedRegion& r = mods[static_cast<size_t>(m)];
      if (r.slots == nullptr) continue;
      for (const auto& [pos, index] : at_position) {
        StoredConnection& c = out.connections[index];
        if (c.l4 != m || pos >= r.slot_count || !read_slot(r, pos, &s)) continue;
        if (s.header.conn_id != c.id) continue;  // a slice of an earlier connection
        visit_l4(m, [&]<typename M>(M) {
          using Slice = typename M::Slice;
          if (!slice_ok(s, static_cast<uint8_t>(m), M::kSchemaVersion, sizeof(Slice))) return;
          Slice slice;
          std::memcpy(&slice, s.payload, sizeof slice);
          if (M::valid(slice)) c.state = M::state_name(slice);
        });
      }
    }
    // FTP slices name their control connection's position.
    const MappedRegion& ftp = mods[static_cast<size_t>(ModuleId::ftp)];
    for (const auto& [first, end] : extents.runs(ftp))
      for (uint32_t i = first; i < end; ++i) {
        using Record = L7Record<FtpSlice>;
        if (!read_slot(ftp, i, &s) || !slice_ok(s, static_cast<uint8_t>(ModuleId::ftp),
                                                FtpModule::kSchemaVersion, sizeof(Record))) {
          continue;
        }
        const auto* record = reinterpret_cast<const Record*>(s.payload);
        const auto it = at_position.find(record->position);
        if (it == at_position.end() || out.connections[it->second].id != s.header.conn_id ||
            !FtpModule::valid(record->slice)) {
          ++out.skipped["orphan_slice"];
          continue;
        }
        out.connections[it->second].l7 = ModuleId::ftp;
        out.connections[it->second].pending_expectations = record->slice.pending_count;
      }
    // SIP sessions, then their calls, by their signalling connection's
    // position.
    auto each_record = [&]<typename Slice>(uint8_t module, const auto& fn) {
      using Record = L7Record<Slice>;
      const MappedRegion& r = mods[module];
      for (const auto& [first, end] : extents.runs(r))
        for (uint32_t i = first; i < end; ++i) {
          if (!read_slot(r, i, &s) ||
              !slice_ok(s, module, SipModule::kSchemaVersion, sizeof(Record))) {
            continue;
          }
          const auto* record = reinterpret_cast<const Record*>(s.payload);
          const auto it = at_position.find(record->position);
          if (it == at_position.end() || out.connections[it->second].id != s.header.conn_id ||
              !SipModule::valid(record->slice) || !fn(out.connections[it->second], record->slice)) {
            ++out.skipped["orphan_slice"];
          }
        }
    };
    each_record.operator()<SipSession>(static_cast<uint8_t>(ModuleId::sip),
                                       [](StoredConnection& c, const SipSession&) {
                                         c.l7 = ModuleId::sip;
                                         return true;
                                       });
    each_record.operator()<SipCall>(kSipCallModule, [](StoredConnection& c, const SipCall& call) {
      if (c.l7 != ModuleId::sip) return false;
      c.calls.push_back({std::string(call.call_id, call.call_id_len), SipModule::state_name(call),
                         call.media_count, call.started_s});
      return true;
    });
  }
  std::sort(out.connections.begin(), out.connections.end(),
            [](const StoredConnection& a, const StoredConnection& b) { return a.id < b.id; });
  return out;
}

}  // namespace holdfast::ckpt
