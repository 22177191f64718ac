// The one place that lists the layer-4 modules: which protocol goes to which
// module, and the switch that turns a ModuleId into a static call.
#pragma once

#include <cstdlib>

#include "dataplane/connection.h"
#include "modules/icmp/icmp.h"
#include "modules/module.h"
#include "modules/other/other.h"
#include "modules/tcp/tcp.h"
#include "modules/udp/udp.h"

namespace holdfast {

inline ModuleId l4_module_for(uint8_t proto) {
  switch (proto) {
    case kProtoTcp:
      return ModuleId::tcp;
    case kProtoUdp:
      return ModuleId::udp;
    case kProtoIcmp:
    case kProtoIcmpV6:
      return ModuleId::icmp;
    default:
      return ModuleId::other;
  }
}

// Calls fn(M{}) with the module type for id, which must be a layer-4 module.
template <typename Fn>
decltype(auto) visit_l4(ModuleId id, Fn&& fn) {
  switch (id) {
    case ModuleId::tcp:
      return fn(TcpModule{});
    case ModuleId::udp:
      return fn(UdpModule{});
    case ModuleId::icmp:
      return fn(IcmpModule{});
    case ModuleId::other:
      return fn(OtherModule{});
    case ModuleId::none:
    case ModuleId::ftp:  // layer 7: never a connection's layer-4 module
    case ModuleId::sip:
      break;
  }
  // Only entries in use are dispatched; anything else is a corrupted table.
  std::abort();
}

// The state name of connection c's layer-4 slice (statistics and the CLI).
inline const char* l4_state_name(const Connection& c) {
  return visit_l4(c.l4, [&]<typename M>(M) { return M::state_name(c.slice<typename M::Slice>()); });
}

}  // namespace holdfast
