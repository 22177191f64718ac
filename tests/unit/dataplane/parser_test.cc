// Parser tests: frames built by tests/support/packet_builder (from the RFCs,
// sharing no code with the parser) must come out as the RFCs say, and every
// drop reason the parser can give is triggered by a frame that has exactly
// that one problem.
#include "dataplane/parser.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>

#include "tests/support/packet_builder.h"

namespace holdfast {
namespace {

using namespace holdfast::test;

// Parses a copy of frame in a heap block of exactly its size, so a read past
// the end is a heap overflow under AddressSanitizer.
ParsedPacket parse(const Bytes& frame, ParseOptions options = {}, OffloadHints hints = {},
                   Side side = Side::outside) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[frame.size() + 1]);
  if (!frame.empty()) std::memcpy(copy.get(), frame.data(), frame.size());
  ParsedPacket p;
  parse_frame(copy.get(), static_cast<uint32_t>(frame.size()), side, 7, options, p, hints);
  p.frame = nullptr;  // the copy dies here
  return p;
}

// The drop reason, or nullopt when the frame parsed.
std::optional<Reason> reason_of(const Bytes& frame, ParseOptions options = {},
                                OffloadHints hints = {}) {
  const ParsedPacket p = parse(frame, options, hints);
  if (p.kind == FrameKind::malformed) return p.error;
  return std::nullopt;
}

constexpr uint8_t kSyn = tcpflag::kSyn;
constexpr uint8_t kAck = tcpflag::kAck;
constexpr uint8_t kFin = tcpflag::kFin;
constexpr uint8_t kRst = tcpflag::kRst;
constexpr uint8_t kPsh = tcpflag::kPsh;
constexpr uint8_t kUrg = tcpflag::kUrg;
constexpr uint8_t kEce = tcpflag::kEce;
constexpr uint8_t kCwr = tcpflag::kCwr;

Bytes syn_v4() {
  return eth_v4({}, tcp({}));
}

Bytes tcp_v4_with_options(const Bytes& options, uint8_t flags = kSyn) {
  TcpSpec t;
  t.flags = flags;
  t.options = options;
  return eth_v4({}, tcp(t));
}

// A TCP segment whose finished (checksummed) bytes the caller may slice.
Bytes tcp_bytes_v4(const TcpSpec& t, const Ipv4Spec& ip = {}) {
  return finish_v4(tcp(t), ip.src, ip.dst);
}

Bytes slice(const Bytes& b, size_t from, size_t to) {
  // A test asking for bytes its frame does not have is itself wrong.
  if (from > to || to > b.size()) {
    ADD_FAILURE() << "slice(" << from << ", " << to << ") of " << b.size() << " bytes";
    return {};
  }
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from),
               b.begin() + static_cast<std::ptrdiff_t>(to));
}

// ---------------------------------------------------------------------------
// Ethernet and VLAN

TEST(ParserEthernet, ShorterThanHeaderIsTruncated) {
  EXPECT_EQ(reason_of(Bytes(13, 0)), Reason::eth_truncated);
  EXPECT_EQ(reason_of(Bytes{}), Reason::eth_truncated);
}

TEST(ParserEthernet, ArpIsClassifiedNotParsed) {
  const ParsedPacket p = parse(arp_request("10.0.0.1", "10.0.0.2"));
  EXPECT_EQ(p.kind, FrameKind::arp);
  EXPECT_EQ(p.ether_type, kEtherArp);
  EXPECT_EQ(p.side, Side::outside);
  EXPECT_EQ(p.zone, 7);
}

TEST(ParserEthernet, OtherEtherTypeIsNonIp) {
  const ParsedPacket p = parse(ether(kEtherLldp, Bytes(46, 0)));
  EXPECT_EQ(p.kind, FrameKind::non_ip);
  EXPECT_EQ(p.ether_type, kEtherLldp);
}

TEST(ParserEthernet, HeaderOnlyNonIpFrameIsNotTruncated) {
  EXPECT_EQ(parse(ether(kEtherLldp, {})).kind, FrameKind::non_ip);
}

TEST(ParserEthernet, SideAndZoneAreRecorded) {
  const ParsedPacket p = parse(syn_v4(), {}, {}, Side::inside);
  EXPECT_EQ(p.side, Side::inside);
  EXPECT_EQ(p.zone, 7);
}

TEST(ParserVlan, SingleTagGivesVlanIdWithoutPriorityBits) {
  // PCP 5, DEI 1, VID 100.
  const Bytes f = ether(kEtherIpv4, ipv4({}, tcp({})), {{kTpid8021Q, 0xb064}});
  const ParsedPacket p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::ip);
  EXPECT_EQ(p.vlan_count, 1);
  EXPECT_EQ(p.vlan[0], 100);
  EXPECT_EQ(p.ether_type, kEtherIpv4);
  EXPECT_EQ(p.l3_offset, 18);
  EXPECT_EQ(p.l4_offset, 38);
  EXPECT_EQ(p.sport, 40000);
}

TEST(ParserVlan, QinQOuterThenInnerTag) {
  const Bytes f =
      ether(kEtherIpv6, ipv6({}, udp({})), {{kTpid8021ad, 10}, {kTpid8021Q, 0x2000 | 20}});
  const ParsedPacket p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::ip);
  EXPECT_EQ(p.vlan_count, 2);
  EXPECT_EQ(p.vlan[0], 10);
  EXPECT_EQ(p.vlan[1], 20);
  EXPECT_EQ(p.l3_offset, 22);
  EXPECT_EQ(p.ip_version, 6);
  EXPECT_EQ(p.dport, 53);
}

TEST(ParserVlan, PreStandardQinQTpid) {
  const Bytes f = ether(kEtherIpv4, ipv4({}, tcp({})), {{0x9100, 30}, {kTpid8021Q, 40}});
  const ParsedPacket p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::ip);
  EXPECT_EQ(p.vlan_count, 2);
  EXPECT_EQ(p.vlan[0], 30);
  EXPECT_EQ(p.vlan[1], 40);
}

TEST(ParserVlan, TagWithoutInnerEtherTypeIsTruncated) {
  Bytes f = ether(kEtherIpv4, {}, {{kTpid8021Q, 5}});
  f.resize(16);  // MACs, TPID, TCI; no inner EtherType
  EXPECT_EQ(reason_of(f), Reason::vlan_truncated);
}

TEST(ParserVlan, ThirdTagIsTooMany) {
  const Bytes f =
      ether(kEtherIpv4, ipv4({}, tcp({})), {{kTpid8021ad, 1}, {kTpid8021Q, 2}, {kTpid8021Q, 3}});
  EXPECT_EQ(reason_of(f), Reason::vlan_too_many_tags);
}

// ---------------------------------------------------------------------------
// IPv4 header

TEST(ParserIpv4, SynFieldsAreInHostOrder) {
  TcpSpec t;
  t.sport = 0x1234;
  t.dport = 0x0050;
  t.seq = 0xa1b2c3d4;
  t.ack = 0;
  t.window = 0xfaf0;
  Ipv4Spec ip;
  ip.ttl = 17;
  const ParsedPacket p = parse(eth_v4(ip, tcp(t)));
  ASSERT_EQ(p.kind, FrameKind::ip);
  EXPECT_EQ(p.ip_version, 4);
  EXPECT_EQ(p.proto, kProtoTcp);
  EXPECT_EQ(p.hop_limit, 17);
  EXPECT_EQ(p.src.to_string(), "10.0.0.1");
  EXPECT_EQ(p.dst.to_string(), "192.0.2.10");
  EXPECT_TRUE(p.src.is_v4());
  EXPECT_EQ(p.l3_offset, 14);
  EXPECT_EQ(p.l4_offset, 34);
  EXPECT_EQ(p.l4_len, 20);
  EXPECT_EQ(p.sport, 0x1234);
  EXPECT_EQ(p.dport, 0x0050);
  EXPECT_EQ(p.tcp.seq, 0xa1b2c3d4u);
  EXPECT_EQ(p.tcp.window, 0xfaf0);
  EXPECT_EQ(p.tcp.flags, kSyn);
  EXPECT_EQ(p.tcp.header_len, 20);
  EXPECT_EQ(p.tcp.payload_len, 0);
  EXPECT_FALSE(p.fragment);
  EXPECT_TRUE(p.has_l4_header());
}

TEST(ParserIpv4, ShorterThanMinimalHeaderIsTruncated) {
  Bytes f = syn_v4();
  f.resize(14 + 19);
  EXPECT_EQ(reason_of(f), Reason::ipv4_truncated);
}

TEST(ParserIpv4, HeaderLengthBeyondFrameIsTruncated) {
  Ipv4Spec ip;
  ip.ihl_words = 15;  // 60 bytes claimed, 40 present in all
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_truncated);
}

TEST(ParserIpv4, VersionOtherThanFourIsBadHeader) {
  Ipv4Spec ip;
  ip.version = 6;
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_bad_header);
}

TEST(ParserIpv4, HeaderLengthBelowFiveWordsIsBadHeader) {
  Ipv4Spec ip;
  ip.ihl_words = 4;
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_bad_header);
}

TEST(ParserIpv4, TotalLengthBeyondFrameIsBadLength) {
  Ipv4Spec ip;
  ip.total_length = 41;  // 40 present
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_bad_length);
}

TEST(ParserIpv4, TotalLengthBelowHeaderIsBadLength) {
  Ipv4Spec ip;
  ip.total_length = 19;
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_bad_length);
}

TEST(ParserIpv4, BadHeaderChecksum) {
  Ipv4Spec ip;
  ip.bad_checksum = true;
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_bad_checksum);
}

TEST(ParserIpv4, EthernetPaddingAfterTotalLengthIsIgnored) {
  // A 54-byte SYN padded to the 60-byte minimum with non-zero filler: the
  // filler is neither TCP payload nor part of the checksummed bytes.
  Bytes f = syn_v4();
  ASSERT_EQ(f.size(), 54u);
  f.insert(f.end(), 6, 0xaa);
  const ParsedPacket p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.l4_len, 20);
  EXPECT_EQ(p.tcp.payload_len, 0);
}

TEST(ParserIpv4, PaddedUdpKeepsItsLength) {
  UdpSpec u;
  u.payload = {1, 2};
  Bytes f = eth_v4({}, udp(u));
  f = pad(f, 60);
  const ParsedPacket p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.l4_len, 10);
}

