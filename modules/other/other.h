// Tracking for IP protocols without a module of their own (GRE, ESP, SCTP,
// ...): a flow per address pair and protocol, unreplied until the other end
// answers, with its own timeouts (timeouts.other): the same two-state
// machine as UDP (modules/udp/udp.h), with other timeouts.
#pragma once

#include "modules/udp/udp.h"

namespace holdfast {

using OtherModule = DatagramModule<ModuleId::other, &TrackerSettings::other_unreplied,
                                   &TrackerSettings::other_assured>;
static_assert(L4Module<OtherModule>);

}  // namespace holdfast
