#include "modules/icmp/icmp.h"

namespace holdfast {

Outcome IcmpModule::track(Slice& s, const ParsedPacket& p, Dir dir, const TrackerSettings&) {
  using Kind = IcmpHeaderInfo::Kind;
  // The key shape already ties requests to the original direction and
  // replies to the reply direction; anything else on the flow is a forgery.
  const Kind expected = dir == Dir::original ? Kind::echo_request : Kind::echo_reply;
  if (p.icmp.kind != expected) return Outcome::drop(Reason::icmp_no_request);
  if (dir == Dir::reply && s.state == IcmpState::requested) {
    s.state = IcmpState::replied;
    return Outcome::pass(true);
  }
  return Outcome::pass(false);
}

const char* IcmpModule::state_name(const Slice& s) {
  switch (s.state) {
    case IcmpState::requested:
      return "REQUESTED";
    case IcmpState::replied:
      return "REPLIED";
    case IcmpState::none:
      break;
  }
  return "NONE";
}

}  // namespace holdfast
