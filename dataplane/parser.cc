#include "dataplane/parser.h"

#include <cstring>

#include "dataplane/byteorder.h"

namespace holdfast {
namespace {

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherArp = 0x0806;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint16_t kEtherQinQ = 0x88a8;
constexpr uint16_t kEtherQinQOld = 0x9100;

constexpr uint8_t kIpv6HopByHop = 0;
constexpr uint8_t kIpv6Routing = 43;
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6Esp = 50;
constexpr uint8_t kIpv6Auth = 51;
constexpr uint8_t kIpv6NoNext = 59;
constexpr uint8_t kIpv6DestOpts = 60;
constexpr int kMaxIpv6Extensions = 8;

// Smallest header of each protocol: a later fragment starting inside it would
// overwrite header fields that policy and tracking already judged (RFC 1858).
constexpr uint16_t min_l4_header(uint8_t proto) {
  switch (proto) {
    case kProtoTcp:
      return 20;
    case kProtoUdp:
    case kProtoIcmp:
    case kProtoIcmpV6:
      return 8;
    default:
      return 0;
  }
}

// The destination address of the upper-layer pseudo-header (RFC 8200 8.1):
// under a routing header with segments left, the route's final address, not
// the next hop in the IPv6 header.
struct PseudoDestination {
  const uint8_t* final = nullptr;  // 16 bytes in the frame; nullptr: out.dst
  bool unknown = false;            // a routing type whose final address is not known
};

// Where every parse starts. A copy of a constant compiles to a few wide
// moves; assigning ParsedPacket{} stored each member's default one by one.
constexpr ParsedPacket kEmpty{};

bool malformed(ParsedPacket& out, Reason why) {
  out.kind = FrameKind::malformed;
  out.error = why;
  return false;
}

// RFC 1071 one's complement sum, 32 bits at a time into a 64-bit
// accumulator: since 2^16 = 1 modulo 0xffff, the folded result equals the
// sum of 16-bit words, with a quarter of the additions of DPDK 22.11's
// rte_raw_cksum (a 16-bit loop) and no carry handling inside the loop.
// Eight bytes are loaded at once and their halves added: each addition is
// below 2^33, so 2^31 of them (far more than a frame holds) cannot
// overflow the accumulator.
[[gnu::always_inline]] inline uint64_t add_words(const uint8_t* p, uint32_t len, uint64_t sum) {
  for (; len >= 8; len -= 8, p += 8) {
    const uint64_t v = load_le64(p);
    sum += (v & 0xffffffffu) + (v >> 32);
  }
  if (len >= 4) {
    sum += load_le32(p);
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    sum += load_le16(p);
    p += 2;
    len -= 2;
  }
  if (len != 0)
    sum += *p;  // the odd byte is the high-order byte of a
                // big-endian word, i.e. the low byte here
  return sum;
}

uint16_t fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// One's complement sum, folded, of the IPv4 or IPv6 pseudo-header
// (RFC 9293 3.1, RFC 8200 8.1) plus the upper-layer bytes.
uint16_t l4_checksum(const ParsedPacket& p, const uint8_t* l4, uint32_t len,
                     const PseudoDestination& dst) {
  uint64_t sum = 0;
  if (p.ip_version == 4) {
    sum = add_words(&p.src.bytes[12], 4, sum);
    sum = add_words(&p.dst.bytes[12], 4, sum);
  } else {
    sum = add_words(p.src.bytes.data(), 16, sum);
    sum = add_words(dst.final != nullptr ? dst.final : p.dst.bytes.data(), 16, sum);
  }
  // The words are summed as little-endian loads; add the protocol and the
  // length as big-endian words read the same way.
  sum += bswap16(p.proto);
  sum += bswap16(static_cast<uint16_t>(len >> 16));
  sum += bswap16(static_cast<uint16_t>(len & 0xffff));
  return fold(add_words(l4, len, sum));
}

// fold(sum) == 0xffff for a sum that is not zero, without folding: folding
// keeps the value modulo 0xffff (2^16 = 1 modulo 0xffff) and gives 0 only
// for 0, so the folded sum is 0xffff exactly when 0xffff divides the sum.
// The division is the multiply-by-inverse test for an odd divisor (Granlund
// and Montgomery): 0xffff * 0xfffefffefffeffff = 1 modulo 2^64, and the
// multiples of 0xffff map onto [0, (2^64 - 1) / 0xffff]. GCC 12 emits a div
// instruction for `sum % 0xffff == 0`.
constexpr bool sum_is_ffff(uint64_t sum) {
  return sum * 0xfffefffefffeffffu <= 0x0001000100010001u;
}
static_assert(sum_is_ffff(0xffff) && sum_is_ffff(0xffffull * 0x123456789) && !sum_is_ffff(0xfffe) &&
              !sum_is_ffff(0x10000) && !sum_is_ffff(~0ull - 1));

// True when the folded sum over data including its checksum field is 0xffff.
bool checksum_ok_plain(const uint8_t* data, uint32_t len) {
  return fold(add_words(data, len, 0)) == 0xffff;
}

// TCP flag combinations a conforming stack can send, ignoring PSH, ECE and
// CWR (the same set Linux conntrack accepts, from RFC 9293 3.10.7).
bool tcp_flags_valid(uint8_t flags) {
  using namespace tcpflag;
  switch (flags & ~(kPsh | kEce | kCwr)) {
    case kSyn:
    case kSyn | kUrg:
    case kSyn | kAck:
    case kRst:
    case kRst | kAck:
    case kFin | kAck:
    case kFin | kAck | kUrg:
    case kAck:
    case kAck | kUrg:
      return true;
    default:
      return false;
  }
}

bool parse_tcp_options(const uint8_t* opt, uint32_t len, TcpHeaderInfo& tcp) {
  uint32_t i = 0;
  while (i < len) {
    uint8_t kind = opt[i];
    if (kind == 0) break;  // end of option list
    if (kind == 1) {       // no-operation
      ++i;
      continue;
    }
    if (i + 1 >= len) return false;
    uint8_t olen = opt[i + 1];
    if (olen < 2 || i + olen > len) return false;
    const uint8_t* v = opt + i + 2;
    switch (kind) {
      case 2:  // MSS, RFC 9293 3.2
        if (olen != 4) return false;
        tcp.mss = load_be16(v);
        break;
      case 3:  // window scale, RFC 7323 2.2; larger shifts are treated as 14 (2.3)
        if (olen != 3) return false;
        tcp.wscale = v[0] > 14 ? 14 : v[0];
        break;
      case 4:  // SACK permitted, RFC 2018
        if (olen != 2) return false;
        tcp.sack_permitted = true;
        break;
      case 5: {  // SACK blocks
        if (olen < 10 || (olen - 2) % 8 != 0) return false;
        uint8_t blocks = static_cast<uint8_t>((olen - 2) / 8);
        for (uint8_t b = 0; b < blocks; ++b) {
          uint32_t right = load_be32(v + 8 * b + 4);
          if (tcp.sack_blocks == 0 || static_cast<int32_t>(right - tcp.sack_right) > 0) {
            tcp.sack_right = right;
          }
          ++tcp.sack_blocks;
        }
        break;
      }
      case 8:  // timestamps, RFC 7323 3.2
        if (olen != 10) return false;
        tcp.has_timestamp = true;
        tcp.ts_val = load_be32(v);
        tcp.ts_ecr = load_be32(v + 4);
        break;
      default:
        break;
    }
    i += olen;
  }
  return true;
}

bool parse_tcp(ParsedPacket& out, const uint8_t* l4, uint32_t len) {
  if (len < 20) return malformed(out, Reason::tcp_truncated);
  TcpHeaderInfo& tcp = out.tcp;
  out.sport = load_be16(l4);
  out.dport = load_be16(l4 + 2);
  tcp.seq = load_be32(l4 + 4);
  tcp.ack = load_be32(l4 + 8);
  uint32_t hlen = (l4[12] >> 4) * 4u;
  if (hlen < 20) return malformed(out, Reason::tcp_bad_header);
  if (hlen > len) return malformed(out, Reason::tcp_truncated);
  tcp.header_len = static_cast<uint8_t>(hlen);
  tcp.flags = l4[13];
  tcp.window = load_be16(l4 + 14);
  if (!tcp_flags_valid(tcp.flags)) return malformed(out, Reason::tcp_bad_flags);
  if (!parse_tcp_options(l4 + 20, hlen - 20, tcp)) return malformed(out, Reason::tcp_bad_options);
  if (!out.fragment) tcp.payload_len = static_cast<uint16_t>(len - hlen);
  return true;
}

bool parse_udp(ParsedPacket& out, const uint8_t* l4, uint32_t len) {
  if (len < 8) return malformed(out, Reason::udp_truncated);
  out.sport = load_be16(l4);
  out.dport = load_be16(l4 + 2);
  uint16_t ulen = load_be16(l4 + 4);
  // The UDP length covers the whole datagram, so it is only checkable when
  // the datagram is whole. Bytes beyond it (RFC 768 leaves them undefined)
  // are tolerated; a length claiming more than is present is not.
  if (!out.fragment && (ulen < 8 || ulen > len)) return malformed(out, Reason::udp_bad_length);
  return true;
}

// Parses the IP header an ICMP error quotes: at least the IP header and the
// first 8 bytes of its payload (RFC 792; RFC 4443 sends as much as fits).
bool parse_icmp_inner(ParsedPacket& out, const uint8_t* p, uint32_t len) {
  IcmpInner& in = out.icmp.inner;
  const uint8_t* l4 = nullptr;
  uint32_t l4_avail = 0;
  if (out.ip_version == 4) {
    if (len < 20 || (p[0] >> 4) != 4) return malformed(out, Reason::icmp_bad_inner);
    uint32_t ihl = (p[0] & 0x0f) * 4u;
    if (ihl < 20 || ihl > len) return malformed(out, Reason::icmp_bad_inner);
    // The quoted packet must be a first or whole datagram to carry ports.
    if ((load_be16(p + 6) & 0x1fff) != 0) return malformed(out, Reason::icmp_bad_inner);
    in.proto = p[9];
    in.src = IpAddr::from_v4_wire(p + 12);
    in.dst = IpAddr::from_v4_wire(p + 16);
    l4 = p + ihl;
    l4_avail = len - ihl;
  } else {
    if (len < 40 || (p[0] >> 4) != 6) return malformed(out, Reason::icmp_bad_inner);
    in.src = IpAddr::from_v6_wire(p + 8);
    in.dst = IpAddr::from_v6_wire(p + 24);
    uint8_t nh = p[6];
    uint32_t off = 40;
    for (int n = 0;; ++n) {
      if (n > kMaxIpv6Extensions) return malformed(out, Reason::icmp_bad_inner);
      if (nh != kIpv6HopByHop && nh != kIpv6Routing && nh != kIpv6DestOpts && nh != kIpv6Fragment &&
          nh != kIpv6Auth) {
        break;
      }
      if (off + 8 > len) return malformed(out, Reason::icmp_bad_inner);
      uint32_t ext_len;
      if (nh == kIpv6Fragment) {
        if ((load_be16(p + off + 2) & 0xfff8) != 0) return malformed(out, Reason::icmp_bad_inner);
        ext_len = 8;
      } else if (nh == kIpv6Auth) {
        ext_len = (p[off + 1] + 2u) * 4;
      } else {
        ext_len = (p[off + 1] + 1u) * 8;
      }
      nh = p[off];
      off += ext_len;
    }
    in.proto = nh;
    if (off > len) return malformed(out, Reason::icmp_bad_inner);
    l4 = p + off;
    l4_avail = len - off;
  }
  if (out.ip_version == 6 && (in.src.is_v4() || in.dst.is_v4())) {
    return malformed(out, Reason::icmp_bad_inner);
  }
  switch (in.proto) {
    case kProtoTcp:
      if (l4_avail < 8) return malformed(out, Reason::icmp_bad_inner);
      in.sport = load_be16(l4);
      in.dport = load_be16(l4 + 2);
      in.tcp_seq = load_be32(l4 + 4);
      break;
    case kProtoUdp:
      if (l4_avail < 8) return malformed(out, Reason::icmp_bad_inner);
      in.sport = load_be16(l4);
      in.dport = load_be16(l4 + 2);
      break;
    case kProtoIcmp:
    case kProtoIcmpV6: {
      if (l4_avail < 8) return malformed(out, Reason::icmp_bad_inner);
      in.icmp_type = l4[0];
      bool echo_request =
          (in.proto == kProtoIcmp && l4[0] == 8) || (in.proto == kProtoIcmpV6 && l4[0] == 128);
      // No ICMP error is ever sent about an ICMP error (RFC 1122 3.2.2,
      // RFC 4443 2.4(e)); only echo requests are tracked, so only they relate.
      if (!echo_request) return malformed(out, Reason::icmp_bad_inner);
      in.sport = load_be16(l4 + 4);  // keyed as the echo request itself
      in.dport = static_cast<uint16_t>(~in.sport);
      break;
    }
    default:
      break;
  }
  return true;
}

bool parse_icmp(ParsedPacket& out, const uint8_t* l4, uint32_t len) {
  if (len < 8) return malformed(out, Reason::icmp_truncated);
  IcmpHeaderInfo& icmp = out.icmp;
  icmp.type = l4[0];
  icmp.code = l4[1];
  using Kind = IcmpHeaderInfo::Kind;
  if (out.proto == kProtoIcmp) {
    switch (icmp.type) {
      case 8:
        icmp.kind = Kind::echo_request;
        break;
      case 0:
        icmp.kind = Kind::echo_reply;
        break;
      case 3:   // destination unreachable (code 4: fragmentation needed)
      case 11:  // time exceeded
      case 12:  // parameter problem
        icmp.kind = Kind::error;
        break;
      default:  // redirects, source quench (RFC 6633), timestamps, ...: policy decides
        icmp.kind = Kind::other;
        break;
    }
  } else {
    switch (icmp.type) {
      case 128:
        icmp.kind = Kind::echo_request;
        break;
      case 129:
        icmp.kind = Kind::echo_reply;
        break;
      case 1:  // destination unreachable
      case 2:  // packet too big
      case 3:  // time exceeded
      case 4:  // parameter problem
        icmp.kind = Kind::error;
        break;
      case 133:  // router solicitation
      case 134:  // router advertisement
      case 135:  // neighbour solicitation
      case 136:  // neighbour advertisement
      case 137:  // redirect
        icmp.kind = Kind::neighbor_discovery;
        break;
      default:
        icmp.kind = Kind::other;
        break;
    }
  }
  if (icmp.kind == Kind::echo_request) {
    // Echo flows are keyed with the identifier as the requester's port and
    // its complement as the responder's, so "A pings B" and "B pings A with
    // the same identifier" are two flows (they differ for every identifier,
    // 0 included) and a reply matches only the request it answers.
    icmp.id = load_be16(l4 + 4);
    out.sport = icmp.id;
    out.dport = static_cast<uint16_t>(~icmp.id);
  } else if (icmp.kind == Kind::echo_reply) {
    icmp.id = load_be16(l4 + 4);
    out.sport = static_cast<uint16_t>(~icmp.id);
    out.dport = icmp.id;
  } else if (icmp.kind == Kind::error) {
    // Errors quote at most 576 bytes (IPv4, RFC 1812 4.3.2.3) or fit the
    // minimum MTU of 1280 (IPv6, RFC 4443 2.4(c)): a fragmented one was not
    // sent by a conforming router. Refusing it also keeps its fragments on
    // the worker of its outer addresses, with the verdict for all of them.
    if (out.fragment) return malformed(out, Reason::icmp_error_fragmented);
    return parse_icmp_inner(out, l4 + 8, len - 8);
  }
  return true;
}

bool verify_l4_checksum(ParsedPacket& out, const uint8_t* l4, uint32_t len,
                        const PseudoDestination& dst) {
  // Without the final destination the sum cannot be judged either way.
  if (dst.unknown && out.proto != kProtoIcmp) return true;
  switch (out.proto) {
    case kProtoTcp:
    case kProtoIcmpV6:
      return l4_checksum(out, l4, len, dst) == 0xffff;
    case kProtoUdp:
      // IPv4 UDP may omit its checksum (RFC 768); IPv6 UDP may not (RFC 8200 8.1).
      if (load_be16(l4 + 6) == 0) return out.ip_version == 4;
      // The checksum and the pseudo-header cover the UDP length, not bytes
      // the IP payload carries beyond it (RFC 768; RFC 8200 8.1: protocols
      // with their own length field use it). parse_udp checked it fits.
      return l4_checksum(out, l4, load_be16(l4 + 4), dst) == 0xffff;
    case kProtoIcmp:
      return checksum_ok_plain(l4, len);
    default:
      return true;
  }
}

// Parses the upper-layer header at l4 (len bytes present in this packet).
bool parse_l4(ParsedPacket& out, const uint8_t* l4, uint32_t len, const ParseOptions& options,
              OffloadHints hints, const PseudoDestination& dst = {}) {
  out.l4_len = static_cast<uint16_t>(len);
  if (out.fragment && !out.first_fragment) {
    // A later fragment carries no header of its own. It may not start inside
    // the header the first fragment carried.
    if (out.frag_offset < min_l4_header(out.proto)) {
      return malformed(out, Reason::frag_overlaps_header);
    }
    return true;
  }
  bool ok = true;
  switch (out.proto) {
    case kProtoTcp:
      ok = parse_tcp(out, l4, len);
      break;
    case kProtoUdp:
      ok = parse_udp(out, l4, len);
      break;
    case kProtoIcmp:
      if (out.ip_version != 4) return malformed(out, Reason::unsupported_protocol);
      ok = parse_icmp(out, l4, len);
      break;
    case kProtoIcmpV6:
      if (out.ip_version != 6) return malformed(out, Reason::unsupported_protocol);
      ok = parse_icmp(out, l4, len);
      break;
    default:
      return true;
  }
  if (!ok) {
    // A first fragment too short for its own header is the tiny fragment
    // attack (RFC 1858 3.1), named as such.
    if (out.first_fragment &&
        (out.error == Reason::tcp_truncated || out.error == Reason::udp_truncated ||
         out.error == Reason::icmp_truncated || out.error == Reason::icmp_bad_inner)) {
      out.error = Reason::frag_first_too_small;
    }
    return false;
  }
  // The checksum covers the whole datagram, so fragments cannot be checked.
  if (options.verify_checksums && !out.fragment) {
    if (hints.l4 == ChecksumHint::bad) return malformed(out, Reason::bad_l4_checksum);
    if (hints.l4 == ChecksumHint::unknown && !verify_l4_checksum(out, l4, len, dst)) {
      return malformed(out, Reason::bad_l4_checksum);
    }
  }
  return true;
}

// RFC 791 3.1 option list: single-byte EOL/NOP, everything else type,
// length (>= 2, within the header), value.
bool check_ipv4_options(ParsedPacket& out, const uint8_t* opt, uint32_t len) {
  uint32_t i = 0;
  while (i < len) {
    uint8_t type = opt[i];
    if (type == 0) break;
    if (type == 1) {
      ++i;
      continue;
    }
    if (i + 1 >= len) return malformed(out, Reason::ipv4_bad_options);
    uint8_t olen = opt[i + 1];
    if (olen < 2 || i + olen > len) return malformed(out, Reason::ipv4_bad_options);
    if (type == 131 || type == 137) return malformed(out, Reason::ipv4_source_route);
    i += olen;
  }
  return true;
}

bool parse_ipv4(ParsedPacket& out, const uint8_t* ip, uint32_t avail, const ParseOptions& options,
                OffloadHints hints) {
  if (avail < 20) return malformed(out, Reason::ipv4_truncated);
  if ((ip[0] >> 4) != 4) return malformed(out, Reason::ipv4_bad_header);
  uint32_t ihl = (ip[0] & 0x0f) * 4u;
  if (ihl < 20) return malformed(out, Reason::ipv4_bad_header);
  if (ihl > avail) return malformed(out, Reason::ipv4_truncated);
  uint32_t total = load_be16(ip + 2);
  // Bytes after total length are Ethernet padding; fewer bytes than it are
  // a truncated or lying packet.
  if (total < ihl || total > avail) return malformed(out, Reason::ipv4_bad_length);
  if (options.verify_checksums) {
    if (hints.l3 == ChecksumHint::bad) return malformed(out, Reason::ipv4_bad_checksum);
    if (hints.l3 == ChecksumHint::unknown && !checksum_ok_plain(ip, ihl)) {
      return malformed(out, Reason::ipv4_bad_checksum);
    }
  }
  if (ihl > 20 && !check_ipv4_options(out, ip + 20, ihl - 20)) return false;

  out.ip_version = 4;
  out.hop_limit = ip[8];
  out.proto = ip[9];
  out.src = IpAddr::from_v4_wire(ip + 12);
  out.dst = IpAddr::from_v4_wire(ip + 16);
  out.l4_offset = static_cast<uint16_t>(out.l3_offset + ihl);

  uint16_t frag = load_be16(ip + 6);
  bool more = frag & 0x2000;
  uint32_t offset = (frag & 0x1fffu) * 8;
  uint32_t payload = total - ihl;
  if (more || offset != 0) {
    // The reassembled datagram may not exceed 65535 bytes (ping of death).
    if (offset + payload > 65535 - ihl) return malformed(out, Reason::frag_bad_offset);
    out.fragment = true;
    out.first_fragment = offset == 0;
    out.frag_offset = static_cast<uint16_t>(offset);
    out.frag_id = load_be16(ip + 4);
  }
  out.kind = FrameKind::ip;
  if (!parse_l4(out, ip + ihl, payload, options, hints)) return false;
  // Every fragment but the last carries a multiple of 8 bytes (RFC 791).
  // Checked last so a tiny first fragment is named as such.
  if (more && payload % 8 != 0) return malformed(out, Reason::frag_bad_length);
  return true;
}

bool parse_ipv6(ParsedPacket& out, const uint8_t* ip, uint32_t avail, const ParseOptions& options,
                OffloadHints hints) {
  if (avail < 40) return malformed(out, Reason::ipv6_truncated);
  if ((ip[0] >> 4) != 6) return malformed(out, Reason::ipv6_bad_header);
  uint32_t payload = load_be16(ip + 4);
  // Jumbograms (payload length 0 with a hop-by-hop jumbo option, RFC 2675)
  // never cross Ethernet; a zero length with data is a lie either way.
  if (40 + payload > avail) return malformed(out, Reason::ipv6_bad_length);
  out.ip_version = 6;
  out.hop_limit = ip[7];
  out.src = IpAddr::from_v6_wire(ip + 8);
  out.dst = IpAddr::from_v6_wire(ip + 24);
  // IPv4-mapped addresses on the wire are an evasion vector (RFC 4942 2.2)
  // and would alias IPv4 flows in the flow table.
  if (out.src.is_v4() || out.dst.is_v4()) return malformed(out, Reason::ipv6_mapped_address);

  uint8_t nh = ip[6];
  uint32_t off = 40;
  uint32_t end = 40 + payload;
  bool seen_fragment = false;
  bool bad_length = false;  // a fragment with more to follow, not a multiple of 8
  PseudoDestination pseudo_dst;
  for (int n = 0;; ++n) {
    if (nh != kIpv6HopByHop && nh != kIpv6Routing && nh != kIpv6DestOpts && nh != kIpv6Fragment &&
        nh != kIpv6Auth) {
      break;  // upper-layer protocol (RFC 7045: unknown values are upper layer)
    }
    if (n >= kMaxIpv6Extensions) return malformed(out, Reason::ipv6_too_many_extensions);
    // Hop-by-hop options must come first (RFC 8200 4.1).
    if (nh == kIpv6HopByHop && n != 0) return malformed(out, Reason::ipv6_bad_extension);
    if (off + 8 > end) {
      return malformed(out,
                       seen_fragment ? Reason::frag_first_too_small : Reason::ipv6_bad_extension);
    }
    const uint8_t* h = ip + off;
    uint32_t ext_len = 0;
    switch (nh) {
      case kIpv6Fragment: {
        if (seen_fragment) return malformed(out, Reason::ipv6_bad_extension);
        seen_fragment = true;
        ext_len = 8;
        uint16_t fo = load_be16(h + 2);
        uint32_t offset = fo & 0xfff8u;
        bool more = fo & 1;
        // An atomic fragment (offset 0, no more) is a whole packet (RFC 6946).
        if (offset != 0 || more) {
          // The reassembled payload is the unfragmentable headers before
          // this one, then offset plus this fragment's data; it may not
          // exceed 65535 bytes (RFC 8200 4.5).
          const uint32_t unfragmentable = off - 40;
          const uint32_t data = end - off - 8;
          if (unfragmentable + offset + data > 65535) {
            return malformed(out, Reason::frag_bad_offset);
          }
          bad_length = more && data % 8 != 0;
          out.fragment = true;
          out.first_fragment = offset == 0;
          out.frag_offset = static_cast<uint16_t>(offset);
          out.frag_id = load_be32(h + 4);
        }
        break;
      }
      case kIpv6Auth:
        ext_len = (h[1] + 2u) * 4;
        break;
      case kIpv6Routing:
        if (h[2] == 0) return malformed(out, Reason::ipv6_routing_type0);
        ext_len = (h[1] + 1u) * 8;
        if (h[3] != 0) {
          // Segments left: the IPv6 destination is a hop on the way. Mobile
          // IPv6 (type 2, RFC 6275 6.4) and segment routing (type 4, RFC
          // 8754 2: segment list[0] is the last segment) both put the final
          // address at offset 8; read only once the header is known to fit.
          if ((h[2] == 2 || h[2] == 4) && ext_len >= 24) {
            pseudo_dst.final = h + 8;
          } else {
            pseudo_dst.unknown = true;
          }
        }
        break;
      default:
        ext_len = (h[1] + 1u) * 8;
        break;
    }
    if (off + ext_len > end) {
      return malformed(out,
                       seen_fragment ? Reason::frag_first_too_small : Reason::ipv6_bad_extension);
    }
    nh = h[0];
    off += ext_len;
    if (out.fragment && !out.first_fragment) break;  // the rest is fragment data
  }
  out.proto = nh;
  out.l4_offset = static_cast<uint16_t>(out.l3_offset + off);
  out.kind = FrameKind::ip;
  if (nh == kIpv6Esp || nh == kIpv6NoNext) {
    out.l4_len = static_cast<uint16_t>(end - off);
  } else if (!parse_l4(out, ip + off, end - off, options, hints, pseudo_dst)) {
    return false;
  }
  // Every fragment but the last carries a multiple of 8 bytes (RFC 8200
  // 4.5). Checked last so a tiny first fragment is named as such.
  if (bad_length) return malformed(out, Reason::frag_bad_length);
  return true;
}

// The frame parsed from the start with no shortcut: every drop reason comes
// from here.
void parse_general(const uint8_t* frame, uint32_t len, Side side, uint8_t zone,
                   const ParseOptions& options, ParsedPacket& out, OffloadHints hints) {
  std::memcpy(static_cast<void*>(&out), &kEmpty, sizeof out);
  out.frame = frame;
  out.frame_len = len;
  out.side = side;
  out.zone = zone;
  if (len < 14) {
    malformed(out, Reason::eth_truncated);
    return;
  }
  uint32_t off = 12;
  uint16_t type = load_be16(frame + off);
  while (type == kEtherVlan || type == kEtherQinQ || type == kEtherQinQOld) {
    if (out.vlan_count == 2) {
      malformed(out, Reason::vlan_too_many_tags);
      return;
    }
    if (off + 6 > len) {
      malformed(out, Reason::vlan_truncated);
      return;
    }
    out.vlan[out.vlan_count++] = load_be16(frame + off + 2) & 0x0fff;
    off += 4;
    type = load_be16(frame + off);
  }
  off += 2;
  out.ether_type = type;
  out.l3_offset = static_cast<uint16_t>(off);
  switch (type) {
    case kEtherIpv4:
      parse_ipv4(out, frame + off, len - off, options, hints);
      break;
    case kEtherIpv6:
      parse_ipv6(out, frame + off, len - off, options, hints);
      break;
    case kEtherArp:
      out.kind = FrameKind::arp;
      break;
    default:
      out.kind = FrameKind::non_ip;
      break;
  }
}

// One's complement addition of 64-bit words (end-around carry, RFC 1071
// 2(C)): 0xffff divides 2^64 - 1, so it keeps the sum of 16-bit words
// modulo 0xffff, which is all sum_is_ffff looks at. GCC emits add and adc.
uint64_t add_carry(uint64_t sum, uint64_t v) {
  sum += v;
  return sum + (sum < v);
}

// The fast path, for the frame nearly all traffic is: Ethernet without a
// tag, IPv4 without options and not a fragment (DF may be set), TCP with no
// options or with exactly NOP, NOP, timestamps (the 32-byte header Linux and
// the BSDs send on every segment once timestamps are negotiated, RFC 7323
// appendix A), flags tcp_flags_valid accepts, lengths consistent, checksums
// good (or vouched for by the NIC, or not asked for). Each check is a load
// and a compare at a fixed offset, and both sums are fixed-length apart from
// the payload: 64-bit words with end-around carry, tested with sum_is_ffff
// (the version byte, or the protocol in the pseudo-header, keeps them
// non-zero).
//
// It fills `out` as parse_general would once the headers are known to be
// the common kind, then verifies the checksums. On anything else, and on a
// bad checksum, it gives up instead of reporting: the general path then
// parses the frame from the start (its first act is to reset `out`), so
// drop reasons have one source and the two paths cannot disagree about one.
[[gnu::always_inline]] inline bool parse_fast(const uint8_t* frame, uint32_t len, Side side,
                                              uint8_t zone, const ParseOptions& options,
                                              ParsedPacket& out, OffloadHints hints) {
  constexpr uint32_t kL3 = 14;
  constexpr uint32_t kL4 = kL3 + 20;
  if (len < kL4 + 20) return false;
  const uint8_t* ip = frame + kL3;
  const uint8_t* l4 = frame + kL4;
  // Loaded little-endian: the EtherType and the IPv4 version and IHL (bytes
  // 0x08 0x00 0x45); then flags and fragment offset, TTL and protocol, where
  // MF and the offset must be clear and the rest of the flags, as in
  // parse_ipv4, does not matter (bytes & 0x3f 0xff 0x00 0xff = 0 0 0 6).
  if ((load_le32(frame + 12) & 0x00ffffffu) != 0x00450008u) return false;
  if ((load_le32(ip + 6) & 0xff00ff3fu) != 0x06000000u) return false;
  const uint32_t total = load_be16(ip + 2);
  const uint32_t hlen = (l4[12] >> 4) * 4u;
  if (total > len - kL3 || total < 20 + hlen) return false;
  if (!tcp_flags_valid(l4[13])) return false;
  const bool timestamps = hlen == 32;
  // NOP, NOP, kind 8, length 10, loaded little-endian.
  if (timestamps ? load_le32(l4 + 20) != 0x0a080101u : hlen != 20) return false;
  const uint32_t segment = total - 20;

  std::memcpy(static_cast<void*>(&out), &kEmpty, sizeof out);
  out.frame = frame;
  out.frame_len = len;
  out.side = side;
  out.zone = zone;
  out.kind = FrameKind::ip;
  out.ether_type = kEtherIpv4;
  out.l3_offset = kL3;
  out.ip_version = 4;
  out.proto = kProtoTcp;
  out.hop_limit = ip[8];
  out.l4_offset = kL4;
  out.l4_len = static_cast<uint16_t>(segment);
  // IpAddr::from_v4_wire into the zeroed addresses, without a temporary
  // (from_v4_wire here cost 3 to 5 instructions more per packet).
  out.src.bytes[10] = out.src.bytes[11] = 0xff;
  out.dst.bytes[10] = out.dst.bytes[11] = 0xff;
  std::memcpy(&out.src.bytes[12], ip + 12, 4);
  std::memcpy(&out.dst.bytes[12], ip + 16, 4);
  out.sport = load_be16(l4);
  out.dport = load_be16(l4 + 2);
  TcpHeaderInfo& tcp = out.tcp;
  tcp.seq = load_be32(l4 + 4);
  tcp.ack = load_be32(l4 + 8);
  tcp.window = load_be16(l4 + 14);
  tcp.flags = l4[13];
  tcp.header_len = static_cast<uint8_t>(hlen);
  tcp.payload_len = static_cast<uint16_t>(segment - hlen);
  if (timestamps) {
    tcp.has_timestamp = true;
    tcp.ts_val = load_be32(l4 + 24);
    tcp.ts_ecr = load_be32(l4 + 28);
  }

  if (!options.verify_checksums) return true;
  if (hints.l3 == ChecksumHint::bad || hints.l4 == ChecksumHint::bad) return false;
  const uint64_t addresses = load_le64(ip + 12);
  if (hints.l3 == ChecksumHint::unknown &&
      !sum_is_ffff(add_carry(add_carry(addresses, load_le64(ip + 4)), load_le32(ip)))) {
    return false;
  }
  if (hints.l4 == ChecksumHint::unknown) {
    // Pseudo-header (RFC 9293 3.1): the addresses, then protocol and length
    // as big-endian words; swapping a word's bytes is multiplying it by 2^8
    // modulo 0xffff.
    uint64_t sum = add_carry(addresses, uint64_t{kProtoTcp + segment} << 8);
    sum = add_carry(sum, load_le64(l4));
    sum = add_carry(sum, load_le64(l4 + 8));
    sum = add_carry(sum, load_le32(l4 + 16));
    if (timestamps) {
      sum = add_carry(sum, load_le64(l4 + 20));
      sum = add_carry(sum, load_le32(l4 + 28));
    }
    if (segment != hlen) sum = add_carry(sum, add_words(l4 + hlen, segment - hlen, 0));
    if (!sum_is_ffff(sum)) return false;
  }
  return true;
}

}  // namespace

void parse_frame(const uint8_t* frame, uint32_t len, Side side, uint8_t zone,
                 const ParseOptions& options, ParsedPacket& out, OffloadHints hints) {
  if (parse_fast(frame, len, side, zone, options, out, hints)) return;
  parse_general(frame, len, side, zone, options, out, hints);
}

void parse_frame_general(const uint8_t* frame, uint32_t len, Side side, uint8_t zone,
                         const ParseOptions& options, ParsedPacket& out, OffloadHints hints) {
  parse_general(frame, len, side, zone, options, out, hints);
}

}  // namespace holdfast
