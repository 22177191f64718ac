// The canonical flow key: both directions of a connection map to one key by
// ordering the endpoints, so one table entry serves both (no reverse entry to
// keep in sync, half the table memory of a two-entry design).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dataplane/ip_address.h"

namespace holdfast {

struct FlowKey {
  IpAddr lo;  // the endpoint that sorts first by (address, port)
  IpAddr hi;
  uint16_t lo_port = 0;  // TCP/UDP port; ICMP echo identifier
  uint16_t hi_port = 0;
  uint8_t proto = 0;
  uint8_t zone = 0;  // port pair: the same tuple on two pairs is two flows
  uint16_t reserved = 0;

  friend bool operator==(const FlowKey& a, const FlowKey& b) {
    return std::memcmp(&a, &b, sizeof(FlowKey)) == 0;
  }
};
static_assert(sizeof(FlowKey) == 40, "flow key layout is part of the checkpoint format");
static_assert(std::is_trivially_copyable_v<FlowKey>);

// Builds the canonical key for a packet from src to dst. Sets *src_is_lo to
// whether the packet's source is the key's lo endpoint.
inline FlowKey make_flow_key(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport,
                             uint8_t proto, uint8_t zone, bool* src_is_lo) {
  FlowKey k;
  int c = std::memcmp(src.bytes.data(), dst.bytes.data(), 16);
  bool lo = c < 0 || (c == 0 && sport <= dport);
  *src_is_lo = lo;
  if (lo) {
    k.lo = src;
    k.hi = dst;
    k.lo_port = sport;
    k.hi_port = dport;
  } else {
    k.lo = dst;
    k.hi = src;
    k.lo_port = dport;
    k.hi_port = sport;
  }
  k.proto = proto;
  k.zone = zone;
  return k;
}

}  // namespace holdfast
