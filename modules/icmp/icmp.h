// ICMP and ICMPv6 tracking (RFC 792, RFC 4443).
//
// Theory of operation: an echo request opens a flow keyed by the addresses
// and the identifier on the requester's side (dataplane/parser.cc), so only
// echo replies with that identifier from the pinged host match it, and a
// reply with no request is dropped (icmp_no_request). Errors (destination
// unreachable, packet too big, time exceeded, parameter problem) never open
// flows: the pipeline passes them as "related" only when the packet they
// quote belongs to a tracked connection and was sent by the host the error
// goes back to. Other informational types (redirects, router
// advertisements, timestamps) are not tracked; policy decides each packet.
#pragma once

#include "modules/module.h"

namespace holdfast {

enum class IcmpState : uint8_t { none = 0, requested = 1, replied = 2 };

struct IcmpSlice {
  IcmpState state;
};
static_assert(sizeof(IcmpSlice) == 1);

struct IcmpModule {
  using Slice = IcmpSlice;
  static constexpr ModuleId kId = ModuleId::icmp;
  static constexpr uint16_t kSchemaVersion = 1;

  static Reason can_open(const ParsedPacket& p, const TrackerSettings&) {
    return p.icmp.kind == IcmpHeaderInfo::Kind::echo_request ? Reason::new_connection
                                                             : Reason::icmp_no_request;
  }
  static void open(Slice& s, const ParsedPacket&, const TrackerSettings&) {
    s.state = IcmpState::requested;
  }
  static Outcome track(Slice& s, const ParsedPacket& p, Dir dir, const TrackerSettings&);
  static uint32_t timeout_ms(const Slice&, const TrackerSettings& t) { return t.icmp; }
  static bool valid(const Slice& s) {
    return s.state == IcmpState::requested || s.state == IcmpState::replied;
  }
  static const char* state_name(const Slice& s);
};
static_assert(L4Module<IcmpModule>);

}  // namespace holdfast
