#include "modules/udp/udp.h"

namespace holdfast {

const char* datagram_state_name(DatagramState state) {
  switch (state) {
    case DatagramState::unreplied:
      return "UNREPLIED";
    case DatagramState::assured:
      return "ASSURED";
    case DatagramState::none:
      break;
  }
  return "NONE";
}

Outcome datagram_track(DatagramSlice& s, Dir dir) {
  if (dir == Dir::reply && s.state == DatagramState::unreplied) {
    s.state = DatagramState::assured;
    return Outcome::pass(true);
  }
  return Outcome::pass(false);
}

}  // namespace holdfast