TEST(ParserIpv4, UnknownProtocolIsParsedWithoutPorts) {
  const ParsedPacket p = parse(eth_v4({}, raw(47, Bytes(24, 0))));  // GRE
  ASSERT_EQ(p.kind, FrameKind::ip);
  EXPECT_EQ(p.proto, 47);
  EXPECT_EQ(p.sport, 0);
  EXPECT_EQ(p.dport, 0);
  EXPECT_EQ(p.l4_len, 24);
}

// ---------------------------------------------------------------------------
// IPv4 options (RFC 791 3.1, RFC 7126)

TEST(ParserIpv4Options, NopAndEolAreAccepted) {
  Ipv4Spec ip;
  ip.options = {1, 1, 1, 0};
  const ParsedPacket p = parse(eth_v4(ip, tcp({})));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.l4_offset, 14 + 24);
  EXPECT_EQ(p.sport, 40000);
}

TEST(ParserIpv4Options, BytesAfterEndOfListAreNotOptions) {
  Ipv4Spec ip;
  ip.options = {0, 131, 1, 0};  // EOL, then what would be a broken LSRR
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), std::nullopt);
}

TEST(ParserIpv4Options, RecordRouteAndRouterAlertAreAccepted) {
  Ipv4Spec ip;
  ip.options = concat({ipv4opt::record_route(2), ipv4opt::nop(), ipv4opt::router_alert()});
  const ParsedPacket p = parse(eth_v4(ip, udp({})));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.l4_offset, 14 + 20 + 16);
  EXPECT_EQ(p.dport, 53);
}

TEST(ParserIpv4Options, LengthBelowTwoIsBad) {
  Ipv4Spec ip;
  ip.options = {7, 1, 0, 0};
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_bad_options);
  ip.options = {7, 0, 0, 0};
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_bad_options);
}

TEST(ParserIpv4Options, LengthPastHeaderIsBad) {
  Ipv4Spec ip;
  ip.options = {7, 5, 4, 0};  // 5 bytes claimed, 4 in the header
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_bad_options);
}

TEST(ParserIpv4Options, TypeWithoutLengthByteIsBad) {
  Ipv4Spec ip;
  ip.options = {1, 1, 1, 7};
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_bad_options);
}

TEST(ParserIpv4Options, LooseSourceRouteIsDropped) {
  Ipv4Spec ip;
  ip.options = ipv4opt::lsrr({"198.51.100.1", "198.51.100.2"});
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_source_route);
}

TEST(ParserIpv4Options, StrictSourceRouteAfterNopIsDropped) {
  Ipv4Spec ip;
  ip.options = concat({ipv4opt::nop(), ipv4opt::ssrr({"198.51.100.1"})});
  EXPECT_EQ(reason_of(eth_v4(ip, tcp({}))), Reason::ipv4_source_route);
}

// ---------------------------------------------------------------------------
// IPv4 fragments (RFC 791, RFC 1858)

// A TCP segment of 20 + 40 bytes split at byte `split` (a multiple of 8).
struct SplitTcp {
  Bytes first;
  Bytes later;
};
SplitTcp split_tcp_v4(size_t split) {
  TcpSpec t;
  t.flags = kAck;
  t.payload = Bytes(40, 0x5a);
  const Bytes whole = tcp_bytes_v4(t);
  Ipv4Spec first;
  first.more_fragments = true;
  Ipv4Spec later;
  later.frag_offset = static_cast<uint16_t>(split);
  return {ether(kEtherIpv4, ipv4_raw(first, kProtoTcp, slice(whole, 0, split))),
          ether(kEtherIpv4, ipv4_raw(later, kProtoTcp, slice(whole, split, whole.size())))};
}

TEST(ParserIpv4Fragments, FirstFragmentCarriesPorts) {
  const ParsedPacket p = parse(split_tcp_v4(24).first);
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_TRUE(p.fragment);
  EXPECT_TRUE(p.first_fragment);
  EXPECT_TRUE(p.has_l4_header());
  EXPECT_EQ(p.frag_offset, 0);
  EXPECT_EQ(p.frag_id, 0x4242u);
  EXPECT_EQ(p.sport, 40000);
  EXPECT_EQ(p.dport, 80);
  EXPECT_EQ(p.l4_len, 24);
}

TEST(ParserIpv4Fragments, FirstFragmentChecksumIsNotJudged) {
  // The checksum covers the whole datagram, which no fragment has.
  TcpSpec t;
  t.flags = kAck;
  t.payload = Bytes(40, 1);
  t.bad_checksum = true;
  Ipv4Spec first;
  first.more_fragments = true;
  const Bytes f = ether(kEtherIpv4, ipv4_raw(first, kProtoTcp, slice(tcp_bytes_v4(t), 0, 24)));
  EXPECT_EQ(reason_of(f), std::nullopt);
}

TEST(ParserIpv4Fragments, LaterFragmentHasNoPorts) {
  const ParsedPacket p = parse(split_tcp_v4(24).later);
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_TRUE(p.fragment);
  EXPECT_FALSE(p.first_fragment);
  EXPECT_FALSE(p.has_l4_header());
  EXPECT_EQ(p.frag_offset, 24);
  EXPECT_EQ(p.frag_id, 0x4242u);
  EXPECT_EQ(p.proto, kProtoTcp);
  EXPECT_EQ(p.sport, 0);
  EXPECT_EQ(p.dport, 0);
  EXPECT_EQ(p.l4_len, 36);
}

TEST(ParserIpv4Fragments, DontFragmentAloneIsAWholeDatagram) {
  Ipv4Spec ip;
  ip.dont_fragment = true;
  const ParsedPacket p = parse(eth_v4(ip, tcp({})));
  ASSERT_EQ(p.kind, FrameKind::ip);
  EXPECT_FALSE(p.fragment);
}

TEST(ParserIpv4Fragments, FirstFragmentShorterThanTcpHeaderIsTinyFragment) {
  EXPECT_EQ(reason_of(split_tcp_v4(16).first), Reason::frag_first_too_small);
}

TEST(ParserIpv4Fragments, FirstFragmentCuttingTcpOptionsIsTinyFragment) {
  // RFC 3128: the header with its options must be in the first fragment.
  TcpSpec t;
  t.options = concat({tcpopt::mss(1460), tcpopt::sack_permitted(), tcpopt::timestamp(1, 0),
                      tcpopt::nop(), tcpopt::wscale(7)});
  t.payload = Bytes(16, 0);
  Ipv4Spec first;
  first.more_fragments = true;
  const Bytes f = ether(kEtherIpv4, ipv4_raw(first, kProtoTcp, slice(tcp_bytes_v4(t), 0, 24)));
  EXPECT_EQ(reason_of(f), Reason::frag_first_too_small);
}

TEST(ParserIpv4Fragments, FirstFragmentShorterThanUdpHeaderIsTinyFragment) {
  UdpSpec u;
  u.payload = Bytes(32, 0);
  Ipv4Spec first;
  first.more_fragments = true;
  const Bytes whole = finish_v4(udp(u), first.src, first.dst);
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(first, kProtoUdp, slice(whole, 0, 0)))),
            Reason::frag_first_too_small);
}

TEST(ParserIpv4Fragments, LaterFragmentInsideTcpHeaderOverlaps) {
  // RFC 1858 3.2: a fragment at offset 8 would rewrite the TCP flags.
  EXPECT_EQ(reason_of(split_tcp_v4(8).later), Reason::frag_overlaps_header);
  EXPECT_EQ(reason_of(split_tcp_v4(16).later), Reason::frag_overlaps_header);
  EXPECT_EQ(reason_of(split_tcp_v4(24).later), std::nullopt);
}

TEST(ParserIpv4Fragments, LaterUdpFragmentAtEightDoesNotOverlap) {
  Ipv4Spec later;
  later.frag_offset = 8;
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(later, kProtoUdp, Bytes(16, 0)))), std::nullopt);
}

TEST(ParserIpv4Fragments, FragmentWithMoreToFollowCarriesAMultipleOfEight) {
  // RFC 791: only the last fragment may end off an 8-byte boundary.
  Ipv4Spec first;
  first.more_fragments = true;
  UdpSpec u;
  u.payload = Bytes(40, 0);
  const Bytes whole = finish_v4(udp(u), first.src, first.dst);
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(first, kProtoUdp, slice(whole, 0, 20)))),
            Reason::frag_bad_length);
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(first, kProtoUdp, slice(whole, 0, 24)))),
            std::nullopt);
  Ipv4Spec middle = first;
  middle.frag_offset = 24;
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(middle, kProtoUdp, Bytes(12, 0)))),
            Reason::frag_bad_length);
  Ipv4Spec last = middle;
  last.more_fragments = false;
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(last, kProtoUdp, Bytes(12, 0)))), std::nullopt);
}

TEST(ParserIpv4Fragments, ReassemblyBeyond65535IsPingOfDeath) {
  Ipv4Spec later;
  later.frag_offset = 65528;  // the largest offset
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(later, kProtoIcmp, Bytes(8, 0)))),
            Reason::frag_bad_offset);
  // 20 + 65512 + 3 = 65535: the largest datagram, still legal.
  later.frag_offset = 65512;
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(later, kProtoIcmp, Bytes(3, 0)))), std::nullopt);
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(later, kProtoIcmp, Bytes(4, 0)))),
            Reason::frag_bad_offset);
}

// ---------------------------------------------------------------------------
// IPv6 header and extension headers (RFC 8200, RFC 5095, RFC 4302)

TEST(ParserIpv6, UdpFields) {
  Ipv6Spec ip;
  ip.hop_limit = 3;
  UdpSpec u;
  u.sport = 5353;
  u.dport = 5354;
  u.payload = {1, 2, 3, 4};
  const ParsedPacket p = parse(eth_v6(ip, udp(u)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.ip_version, 6);
  EXPECT_EQ(p.proto, kProtoUdp);
  EXPECT_EQ(p.hop_limit, 3);
  EXPECT_EQ(p.src.to_string(), "2001:db8::1");
  EXPECT_EQ(p.dst.to_string(), "2001:db8:1::2");
  EXPECT_FALSE(p.src.is_v4());
  EXPECT_EQ(p.l4_offset, 54);
  EXPECT_EQ(p.l4_len, 12);
  EXPECT_EQ(p.sport, 5353);
  EXPECT_EQ(p.dport, 5354);
}

TEST(ParserIpv6, ShorterThanHeaderIsTruncated) {
  Bytes f = eth_v6({}, udp({}));
  f.resize(14 + 39);
  EXPECT_EQ(reason_of(f), Reason::ipv6_truncated);
}

TEST(ParserIpv6, VersionOtherThanSixIsBadHeader) {
  Ipv6Spec ip;
  ip.version = 4;
  EXPECT_EQ(reason_of(eth_v6(ip, udp({}))), Reason::ipv6_bad_header);
}

TEST(ParserIpv6, PayloadLengthBeyondFrameIsBadLength) {
  Ipv6Spec ip;
  ip.payload_length = 9;  // 8 present
  EXPECT_EQ(reason_of(eth_v6(ip, udp({}))), Reason::ipv6_bad_length);
}

TEST(ParserIpv6, PaddingAfterPayloadIsIgnored) {
  IcmpSpec echo;
  echo.type = 128;
  echo.rest = echo_rest(1, 1);
  Bytes f = eth_v6({}, icmp6(echo));
  f.insert(f.end(), 8, 0xee);
  const ParsedPacket p = parse(f);
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.l4_len, 8);
}

