// Tracking for IP protocols without a module of their own (GRE, ESP, SCTP,
// ...): a flow per address pair and protocol, unreplied until the other end
// answers, with its own timeouts (timeouts.other). The same two-state
// machine as UDP; only the timeouts differ.
#pragma once

#include "modules/udp/udp.h"

namespace holdfast {

struct OtherModule {
  using Slice = DatagramSlice;
  static constexpr ModuleId kId = ModuleId::other;
  static constexpr uint16_t kSchemaVersion = 1;

  static Reason can_open(const ParsedPacket&, const TrackerSettings&) {
    return Reason::new_connection;
  }
  static void open(Slice& s, const ParsedPacket&, const TrackerSettings&) {
    s.state = DatagramState::unreplied;
  }
  static Outcome track(Slice& s, const ParsedPacket&, Dir dir, const TrackerSettings&) {
    return datagram_track(s, dir);
  }
  static uint32_t timeout_ms(const Slice& s, const TrackerSettings& t) {
    return s.state == DatagramState::assured ? t.other_assured : t.other_unreplied;
  }
  static bool valid(const Slice& s) { return UdpModule::valid(s); }
  static const char* state_name(const Slice& s) { return datagram_state_name(s.state); }
};
static_assert(L4Module<OtherModule>);

}  // namespace holdfast
