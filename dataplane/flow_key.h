// The canonical flow key: both directions of a connection map to one key by
// ordering the endpoints, so one table entry serves both (no reverse entry to
// keep in sync, half the table memory of a two-entry design).
#pragma once

#include <bit>
#include <cstddef>
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

namespace flow_detail {

// Whether endpoint (a, a_port) sorts before or equal to (b, b_port): the
// lexicographic order of the 16 address bytes, then the port, as two
// big-endian 64-bit compares (memcmp's ordering result is a libc call).
inline bool sorts_first(const uint64_t a[2], uint16_t a_port, const uint64_t b[2],
                        uint16_t b_port) {
  const uint64_t a_hi = __builtin_bswap64(a[0]);
  const uint64_t a_lo = __builtin_bswap64(a[1]);
  const uint64_t b_hi = __builtin_bswap64(b[0]);
  const uint64_t b_lo = __builtin_bswap64(b[1]);
  return a_hi != b_hi ? a_hi < b_hi : a_lo != b_lo ? a_lo < b_lo : a_port <= b_port;
}

}  // namespace flow_detail

// Builds the canonical key for a packet from src to dst. Sets *src_is_lo to
// whether the packet's source is the key's lo endpoint.
//
// Without branches on the order: which end sorts first is as good as random
// per packet (both directions of every connection pass here), so a branch
// on it would be mispredicted about every other packet. The key is written
// as six 64-bit words (the layout below, little-endian as every target of
// DPDK's x86 and Arm builds), so it is not assembled from narrow stores and
// then read back wide.
inline FlowKey make_flow_key(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport,
                             uint8_t proto, uint8_t zone, bool* src_is_lo) {
  static_assert(std::endian::native == std::endian::little);
  static_assert(offsetof(FlowKey, hi) == 16 && offsetof(FlowKey, lo_port) == 32 &&
                offsetof(FlowKey, hi_port) == 34 && offsetof(FlowKey, proto) == 36 &&
                offsetof(FlowKey, zone) == 37 && offsetof(FlowKey, pad) == 38);
  uint64_t s[2], d[2];
  std::memcpy(s, src.bytes.data(), 16);
  std::memcpy(d, dst.bytes.data(), 16);
  const bool lo = flow_detail::sorts_first(s, sport, d, dport);
  *src_is_lo = lo;
  const uint64_t m = uint64_t{0} - static_cast<uint64_t>(lo);  // all ones: src is lo
  uint64_t w[6];
  w[0] = (s[0] & m) | (d[0] & ~m);
  w[1] = (s[1] & m) | (d[1] & ~m);
  w[2] = s[0] ^ d[0] ^ w[0];  // the other address
  w[3] = s[1] ^ d[1] ^ w[1];
  const uint64_t src_first = sport | uint64_t{dport} << 16;
  const uint64_t dst_first = dport | uint64_t{sport} << 16;
  w[4] = ((src_first & m) | (dst_first & ~m)) | uint64_t{proto} << 32 | uint64_t{zone} << 40;
  w[5] = 0;  // the rest of the padding
  FlowKey k;
  std::memcpy(static_cast<void*>(&k), w, sizeof k);
  return k;
}

// Whether k's endpoints are in the order make_flow_key puts them (lo first).
inline bool canonical_order(const FlowKey& k) {
  uint64_t lo[2], hi[2];
  std::memcpy(lo, k.lo.bytes.data(), 16);
  std::memcpy(hi, k.hi.bytes.data(), 16);
  return flow_detail::sorts_first(lo, k.lo_port, hi, k.hi_port);
}

}  // namespace holdfast