TEST(ParserIpv6, V4MappedSourceIsDropped) {
  Ipv6Spec ip;
  ip.src = "::ffff:10.0.0.1";
  EXPECT_EQ(reason_of(eth_v6(ip, udp({}))), Reason::ipv6_mapped_address);
}

TEST(ParserIpv6, V4MappedDestinationIsDropped) {
  Ipv6Spec ip;
  ip.dst = "::ffff:192.0.2.10";
  EXPECT_EQ(reason_of(eth_v6(ip, udp({}))), Reason::ipv6_mapped_address);
}

TEST(ParserIpv6, V4CompatibleAddressIsNotMapped) {
  Ipv6Spec ip;
  ip.src = "::10.0.0.1";  // deprecated, but not an alias of an IPv4 flow
  EXPECT_EQ(reason_of(eth_v6(ip, udp({}))), std::nullopt);
}

TEST(ParserIpv6Extensions, HopByHopFirstThenDestinationOptions) {
  Ipv6Spec ip;
  ip.extensions = {ext::hop_by_hop(0), ext::dest_opts(1)};
  TcpSpec t;
  t.sport = 1111;
  const ParsedPacket p = parse(eth_v6(ip, tcp(t)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.proto, kProtoTcp);
  EXPECT_EQ(p.l4_offset, 14 + 40 + 8 + 16);
  EXPECT_EQ(p.sport, 1111);
  EXPECT_EQ(p.l4_len, 20);
}

TEST(ParserIpv6Extensions, HopByHopNotFirstIsBad) {
  Ipv6Spec ip;
  ip.extensions = {ext::dest_opts(0), ext::hop_by_hop(0)};
  EXPECT_EQ(reason_of(eth_v6(ip, tcp({}))), Reason::ipv6_bad_extension);
}

TEST(ParserIpv6Extensions, RoutingTypeZeroIsDropped) {
  Ipv6Spec ip;
  ip.extensions = {ext::routing(0, 1, 1)};
  EXPECT_EQ(reason_of(eth_v6(ip, tcp({}))), Reason::ipv6_routing_type0);
  // RFC 5095 deprecates the type whatever the segments left.
  ip.extensions = {ext::routing(0, 0, 1)};
  EXPECT_EQ(reason_of(eth_v6(ip, tcp({}))), Reason::ipv6_routing_type0);
}

TEST(ParserIpv6Extensions, OtherRoutingTypesPass) {
  Ipv6Spec ip;
  ip.extensions = {ext::routing(2, 0, 1)};  // Mobile IPv6 (RFC 6275), already processed
  const ParsedPacket p = parse(eth_v6(ip, tcp({})));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.l4_offset, 14 + 40 + 24);
}

// RFC 8200 8.1: under a routing header the pseudo-header holds the final
// destination, the last address of the route, not the next hop in the
// IPv6 header.
TEST(ParserIpv6Extensions, ChecksumUnderSegmentRoutingUsesFinalSegment) {
  Ipv6Spec ip;
  ip.dst = "2001:db8:100::1";  // the next segment, a router
  ip.extensions = {ext::routing(4, 1, {"2001:db8:1::2", "2001:db8:100::1"})};
  UdpSpec u;
  u.payload = {1, 2, 3};
  const Bytes right = finish_v6(udp(u), ip.src, "2001:db8:1::2");
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(ip, kProtoUdp, right))), std::nullopt);
  const Bytes next_hop = finish_v6(udp(u), ip.src, ip.dst);
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(ip, kProtoUdp, next_hop))),
            Reason::bad_l4_checksum);
  TcpSpec t;
  const Bytes syn = finish_v6(tcp(t), ip.src, "2001:db8:1::2");
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(ip, kProtoTcp, syn))), std::nullopt);
  IcmpSpec echo;
  echo.type = 128;
  echo.rest = echo_rest(5, 5);
  const Bytes ping = finish_v6(icmp6(echo), ip.src, "2001:db8:1::2");
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(ip, kProtoIcmpV6, ping))), std::nullopt);
}

TEST(ParserIpv6Extensions, ChecksumUnderMobileIpv6RoutingUsesHomeAddress) {
  Ipv6Spec ip;
  ip.dst = "2001:db8:200::9";                               // care-of address
  ip.extensions = {ext::routing(2, 1, {"2001:db8:1::2"})};  // home address
  TcpSpec t;
  const Bytes right = finish_v6(tcp(t), ip.src, "2001:db8:1::2");
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(ip, kProtoTcp, right))), std::nullopt);
  const Bytes wrong = finish_v6(tcp(t), ip.src, ip.dst);
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(ip, kProtoTcp, wrong))), Reason::bad_l4_checksum);
}

TEST(ParserIpv6Extensions, ChecksumAfterTheLastSegmentUsesTheHeaderDestination) {
  // Segments left 0: the IPv6 destination is the final one.
  Ipv6Spec ip;
  ip.extensions = {ext::routing(4, 0, {"2001:db8:1::2", "2001:db8:100::1"})};
  UdpSpec u;
  const Bytes right = finish_v6(udp(u), ip.src, ip.dst);
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(ip, kProtoUdp, right))), std::nullopt);
}

TEST(ParserIpv6Extensions, UnknownRoutingTypeInTransitLeavesTheChecksumUnjudged) {
  // The final destination of an unknown routing type cannot be found (RPL,
  // RFC 6554, compresses it), so the checksum cannot be judged either way.
  Ipv6Spec ip;
  ip.extensions = {ext::routing(3, 1, 1)};
  UdpSpec u;
  u.bad_checksum = true;
  const ParsedPacket p = parse(eth_v6(ip, udp(u)));
  EXPECT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.dport, 53);
}

TEST(ParserIpv6Extensions, AuthenticationHeaderLengthIsInFourByteUnits) {
  Ipv6Spec ip;
  ip.extensions = {ext::auth(4)};  // (4 + 2) * 4 = 24 bytes
  TcpSpec t;
  t.sport = 2222;
  t.dport = 3333;
  const ParsedPacket p = parse(eth_v6(ip, tcp(t)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.l4_offset, 14 + 40 + 24);
  EXPECT_EQ(p.sport, 2222);
  EXPECT_EQ(p.dport, 3333);
}

TEST(ParserIpv6Extensions, AuthenticationHeaderPastPayloadIsBad) {
  Ipv6Spec ip;
  ip.extensions = {ext::auth(1)};
  // Claim 40 bytes of AH when 12 + 8 are present.
  Bytes body = ipv6(ip, udp({}));
  body[40 + 1] = 8;
  EXPECT_EQ(reason_of(ether(kEtherIpv6, body)), Reason::ipv6_bad_extension);
}

TEST(ParserIpv6Extensions, ExtensionLongerThanPayloadIsBad) {
  Ipv6Spec ip;
  ip.extensions = {ext::dest_opts(1)};  // 16 bytes
  ip.payload_length = 8;
  Bytes f = ether(kEtherIpv6, ipv6_raw(ip, kProtoUdp, {}));
  EXPECT_EQ(reason_of(f), Reason::ipv6_bad_extension);
}

TEST(ParserIpv6Extensions, ExtensionHeaderCutShortIsBad) {
  Ipv6Spec ip;
  ip.extensions = {ext::dest_opts(0)};
  ip.payload_length = 4;
  Bytes f = ether(kEtherIpv6, ipv6_raw(ip, kProtoUdp, {}));
  f.resize(14 + 44);
  EXPECT_EQ(reason_of(f), Reason::ipv6_bad_extension);
}

TEST(ParserIpv6Extensions, EightExtensionsAreAcceptedNineAreTooMany) {
  Ipv6Spec ip;
  ip.extensions = {ext::hop_by_hop(0)};
  for (int i = 0; i < 7; ++i) ip.extensions.push_back(ext::dest_opts(0));
  const ParsedPacket p = parse(eth_v6(ip, udp({})));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.l4_offset, 14 + 40 + 64);
  ip.extensions.push_back(ext::dest_opts(0));
  EXPECT_EQ(reason_of(eth_v6(ip, udp({}))), Reason::ipv6_too_many_extensions);
}

TEST(ParserIpv6Extensions, EspEndsTheChainUnparsed) {
  Ipv6Spec ip;
  ip.extensions = {ext::dest_opts(0)};
  const ParsedPacket p = parse(ether(kEtherIpv6, ipv6_raw(ip, 50, Bytes(32, 0x11))));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.proto, 50);
  EXPECT_EQ(p.l4_len, 32);
}

// ---------------------------------------------------------------------------
// IPv6 fragments (RFC 8200 4.5, RFC 6946, RFC 7112)

TEST(ParserIpv6Fragments, FirstAndLaterFragment) {
  UdpSpec u;
  u.payload = Bytes(32, 3);
  const Ipv6Spec base;
  const Bytes whole = finish_v6(udp(u), base.src, base.dst);
  Ipv6Spec first = base;
  first.extensions = {ext::fragment(0, true, 0xdeadbeef)};
  Ipv6Spec later = base;
  later.extensions = {ext::fragment(16, false, 0xdeadbeef)};

  const ParsedPacket p1 = parse(ether(kEtherIpv6, ipv6_raw(first, kProtoUdp, slice(whole, 0, 16))));
  ASSERT_EQ(p1.kind, FrameKind::ip) << reason_name(p1.error);
  EXPECT_TRUE(p1.fragment);
  EXPECT_TRUE(p1.first_fragment);
  EXPECT_EQ(p1.frag_id, 0xdeadbeefu);
  EXPECT_EQ(p1.proto, kProtoUdp);
  EXPECT_EQ(p1.sport, 40000);
  EXPECT_EQ(p1.dport, 53);
  EXPECT_EQ(p1.l4_offset, 14 + 48);

  const ParsedPacket p2 =
      parse(ether(kEtherIpv6, ipv6_raw(later, kProtoUdp, slice(whole, 16, whole.size()))));
  ASSERT_EQ(p2.kind, FrameKind::ip) << reason_name(p2.error);
  EXPECT_TRUE(p2.fragment);
  EXPECT_FALSE(p2.first_fragment);
  EXPECT_FALSE(p2.has_l4_header());
  EXPECT_EQ(p2.frag_offset, 16);
  EXPECT_EQ(p2.frag_id, 0xdeadbeefu);
  EXPECT_EQ(p2.proto, kProtoUdp);
  EXPECT_EQ(p2.sport, 0);
  EXPECT_EQ(p2.l4_len, 24);
}

