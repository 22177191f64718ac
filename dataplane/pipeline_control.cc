// The worker's side of control requests (dataplane/control.h): each call
// visits at most kControlBudget table entries and copies what was asked for
// into the control thread's memory.
#include <algorithm>
#include <cstring>

#include "dataplane/pipeline.h"
#include "modules/l4_dispatch.h"

namespace holdfast {
namespace {

bool matches(const ConnFilter& f, const Connection& c) {
  if (f.id != 0 && c.id != f.id) return false;
  if (f.l4 != ModuleId::none && c.l4 != f.l4) return false;
  if (f.l7 != ModuleId::none && c.l7 != f.l7) return false;
  if (f.port >= 0 && c.key.lo_port != f.port && c.key.hi_port != f.port) return false;
  if (f.has_addr && !f.addr.contains(c.key.lo) && !f.addr.contains(c.key.hi)) return false;
  if (f.state != nullptr && std::strcmp(l4_state_name(c), f.state) != 0) return false;
  return true;
}

}  // namespace

bool Pipeline::serve_control(ControlRequest& r) {
  const uint32_t end = std::min(flows_->capacity(), r.cursor + kControlBudget);
  // Reload: positions of connections to re-check, a bulk classification at a time.
  uint32_t batch[Policy::kMaxBulk];
  uint32_t batched = 0;
  auto recheck = [&] {
    bool allowed[Policy::kMaxBulk];
    admits(batch, batched, allowed);
    for (uint32_t i = 0; i < batched; ++i) {
      if (allowed[i]) continue;
      const uint64_t id = flows_->at(batch[i]).id;
      if (!close_connection(id, batch[i])) continue;
      ++counters_.reload_closed;
      ++r.closed;
      if (r.denied_count < r.denied_capacity) r.denied[r.denied_count++] = id;
    }
    batched = 0;
  };
  if (r.op == ControlOp::reload && r.cursor == 0) {
    // The new rules judge every connection opened from here on. Until the
    // table is re-checked, the store vouches for no rules: a crash in
    // between leaves connections of both, and recovery classifies them all.
    rules_vouch_ = false;
    record_rules();
    policy_ = r.policy;
    rule_hits_.swap(*r.hits);
  }

  for (; r.cursor < end; ++r.cursor) {
    const uint32_t pos = r.cursor;
    const Connection& c = flows_->at(pos);
    if (!c.in_use() || (c.flags & Connection::kClosed)) continue;
    switch (r.op) {
      case ControlOp::list: {
        if (!matches(r.filter, c)) break;
        if (r.out_count == r.out_capacity) return true;  // page full: cursor is the next entry
        ConnSnapshot& s = r.out[r.out_count++];
        s.conn = c;
        s.worker = worker_;
        s.position = pos;
        s.pending = c.l7 == ModuleId::ftp ? ftp_pool_[c.l7_index].slice.pending_count : 0;
        s.calls = c.l7 == ModuleId::sip ? sip_sessions_[c.l7_index].slice.call_count : 0;
        if (r.detail != nullptr && r.out_count == 1) {
          ConnDetail& d = *r.detail;
          if (c.l7 == ModuleId::ftp) d.ftp = ftp_pool_[c.l7_index].slice;
          if (c.l7 == ModuleId::sip) {
            d.sip = sip_sessions_[c.l7_index].slice;
            d.call_count = d.sip.call_count;
            for (uint32_t k = 0; k < d.call_count; ++k)
              d.calls[k] = sip_calls_[d.sip.calls[k]].slice;
          }
        }
        break;
      }
      case ControlOp::states: {
        const char* name = l4_state_name(c);
        uint32_t k = 0;
        while (k < r.count_kinds && (r.counts[k].l4 != c.l4 || r.counts[k].state != name)) ++k;
        if (k == r.count_kinds) {
          if (k == kMaxStateCounts) break;  // more kinds than the reply holds
          r.counts[r.count_kinds++] = {c.l4, name, 0};
        }
        ++r.counts[k].count;
        break;
      }
      case ControlOp::reload:
        // Related connections were admitted by their master's expectation,
        // not by a rule: they follow their master (close_related).
        if (c.master_id != 0) break;
        ++r.checked;
        batch[batched++] = pos;
        if (batched == Policy::kMaxBulk) recheck();
        break;
      case ControlOp::close_related:
        if (c.master_id == 0 ||
            !std::binary_search(r.masters, r.masters + r.master_count, c.master_id)) {
          break;
        }
        if (close_connection(c.id, pos)) {
          ++counters_.reload_closed;
          ++r.closed;
        }
        break;
    }
  }
  if (batched != 0) recheck();
  const bool done = r.cursor >= flows_->capacity();
  if (done && r.op == ControlOp::reload) {
    rules_vouch_ = true;
    record_rules();
  }
  return done;
}

}  // namespace holdfast
