// UDP (and "other" protocol) tracking: unreplied until the first datagram in
// the reply direction, then assured, each state with its own timeout.
#include "modules/udp/udp.h"

#include <gtest/gtest.h>

#include "modules/other/other.h"
#include "tests/support/packet_builder.h"  // PrintTo(Reason)

namespace holdfast {
namespace {

ParsedPacket datagram() {
  ParsedPacket p;
  p.kind = FrameKind::ip;
  p.ip_version = 4;
  p.proto = kProtoUdp;
  p.sport = 40000;
  p.dport = 53;
  return p;
}

TEST(UdpModule, AnyDatagramMayOpen) {
  EXPECT_EQ(UdpModule::can_open(datagram(), {}), Reason::new_connection);
}

TEST(UdpModule, UnrepliedUntilTheReplyDirectionAnswers) {
  TrackerSettings t;
  DatagramSlice s{};
  UdpModule::open(s, datagram(), t);
  EXPECT_EQ(s.state, DatagramState::unreplied);
  EXPECT_STREQ(UdpModule::state_name(s), "UNREPLIED");

  const Outcome more = UdpModule::track(s, datagram(), Dir::original, t);
  EXPECT_EQ(more.action, Outcome::Action::pass);
  EXPECT_EQ(more.reason, Reason::established);
  EXPECT_FALSE(more.changed);
  EXPECT_EQ(s.state, DatagramState::unreplied);

  const Outcome answer = UdpModule::track(s, datagram(), Dir::reply, t);
  EXPECT_EQ(answer.action, Outcome::Action::pass);
  EXPECT_TRUE(answer.changed);  // the one transition that is checkpointed
  EXPECT_EQ(s.state, DatagramState::assured);
  EXPECT_STREQ(UdpModule::state_name(s), "ASSURED");

  EXPECT_FALSE(UdpModule::track(s, datagram(), Dir::reply, t).changed);
  EXPECT_FALSE(UdpModule::track(s, datagram(), Dir::original, t).changed);
  EXPECT_EQ(s.state, DatagramState::assured);
}

TEST(UdpModule, TimeoutDependsOnState) {
  TrackerSettings t;
  t.udp_unreplied = 1234;
  t.udp_assured = 98765;
  t.other_unreplied = 1;
  t.other_assured = 2;
  DatagramSlice s{};
  UdpModule::open(s, datagram(), t);
  EXPECT_EQ(UdpModule::timeout_ms(s, t), 1234u);
  UdpModule::track(s, datagram(), Dir::reply, t);
  EXPECT_EQ(UdpModule::timeout_ms(s, t), 98765u);
}

TEST(UdpModule, DefaultTimeouts) {
  const TrackerSettings t;
  EXPECT_EQ(t.udp_unreplied, 30'000u);
  EXPECT_EQ(t.udp_assured, 120'000u);
}

TEST(UdpModule, ValidAcceptsOnlyRealStates) {
  DatagramSlice s{};
  EXPECT_FALSE(UdpModule::valid(s));
  s.state = DatagramState::unreplied;
  EXPECT_TRUE(UdpModule::valid(s));
  s.state = DatagramState::assured;
  EXPECT_TRUE(UdpModule::valid(s));
  s.state = static_cast<DatagramState>(3);
  EXPECT_FALSE(UdpModule::valid(s));
  s.state = static_cast<DatagramState>(0xff);
  EXPECT_FALSE(UdpModule::valid(s));
}

TEST(OtherModule, SameStatesWithItsOwnTimeouts) {
  TrackerSettings t;
  t.udp_unreplied = 1;
  t.udp_assured = 2;
  t.other_unreplied = 4444;
  t.other_assured = 55555;
  ParsedPacket gre = datagram();
  gre.proto = 47;
  gre.sport = gre.dport = 0;
  EXPECT_EQ(OtherModule::can_open(gre, t), Reason::new_connection);
  DatagramSlice s{};
  OtherModule::open(s, gre, t);
  EXPECT_EQ(OtherModule::timeout_ms(s, t), 4444u);
  EXPECT_TRUE(OtherModule::valid(s));
  EXPECT_FALSE(OtherModule::track(s, gre, Dir::original, t).changed);
  EXPECT_TRUE(OtherModule::track(s, gre, Dir::reply, t).changed);
  EXPECT_EQ(OtherModule::timeout_ms(s, t), 55555u);
  EXPECT_STREQ(OtherModule::state_name(s), "ASSURED");
}

}  // namespace
}  // namespace holdfast