TEST(ParserIpv6Fragments, FragmentWithMoreToFollowCarriesAMultipleOfEight) {
  // RFC 8200 4.5: discard it.
  UdpSpec u;
  u.payload = Bytes(32, 3);
  const Ipv6Spec base;
  const Bytes whole = finish_v6(udp(u), base.src, base.dst);
  Ipv6Spec first = base;
  first.extensions = {ext::fragment(0, true, 0x1234)};
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(first, kProtoUdp, slice(whole, 0, 12)))),
            Reason::frag_bad_length);
  Ipv6Spec last = base;
  last.extensions = {ext::fragment(16, false, 0x1234)};
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(last, kProtoUdp, slice(whole, 16, 27)))),
            std::nullopt);
}

TEST(ParserIpv6Fragments, AtomicFragmentIsAWholePacket) {
  // RFC 6946: offset 0 and M clear; processed as if unfragmented, so the
  // checksum is judged.
  Ipv6Spec ip;
  ip.extensions = {ext::fragment(0, false, 77)};
  const ParsedPacket p = parse(eth_v6(ip, udp({})));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_FALSE(p.fragment);
  EXPECT_EQ(p.dport, 53);
  UdpSpec bad;
  bad.bad_checksum = true;
  EXPECT_EQ(reason_of(eth_v6(ip, udp(bad))), Reason::bad_l4_checksum);
}

TEST(ParserIpv6Fragments, FirstFragmentWithoutWholeHeaderChainIsTooSmall) {
  // RFC 7112: the first fragment holds the entire header chain.
  Ipv6Spec ip;
  ip.extensions = {ext::fragment(0, true, 1), ext::dest_opts(1)};
  Bytes body = ipv6_raw(ip, kProtoUdp, {});
  body.resize(40 + 8 + 8);  // the destination options header is cut in half
  body[4] = 0;
  body[5] = 16;
  EXPECT_EQ(reason_of(ether(kEtherIpv6, body)), Reason::frag_first_too_small);
}

TEST(ParserIpv6Fragments, FirstFragmentCuttingTcpHeaderIsTooSmall) {
  TcpSpec t;
  t.payload = Bytes(16, 0);
  const Ipv6Spec base;
  const Bytes whole = finish_v6(tcp(t), base.src, base.dst);
  Ipv6Spec first = base;
  first.extensions = {ext::fragment(0, true, 9)};
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(first, kProtoTcp, slice(whole, 0, 16)))),
            Reason::frag_first_too_small);
}

TEST(ParserIpv6Fragments, LaterFragmentInsideTcpHeaderOverlaps) {
  Ipv6Spec later;
  later.extensions = {ext::fragment(8, false, 9)};
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(later, kProtoTcp, Bytes(32, 0)))),
            Reason::frag_overlaps_header);
}

TEST(ParserIpv6Fragments, ReassemblyBeyond65535IsBadOffset) {
  Ipv6Spec later;
  later.extensions = {ext::fragment(65528, false, 9)};
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(later, kProtoUdp, Bytes(8, 0)))),
            Reason::frag_bad_offset);
  // Payload length of the reassembled packet: 8 (fragment header dropped, no
  // other extension) ... 65520 + 15 = 65535 is the largest.
  later.extensions = {ext::fragment(65520, false, 9)};
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(later, kProtoUdp, Bytes(15, 0)))), std::nullopt);
}

TEST(ParserIpv6Fragments, UnfragmentableHeadersCountTowardsReassembledLength) {
  // RFC 8200 4.5: the reassembled payload length is the unfragmentable part
  // (here an 8-byte hop-by-hop header) plus offset plus fragment length:
  // 8 + 65520 + 8 = 65536.
  Ipv6Spec later;
  later.extensions = {ext::hop_by_hop(0), ext::fragment(65520, false, 9)};
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(later, kProtoUdp, Bytes(8, 0)))),
            Reason::frag_bad_offset);
  EXPECT_EQ(reason_of(ether(kEtherIpv6, ipv6_raw(later, kProtoUdp, Bytes(7, 0)))), std::nullopt);
}

TEST(ParserIpv6Fragments, TwoFragmentHeadersAreBad) {
  Ipv6Spec ip;
  ip.extensions = {ext::fragment(0, true, 1), ext::fragment(0, true, 1)};
  EXPECT_EQ(reason_of(eth_v6(ip, udp({}))), Reason::ipv6_bad_extension);
}

// ---------------------------------------------------------------------------
// TCP header, options and flags (RFC 9293, RFC 7323, RFC 2018)

TEST(ParserTcp, ShorterThanHeaderIsTruncated) {
  Bytes seg = tcp_bytes_v4({});
  seg.resize(19);
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw({}, kProtoTcp, seg))), Reason::tcp_truncated);
}

TEST(ParserTcp, DataOffsetBelowFiveIsBadHeader) {
  TcpSpec t;
  t.data_offset_words = 4;
  EXPECT_EQ(reason_of(eth_v4({}, tcp(t))), Reason::tcp_bad_header);
}

TEST(ParserTcp, DataOffsetPastSegmentIsTruncated) {
  TcpSpec t;
  t.data_offset_words = 6;  // 24 bytes claimed, 20 present
  EXPECT_EQ(reason_of(eth_v4({}, tcp(t))), Reason::tcp_truncated);
}

TEST(ParserTcp, PayloadLengthExcludesHeaderAndOptions) {
  TcpSpec t;
  t.flags = kAck | kPsh;
  t.options = concat({tcpopt::nop(), tcpopt::nop(), tcpopt::timestamp(5, 6)});
  t.payload = Bytes(100, 0x61);
  const ParsedPacket p = parse(eth_v4({}, tcp(t)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.tcp.header_len, 32);
  EXPECT_EQ(p.tcp.payload_len, 100);
  EXPECT_EQ(p.l4_len, 132);
}

TEST(ParserTcp, SynOptions) {
  TcpSpec t;
  t.options = concat({tcpopt::mss(1460), tcpopt::sack_permitted(), tcpopt::timestamp(0x01020304, 0),
                      tcpopt::nop(), tcpopt::wscale(7)});
  const ParsedPacket p = parse(eth_v4({}, tcp(t)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.tcp.mss, 1460);
  EXPECT_EQ(p.tcp.wscale, 7);
  EXPECT_TRUE(p.tcp.sack_permitted);
  EXPECT_TRUE(p.tcp.has_timestamp);
  EXPECT_EQ(p.tcp.ts_val, 0x01020304u);
  EXPECT_EQ(p.tcp.ts_ecr, 0u);
  EXPECT_EQ(p.tcp.sack_blocks, 0);
}

TEST(ParserTcp, AbsentOptionsHaveTheirAbsentValues) {
  const ParsedPacket p = parse(syn_v4());
  EXPECT_EQ(p.tcp.mss, 0);
  EXPECT_EQ(p.tcp.wscale, 0xff);
  EXPECT_FALSE(p.tcp.sack_permitted);
  EXPECT_FALSE(p.tcp.has_timestamp);
}

TEST(ParserTcp, WindowScaleAbove14IsTreatedAs14) {
  // RFC 7323 2.3.
  EXPECT_EQ(parse(tcp_v4_with_options(tcpopt::wscale(14))).tcp.wscale, 14);
  EXPECT_EQ(parse(tcp_v4_with_options(tcpopt::wscale(15))).tcp.wscale, 14);
  EXPECT_EQ(parse(tcp_v4_with_options(tcpopt::wscale(255))).tcp.wscale, 14);
  EXPECT_EQ(parse(tcp_v4_with_options(tcpopt::wscale(0))).tcp.wscale, 0);
}

TEST(ParserTcp, SackRightEdgeIsTheHighestOfAllBlocks) {
  const ParsedPacket p =
      parse(tcp_v4_with_options(tcpopt::sack({{100, 200}, {500, 900}, {300, 400}}), kAck));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.tcp.sack_blocks, 3);
  EXPECT_EQ(p.tcp.sack_right, 900u);
}

TEST(ParserTcp, SackRightEdgeComparesInSequenceSpace) {
  // Across the wrap 0x20 is after 0xfffffffc.
  EXPECT_EQ(parse(tcp_v4_with_options(tcpopt::sack({{0xfffffff0, 0xfffffffc}, {0x10, 0x20}}), kAck))
                .tcp.sack_right,
            0x20u);
  EXPECT_EQ(parse(tcp_v4_with_options(tcpopt::sack({{0x10, 0x20}, {0xfffffff0, 0xfffffffc}}), kAck))
                .tcp.sack_right,
            0x20u);
}

TEST(ParserTcp, SackAndTimestampTogether) {
  const ParsedPacket p = parse(tcp_v4_with_options(
      concat({tcpopt::nop(), tcpopt::nop(), tcpopt::timestamp(9, 8), tcpopt::nop(), tcpopt::nop(),
              tcpopt::sack({{1000, 2000}, {3000, 4000}, {5000, 6000}})}),
      kAck));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.tcp.sack_blocks, 3);
  EXPECT_EQ(p.tcp.sack_right, 6000u);
  EXPECT_EQ(p.tcp.ts_val, 9u);
  EXPECT_EQ(p.tcp.ts_ecr, 8u);
}

TEST(ParserTcp, UnknownOptionIsSkippedByItsLength) {
  const ParsedPacket p = parse(tcp_v4_with_options({30, 4, 0xff, 0xff, 2, 4, 0x05, 0xb4}));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.tcp.mss, 1460);
}

TEST(ParserTcp, BytesAfterEndOfOptionListAreIgnored) {
  const ParsedPacket p = parse(tcp_v4_with_options({0, 2, 1, 0}));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.tcp.mss, 0);
}

