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
  uint16_t lo_port;  // TCP/UDP port; ICMP echo: identifier or its complement
  uint16_t hi_port;
  uint8_t proto;
  uint8_t zone;  // port pair: the same tuple on two pairs is two flows
  // Padding to 48 bytes, always zero: the flow table compares keys as
  // bytes, eight at a time (dataplane/flow_table.h).
  uint8_t pad[10];

  friend bool operator==(const FlowKey& a, const FlowKey& b) {
    return std::memcmp(&a, &b, sizeof(FlowKey)) == 0;
  }
};
static_assert(sizeof(FlowKey) == 48);
static_assert(std::is_trivially_copyable_v<FlowKey>);

// Builds the canonical key for a packet from src to dst. Sets *src_is_lo to
// whether the packet's source is the key's lo endpoint.
inline FlowKey make_flow_key(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport,
                             uint8_t proto, uint8_t zone, bool* src_is_lo) {
  // Lexicographic order of the 16 address bytes, then the port, as two
  // big-endian 64-bit compares (memcmp's ordering result is a libc call).
  uint64_t s_hi, s_lo, d_hi, d_lo;
  std::memcpy(&s_hi, src.bytes.data(), 8);
  std::memcpy(&s_lo, src.bytes.data() + 8, 8);
  std::memcpy(&d_hi, dst.bytes.data(), 8);
  std::memcpy(&d_lo, dst.bytes.data() + 8, 8);
  s_hi = __builtin_bswap64(s_hi);
  s_lo = __builtin_bswap64(s_lo);
  d_hi = __builtin_bswap64(d_hi);
  d_lo = __builtin_bswap64(d_lo);
  const bool lo = s_hi != d_hi ? s_hi < d_hi : s_lo != d_lo ? s_lo < d_lo : sport <= dport;
  *src_is_lo = lo;
  FlowKey k;
  k.lo = lo ? src : dst;
  k.hi = lo ? dst : src;
  k.lo_port = lo ? sport : dport;
  k.hi_port = lo ? dport : sport;
  k.proto = proto;
  k.zone = zone;
  std::memset(k.pad, 0, sizeof k.pad);
  return k;
}

}  // namespace holdfast
