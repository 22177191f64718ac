// Recovery: rebuilding connections from a committed region set.
//
// Theory of operation (docs/checkpoint.md, section Recovery):
//   1. base layers first: every stable base slot becomes a connection in the
//      flow table of the worker that now owns its address pair (the worker
//      count may differ from the crashed process's); old (worker, slot) ->
//      new (worker, position) is remembered;
//   2. then each module's slices, attached by connection ID: the slot of
//      module m at old (worker, slot) must carry the same connection ID as
//      the base restored from there, the module's schema version, the slice
//      length, and pass the module's own valid(). Layer-7 slots have slots
//      of their own and name the old position of their connection; an FTP
//      slice re-opens its pending expectations; SIP sessions come back with
//      no calls, then each call record joins its signalling connection's
//      session and re-opens its pinholes;
//   3. a base whose layer-4 slice did not arrive is dropped; a connection
//      whose layer-7 slice did not arrive goes on as plain layer 4; every
//      restored connection is re-checked against the current rules (a
//      related one through its master, whose expectation admitted it);
//      SIP media connections are linked to the call whose pinhole they
//      match, so the call's end still closes them;
//   4. the fragment records of datagrams in flight follow, placed like
//      their connections;
//   5. everything restored is written into the new set before forwarding.
// Torn slots (odd sequence counter), unknown schema versions, slices without
// a base, failed validations and duplicates are counted and discarded:
// never trusted, never fatal.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/client.h"
#include "dataplane/pipeline.h"

namespace holdfast::ckpt {

struct RecoveryReport {
  uint32_t from_set = 0;
  uint32_t from_epoch = 0;
  uint32_t epoch = 0;
  uint32_t workers_before = 0;
  uint32_t workers_now = 0;
  std::map<std::string, uint64_t> restored;     // connections, per layer-4 protocol
  std::map<std::string, uint64_t> restored_l7;  // of those, followed by a layer-7 module
  uint64_t sip_calls = 0;                       // SIP calls restored into those sessions
  uint64_t sip_media_linked = 0;                // media connections joined to their call
  uint64_t fragments = 0;                       // fragment records restored
  std::map<std::string, uint64_t> discarded;    // per reason
  std::map<std::string, double> phase_ms;       // base, modules, check, write
  double total_ms = 0;

  uint64_t restored_total() const;
  nlohmann::json to_json() const;
  std::string text() const;
};

// Rebuilds the connections of `from` (regions in the mapped store) into
// pipelines[w] for each worker w of this process, then writes them into the
// pipelines' checkpoint sets.
RecoveryReport recover_connections(const uint8_t* store, uint64_t store_bytes,
                                   const RegionSet& from, const std::vector<Pipeline*>& pipelines,
                                   uint32_t epoch_now);

// The slot shapes of every module a dataplane with these settings writes
// (fragment records, FTP sessions, SIP sessions and calls per worker;
// connections take the layout's slots).
std::vector<SlotShape> module_shapes(const PipelineSettings& settings);

// Points each pipeline at its worker's regions of `set`.
bool attach_writers(uint8_t* store, const RegionSet& set, std::vector<WorkerCheckpoint>* writers,
                    std::string* error);

}  // namespace holdfast::ckpt
