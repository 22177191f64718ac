// UDP tracking (RFC 768).
//
// Theory of operation: UDP has no handshake, so a flow is "unreplied" from
// its first datagram until the first datagram in the reply direction, then
// "assured". Unreplied flows expire quickly (modules: timeouts.udp.unreplied)
// so a scan or a one-way spray does not fill the table; assured flows live
// longer (timeouts.udp.assured). The slice changes, and is checkpointed, only
// on that one transition.
#pragma once

#include "modules/module.h"

namespace holdfast {

enum class DatagramState : uint8_t { none = 0, unreplied = 1, assured = 2 };

struct DatagramSlice {
  DatagramState state;
};
static_assert(sizeof(DatagramSlice) == 1);

// Shared by UDP and other IP protocols: both are one-packet-at-a-time flows
// whose only state is whether the other end has answered. Only the module
// ID and the timeouts differ.
const char* datagram_state_name(DatagramState state);
Outcome datagram_track(DatagramSlice& s, Dir dir);

template <ModuleId Id, uint32_t TrackerSettings::*Unreplied, uint32_t TrackerSettings::*Assured>
struct DatagramModule {
  using Slice = DatagramSlice;
  static constexpr ModuleId kId = Id;
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
    return s.state == DatagramState::assured ? t.*Assured : t.*Unreplied;
  }
  static bool valid(const Slice& s) {
    return s.state == DatagramState::unreplied || s.state == DatagramState::assured;
  }
  static const char* state_name(const Slice& s) { return datagram_state_name(s.state); }
};

using UdpModule =
    DatagramModule<ModuleId::udp, &TrackerSettings::udp_unreplied, &TrackerSettings::udp_assured>;
static_assert(L4Module<UdpModule>);

}  // namespace holdfast