TEST(ParserTcp, BadOptionLengths) {
  const std::vector<Bytes> bad = {
      {2, 3, 5, 0},                           // MSS of length 3
      {3, 4, 7, 0},                           // window scale of length 4
      {4, 3, 0, 0},                           // SACK permitted of length 3
      {5, 2, 0, 0},                           // SACK with no block
      {5, 11, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0},  // SACK not a whole number of blocks
      {8, 8, 0, 0, 0, 1, 0, 0},               // timestamps of length 8
      {30, 1, 0, 0},                          // length below 2
      {30, 0, 0, 0},                          // length 0 would loop forever
      {30, 9, 0, 0},                          // runs past the header
      {1, 1, 1, 30},                          // kind without a length byte
  };
  for (const Bytes& options : bad) {
    TcpSpec t;
    t.flags = kAck;
    t.options = options;
    EXPECT_EQ(reason_of(eth_v4({}, tcp(t))), Reason::tcp_bad_options)
        << "options starting " << int(options[0]) << "," << int(options[1]);
  }
}

TEST(ParserTcp, ValidFlagCombinations) {
  for (uint8_t flags :
       {kSyn, uint8_t(kSyn | kAck), kAck, uint8_t(kAck | kPsh), uint8_t(kFin | kAck),
        uint8_t(kFin | kAck | kPsh), kRst, uint8_t(kRst | kAck), uint8_t(kSyn | kEce | kCwr),
        uint8_t(kSyn | kAck | kEce), uint8_t(kAck | kUrg), uint8_t(kFin | kAck | kUrg),
        uint8_t(kAck | kCwr), uint8_t(kSyn | kUrg)}) {
    TcpSpec t;
    t.flags = flags;
    EXPECT_EQ(reason_of(eth_v4({}, tcp(t))), std::nullopt) << "flags " << int(flags);
  }
}

TEST(ParserTcp, InvalidFlagCombinations) {
  for (uint8_t flags : {uint8_t(0), kFin, kPsh, kUrg, uint8_t(kSyn | kFin), uint8_t(kSyn | kRst),
                        uint8_t(kSyn | kFin | kAck), uint8_t(kRst | kFin),
                        uint8_t(kRst | kFin | kAck), uint8_t(kFin | kPsh | kUrg),
                        uint8_t(kSyn | kFin | kRst | kPsh | kAck | kUrg), uint8_t(kFin | kUrg)}) {
    TcpSpec t;
    t.flags = flags;
    EXPECT_EQ(reason_of(eth_v4({}, tcp(t))), Reason::tcp_bad_flags) << "flags " << int(flags);
  }
}

// ---------------------------------------------------------------------------
// UDP (RFC 768)

TEST(ParserUdp, ShorterThanHeaderIsTruncated) {
  Bytes d = finish_v4(udp({}), "10.0.0.1", "192.0.2.10");
  d.resize(7);
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw({}, kProtoUdp, d))), Reason::udp_truncated);
}

TEST(ParserUdp, LengthBelowHeaderIsBad) {
  UdpSpec u;
  u.length = 7;
  EXPECT_EQ(reason_of(eth_v4({}, udp(u))), Reason::udp_bad_length);
}

TEST(ParserUdp, LengthBeyondDatagramIsBad) {
  UdpSpec u;
  u.payload = {1, 2, 3};
  u.length = 12;
  EXPECT_EQ(reason_of(eth_v4({}, udp(u))), Reason::udp_bad_length);
}

TEST(ParserUdp, BytesAfterUdpLengthAreTolerated) {
  // The IP payload is longer than the UDP length: the checksum covers the
  // UDP length only (RFC 768; RFC 8200 8.1 for the pseudo-header length).
  UdpSpec u;
  u.payload = {1, 2, 3, 4};
  const Bytes datagram = finish_v4(udp(u), "10.0.0.1", "192.0.2.10");
  const Bytes ip_payload = concat({datagram, Bytes{9, 9, 9, 9}});
  const ParsedPacket p = parse(ether(kEtherIpv4, ipv4_raw({}, kProtoUdp, ip_payload)));
  EXPECT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.dport, 53);
}

TEST(ParserUdp, TrailingBytesDoNotHideABadChecksum) {
  UdpSpec u;
  u.payload = {1, 2, 3, 4};
  u.bad_checksum = true;
  const Bytes datagram = finish_v4(udp(u), "10.0.0.1", "192.0.2.10");
  const Bytes ip_payload = concat({datagram, Bytes{9, 9, 9, 9}});
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw({}, kProtoUdp, ip_payload))),
            Reason::bad_l4_checksum);
}

TEST(ParserUdp, ZeroChecksumIsAllowedOverIpv4) {
  UdpSpec u;
  u.zero_checksum = true;
  EXPECT_EQ(reason_of(eth_v4({}, udp(u))), std::nullopt);
}

TEST(ParserUdp, ZeroChecksumIsRejectedOverIpv6) {
  UdpSpec u;
  u.zero_checksum = true;
  EXPECT_EQ(reason_of(eth_v6({}, udp(u))), Reason::bad_l4_checksum);
}

TEST(ParserUdp, BadChecksumBothFamilies) {
  UdpSpec u;
  u.payload = {0xde, 0xad};
  EXPECT_EQ(reason_of(eth_v4({}, udp(u))), std::nullopt);
  EXPECT_EQ(reason_of(eth_v6({}, udp(u))), std::nullopt);
  u.bad_checksum = true;
  EXPECT_EQ(reason_of(eth_v4({}, udp(u))), Reason::bad_l4_checksum);
  EXPECT_EQ(reason_of(eth_v6({}, udp(u))), Reason::bad_l4_checksum);
}

TEST(ParserUdp, OddLengthPayloadChecksum) {
  UdpSpec u;
  u.payload = {1, 2, 3, 4, 5};
  EXPECT_EQ(reason_of(eth_v4({}, udp(u))), std::nullopt);
  EXPECT_EQ(reason_of(eth_v6({}, udp(u))), std::nullopt);
}

// ---------------------------------------------------------------------------
// Checksums and offload hints

TEST(ParserChecksum, TcpChecksumIncludesPseudoHeader) {
  TcpSpec t;
  t.payload = {1, 2, 3};
  // Checksummed for another destination: the segment bytes alone are fine.
  const Bytes seg = finish_v4(tcp(t), "10.0.0.1", "192.0.2.11");
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw({}, kProtoTcp, seg))), Reason::bad_l4_checksum);
  EXPECT_EQ(reason_of(eth_v4({}, tcp(t))), std::nullopt);
}

TEST(ParserChecksum, BadTcpChecksumBothFamilies) {
  TcpSpec t;
  t.bad_checksum = true;
  EXPECT_EQ(reason_of(eth_v4({}, tcp(t))), Reason::bad_l4_checksum);
  EXPECT_EQ(reason_of(eth_v6({}, tcp(t))), Reason::bad_l4_checksum);
}

TEST(ParserChecksum, IcmpChecksum) {
  IcmpSpec e;
  e.rest = echo_rest(7, 1);
  e.payload = {1, 2, 3};
  EXPECT_EQ(reason_of(eth_v4({}, icmp4(e))), std::nullopt);
  e.bad_checksum = true;
  EXPECT_EQ(reason_of(eth_v4({}, icmp4(e))), Reason::bad_l4_checksum);
}

TEST(ParserChecksum, Icmpv6ChecksumIncludesPseudoHeader) {
  IcmpSpec e;
  e.type = 128;
  e.rest = echo_rest(7, 1);
  EXPECT_EQ(reason_of(eth_v6({}, icmp6(e))), std::nullopt);
  // Summed like ICMPv4, without the pseudo-header (RFC 4443 2.3 forbids).
  Upper no_pseudo = icmp6(e);
  no_pseudo.pseudo_header = false;
  EXPECT_EQ(reason_of(eth_v6({}, no_pseudo)), Reason::bad_l4_checksum);
  e.bad_checksum = true;
  EXPECT_EQ(reason_of(eth_v6({}, icmp6(e))), Reason::bad_l4_checksum);
}

TEST(ParserChecksum, VerificationOffSkipsEveryChecksum) {
  Ipv4Spec ip;
  ip.bad_checksum = true;
  TcpSpec t;
  t.bad_checksum = true;
  ParseOptions off;
  off.verify_checksums = false;
  EXPECT_EQ(reason_of(eth_v4(ip, tcp(t)), off), std::nullopt);
  UdpSpec u;
  u.bad_checksum = true;
  EXPECT_EQ(reason_of(eth_v6({}, udp(u)), off), std::nullopt);
  // Still parsed, not just waved through.
  TcpSpec flags;
  flags.flags = kSyn | kFin;
  EXPECT_EQ(reason_of(eth_v4({}, tcp(flags)), off), Reason::tcp_bad_flags);
}

TEST(ParserChecksum, NicSaysGoodSkipsSoftwareCheck) {
  Ipv4Spec ip;
  ip.bad_checksum = true;
  TcpSpec t;
  t.bad_checksum = true;
  OffloadHints good{ChecksumHint::good, ChecksumHint::good};
  EXPECT_EQ(reason_of(eth_v4(ip, tcp(t)), {}, good), std::nullopt);
}

TEST(ParserChecksum, NicSaysBadDropsEvenIfCorrect) {
  EXPECT_EQ(reason_of(syn_v4(), {}, {ChecksumHint::bad, ChecksumHint::unknown}),
            Reason::ipv4_bad_checksum);
  EXPECT_EQ(reason_of(syn_v4(), {}, {ChecksumHint::unknown, ChecksumHint::bad}),
            Reason::bad_l4_checksum);
}

// ---------------------------------------------------------------------------
// ICMP and ICMPv6 (RFC 792, RFC 4443, RFC 4861)

TEST(ParserIcmp, ShorterThanHeaderIsTruncated) {
  Bytes m = finish_v4(icmp4({}), "10.0.0.1", "192.0.2.10");
  m.resize(7);
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw({}, kProtoIcmp, m))), Reason::icmp_truncated);
}

