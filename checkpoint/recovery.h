// Recovery: rebuilding connections from a committed region set.
//
// Theory of operation (docs/checkpoint.md, section Recovery):
//   1. connections, base layers first: every stable base slot, with the
//      layer-4 slice in the same old slot of its module's region (same
//      connection ID, the module's schema version and slice length, and
//      passing the module's own valid()), and admitted by the current rules
//      (classified again, unless its old worker's rules record says it was
//      admitted by rules of the current digest), becomes a connection in
//      the flow table of the worker that now owns its address pair (the
//      worker count may differ from the crashed process's); old (worker,
//      slot) -> new (worker, position) is remembered. A base whose slice
//      did not arrive is not restored. A related connection (admitted by
//      its master's expectation, not by a rule) waits for phase 3;
//   2. layer-4 slices no base took are orphans; layer-7 slots have slots of
//      their own and name the old position of their connection, attached
//      by connection ID: an FTP slice re-opens its pending expectations; SIP
//      sessions come back with no calls, then each call record joins its
//      signalling connection's session and re-opens its pinholes;
//   3. a connection whose layer-7 slice did not arrive goes on as plain
//      layer 4; a related connection whose master the rules now deny is
//      closed; SIP media connections are linked to the call whose pinhole
//      they match, so the call's end still closes them;
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
  uint32_t threads = 0;  // that rebuilt and wrote the connections (0: not known)
  std::map<std::string, uint64_t> restored;     // connections, per layer-4 protocol
  std::map<std::string, uint64_t> restored_l7;  // of those, followed by a layer-7 module
  uint64_t sip_calls = 0;                       // SIP calls restored into those sessions
  uint64_t sip_media_linked = 0;                // media connections joined to their call
  uint64_t fragments = 0;                       // fragment records restored
  std::map<std::string, uint64_t> discarded;    // per reason
  std::map<std::string, double> phase_ms;       // connections, layer7, check, fragments, write
  // Connections a rule admitted, judged by the current rules: classified
  // again, or known to be admitted by these very rules because their old
  // worker's rules record holds the current rules' digest.
  uint64_t rules_classified = 0;
  uint64_t rules_unchanged = 0;
  double total_ms = 0;

  uint64_t restored_total() const;
  nlohmann::json to_json() const;
  std::string text() const;
};

struct RecoveryOptions {
  // Threads that rebuild the connections and write them into the new set,
  // never more than the workers before or now. 0: one per core to spare,
  // the calling thread's and the worker lcores waiting to be launched (or,
  // with none, one DPDK control thread per core of the process that is
  // not an lcore's). N: N, on plain threads sharing a core where no core
  // is spare.
  uint32_t threads = 0;
};

// Rebuilds the connections of `from` (regions in the mapped store) into
// pipelines[w] for each worker w of this process, then writes them into the
// pipelines' checkpoint sets. store_fd is the store file mapped at `store`
// (-1 if unknown): with it, pages of the old set that were never written
// are skipped, not read (StoreExtents).
RecoveryReport recover_connections(const uint8_t* store, uint64_t store_bytes, int store_fd,
                                   const RegionSet& from, const std::vector<Pipeline*>& pipelines,
                                   uint32_t epoch_now, const RecoveryOptions& options = {});

// The slot shapes of every module a dataplane with these settings writes
// (fragment records, FTP sessions, SIP sessions and calls per worker;
// connections take the layout's slots).
std::vector<SlotShape> module_shapes(const PipelineSettings& settings);

// Points each pipeline at its worker's regions of `set`.
bool attach_writers(uint8_t* store, const RegionSet& set, std::vector<WorkerCheckpoint>* writers,
                    std::string* error);

}  // namespace holdfast::ckpt
