// What a region set holds, decoded for people (holdfastctl conns): every
// connection's base layer, its layer-4 state and its layer-7 session, read
// under the slots' sequence counters, so a set the dataplane is writing can
// be read while it forwards.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/client.h"
#include "dataplane/flow_key.h"
#include "modules/module.h"

namespace holdfast::ckpt {

struct StoredConnection {
  uint32_t worker = 0;
  uint32_t position = 0;
  uint64_t id = 0;
  uint64_t master_id = 0;  // related connections: the connection that announced them
  FlowKey key{};
  uint8_t flags = 0;
  ModuleId l4 = ModuleId::none;
  std::string state;  // the layer-4 module's state name, "-" without its slice
  uint32_t created_s = 0;
  uint32_t last_seen_ms = 0;
  ModuleId l7 = ModuleId::none;       // ftp, sip: followed by that module, with its slice
  uint32_t pending_expectations = 0;  // ftp
  struct Call {
    std::string call_id;
    std::string state;
    uint32_t media = 0;  // media connections recorded in the call
    uint32_t started_s = 0;
  };
  std::vector<Call> calls;  // sip

  // "address:port" of the opener and of the other end.
  std::string client() const;
  std::string server() const;
  nlohmann::json to_json(uint64_t now_ms) const;
};

struct StoredSet {
  std::vector<StoredConnection> connections;  // by connection ID
  // Slots not shown, by reason (torn: being written while read, or torn by
  // a crash; unknown_schema; bad_length; orphan_slice).
  std::map<std::string, uint64_t> skipped;
};

// store_fd: the store file mapped at `store` (-1 if unknown); with it, the
// set's holes are skipped instead of read (slot_read.h, StoreExtents).
StoredSet read_set(const uint8_t* store, uint64_t store_bytes, int store_fd, const RegionSet& set);

}  // namespace holdfast::ckpt