TEST(ParserIcmp, EchoRequestKeysOnIdentifierAsSourcePort) {
  IcmpSpec e;
  e.type = 8;
  e.rest = echo_rest(0x1234, 9);
  const ParsedPacket p = parse(eth_v4({}, icmp4(e)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.kind, IcmpHeaderInfo::Kind::echo_request);
  EXPECT_EQ(p.icmp.id, 0x1234);
  EXPECT_EQ(p.sport, 0x1234);
  EXPECT_EQ(p.dport, 0xedcb);  // the complement keys the responder's side
}

TEST(ParserIcmp, EchoReplyKeysOnIdentifierAsDestinationPort) {
  IcmpSpec e;
  e.type = 0;
  e.rest = echo_rest(0x1234, 9);
  const ParsedPacket p = parse(eth_v4({}, icmp4(e)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.kind, IcmpHeaderInfo::Kind::echo_reply);
  EXPECT_EQ(p.sport, 0xedcb);
  EXPECT_EQ(p.dport, 0x1234);
}

TEST(ParserIcmp, Icmpv6EchoKeys) {
  IcmpSpec e;
  e.type = 128;
  e.rest = echo_rest(0x4321, 1);
  ParsedPacket p = parse(eth_v6({}, icmp6(e)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.kind, IcmpHeaderInfo::Kind::echo_request);
  EXPECT_EQ(p.sport, 0x4321);
  EXPECT_EQ(p.dport, 0xbcde);
  e.type = 129;
  p = parse(eth_v6({}, icmp6(e)));
  EXPECT_EQ(p.icmp.kind, IcmpHeaderInfo::Kind::echo_reply);
  EXPECT_EQ(p.sport, 0xbcde);
  EXPECT_EQ(p.dport, 0x4321);
}

TEST(ParserIcmp, IcmpOverIpv6AndIcmpv6OverIpv4AreUnsupported) {
  IcmpSpec e;
  EXPECT_EQ(reason_of(eth_v6({}, icmp4(e))), Reason::unsupported_protocol);
  e.type = 128;
  EXPECT_EQ(reason_of(eth_v4({}, icmp6(e))), Reason::unsupported_protocol);
}

TEST(ParserIcmp, InformationalTypesAreOther) {
  IcmpSpec timestamp;
  timestamp.type = 13;
  timestamp.payload = Bytes(12, 0);
  EXPECT_EQ(parse(eth_v4({}, icmp4(timestamp))).icmp.kind, IcmpHeaderInfo::Kind::other);
  IcmpSpec redirect;
  redirect.type = 5;  // carries an inner header, but is not an error to relate
  redirect.payload = Bytes(28, 0);
  EXPECT_EQ(parse(eth_v4({}, icmp4(redirect))).icmp.kind, IcmpHeaderInfo::Kind::other);
}

TEST(ParserIcmp, NeighbourDiscoveryTypes) {
  for (uint8_t type : {133, 134, 135, 136, 137}) {
    IcmpSpec nd;
    nd.type = type;
    nd.payload = Bytes(16, 0);
    Ipv6Spec ip;
    ip.hop_limit = 255;
    const ParsedPacket p = parse(eth_v6(ip, icmp6(nd)));
    ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
    EXPECT_EQ(p.icmp.kind, IcmpHeaderInfo::Kind::neighbor_discovery) << int(type);
    EXPECT_EQ(p.hop_limit, 255);
  }
}

// An IPv4 packet from 10.0.0.1 to 192.0.2.10, quoted as an ICMP error does:
// its header and the first `l4_bytes` of its payload.
Bytes quoted_v4(const Upper& upper, size_t l4_bytes, Ipv4Spec ip = {}) {
  Bytes q = ipv4(ip, upper);
  q.resize(20 + ip.options.size() + l4_bytes);
  return q;
}

Bytes icmp4_error(uint8_t type, uint8_t code, const Bytes& quoted) {
  IcmpSpec e;
  e.type = type;
  e.code = code;
  e.payload = quoted;
  Ipv4Spec outer;
  outer.src = "198.51.100.1";  // a router on the path
  outer.dst = "10.0.0.1";      // back to the sender of the quoted packet
  return eth_v4(outer, icmp4(e));
}

TEST(ParserIcmpErrors, DestinationUnreachableQuotingTcp) {
  TcpSpec t;
  t.sport = 40001;
  t.dport = 443;
  t.seq = 0x11223344;
  const ParsedPacket p = parse(icmp4_error(3, 4, quoted_v4(tcp(t), 8)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.kind, IcmpHeaderInfo::Kind::error);
  EXPECT_EQ(p.icmp.type, 3);
  EXPECT_EQ(p.icmp.code, 4);
  EXPECT_EQ(p.icmp.inner.src.to_string(), "10.0.0.1");
  EXPECT_EQ(p.icmp.inner.dst.to_string(), "192.0.2.10");
  EXPECT_EQ(p.icmp.inner.proto, kProtoTcp);
  EXPECT_EQ(p.icmp.inner.sport, 40001);
  EXPECT_EQ(p.icmp.inner.dport, 443);
  EXPECT_EQ(p.icmp.inner.tcp_seq, 0x11223344u);
  EXPECT_EQ(p.src.to_string(), "198.51.100.1");
}

TEST(ParserIcmpErrors, TimeExceededQuotingUdpWithOptions) {
  UdpSpec u;
  u.sport = 33434;
  u.dport = 33435;
  Ipv4Spec inner;
  inner.options = concat({ipv4opt::record_route(1), ipv4opt::nop()});
  const ParsedPacket p = parse(icmp4_error(11, 0, quoted_v4(udp(u), 8, inner)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.inner.proto, kProtoUdp);
  EXPECT_EQ(p.icmp.inner.sport, 33434);
  EXPECT_EQ(p.icmp.inner.dport, 33435);
}

TEST(ParserIcmpErrors, QuotingEchoRequestKeysLikeTheRequest) {
  IcmpSpec e;
  e.type = 8;
  e.rest = echo_rest(0x0bad, 3);
  const ParsedPacket p = parse(icmp4_error(3, 1, quoted_v4(icmp4(e), 8)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.inner.proto, kProtoIcmp);
  EXPECT_EQ(p.icmp.inner.icmp_type, 8);
  EXPECT_EQ(p.icmp.inner.sport, 0x0bad);
  EXPECT_EQ(p.icmp.inner.dport, 0xf452);
}

TEST(ParserIcmpErrors, QuotingMoreThanEightBytesIsFine) {
  TcpSpec t;
  t.payload = Bytes(30, 0);
  const ParsedPacket p = parse(icmp4_error(3, 3, quoted_v4(tcp(t), 50)));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.inner.dport, 80);
}

TEST(ParserIcmpErrors, InnerTransportCutShortIsBadInner) {
  EXPECT_EQ(reason_of(icmp4_error(3, 3, quoted_v4(tcp({}), 7))), Reason::icmp_bad_inner);
  EXPECT_EQ(reason_of(icmp4_error(3, 3, quoted_v4(udp({}), 4))), Reason::icmp_bad_inner);
}

TEST(ParserIcmpErrors, InnerIpHeaderCutShortIsBadInner) {
  Bytes q = ipv4({}, tcp({}));
  q.resize(19);
  EXPECT_EQ(reason_of(icmp4_error(3, 3, q)), Reason::icmp_bad_inner);
  EXPECT_EQ(reason_of(icmp4_error(11, 0, {})), Reason::icmp_bad_inner);
}

TEST(ParserIcmpErrors, InnerHeaderLengthPastQuoteIsBadInner) {
  Ipv4Spec inner;
  inner.ihl_words = 15;
  Bytes q = ipv4(inner, tcp({}));
  q.resize(28);
  EXPECT_EQ(reason_of(icmp4_error(3, 3, q)), Reason::icmp_bad_inner);
}

TEST(ParserIcmpErrors, ErrorAboutAnErrorIsBadInner) {
  // RFC 1122 3.2.2: no ICMP error is sent about an ICMP error.
  IcmpSpec inner_error;
  inner_error.type = 3;
  inner_error.payload = quoted_v4(tcp({}), 8);
  EXPECT_EQ(reason_of(icmp4_error(3, 3, quoted_v4(icmp4(inner_error), 8))), Reason::icmp_bad_inner);
}

TEST(ParserIcmpErrors, ErrorAboutAnEchoReplyIsBadInner) {
  // Only echo requests open flows, so only they can be related.
  IcmpSpec reply;
  reply.type = 0;
  reply.rest = echo_rest(1, 1);
  EXPECT_EQ(reason_of(icmp4_error(3, 3, quoted_v4(icmp4(reply), 8))), Reason::icmp_bad_inner);
}

TEST(ParserIcmpErrors, QuotingALaterFragmentIsBadInner) {
  Ipv4Spec inner;
  inner.frag_offset = 64;
  Bytes q = ipv4_raw(inner, kProtoTcp, Bytes(8, 0));
  EXPECT_EQ(reason_of(icmp4_error(3, 3, q)), Reason::icmp_bad_inner);
}

// No conforming router fragments an error (RFC 1812 4.3.2.3, RFC 4443
// 2.4(c)), whether or not the first fragment would hold the quote.
TEST(ParserIcmpErrors, FragmentedErrorIsRefused) {
  IcmpSpec e;
  e.type = 3;
  e.payload = quoted_v4(tcp({}), 8);
  Ipv4Spec outer;
  outer.src = "198.51.100.1";
  outer.dst = "10.0.0.1";
  outer.more_fragments = true;
  const Bytes whole = finish_v4(icmp4(e), outer.src, outer.dst);
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(outer, kProtoIcmp, slice(whole, 0, 24)))),
            Reason::icmp_error_fragmented);
  EXPECT_EQ(reason_of(ether(kEtherIpv4, ipv4_raw(outer, kProtoIcmp, slice(whole, 0, 32)))),
            Reason::icmp_error_fragmented);
}

Bytes icmp6_error(uint8_t type, const Bytes& quoted, uint32_t rest = 0) {
  IcmpSpec e;
  e.type = type;
  e.rest = rest;
  e.payload = quoted;
  Ipv6Spec outer;
  outer.src = "2001:db8:ffff::1";
  outer.dst = "2001:db8::1";
  return eth_v6(outer, icmp6(e));
}

TEST(ParserIcmpErrors, PacketTooBigQuotingTcpOverIpv6) {
  TcpSpec t;
  t.sport = 50000;
  t.dport = 22;
  t.seq = 0xfeedface;
  t.payload = Bytes(1400, 0);
  Bytes q = ipv6({}, tcp(t));
  q.resize(1232);  // RFC 4443 2.4(c): as much as fits in the minimum MTU
  const ParsedPacket p = parse(icmp6_error(2, q, 1280));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.kind, IcmpHeaderInfo::Kind::error);
  EXPECT_EQ(p.icmp.inner.src.to_string(), "2001:db8::1");
  EXPECT_EQ(p.icmp.inner.dst.to_string(), "2001:db8:1::2");
  EXPECT_EQ(p.icmp.inner.proto, kProtoTcp);
  EXPECT_EQ(p.icmp.inner.sport, 50000);
  EXPECT_EQ(p.icmp.inner.dport, 22);
  EXPECT_EQ(p.icmp.inner.tcp_seq, 0xfeedfaceu);
}

TEST(ParserIcmpErrors, Icmpv6ErrorQuotingExtensionChain) {
  Ipv6Spec inner;
  inner.extensions = {ext::hop_by_hop(0), ext::fragment(0, true, 5)};
  UdpSpec u;
  u.sport = 1000;
  u.dport = 2000;
  const ParsedPacket p = parse(icmp6_error(1, ipv6(inner, udp(u))));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.inner.proto, kProtoUdp);
  EXPECT_EQ(p.icmp.inner.sport, 1000);
  EXPECT_EQ(p.icmp.inner.dport, 2000);
}

