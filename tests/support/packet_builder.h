// Frames for tests: Ethernet (with 802.1Q / 802.1ad tags), IPv4 (options,
// fragments), IPv6 (extension headers, fragments), TCP (options), UDP, ICMP
// and ICMPv6 (echo, errors quoting an inner packet, neighbour discovery).
//
// Written from the RFCs and independent of dataplane/parser.cc: it shares
// no code with it (its own RFC 1071 checksum, its own address parsing), so a
// test that builds a frame here and parses it there cross-checks the two.
//
// Building is layered. An Upper is a transport PDU whose checksum is not yet
// computed; ipv4() / ipv6() finish it against their pseudo-header and wrap it;
// ether() adds the link header. Every field a test may want to get wrong has
// an override.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/verdict.h"

namespace holdfast {
// gtest prints drop reasons by name in failure messages (found by ADL).
inline void PrintTo(Reason reason, std::ostream* os) {
  *os << reason_name(reason);
}
}  // namespace holdfast

namespace holdfast::test {

using Bytes = std::vector<uint8_t>;

Bytes concat(std::initializer_list<Bytes> parts);

// RFC 1071 Internet checksum of data, added to a partial sum `initial`.
uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t initial = 0);

// Addresses in wire order. Abort on text that is not an address: a test bug.
std::array<uint8_t, 4> v4(const std::string& text);
std::array<uint8_t, 16> v6(const std::string& text);

// --- TCP (RFC 9293) -------------------------------------------------------

namespace tcpopt {
Bytes eol();
Bytes nop();
Bytes mss(uint16_t mss);
Bytes wscale(uint8_t shift);
Bytes sack_permitted();
Bytes sack(const std::vector<std::pair<uint32_t, uint32_t>>& blocks);  // (left, right)
Bytes timestamp(uint32_t val, uint32_t ecr);
}  // namespace tcpopt

struct TcpSpec {
  uint16_t sport = 40000;
  uint16_t dport = 80;
  uint32_t seq = 1000;
  uint32_t ack = 0;
  uint8_t flags = 0x02;  // SYN
  uint16_t window = 64240;
  Bytes options;  // padded with EOL to a multiple of four bytes
  Bytes payload;
  std::optional<uint8_t> data_offset_words;  // default: from the options
  bool bad_checksum = false;
};

struct UdpSpec {
  uint16_t sport = 40000;
  uint16_t dport = 53;
  Bytes payload;
  std::optional<uint16_t> length;  // default: header plus payload
  bool zero_checksum = false;      // send 0 ("no checksum", RFC 768)
  bool bad_checksum = false;
};

struct IcmpSpec {
  uint8_t type = 8;  // echo request
  uint8_t code = 0;
  uint32_t rest = 0;  // bytes 4-7: identifier << 16 | sequence for echo
  Bytes payload;      // for errors: the quoted packet
  bool bad_checksum = false;
};

// An upper-layer PDU whose checksum the IP layer fills in.
struct Upper {
  uint8_t proto = 0;
  Bytes bytes;
  int checksum_offset = -1;      // -1: none
  bool pseudo_header = true;     // ICMPv4 sums only its own bytes
  bool zero_means_none = false;  // UDP: a computed 0 is sent as 0xffff
  bool keep_zero = false;        // UDP: checksum deliberately absent
  bool corrupt = false;
};

Upper tcp(const TcpSpec& spec);
Upper udp(const UdpSpec& spec);
Upper icmp4(const IcmpSpec& spec);
Upper icmp6(const IcmpSpec& spec);
Upper raw(uint8_t proto, Bytes bytes);

inline uint32_t echo_rest(uint16_t id, uint16_t seq) {
  return uint32_t{id} << 16 | seq;
}

// --- IPv4 (RFC 791) -------------------------------------------------------

namespace ipv4opt {
Bytes eol();
Bytes nop();
Bytes lsrr(const std::vector<std::string>& route);
Bytes ssrr(const std::vector<std::string>& route);
Bytes record_route(uint8_t slots);
Bytes router_alert();
}  // namespace ipv4opt

