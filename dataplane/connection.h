// A tracked connection: the base layer plus the layer-4 module's slice,
// inline in one 128-byte entry of the worker's flow table.
//
// Cache line 0 holds everything a packet of an established connection reads
// or writes (ID, last_seen, direction, counters, the L4 slice); line 1 holds
// the identity (key, master, creation time), which only creation, expiry,
// checkpointing and the CLI read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dataplane/flow_key.h"
#include "modules/module.h"

namespace holdfast {

// Connection IDs are epoch << 40 | counter (docs/checkpoint.md): the epoch
// changes at every dataplane start, so an ID is never reused.
inline constexpr int kConnCounterBits = 40;
inline constexpr uint64_t kConnCounterMask = (uint64_t{1} << kConnCounterBits) - 1;
inline constexpr uint64_t make_conn_id(uint32_t epoch, uint64_t counter) {
  return (uint64_t{epoch} << kConnCounterBits) | (counter & kConnCounterMask);
}

struct alignas(64) Connection {
  // --- line 0: per packet ---
  uint64_t id;            // 0: the entry is free
  uint32_t last_seen_ms;  // clock of the last packet, milliseconds mod 2^32
  ModuleId l4;
  uint8_t flags;         // Connection::k*
  uint16_t ckpt_seen_s;  // low bits of the second whose last_seen the store last got
  uint32_t packets[2];   // per Dir
  alignas(8) std::byte l4_slice[kL4SliceSize];
  // --- line 1: identity ---
  FlowKey key;
  uint64_t master_id;  // related connections: the connection they belong to
  uint32_t created_s;  // clock at creation, seconds
  uint16_t l7_index;   // the layer-7 slice in the worker's pool of module l7
  ModuleId l7;         // ModuleId::none: no layer-7 module follows it
  uint8_t reserved1;

  static constexpr uint8_t kOriginIsLo = 0x01;    // the opener is key.lo
  static constexpr uint8_t kOriginInside = 0x02;  // opened from the inside port
  static constexpr uint8_t kHasL7 = 0x04;         // a layer-7 module follows it (l7, l7_index)
  // Closed by a layer-7 module (a SIP call's media when the call ends): as
  // if expired, its next packet opens a new connection. Never checkpointed.
  static constexpr uint8_t kClosed = 0x08;

  bool in_use() const { return id != 0; }
  Side origin_side() const { return (flags & kOriginInside) ? Side::inside : Side::outside; }
  // Arithmetic, not a comparison: the direction is as good as random per
  // packet, and a branch on it would be mispredicted about every other one.
  Dir dir_of(bool src_is_lo) const {
    static_assert(kOriginIsLo == 1 && static_cast<uint8_t>(Dir::reply) == 1);
    return static_cast<Dir>(static_cast<uint8_t>(src_is_lo) ^ (flags & kOriginIsLo));
  }
  // The source address and port of packets travelling in direction d.
  const IpAddr& addr(Dir d) const {
    return ((flags & kOriginIsLo) != 0) == (d == Dir::original) ? key.lo : key.hi;
  }
  uint16_t port(Dir d) const {
    return ((flags & kOriginIsLo) != 0) == (d == Dir::original) ? key.lo_port : key.hi_port;
  }

  template <typename Slice>
  Slice& slice() {
    static_assert(sizeof(Slice) <= kL4SliceSize && std::is_trivially_copyable_v<Slice>);
    return *std::launder(reinterpret_cast<Slice*>(l4_slice));
  }
  template <typename Slice>
  const Slice& slice() const {
    static_assert(sizeof(Slice) <= kL4SliceSize && std::is_trivially_copyable_v<Slice>);
    return *std::launder(reinterpret_cast<const Slice*>(l4_slice));
  }
};
static_assert(sizeof(Connection) == 128, "flow table entry: two cache lines");
static_assert(offsetof(Connection, key) == 64, "identity starts on the second cache line");
static_assert(std::is_trivially_copyable_v<Connection>);

// The port a packet of connection c travelling in direction dir arrives on.
// (Side and Dir are 0 and 1: the origin's side, flipped for replies, without
// a branch on the direction.)
inline Side expected_side(const Connection& c, Dir dir) {
  static_assert(static_cast<uint8_t>(Side::outside) == 1 && static_cast<uint8_t>(Dir::reply) == 1);
  return static_cast<Side>(static_cast<uint8_t>(c.origin_side()) ^ static_cast<uint8_t>(dir));
}

// Wrap-safe idle check on the 32-bit millisecond clock. A clock that went
// backwards (out-of-order capture timestamps) counts as not idle.
inline bool idle_longer_than(uint32_t now_ms, uint32_t last_seen_ms, uint32_t timeout_ms) {
  const int32_t idle = static_cast<int32_t>(now_ms - last_seen_ms);
  return idle > 0 && static_cast<uint32_t>(idle) > timeout_ms;
}

}  // namespace holdfast