TEST(ParserIcmpErrors, Icmpv6ErrorQuotingEchoRequest) {
  IcmpSpec e;
  e.type = 128;
  e.rest = echo_rest(0x7777, 1);
  const ParsedPacket p = parse(icmp6_error(3, ipv6({}, icmp6(e))));
  ASSERT_EQ(p.kind, FrameKind::ip) << reason_name(p.error);
  EXPECT_EQ(p.icmp.inner.proto, kProtoIcmpV6);
  EXPECT_EQ(p.icmp.inner.sport, 0x7777);
  EXPECT_EQ(p.icmp.inner.dport, 0x8888);
}

TEST(ParserIcmpErrors, Icmpv6ErrorAboutAnErrorIsBadInner) {
  const Bytes inner_error = ipv6({}, icmp6({1, 0, 0, Bytes(48, 0), false}));
  EXPECT_EQ(reason_of(icmp6_error(1, inner_error)), Reason::icmp_bad_inner);
}

TEST(ParserIcmpErrors, Icmpv6ErrorQuotingMappedAddressIsBadInner) {
  Ipv6Spec inner;
  inner.src = "::ffff:10.0.0.1";
  EXPECT_EQ(reason_of(icmp6_error(1, ipv6(inner, udp({})))), Reason::icmp_bad_inner);
}

TEST(ParserIcmpErrors, Icmpv6ErrorWithTruncatedInnerIsBadInner) {
  Bytes q = ipv6({}, tcp({}));
  q.resize(40 + 7);
  EXPECT_EQ(reason_of(icmp6_error(1, q)), Reason::icmp_bad_inner);
  q.resize(39);
  EXPECT_EQ(reason_of(icmp6_error(1, q)), Reason::icmp_bad_inner);
}

// ---------------------------------------------------------------------------
// Robustness: every prefix of a valid frame parses without reading past it.

TEST(ParserRobustness, EveryTruncationOfAnIcmpErrorIsMalformed) {
  Ipv6Spec inner;
  inner.extensions = {ext::hop_by_hop(0), ext::dest_opts(0)};
  const Bytes full = ether(kEtherIpv6, Bytes{}, {{kTpid8021Q, 9}});
  const Bytes frame = concat({full, ipv6({}, icmp6({1, 0, 0, ipv6(inner, tcp({})), false}))});
  ASSERT_EQ(reason_of(frame), std::nullopt);
  for (size_t len = 0; len < frame.size(); ++len) {
    const Bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(len));
    const ParsedPacket p = parse(cut);
    EXPECT_EQ(p.kind, FrameKind::malformed) << "length " << len;
  }
}

TEST(ParserRobustness, EveryTruncationOfATcpSynWithOptionsIsMalformed) {
  Ipv4Spec ip;
  ip.options = ipv4opt::record_route(1);
  TcpSpec t;
  t.options = concat({tcpopt::mss(1460), tcpopt::sack_permitted(), tcpopt::timestamp(1, 0),
                      tcpopt::nop(), tcpopt::wscale(7)});
  const Bytes frame = eth_v4(ip, tcp(t));
  ASSERT_EQ(reason_of(frame), std::nullopt);
  for (size_t len = 0; len < frame.size(); ++len) {
    const Bytes cut(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(len));
    EXPECT_EQ(parse(cut).kind, FrameKind::malformed) << "length " << len;
  }
}

// ---------------------------------------------------------------------------
// Fast path: parse_frame must leave exactly what parse_frame_general leaves,
// for the frames the fast path takes and for every frame it gives up on.

// The fields that differ between two parses, by name ("" when none do).
std::string field_diff(const ParsedPacket& a, const ParsedPacket& b) {
  std::ostringstream os;
  auto field = [&](const char* name, auto x, auto y) {
    if (x != y) os << " " << name << ": " << +x << " vs " << +y << ";";
  };
  auto addr = [&](const char* name, const IpAddr& x, const IpAddr& y) {
    if (x != y) os << " " << name << ": " << x.to_string() << " vs " << y.to_string() << ";";
  };
  field("frame", reinterpret_cast<uintptr_t>(a.frame), reinterpret_cast<uintptr_t>(b.frame));
  field("frame_len", a.frame_len, b.frame_len);
  field("side", static_cast<int>(a.side), static_cast<int>(b.side));
  field("zone", a.zone, b.zone);
  field("kind", static_cast<int>(a.kind), static_cast<int>(b.kind));
  if (a.error != b.error) {
    os << " error: " << reason_name(a.error) << " vs " << reason_name(b.error) << ";";
  }
  field("vlan_count", a.vlan_count, b.vlan_count);
  field("vlan[0]", a.vlan[0], b.vlan[0]);
  field("vlan[1]", a.vlan[1], b.vlan[1]);
  field("ether_type", a.ether_type, b.ether_type);
  field("ip_version", a.ip_version, b.ip_version);
  field("proto", a.proto, b.proto);
  field("hop_limit", a.hop_limit, b.hop_limit);
  field("l3_offset", a.l3_offset, b.l3_offset);
  field("l4_offset", a.l4_offset, b.l4_offset);
  field("l4_len", a.l4_len, b.l4_len);
  addr("src", a.src, b.src);
  addr("dst", a.dst, b.dst);
  field("sport", a.sport, b.sport);
  field("dport", a.dport, b.dport);
  field("fragment", a.fragment, b.fragment);
  field("first_fragment", a.first_fragment, b.first_fragment);
  field("frag_offset", a.frag_offset, b.frag_offset);
  field("frag_id", a.frag_id, b.frag_id);
  field("tcp.seq", a.tcp.seq, b.tcp.seq);
  field("tcp.ack", a.tcp.ack, b.tcp.ack);
  field("tcp.window", a.tcp.window, b.tcp.window);
  field("tcp.flags", a.tcp.flags, b.tcp.flags);
  field("tcp.header_len", a.tcp.header_len, b.tcp.header_len);
  field("tcp.payload_len", a.tcp.payload_len, b.tcp.payload_len);
  field("tcp.mss", a.tcp.mss, b.tcp.mss);
  field("tcp.wscale", a.tcp.wscale, b.tcp.wscale);
  field("tcp.sack_permitted", a.tcp.sack_permitted, b.tcp.sack_permitted);
  field("tcp.sack_blocks", a.tcp.sack_blocks, b.tcp.sack_blocks);
  field("tcp.sack_right", a.tcp.sack_right, b.tcp.sack_right);
  field("tcp.has_timestamp", a.tcp.has_timestamp, b.tcp.has_timestamp);
  field("tcp.ts_val", a.tcp.ts_val, b.tcp.ts_val);
  field("tcp.ts_ecr", a.tcp.ts_ecr, b.tcp.ts_ecr);
  field("icmp.type", a.icmp.type, b.icmp.type);
  field("icmp.code", a.icmp.code, b.icmp.code);
  field("icmp.id", a.icmp.id, b.icmp.id);
  field("icmp.kind", static_cast<int>(a.icmp.kind), static_cast<int>(b.icmp.kind));
  addr("icmp.inner.src", a.icmp.inner.src, b.icmp.inner.src);
  addr("icmp.inner.dst", a.icmp.inner.dst, b.icmp.inner.dst);
  field("icmp.inner.proto", a.icmp.inner.proto, b.icmp.inner.proto);
  field("icmp.inner.sport", a.icmp.inner.sport, b.icmp.inner.sport);
  field("icmp.inner.dport", a.icmp.inner.dport, b.icmp.inner.dport);
  field("icmp.inner.tcp_seq", a.icmp.inner.tcp_seq, b.icmp.inner.tcp_seq);
  field("icmp.inner.icmp_type", a.icmp.inner.icmp_type, b.icmp.inner.icmp_type);
  return os.str();
}

// What the fast path is meant to take, restated from its contract: untagged
// IPv4, IHL 5, not a fragment, TCP with a 20-byte header or a 32-byte one
// opening NOP, NOP, timestamps. (It also needs the rest to parse.)
bool fast_path_shape(const Bytes& f) {
  if (f.size() < 54 || f[12] != 0x08 || f[13] != 0x00 || f[14] != 0x45 || f[23] != kProtoTcp) {
    return false;
  }
  if ((((f[20] << 8) | f[21]) & 0x3fff) != 0) return false;  // MF, offset
  const unsigned words = f[46] >> 4;
  if (words == 5) return true;
  return words == 8 && f.size() >= 58 && f[54] == 1 && f[55] == 1 && f[56] == 8 && f[57] == 10;
}

struct RandomFrame {
  Bytes bytes;
  bool mutated = false;
};

