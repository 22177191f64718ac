// What the parser learns about one frame. Everything is host byte order; the
// frame itself is never modified (bump-in-the-wire: frames leave unchanged).
#pragma once

#include <cstdint>

#include "dataplane/ip_address.h"
#include "dataplane/verdict.h"

namespace holdfast {

// The port a frame arrived on. Policy matches on it; replies leave through the
// other port of the pair.
enum class Side : uint8_t { inside = 0, outside = 1 };
inline constexpr Side other_side(Side s) {
  return s == Side::inside ? Side::outside : Side::inside;
}
inline constexpr const char* side_name(Side s) {
  return s == Side::inside ? "inside" : "outside";
}

inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpV6 = 58;

namespace tcpflag {
inline constexpr uint8_t kFin = 0x01;
inline constexpr uint8_t kSyn = 0x02;
inline constexpr uint8_t kRst = 0x04;
inline constexpr uint8_t kPsh = 0x08;
inline constexpr uint8_t kAck = 0x10;
inline constexpr uint8_t kUrg = 0x20;
inline constexpr uint8_t kEce = 0x40;
inline constexpr uint8_t kCwr = 0x80;
}  // namespace tcpflag

struct TcpHeaderInfo {
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 0;  // as on the wire, before window scaling
  uint8_t flags = 0;
  uint8_t header_len = 0;
  uint16_t payload_len = 0;
  uint16_t mss = 0;       // 0: option absent
  uint8_t wscale = 0xff;  // 0xff: option absent
  bool sack_permitted = false;
  uint8_t sack_blocks = 0;  // SACK blocks present in this segment
  uint32_t sack_right = 0;  // highest right edge among them (RFC 2018)
  bool has_timestamp = false;
  uint32_t ts_val = 0;
  uint32_t ts_ecr = 0;
};

// The header of the packet an ICMP error quotes (RFC 792, RFC 4443 2.4(c)):
// the packet as its sender sent it, so src is the host the error goes back to.
struct IcmpInner {
  IpAddr src;
  IpAddr dst;
  uint8_t proto = 0;
  uint16_t sport = 0;  // ICMP echo request: identifier (dport its complement)
  uint16_t dport = 0;
  uint32_t tcp_seq = 0;
  uint8_t icmp_type = 0;  // when the quoted packet is itself ICMP
};

struct IcmpHeaderInfo {
  uint8_t type = 0;
  uint8_t code = 0;
  uint16_t id = 0;  // echo identifier
  enum class Kind : uint8_t { echo_request, echo_reply, error, neighbor_discovery, other };
  Kind kind = Kind::other;
  IcmpInner inner;  // valid when kind == error
};

// The class of a frame after parsing.
enum class FrameKind : uint8_t {
  malformed,  // drop with ParsedPacket::error
  arp,
  non_ip,
  ip,
};

struct ParsedPacket {
  const uint8_t* frame = nullptr;
  uint32_t frame_len = 0;  // bytes available at frame
  Side side = Side::outside;
  uint8_t zone = 0;  // index of the port pair the frame arrived on
  FrameKind kind = FrameKind::malformed;
  Reason error = Reason::eth_truncated;  // valid when kind == malformed

  uint8_t vlan_count = 0;
  uint16_t vlan[2] = {0, 0};
  uint16_t ether_type = 0;  // innermost

  uint8_t ip_version = 0;  // 4 or 6
  uint8_t proto = 0;       // final upper-layer protocol after extension headers
  uint8_t hop_limit = 0;   // IPv4 TTL or IPv6 hop limit
  uint16_t l3_offset = 0;
  uint16_t l4_offset = 0;
  uint16_t l4_len = 0;  // bytes of upper-layer data in this packet (or fragment)
  IpAddr src;
  IpAddr dst;
  // TCP/UDP ports. ICMP echo: the identifier on the requester's side (sport
  // of a request, dport of a reply) and its complement on the responder's.
  uint16_t sport = 0;
  uint16_t dport = 0;

  // Fragmentation (IPv4 flags/offset, IPv6 fragment header).
  bool fragment = false;        // part of a fragmented datagram
  bool first_fragment = false;  // offset 0 with more fragments
  uint16_t frag_offset = 0;     // bytes
  uint32_t frag_id = 0;

  TcpHeaderInfo tcp;
  IcmpHeaderInfo icmp;

  bool has_l4_header() const { return kind == FrameKind::ip && (!fragment || first_fragment); }
  bool is_icmp() const { return proto == kProtoIcmp || proto == kProtoIcmpV6; }
};

}  // namespace holdfast
