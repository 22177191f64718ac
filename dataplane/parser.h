// Frame parser: Ethernet, 802.1Q / 802.1ad (QinQ), IPv4 with options and
// fragments (RFC 791, RFC 1858, RFC 7126), IPv6 with its extension header
// chain and fragments (RFC 8200, RFC 5095, RFC 6946, RFC 7112), TCP with
// options (RFC 9293, RFC 7323, RFC 2018), UDP (RFC 768) and ICMP / ICMPv6
// (RFC 792, RFC 4443, RFC 4861) including the packet an error quotes.
//
// Theory of operation: one forward pass, every length checked against the
// bytes actually present before it is read. The first problem found ends the
// parse with a named reason (FrameKind::malformed); nothing is read past the
// frame. The parser never writes to the frame and never allocates.
//
// parse_frame first tries a straight-line fast path for the commonest frame
// (untagged IPv4 without options or fragmentation carrying TCP with no
// options or only timestamps; see parser.cc). It gives up on anything else
// and on any failed check, and the general parser then runs from the start,
// so drop reasons come only from the general parser.
#pragma once

#include <cstdint>

#include "dataplane/packet.h"

namespace holdfast {

struct ParseOptions {
  // Verify IPv4 header and TCP/UDP/ICMP checksums in software unless the NIC
  // already did (see ChecksumHint). A tracker that believes a corrupted
  // segment can be driven out of sync with the endpoints, so this is on by
  // default.
  bool verify_checksums = true;
};

// What the NIC's receive offload says about a checksum.
enum class ChecksumHint : uint8_t { unknown, good, bad };

struct OffloadHints {
  ChecksumHint l3 = ChecksumHint::unknown;
  ChecksumHint l4 = ChecksumHint::unknown;
};

// Parses frame[0, len), which arrived on `side` of port pair `zone`. Always
// fills out.kind; on FrameKind::malformed, out.error names the problem.
void parse_frame(const uint8_t* frame, uint32_t len, Side side, uint8_t zone,
                 const ParseOptions& options, ParsedPacket& out, OffloadHints hints = {});

// The general parser without the fast path; tests compare the two.
void parse_frame_general(const uint8_t* frame, uint32_t len, Side side, uint8_t zone,
                         const ParseOptions& options, ParsedPacket& out, OffloadHints hints = {});

}  // namespace holdfast