// Mostly the common frame, with every way out of the fast path mixed in,
// then one mutation in three.
RandomFrame random_tcp_frame(std::mt19937& rng) {
  auto below = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  auto chance = [&](uint32_t percent) { return below(100) < percent; };
  auto address = [&] {
    return std::to_string(below(256)) + "." + std::to_string(below(256)) + "." +
           std::to_string(below(256)) + "." + std::to_string(below(256));
  };

  Ipv4Spec ip;
  ip.src = address();
  ip.dst = address();
  ip.ttl = static_cast<uint8_t>(below(256));
  ip.tos = static_cast<uint8_t>(below(256));
  ip.id = static_cast<uint16_t>(below(65536));
  ip.dont_fragment = chance(50);
  if (chance(5)) {
    ip.more_fragments = chance(50);
    ip.frag_offset = static_cast<uint16_t>(8 * below(chance(50) ? 4 : 8192));
  }
  if (chance(5)) {
    ip.options =
        chance(50)
            ? ipv4opt::router_alert()
            : concat({ipv4opt::nop(), ipv4opt::record_route(static_cast<uint8_t>(1 + below(8)))});
  }

  TcpSpec t;
  t.sport = static_cast<uint16_t>(below(65536));
  t.dport = static_cast<uint16_t>(below(65536));
  t.seq = static_cast<uint32_t>(rng());
  t.ack = static_cast<uint32_t>(rng());
  t.window = static_cast<uint16_t>(below(65536));
  static constexpr uint8_t kValid[] = {kSyn,        kSyn | kUrg, kSyn | kAck,        kRst,
                                       kRst | kAck, kFin | kAck, kFin | kAck | kUrg, kAck,
                                       kAck | kUrg};
  if (chance(85)) {
    t.flags = kValid[below(sizeof kValid)];
    for (uint8_t ignored : {kPsh, kEce, kCwr}) {
      if (chance(25)) t.flags |= ignored;
    }
    if (chance(20)) t.flags = kAck;
  } else {
    t.flags = static_cast<uint8_t>(below(256));
  }
  const uint32_t layout = below(100);
  const Bytes timestamp =
      tcpopt::timestamp(static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng()));
  if (layout < 35) {
    t.options = {};
  } else if (layout < 70) {
    t.options = concat({tcpopt::nop(), tcpopt::nop(), timestamp});
  } else if (layout < 75) {
    t.options = concat({timestamp, tcpopt::nop(), tcpopt::nop()});  // same length, other order
  } else if (layout < 80) {
    t.options =
        concat({tcpopt::nop(), tcpopt::nop(), timestamp, tcpopt::nop(), tcpopt::nop(),
                tcpopt::sack({{static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng())}})});
  } else if (layout < 90) {
    t.options = concat({tcpopt::mss(static_cast<uint16_t>(below(65536))), tcpopt::nop(),
                        tcpopt::wscale(static_cast<uint8_t>(below(16))), tcpopt::sack_permitted()});
  } else {
    t.options =
        concat({tcpopt::nop(), tcpopt::nop(),
                tcpopt::sack({{static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng())},
                              {static_cast<uint32_t>(rng()), static_cast<uint32_t>(rng())}})});
  }
  const uint32_t size = chance(40) ? 0 : chance(50) ? 1 + below(64) : 1 + below(1460);
  t.payload.resize(size);
  for (uint8_t& b : t.payload) b = static_cast<uint8_t>(rng());
  if (chance(3)) t.data_offset_words = static_cast<uint8_t>(below(16));

  RandomFrame out;
  const uint32_t mutation = chance(67) ? 0 : 1 + below(6);
  if (mutation == 1) ip.bad_checksum = true;
  if (mutation == 2) t.bad_checksum = true;
  Bytes l3 = ipv4(ip, tcp(t));
  const size_t ihl = (l3[0] & 0x0fu) * 4;
  auto fix_header_checksum = [&] {
    l3[10] = l3[11] = 0;
    const uint16_t c = inet_checksum(l3.data(), ihl);
    l3[10] = static_cast<uint8_t>(c >> 8);
    l3[11] = static_cast<uint8_t>(c);
  };
  if (chance(3) && !ip.bad_checksum) {
    l3[6] |= 0x80;  // the reserved flag (RFC 3514), which no check looks at
    fix_header_checksum();
  }
  if (mutation == 3) {
    // A wrong total length under a correct header checksum, so that the
    // length check is reached with verification on.
    uint16_t total = static_cast<uint16_t>(l3[2] << 8 | l3[3]);
    total = chance(50) ? static_cast<uint16_t>(total + below(9) - 4)
                       : static_cast<uint16_t>(below(65536));
    l3[2] = static_cast<uint8_t>(total >> 8);
    l3[3] = static_cast<uint8_t>(total);
    fix_header_checksum();
  }
  std::vector<VlanTag> tags;
  if (chance(5)) {
    tags.push_back({chance(50) ? kTpid8021Q : kTpid8021ad, static_cast<uint16_t>(below(65536))});
    if (chance(30)) tags.push_back({kTpid8021Q, static_cast<uint16_t>(below(65536))});
  }
  out.bytes = ether(kEtherIpv4, l3, tags);
  if (chance(30)) out.bytes = pad(std::move(out.bytes), 60);  // the Ethernet minimum
  if (chance(5)) out.bytes.resize(out.bytes.size() + 1 + below(16), static_cast<uint8_t>(rng()));
  if (mutation == 4) {  // one byte of the headers changed
    const size_t at = below(static_cast<uint32_t>(std::min<size_t>(60, out.bytes.size())));
    out.bytes[at] ^= static_cast<uint8_t>(1 + below(255));
  }
  if (mutation == 5) out.bytes.resize(below(static_cast<uint32_t>(out.bytes.size())));
  if (mutation == 6) {  // a wrong TCP data offset, the rest intact
    const size_t at = 14 + ihl + 12;
    if (at < out.bytes.size()) out.bytes[at] = static_cast<uint8_t>(below(16) << 4);
  }
  out.mutated = mutation != 0;
  return out;
}

TEST(ParserFastPath, SameResultAsTheGeneralParser) {
  std::mt19937 rng(20240611);
  constexpr ChecksumHint kHints[] = {ChecksumHint::unknown, ChecksumHint::good, ChecksumHint::bad};
  int fast = 0;               // parses the fast path should have taken
  int fast_verified = 0;      // ... with both checksums verified in software
  int fast_timestamps = 0;    // ... with the NOP, NOP, timestamps header
  int fast_payload = 0;       // ... carrying data
  int mutated_malformed = 0;  // mutated frames the general parser drops
  int failures = 0;
  std::map<Reason, int> reasons;
  for (int n = 0; n < 20000 && failures < 10; ++n) {
    const RandomFrame f = random_tcp_frame(rng);
    // An exact-size heap copy, so a read past the end is a heap overflow
    // under AddressSanitizer.
    std::unique_ptr<uint8_t[]> copy(new uint8_t[f.bytes.size() + 1]);
    if (!f.bytes.empty()) std::memcpy(copy.get(), f.bytes.data(), f.bytes.size());
    const auto len = static_cast<uint32_t>(f.bytes.size());
    const bool shape = fast_path_shape(f.bytes);
    for (bool verify : {true, false}) {
      for (ChecksumHint l3 : kHints) {
        for (ChecksumHint l4 : kHints) {
          ParseOptions options;
          options.verify_checksums = verify;
          const OffloadHints hints{l3, l4};
          // Different garbage underneath, so a byte either parse leaves
          // unwritten shows.
          ParsedPacket a, b;
          std::memset(static_cast<void*>(&a), 0xa5, sizeof a);
          std::memset(static_cast<void*>(&b), 0x5a, sizeof b);
          const Side side = n % 2 == 0 ? Side::inside : Side::outside;
          parse_frame(copy.get(), len, side, 3, options, a, hints);
          parse_frame_general(copy.get(), len, side, 3, options, b, hints);
          if (std::memcmp(&a, &b, sizeof a) != 0) {
            const std::string diff = field_diff(a, b);
            ADD_FAILURE() << "frame " << n << " (" << len << " bytes, verify " << verify
                          << ", hints " << static_cast<int>(l3) << "/" << static_cast<int>(l4)
                          << "): fast vs general:" << (diff.empty() ? " padding only" : diff);
            ++failures;
          }
          if (b.kind == FrameKind::malformed) {
            ++reasons[b.error];
            if (f.mutated) ++mutated_malformed;
          }
          if (shape && b.kind == FrameKind::ip && b.proto == kProtoTcp) {
            ++fast;
            if (verify && l3 == ChecksumHint::unknown && l4 == ChecksumHint::unknown) {
              ++fast_verified;
            }
            if (b.tcp.has_timestamp) ++fast_timestamps;
            if (b.tcp.payload_len != 0) ++fast_payload;
          }
        }
      }
    }
  }
  // The sample reached the fast path often, in each of its variants, and
  // gave the general parser plenty to reject.
  EXPECT_GT(fast, 50000);
  EXPECT_GT(fast_verified, 4000);
  EXPECT_GT(fast_timestamps, 20000);
  EXPECT_GT(fast_payload, 20000);
  EXPECT_GT(mutated_malformed, 20000);
  for (Reason r : {Reason::eth_truncated, Reason::vlan_truncated, Reason::ipv4_truncated,
                   Reason::ipv4_bad_header, Reason::ipv4_bad_length, Reason::ipv4_bad_checksum,
                   Reason::ipv4_bad_options, Reason::tcp_truncated, Reason::tcp_bad_header,
                   Reason::tcp_bad_flags, Reason::tcp_bad_options, Reason::bad_l4_checksum}) {
    EXPECT_GT(reasons[r], 0) << reason_name(r);
  }
  std::ostringstream seen;
  for (const auto& [r, count] : reasons) seen << " " << reason_name(r) << "=" << count;
  std::printf(
      "fast-path parses %d (verified %d, timestamps %d, payload %d); malformed after "
      "mutation %d;%s\n",
      fast, fast_verified, fast_timestamps, fast_payload, mutated_malformed, seen.str().c_str());
}

// The shapes the fast path takes, spelled out, so a failure names the case.
TEST(ParserFastPath, CommonFramesParseAsTheGeneralParserSays) {
  TcpSpec ack;
  ack.flags = kAck;
  ack.seq = 0x01020304;
  ack.ack = 0x0a0b0c0d;
  TcpSpec ts = ack;
  ts.options = concat({tcpopt::nop(), tcpopt::nop(), tcpopt::timestamp(0x11223344, 0x55667788)});
  ts.payload = Bytes(100, 0x42);
  Ipv4Spec df;
  df.dont_fragment = true;
  for (const Bytes& f : {pad(eth_v4({}, tcp(ack)), 60), eth_v4(df, tcp(ts))}) {
    ParsedPacket a, b;
    parse_frame(f.data(), static_cast<uint32_t>(f.size()), Side::inside, 1, {}, a);
    parse_frame_general(f.data(), static_cast<uint32_t>(f.size()), Side::inside, 1, {}, b);
    ASSERT_EQ(a.kind, FrameKind::ip) << reason_name(a.error);
    EXPECT_EQ(field_diff(a, b), "");
    EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0);
  }
  const ParsedPacket p = parse(eth_v4(df, tcp(ts)));
  EXPECT_TRUE(p.tcp.has_timestamp);
  EXPECT_EQ(p.tcp.ts_val, 0x11223344u);
  EXPECT_EQ(p.tcp.ts_ecr, 0x55667788u);
  EXPECT_EQ(p.tcp.header_len, 32);
  EXPECT_EQ(p.tcp.payload_len, 100);
  EXPECT_EQ(p.l4_len, 132);
}

}  // namespace
}  // namespace holdfast
