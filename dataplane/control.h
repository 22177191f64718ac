// Requests from the control thread to a worker, served by the worker itself
// between bursts (dataplane/telemetry.cc asks, Worker::run serves).
//
// A worker's flow table, layer-7 pools and policy are its own: nothing else
// may read them while it forwards. So the control thread does not read them;
// it posts one request at a time in the worker's ControlSlot and waits. The
// worker checks the slot once per loop (one load), does a bounded amount of
// the work (kControlBudget table entries), and marks the request done once it
// has visited the whole table. Results go into memory the control thread
// allocated: the worker copies plain structs and allocates, locks and throws
// nothing. Forwarding goes on between the slices of work.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "dataplane/connection.h"
#include "dataplane/ip_address.h"
#include "modules/ftp/ftp.h"
#include "modules/module.h"
#include "modules/sip/sip.h"

namespace holdfast {

class Policy;

// Table entries a worker visits per loop for a control request.
inline constexpr uint32_t kControlBudget = 16384;

// Which connections a request is about; every set field must match.
struct ConnFilter {
  uint64_t id = 0;               // 0: any
  ModuleId l4 = ModuleId::none;  // none: any protocol
  ModuleId l7 = ModuleId::none;  // ftp, sip: followed by that module
  const char* state = nullptr;   // the layer-4 module's state name
  bool has_addr = false;         // either end in addr/prefix
  Cidr addr;
  int32_t port = -1;  // either end's port
};

// A connection as the worker had it, for listing.
struct ConnSnapshot {
  Connection conn;
  uint32_t worker = 0;
  uint32_t position = 0;
  uint32_t pending = 0;  // FTP: expectations waiting for their data connection
  uint32_t calls = 0;    // SIP: calls on this signalling connection
};

// One connection's layer-7 state, copied whole (conns show).
struct ConnDetail {
  FtpSlice ftp;
  SipSession sip;
  SipCall calls[SipSettings::kMaxCallsPerSession];
  uint32_t call_count = 0;
};

// Open connections by layer-4 state name (the names are string literals).
struct StateCount {
  ModuleId l4 = ModuleId::none;
  const char* state = nullptr;
  uint64_t count = 0;
};
inline constexpr uint32_t kMaxStateCounts = 32;

enum class ControlOp : uint32_t {
  list,           // copy matching connections into out[], at most out_capacity
  states,         // count open connections by protocol and state
  reload,         // take policy, re-check every connection without a master
  close_related,  // close connections whose master is in masters[]
};

struct ControlRequest {
  ControlOp op = ControlOp::list;
  ConnFilter filter;
  uint32_t cursor = 0;  // next table position to visit; the worker advances it
  // list
  ConnSnapshot* out = nullptr;
  uint32_t out_capacity = 0;
  uint32_t out_count = 0;
  ConnDetail* detail = nullptr;  // non-null: the first match's layer-7 state too
  // states
  StateCount counts[kMaxStateCounts];
  uint32_t count_kinds = 0;
  // reload: the new policy and its rule-hit counters (rules + 1, zeroed);
  // the worker swaps in both and gives back its old counters in *hits.
  const Policy* policy = nullptr;
  std::vector<uint64_t>* hits = nullptr;
  uint64_t* denied = nullptr;  // IDs of the connections it closed
  uint32_t denied_capacity = 0;
  uint32_t denied_count = 0;
  uint64_t checked = 0;
  uint64_t closed = 0;
  // close_related: sorted IDs of closed masters
  const uint64_t* masters = nullptr;
  uint32_t master_count = 0;
};

// One per worker. The control thread fills the request while idle and posts
// it; the worker takes it (serving), works a slice and puts it back (posted)
// or finishes it (done), and the control thread reads the results. A posted
// request can be taken back (posted -> idle) when the worker does not come
// to it in time; one being served cannot.
struct alignas(64) ControlSlot {
  static constexpr uint32_t kIdle = 0;
  static constexpr uint32_t kPosted = 1;
  static constexpr uint32_t kServing = 2;
  static constexpr uint32_t kDone = 3;
  std::atomic<uint32_t> state{kIdle};
  ControlRequest request;
};

}  // namespace holdfast