struct Ipv4Spec {
  std::string src = "10.0.0.1";
  std::string dst = "192.0.2.10";
  uint8_t ttl = 64;
  uint8_t tos = 0;
  uint16_t id = 0x4242;
  bool dont_fragment = false;
  bool more_fragments = false;
  uint16_t frag_offset = 0;  // bytes, a multiple of 8
  Bytes options;             // padded with EOL to a multiple of four bytes
  std::optional<uint8_t> version;
  std::optional<uint8_t> ihl_words;
  std::optional<uint16_t> total_length;
  std::optional<uint8_t> proto;  // default: the upper layer's
  bool bad_checksum = false;
};

// The transport PDU with its checksum computed over the IPv4 pseudo-header.
Bytes finish_v4(const Upper& upper, const std::string& src, const std::string& dst);
// A whole datagram.
Bytes ipv4(const Ipv4Spec& spec, const Upper& upper);
// Header plus arbitrary payload (a fragment's share of a finished PDU).
Bytes ipv4_raw(const Ipv4Spec& spec, uint8_t proto, const Bytes& payload);

// --- IPv6 (RFC 8200) ------------------------------------------------------

// Extension headers. Byte 0 (next header) is filled in by ipv6().
namespace ext {
inline constexpr uint8_t kHopByHop = 0;
inline constexpr uint8_t kRouting = 43;
inline constexpr uint8_t kFragment = 44;
inline constexpr uint8_t kAuth = 51;
inline constexpr uint8_t kDestOpts = 60;
struct Header {
  uint8_t type;
  Bytes bytes;
};
Header hop_by_hop(uint8_t len_units = 0);  // PadN-filled, (len_units + 1) * 8 bytes
Header dest_opts(uint8_t len_units = 0);
Header routing(uint8_t routing_type, uint8_t segments_left, uint8_t addresses);
// A routing header whose address list is `addresses` in order (RFC 8754
// segment routing: list[0] is the final segment; RFC 6275 type 2: the home
// address).
Header routing(uint8_t routing_type, uint8_t segments_left,
               const std::vector<std::string>& addresses);
Header fragment(uint16_t offset, bool more, uint32_t id);
Header auth(uint8_t payload_len_field);  // (field + 2) * 4 bytes
}  // namespace ext

struct Ipv6Spec {
  std::string src = "2001:db8::1";
  std::string dst = "2001:db8:1::2";
  uint8_t hop_limit = 64;
  std::vector<ext::Header> extensions;
  std::optional<uint8_t> version;
  std::optional<uint16_t> payload_length;
};

Bytes finish_v6(const Upper& upper, const std::string& src, const std::string& dst);
Bytes ipv6(const Ipv6Spec& spec, const Upper& upper);
// Header and extensions, then `payload` after a last next-header of `proto`.
Bytes ipv6_raw(const Ipv6Spec& spec, uint8_t proto, const Bytes& payload);

// --- Ethernet ---------------------------------------------------------------

inline constexpr uint16_t kEtherIpv4 = 0x0800;
inline constexpr uint16_t kEtherIpv6 = 0x86dd;
inline constexpr uint16_t kEtherArp = 0x0806;
inline constexpr uint16_t kEtherLldp = 0x88cc;
inline constexpr uint16_t kTpid8021Q = 0x8100;
inline constexpr uint16_t kTpid8021ad = 0x88a8;

struct VlanTag {
  uint16_t tpid = kTpid8021Q;
  uint16_t tci = 0;  // priority, DEI, VLAN ID
};

Bytes ether(uint16_t ether_type, const Bytes& payload, const std::vector<VlanTag>& tags = {});
Bytes eth_v4(const Ipv4Spec& spec, const Upper& upper);
Bytes eth_v6(const Ipv6Spec& spec, const Upper& upper);
// An ARP request for `target` (RFC 826).
Bytes arp_request(const std::string& sender, const std::string& target);
// Pads with zeros up to `size` bytes (the 60-byte Ethernet minimum).
Bytes pad(Bytes frame, size_t size);

}  // namespace holdfast::test
