// The module interface. A connection is a base layer (dataplane/connection.h)
// plus one slice per module bound to it; each module owns its slice and
// nothing else. Every layer-4 module is a struct of static functions over
// its slice type, checked by the L4Module concept and dispatched with a
// switch over ModuleId (modules/l4_dispatch.h), so there is no virtual call
// and no registration by static initialiser: the list of modules is the enum
// below and the switch.
//
// Hooks of a layer-4 module M:
//   M::can_open(pkt, settings)       may this packet start a connection?
//   M::open(slice, pkt, settings)    initialise the slice from that packet
//   M::track(slice, pkt, dir, settings) -> Outcome   every later packet
//   M::timeout_ms(slice, settings)   idle time after which it expires
//   M::valid(slice)                  restore hook: is a recovered slice sane?
//   M::state_name(slice)             for statistics and the CLI
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "dataplane/packet.h"
#include "dataplane/verdict.h"

namespace holdfast {

enum class ModuleId : uint8_t {
  none = 0,
  tcp = 1,
  udp = 2,
  icmp = 3,
  other = 4,  // any other IP protocol, tracked by address pair
  ftp = 5,    // layer 7: FTP control connections
  sip = 6,    // layer 7: SIP signalling connections (video conferencing)
};
inline constexpr const char* module_name(ModuleId id) {
  switch (id) {
    case ModuleId::tcp:
      return "tcp";
    case ModuleId::udp:
      return "udp";
    case ModuleId::icmp:
      return "icmp";
    case ModuleId::other:
      return "other";
    case ModuleId::ftp:
      return "ftp";
    case ModuleId::sip:
      return "sip";
    case ModuleId::none:
      break;
  }
  return "none";
}

// The ports a layer-7 module follows (FTP control, SIP signalling): up to
// kMax distinct ports, checked against a connection's first packet.
struct PortSet {
  static constexpr size_t kMax = 16;
  uint16_t ports[kMax] = {};
  uint8_t count = 0;

  bool contains(uint16_t port) const {
    for (uint8_t i = 0; i < count; ++i) {
      if (ports[i] == port) return true;
    }
    return false;
  }
};

// Direction of a packet relative to the connection: original is the
// direction of the packet that opened it.
enum class Dir : uint8_t { original = 0, reply = 1 };

// Every layer-4 slice fits here; the connection holds it inline.
inline constexpr size_t kL4SliceSize = 40;

// What a module decides about one packet of a tracked connection.
struct Outcome {
  enum class Action : uint8_t {
    pass,    // forward
    drop,    // drop with reason
    reopen,  // the packet starts a new connection on this tuple (TCP port reuse)
  };
  Action action = Action::pass;
  Reason reason = Reason::established;
  bool changed = false;  // the slice changed and must be checkpointed before the packet leaves

  static Outcome pass(bool changed) { return {Action::pass, Reason::established, changed}; }
  static Outcome drop(Reason why) { return {Action::drop, why, false}; }
  static Outcome reopen() { return {Action::reopen, Reason::new_connection, false}; }
};

// Idle timeouts per state, in milliseconds, compiled from the configuration.
struct TcpTimeouts {
  uint32_t syn_sent = 120'000;
  uint32_t syn_recv = 60'000;
  uint32_t established = 432'000'000;  // 5 days, as Linux conntrack
  uint32_t fin_wait = 120'000;
  uint32_t close_wait = 60'000;
  uint32_t last_ack = 30'000;
  uint32_t time_wait = 120'000;
  uint32_t close = 10'000;
  uint32_t unacknowledged = 300'000;  // established, but data outstanding
};

struct TrackerSettings {
  TcpTimeouts tcp;
  uint32_t udp_unreplied = 30'000;
  uint32_t udp_assured = 120'000;
  uint32_t icmp = 30'000;
  uint32_t other_unreplied = 30'000;
  uint32_t other_assured = 600'000;
  // Accept a TCP packet without state as the start of a connection
  // (mid-stream pickup). Off: only a SYN opens a TCP connection.
  bool tcp_loose_pickup = false;
};

template <typename M>
concept L4Module = std::is_trivially_copyable_v<typename M::Slice> && sizeof(typename M::Slice) <=
                   kL4SliceSize&& requires(typename M::Slice& s, const typename M::Slice& cs,
                                           const ParsedPacket& p, Dir d, const TrackerSettings& t) {
  { M::kId } -> std::convertible_to<ModuleId>;
  { M::kSchemaVersion } -> std::convertible_to<uint16_t>;
  { M::can_open(p, t) } -> std::same_as<Reason>;
  { M::open(s, p, t) } -> std::same_as<void>;
  { M::track(s, p, d, t) } -> std::same_as<Outcome>;
  { M::timeout_ms(cs, t) } -> std::same_as<uint32_t>;
  { M::valid(cs) } -> std::same_as<bool>;
  { M::state_name(cs) } -> std::same_as<const char*>;
};

}  // namespace holdfast
