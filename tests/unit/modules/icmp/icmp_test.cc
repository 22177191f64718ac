// ICMP echo tracking: a request opens, only replies come back, errors and
// other types never open or belong to a flow (modules/icmp/icmp.h).
#include "modules/icmp/icmp.h"

#include <gtest/gtest.h>

#include "tests/support/packet_builder.h"  // PrintTo(Reason)

namespace holdfast {
namespace {

using Kind = IcmpHeaderInfo::Kind;

ParsedPacket icmp(Kind kind, uint8_t proto = kProtoIcmp) {
  ParsedPacket p;
  p.kind = FrameKind::ip;
  p.proto = proto;
  p.ip_version = proto == kProtoIcmp ? 4 : 6;
  p.icmp.kind = kind;
  p.icmp.id = 0x1234;
  if (kind == Kind::echo_request) p.sport = p.icmp.id;
  if (kind == Kind::echo_reply) p.dport = p.icmp.id;
  return p;
}

TEST(IcmpModule, OnlyAnEchoRequestOpens) {
  const TrackerSettings t;
  EXPECT_EQ(IcmpModule::can_open(icmp(Kind::echo_request), t), Reason::new_connection);
  EXPECT_EQ(IcmpModule::can_open(icmp(Kind::echo_request, kProtoIcmpV6), t),
            Reason::new_connection);
  // A reply with no request tracked.
  EXPECT_EQ(IcmpModule::can_open(icmp(Kind::echo_reply), t), Reason::icmp_no_request);
  EXPECT_EQ(IcmpModule::can_open(icmp(Kind::error), t), Reason::icmp_no_request);
  EXPECT_EQ(IcmpModule::can_open(icmp(Kind::other), t), Reason::icmp_no_request);
}

TEST(IcmpModule, RequestedThenReplied) {
  const TrackerSettings t;
  IcmpSlice s{};
  IcmpModule::open(s, icmp(Kind::echo_request), t);
  EXPECT_EQ(s.state, IcmpState::requested);
  EXPECT_STREQ(IcmpModule::state_name(s), "REQUESTED");
  EXPECT_TRUE(IcmpModule::valid(s));

  const Outcome again = IcmpModule::track(s, icmp(Kind::echo_request), Dir::original, t);
  EXPECT_EQ(again.action, Outcome::Action::pass);
  EXPECT_FALSE(again.changed);

  const Outcome reply = IcmpModule::track(s, icmp(Kind::echo_reply), Dir::reply, t);
  EXPECT_EQ(reply.action, Outcome::Action::pass);
  EXPECT_EQ(reply.reason, Reason::established);
  EXPECT_TRUE(reply.changed);
  EXPECT_EQ(s.state, IcmpState::replied);
  EXPECT_STREQ(IcmpModule::state_name(s), "REPLIED");

  const Outcome second_reply = IcmpModule::track(s, icmp(Kind::echo_reply), Dir::reply, t);
  EXPECT_EQ(second_reply.action, Outcome::Action::pass);
  EXPECT_FALSE(second_reply.changed);
}

TEST(IcmpModule, RequestInTheReplyDirectionIsDropped) {
  const TrackerSettings t;
  IcmpSlice s{};
  IcmpModule::open(s, icmp(Kind::echo_request), t);
  const Outcome o = IcmpModule::track(s, icmp(Kind::echo_request), Dir::reply, t);
  EXPECT_EQ(o.action, Outcome::Action::drop);
  EXPECT_EQ(o.reason, Reason::icmp_no_request);
  EXPECT_EQ(s.state, IcmpState::requested);
}

TEST(IcmpModule, ReplyInTheOriginalDirectionIsDropped) {
  const TrackerSettings t;
  IcmpSlice s{};
  IcmpModule::open(s, icmp(Kind::echo_request), t);
  const Outcome o = IcmpModule::track(s, icmp(Kind::echo_reply), Dir::original, t);
  EXPECT_EQ(o.action, Outcome::Action::drop);
  EXPECT_EQ(o.reason, Reason::icmp_no_request);
  EXPECT_EQ(s.state, IcmpState::requested);
}

TEST(IcmpModule, OneTimeoutForEveryState) {
  TrackerSettings t;
  t.icmp = 4321;
  IcmpSlice s{};
  IcmpModule::open(s, icmp(Kind::echo_request), t);
  EXPECT_EQ(IcmpModule::timeout_ms(s, t), 4321u);
  IcmpModule::track(s, icmp(Kind::echo_reply), Dir::reply, t);
  EXPECT_EQ(IcmpModule::timeout_ms(s, t), 4321u);
  EXPECT_EQ(TrackerSettings{}.icmp, 30'000u);
}

TEST(IcmpModule, ValidAcceptsOnlyRealStates) {
  IcmpSlice s{};
  EXPECT_FALSE(IcmpModule::valid(s));
  EXPECT_STREQ(IcmpModule::state_name(s), "NONE");
  s.state = IcmpState::replied;
  EXPECT_TRUE(IcmpModule::valid(s));
  s.state = static_cast<IcmpState>(3);
  EXPECT_FALSE(IcmpModule::valid(s));
}

}  // namespace
}  // namespace holdfast
