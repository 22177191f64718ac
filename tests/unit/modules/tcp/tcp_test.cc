// TCP tracking tests: the state machine and the window checks of
// modules/tcp/tcp.h, driven segment by segment. Segments are ParsedPackets
// filled by hand, so these tests depend on nothing but the module.
#include "modules/tcp/tcp.h"

#include <gtest/gtest.h>

#include <cstring>
#include <ostream>
#include <random>

#include "tests/support/packet_builder.h"  // PrintTo(Reason)

namespace holdfast {

void PrintTo(TcpState state, std::ostream* os) {
  *os << tcp_state_name(state);
}
void PrintTo(Outcome::Action action, std::ostream* os) {
  switch (action) {
    case Outcome::Action::pass:
      *os << "pass";
      return;
    case Outcome::Action::drop:
      *os << "drop";
      return;
    case Outcome::Action::reopen:
      *os << "reopen";
      return;
  }
}

namespace {

constexpr uint8_t kSyn = tcpflag::kSyn;
constexpr uint8_t kAck = tcpflag::kAck;
constexpr uint8_t kFin = tcpflag::kFin;
constexpr uint8_t kRst = tcpflag::kRst;
constexpr uint8_t kPsh = tcpflag::kPsh;
constexpr uint8_t kNoScale = 0xff;

struct Seg {
  uint8_t flags = kAck;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 0;
  uint16_t len = 0;
  uint8_t wscale = kNoScale;
  uint32_t sack_right = 0;      // 0: no SACK option
  bool first_fragment = false;  // only the header part of the segment is seen
};

ParsedPacket packet(const Seg& s) {
  ParsedPacket p;
  p.kind = FrameKind::ip;
  p.ip_version = 4;
  p.proto = kProtoTcp;
  p.tcp.flags = s.flags;
  p.tcp.seq = s.seq;
  p.tcp.ack = s.ack;
  p.tcp.window = s.window;
  p.tcp.payload_len = s.len;
  p.tcp.header_len = 20;
  p.tcp.wscale = s.wscale;
  if (s.sack_right != 0) {
    p.tcp.sack_blocks = 1;
    p.tcp.sack_right = s.sack_right;
  }
  if (s.first_fragment) {
    p.fragment = p.first_fragment = true;
    p.tcp.payload_len = 0;  // as the parser reports: the datagram's length is unknown
  }
  return p;
}

testing::AssertionResult Passes(const Outcome& o) {
  if (o.action == Outcome::Action::pass) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "dropped: " << reason_name(o.reason);
}

testing::AssertionResult DroppedFor(const Outcome& o, Reason why) {
  if (o.action == Outcome::Action::drop && o.reason == why) return testing::AssertionSuccess();
  if (o.action == Outcome::Action::pass) {
    return testing::AssertionFailure() << "passed, expected drop for " << reason_name(why);
  }
  return testing::AssertionFailure()
         << "outcome " << static_cast<int>(o.action) << " reason " << reason_name(o.reason)
         << ", expected drop for " << reason_name(why);
}

bool same_bytes(const TcpSlice& a, const TcpSlice& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// A client (original direction) talking to a server (reply direction).
class TcpTrack : public testing::Test {
 protected:
  static constexpr uint16_t kClientWindow = 502;  // after the handshake, scaled by 2^7
  static constexpr uint16_t kServerWindow = 509;

  TrackerSettings settings;
  TcpSlice s{};
  uint32_t client_isn = 1000;
  uint32_t server_isn = 500000;

  // Next sequence numbers once the handshake is done.
  uint32_t c() const { return client_isn + 1; }
  uint32_t v() const { return server_isn + 1; }

  void open(const Seg& syn) {
    const ParsedPacket p = packet(syn);
    ASSERT_EQ(TcpModule::can_open(p, settings), Reason::new_connection);
    TcpModule::open(s, p, settings);
  }
  Outcome orig(const Seg& seg) { return TcpModule::track(s, packet(seg), Dir::original, settings); }
  Outcome reply(const Seg& seg) { return TcpModule::track(s, packet(seg), Dir::reply, settings); }

  Seg syn(uint8_t wscale = 7) const { return {kSyn, client_isn, 0, 64240, 0, wscale}; }
  Seg synack(uint8_t wscale = 7) const {
    return {kSyn | kAck, server_isn, client_isn + 1, 65160, 0, wscale};
  }

  void handshake(uint8_t client_ws = 7, uint8_t server_ws = 7) {
    open(syn(client_ws));
    ASSERT_EQ(s.state, TcpState::syn_sent);
    ASSERT_TRUE(Passes(reply(synack(server_ws))));
    ASSERT_EQ(s.state, TcpState::syn_recv);
    ASSERT_TRUE(Passes(orig({kAck, c(), v(), kClientWindow})));
    ASSERT_EQ(s.state, TcpState::established);
  }
};

// ---------------------------------------------------------------------------
// Opening

TEST_F(TcpTrack, OnlyABareSynOpensWithoutLoosePickup) {
  settings.tcp_loose_pickup = false;
  EXPECT_EQ(TcpModule::can_open(packet({kSyn}), settings), Reason::new_connection);
  EXPECT_EQ(TcpModule::can_open(packet({kSyn | kAck}), settings), Reason::tcp_mid_stream);
  EXPECT_EQ(TcpModule::can_open(packet({kAck}), settings), Reason::tcp_mid_stream);
  EXPECT_EQ(TcpModule::can_open(packet({kAck | kPsh}), settings), Reason::tcp_mid_stream);
  EXPECT_EQ(TcpModule::can_open(packet({kFin | kAck}), settings), Reason::tcp_mid_stream);
  EXPECT_EQ(TcpModule::can_open(packet({kRst}), settings), Reason::tcp_mid_stream);
}

TEST_F(TcpTrack, LoosePickupAcceptsAnAckButNothingElse) {
  settings.tcp_loose_pickup = true;
  EXPECT_EQ(TcpModule::can_open(packet({kSyn}), settings), Reason::new_connection);
  EXPECT_EQ(TcpModule::can_open(packet({kAck}), settings), Reason::new_connection);
  EXPECT_EQ(TcpModule::can_open(packet({kAck | kPsh}), settings), Reason::new_connection);
  EXPECT_EQ(TcpModule::can_open(packet({kSyn | kAck}), settings), Reason::tcp_mid_stream);
  EXPECT_EQ(TcpModule::can_open(packet({kFin | kAck}), settings), Reason::tcp_mid_stream);
  EXPECT_EQ(TcpModule::can_open(packet({kRst | kAck}), settings), Reason::tcp_mid_stream);
}

TEST_F(TcpTrack, LoosePickupIsEstablishedAndLiberal) {
  settings.tcp_loose_pickup = true;
  open({kAck, 7000, 9000, 1000, 100});
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(TcpModule::valid(s));
  // Window scaling was never seen, so windows are followed, not enforced:
  // segments far outside what the window alone would allow still pass.
  EXPECT_TRUE(Passes(reply({kAck, 9000, 7100, 1000})));
  EXPECT_TRUE(Passes(orig({kAck, 7100 + 5'000'000, 9000, 1000, 10})));
  EXPECT_TRUE(Passes(reply({kAck, 9000 + 5'000'000, 7100, 1000, 10})));
  EXPECT_EQ(s.state, TcpState::established);
}

// ---------------------------------------------------------------------------
// Handshake and data

TEST_F(TcpTrack, ThreeWayHandshake) {
  open(syn());
  EXPECT_EQ(s.state, TcpState::syn_sent);
  EXPECT_TRUE(TcpModule::valid(s));
  const Outcome synack_out = reply(synack());
  EXPECT_TRUE(Passes(synack_out));
  EXPECT_TRUE(synack_out.changed);
  EXPECT_EQ(s.state, TcpState::syn_recv);
  const Outcome ack_out = orig({kAck, c(), v(), kClientWindow});
  EXPECT_TRUE(Passes(ack_out));
  EXPECT_TRUE(ack_out.changed);
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(TcpModule::valid(s));
  EXPECT_STREQ(TcpModule::state_name(s), "ESTABLISHED");
}

TEST_F(TcpTrack, DataBothWays) {
  handshake();
  const Outcome request = orig({kAck | kPsh, c(), v(), kClientWindow, 100});
  EXPECT_TRUE(Passes(request));
  EXPECT_TRUE(request.changed);
  const Outcome response = reply({kAck | kPsh, v(), c() + 100, kServerWindow, 1400});
  EXPECT_TRUE(Passes(response));
  EXPECT_TRUE(response.changed);
  EXPECT_TRUE(Passes(reply({kAck | kPsh, v() + 1400, c() + 100, kServerWindow, 1400})));
  EXPECT_TRUE(Passes(orig({kAck, c() + 100, v() + 2800, kClientWindow})));
  EXPECT_EQ(s.state, TcpState::established);
}

TEST_F(TcpTrack, AckFromOpenerBeforeSynAckIsInvalid) {
  open(syn());
  const TcpSlice before = s;
  EXPECT_TRUE(DroppedFor(orig({kAck, c(), v(), 1000}), Reason::tcp_invalid_state));
  EXPECT_TRUE(DroppedFor(orig({kFin | kAck, c(), v(), 1000}), Reason::tcp_invalid_state));
  EXPECT_TRUE(same_bytes(before, s));
}

TEST_F(TcpTrack, SynAckMustAcknowledgeExactlyTheSyn) {
  open(syn());
  const TcpSlice before = s;
  Seg bad = synack();
  bad.ack = client_isn + 2;
  EXPECT_TRUE(DroppedFor(reply(bad), Reason::tcp_bad_synack));
  bad.ack = client_isn;
  EXPECT_TRUE(DroppedFor(reply(bad), Reason::tcp_bad_synack));
  EXPECT_EQ(s.state, TcpState::syn_sent);
  EXPECT_TRUE(same_bytes(before, s));
  // The real SYN/ACK still gets through afterwards.
  EXPECT_TRUE(Passes(reply(synack())));
  EXPECT_EQ(s.state, TcpState::syn_recv);
}

TEST_F(TcpTrack, SynAckFromTheOpenerIsInvalid) {
  open(syn());
  EXPECT_TRUE(DroppedFor(orig({kSyn | kAck, client_isn, 1, 1000}), Reason::tcp_invalid_state));
}

TEST_F(TcpTrack, ResponderAckBeforeSynAckMustAcknowledgeTheSyn) {
  // Ignored (no state change) but only when in window: an ACK of data the
  // opener never sent is not.
  open(syn());
  const TcpSlice before = s;
  EXPECT_TRUE(
      DroppedFor(reply({kAck, server_isn, client_isn + 5000, 1000}), Reason::tcp_out_of_window));
  const Outcome plausible = reply({kAck, server_isn, client_isn + 1, 1000});
  EXPECT_TRUE(Passes(plausible));
  EXPECT_FALSE(plausible.changed);
  EXPECT_EQ(s.state, TcpState::syn_sent);
  EXPECT_TRUE(same_bytes(before, s));
}

TEST_F(TcpTrack, RetransmittedSynChangesNothing) {
  open(syn());
  const TcpSlice before = s;
  const Outcome again = orig(syn());
  EXPECT_TRUE(Passes(again));
  EXPECT_FALSE(again.changed);
  EXPECT_TRUE(same_bytes(before, s));
}

TEST_F(TcpTrack, SynWithNewIsnRestartsTheOpener) {
  // RFC 9293 3.4.1: a restarted client picks a larger initial sequence number.
  open(syn());
  Seg restarted = syn();
  restarted.seq = client_isn + 100000;
  EXPECT_TRUE(Passes(orig(restarted)));
  EXPECT_EQ(s.state, TcpState::syn_sent);
  Seg answer = synack();
  answer.ack = client_isn + 100001;
  EXPECT_TRUE(Passes(reply(answer)));
  EXPECT_EQ(s.state, TcpState::syn_recv);
}

TEST_F(TcpTrack, RetransmittedSynAckChangesNothing) {
  open(syn());
  ASSERT_TRUE(Passes(reply(synack())));
  const TcpSlice before = s;
  const Outcome again = reply(synack());
  EXPECT_TRUE(Passes(again));
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(s.state, TcpState::syn_recv);
  EXPECT_TRUE(same_bytes(before, s));
}

TEST_F(TcpTrack, SimultaneousOpen) {
  // RFC 9293 figure 8: both ends send a SYN, then each a SYN/ACK.
  open(syn());
  const Outcome their_syn = reply({kSyn, server_isn, 0, 65160, 0, 7});
  EXPECT_TRUE(Passes(their_syn));
  EXPECT_EQ(s.state, TcpState::syn_sent2);
  EXPECT_TRUE(Passes(orig({kSyn | kAck, client_isn, server_isn + 1, 64240, 0, 7})));
  EXPECT_EQ(s.state, TcpState::syn_recv);
  EXPECT_TRUE(Passes(reply({kSyn | kAck, server_isn, client_isn + 1, 65160, 0, 7})));
  EXPECT_EQ(s.state, TcpState::syn_recv);
  EXPECT_TRUE(Passes(orig({kAck, c(), v(), kClientWindow})));
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(Passes(reply({kAck, v(), c(), kServerWindow, 10})));
}

TEST_F(TcpTrack, ServerDataBeforeTheThirdAckKeepsWindowScaling) {
  // TCP Fast Open (RFC 7413): the server answers SYN data right after its
  // SYN/ACK, before the client's ACK. Only a SYN restarts an end.
  open(syn(7));
  ASSERT_TRUE(Passes(reply(synack(7))));
  EXPECT_TRUE(Passes(reply({kAck | kPsh, v(), c(), kServerWindow, 100})));
  EXPECT_EQ(s.state, TcpState::syn_recv);
  ASSERT_TRUE(Passes(orig({kAck, c(), v() + 100, kClientWindow})));
  ASSERT_EQ(s.state, TcpState::established);
  ASSERT_TRUE(Passes(reply({kAck, v() + 100, c(), 1000})));  // 1000 << 7 offered
  EXPECT_TRUE(Passes(orig({kAck, c() + 100000, v() + 100, kClientWindow, 10})));
}

TEST_F(TcpTrack, ForgedSynDuringSynSentDoesNotBlockTheRealSynAck) {
  // A bare SYN in the reply direction needs no sequence number to forge. The
  // SYN/ACK acknowledging the opener's SYN is what tells the responder's
  // sequence numbers.
  open(syn(7));
  ASSERT_TRUE(Passes(reply({kSyn, 0xdead0000, 0, 1000})));
  ASSERT_EQ(s.state, TcpState::syn_sent2);
  EXPECT_TRUE(Passes(reply(synack(7))));
  EXPECT_EQ(s.state, TcpState::syn_recv);
  EXPECT_TRUE(Passes(orig({kAck, c(), v(), kClientWindow})));
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(Passes(reply({kAck | kPsh, v(), c(), kServerWindow, 100})));
  ASSERT_TRUE(Passes(reply({kAck, v() + 100, c(), 1000})));
  EXPECT_TRUE(Passes(orig({kAck, c() + 100000, v() + 100, kClientWindow, 10})));
}

TEST_F(TcpTrack, ForgedSynAckAfterForgedSynStillNeedsTheRightAck) {
  open(syn(7));
  ASSERT_TRUE(Passes(reply({kSyn, 0xdead0000, 0, 1000})));
  Seg forged = synack(7);
  forged.ack = client_isn + 77;
  EXPECT_TRUE(DroppedFor(reply(forged), Reason::tcp_bad_synack));
  EXPECT_EQ(s.state, TcpState::syn_sent2);
}

TEST_F(TcpTrack, SynDataMayBeLeftUnacknowledgedBySynAck) {
  // RFC 9293 3.10.7.2: a server that does not take the SYN's data answers
  // <ACK=SEG.SEQ+1>; the client sends the data again after the handshake.
  Seg with_data = syn();
  with_data.len = 35;
  open(with_data);
  EXPECT_TRUE(Passes(reply(synack())));
  EXPECT_EQ(s.state, TcpState::syn_recv);
  EXPECT_TRUE(Passes(orig({kAck, c(), v(), kClientWindow})));
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(Passes(orig({kAck | kPsh, c(), v(), kClientWindow, 35})));
  EXPECT_TRUE(Passes(reply({kAck | kPsh, v(), c() + 35, kServerWindow, 200})));
}

TEST_F(TcpTrack, SynDataMayBeAcknowledgedBySynAck) {
  // TCP Fast Open (RFC 7413): the server takes the data with the SYN.
  Seg with_data = syn();
  with_data.len = 35;
  open(with_data);
  Seg answer = synack();
  answer.ack = c() + 35;
  EXPECT_TRUE(Passes(reply(answer)));
  EXPECT_TRUE(Passes(orig({kAck, c() + 35, v(), kClientWindow})));
  EXPECT_EQ(s.state, TcpState::established);
}

TEST_F(TcpTrack, SynAckMayNotAcknowledgePartOfTheSynData) {
  Seg with_data = syn();
  with_data.len = 35;
  open(with_data);
  Seg answer = synack();
  for (uint32_t ack : {c() + 1, c() + 34, c() + 36, c() - 1}) {
    answer.ack = ack;
    EXPECT_TRUE(DroppedFor(reply(answer), Reason::tcp_bad_synack)) << ack - c();
  }
  EXPECT_EQ(s.state, TcpState::syn_sent);
}

TEST_F(TcpTrack, SegmentSentInFragmentsMayBeAcknowledgedWhole) {
  // Only the first fragment, with the header, reaches the tracker; the later
  // ones follow its verdict. The acknowledgement of the whole segment
  // covers data the tracker never saw but the sender did send.
  handshake();
  ASSERT_TRUE(Passes(orig({kAck | kPsh, c(), v(), kClientWindow, 50})));
  Seg first = {kAck | kPsh, v(), c() + 50, kServerWindow};
  first.first_fragment = true;
  EXPECT_TRUE(Passes(reply(first)));
  EXPECT_TRUE(Passes(orig({kAck, c() + 50, v() + 2000, kClientWindow})));
  // New data from the server shows where the fragmented segment ended, and
  // the usual limits apply again.
  EXPECT_TRUE(Passes(reply({kAck | kPsh, v() + 2000, c() + 50, kServerWindow, 100})));
  EXPECT_TRUE(
      DroppedFor(orig({kAck, c() + 50, v() + 2101, kClientWindow}), Reason::tcp_out_of_window));
  EXPECT_TRUE(Passes(orig({kAck, c() + 50, v() + 2100, kClientWindow})));
  // The close still completes: the FINs are judged against what was sent.
  EXPECT_TRUE(Passes(reply({kFin | kAck, v() + 2100, c() + 50, kServerWindow})));
  EXPECT_TRUE(Passes(orig({kFin | kAck, c() + 50, v() + 2101, kClientWindow})));
  EXPECT_TRUE(Passes(reply({kAck, v() + 2101, c() + 51, kServerWindow})));
  EXPECT_EQ(s.state, TcpState::time_wait);
}

TEST_F(TcpTrack, AckBeyondTheOfferedWindowIsDroppedEvenAfterAFragment) {
  handshake();
  Seg first = {kAck | kPsh, v(), c(), kServerWindow};
  first.first_fragment = true;
  ASSERT_TRUE(Passes(reply(first)));
  // The client offered v() + 502 << 7 at most; nothing beyond can have been sent.
  EXPECT_TRUE(
      DroppedFor(orig({kAck, c(), v() + 64256 + 1, kClientWindow}), Reason::tcp_out_of_window));
  EXPECT_TRUE(Passes(orig({kAck, c(), v() + 64256, kClientWindow})));
}

TEST_F(TcpTrack, RetransmissionDoesNotEndAnUnknownSegment) {
  // A retransmitted earlier segment says nothing about where the fragmented
  // one ended.
  handshake();
  ASSERT_TRUE(Passes(reply({kAck | kPsh, v(), c(), kServerWindow, 100})));
  Seg first = {kAck | kPsh, v() + 100, c(), kServerWindow};
  first.first_fragment = true;
  ASSERT_TRUE(Passes(reply(first)));
  ASSERT_TRUE(Passes(reply({kAck | kPsh, v(), c(), kServerWindow, 100})));
  EXPECT_TRUE(Passes(orig({kAck, c(), v() + 3000, kClientWindow})));
}

TEST_F(TcpTrack, RetransmittedDataChangesNothing) {
  handshake();
  ASSERT_TRUE(Passes(orig({kAck | kPsh, c(), v(), kClientWindow, 100})));
  ASSERT_TRUE(Passes(reply({kAck, v(), c() + 100, kServerWindow})));
  const TcpSlice before = s;
  const Outcome again = orig({kAck | kPsh, c(), v(), kClientWindow, 100});
  EXPECT_TRUE(Passes(again));
  EXPECT_FALSE(again.changed);
  EXPECT_TRUE(same_bytes(before, s));
  const Outcome dup_ack = reply({kAck, v(), c() + 100, kServerWindow});
  EXPECT_TRUE(Passes(dup_ack));
  EXPECT_FALSE(dup_ack.changed);
}

// ---------------------------------------------------------------------------
// Windows (Rooij I-IV, RFC 7323, RFC 2018)

TEST_F(TcpTrack, DataBeyondTheOfferedWindowIsDropped) {
  handshake();
  const TcpSlice before = s;
  // II: the server offered c() + 65160 at most (its SYN/ACK window, unscaled).
  EXPECT_TRUE(
      DroppedFor(orig({kAck, c() + 70000, v(), kClientWindow, 10}), Reason::tcp_out_of_window));
  EXPECT_TRUE(same_bytes(before, s));
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(Passes(orig({kAck, c() + 60000, v(), kClientWindow, 10})));
}

TEST_F(TcpTrack, DataOlderThanTheWindowIsDropped) {
  handshake();
  const TcpSlice before = s;
  // I: ends before anything the server could still accept.
  EXPECT_TRUE(
      DroppedFor(orig({kAck, c() - 200000, v(), kClientWindow, 10}), Reason::tcp_out_of_window));
  EXPECT_TRUE(
      DroppedFor(reply({kAck, v() - 200000, c(), kServerWindow, 10}), Reason::tcp_out_of_window));
  EXPECT_TRUE(same_bytes(before, s));
}

TEST_F(TcpTrack, AckOfUnsentDataIsDropped) {
  handshake();
  ASSERT_TRUE(Passes(orig({kAck | kPsh, c(), v(), kClientWindow, 100})));
  const TcpSlice before = s;
  // III: the server acknowledges one byte the client never sent.
  EXPECT_TRUE(DroppedFor(reply({kAck, v(), c() + 101, kServerWindow}), Reason::tcp_out_of_window));
  // ... and the client acknowledges server data that does not exist.
  EXPECT_TRUE(
      DroppedFor(orig({kAck, c() + 100, v() + 1, kClientWindow}), Reason::tcp_out_of_window));
  EXPECT_TRUE(same_bytes(before, s));
  EXPECT_TRUE(Passes(reply({kAck, v(), c() + 100, kServerWindow})));
}

TEST_F(TcpTrack, AncientAckIsDropped) {
  handshake();
  ASSERT_TRUE(Passes(orig({kAck | kPsh, c(), v(), kClientWindow, 1000})));
  const TcpSlice before = s;
  // IV: more than max(window, 66000) behind what the client has sent.
  EXPECT_TRUE(
      DroppedFor(reply({kAck, v(), c() + 1000 - 70000, kServerWindow}), Reason::tcp_out_of_window));
  EXPECT_TRUE(same_bytes(before, s));
}

TEST_F(TcpTrack, WindowScalingWhenBothEndsOfferIt) {
  handshake(7, 7);
  // 1000 << 7 = 128000 bytes offered.
  ASSERT_TRUE(Passes(reply({kAck, v(), c(), 1000})));
  EXPECT_TRUE(Passes(orig({kAck, c() + 100000, v(), kClientWindow, 10})));
}

TEST_F(TcpTrack, NoWindowScalingWhenOnlyTheClientOffersIt) {
  handshake(7, kNoScale);
  ASSERT_TRUE(Passes(reply({kAck, v(), c(), 1000})));
  EXPECT_TRUE(
      DroppedFor(orig({kAck, c() + 100000, v(), kClientWindow, 10}), Reason::tcp_out_of_window));
}

TEST_F(TcpTrack, NoWindowScalingWhenOnlyTheServerOffersIt) {
  handshake(kNoScale, 7);
  ASSERT_TRUE(Passes(reply({kAck, v(), c(), 1000})));
  EXPECT_TRUE(
      DroppedFor(orig({kAck, c() + 100000, v(), kClientWindow, 10}), Reason::tcp_out_of_window));
}

TEST_F(TcpTrack, WindowInSynIsNeverScaled) {
  // RFC 7323 2.2: the SYN/ACK's own window is not scaled, so the client may
  // send 65160 bytes at first, not 65160 << 7.
  open(syn(7));
  ASSERT_TRUE(Passes(reply(synack(7))));
  EXPECT_TRUE(
      DroppedFor(orig({kAck, c() + 65160 + 1, v(), kClientWindow, 1}), Reason::tcp_out_of_window));
  EXPECT_TRUE(Passes(orig({kAck, c() + 65160 - 10, v(), kClientWindow, 10})));
}

TEST_F(TcpTrack, SackBeyondWhatWasSentIsDropped) {
  handshake();
  ASSERT_TRUE(Passes(orig({kAck | kPsh, c(), v(), kClientWindow, 100})));
  const TcpSlice before = s;
  Seg sack = {kAck, v(), c(), kServerWindow};
  sack.sack_right = c() + 200;
  EXPECT_TRUE(DroppedFor(reply(sack), Reason::tcp_out_of_window));
  EXPECT_TRUE(same_bytes(before, s));
  sack.sack_right = c() + 100;  // the last byte sent
  EXPECT_TRUE(Passes(reply(sack)));
}

// ---------------------------------------------------------------------------
// RST (RFC 9293 3.10.7, RFC 5961 3)

TEST_F(TcpTrack, RstInWindowCloses) {
  handshake();
  const Outcome rst = reply({kRst, v(), 0, 0});
  EXPECT_TRUE(Passes(rst));
  EXPECT_TRUE(rst.changed);
  EXPECT_EQ(s.state, TcpState::close);
}

TEST_F(TcpTrack, RstWithAckInWindowFromOpenerCloses) {
  handshake();
  EXPECT_TRUE(Passes(orig({kRst | kAck, c(), v(), 0})));
  EXPECT_EQ(s.state, TcpState::close);
}

TEST_F(TcpTrack, RstOutOfWindowIsDropped) {
  handshake();
  const TcpSlice before = s;
  EXPECT_TRUE(DroppedFor(reply({kRst, v() + 10'000'000, 0, 0}), Reason::tcp_rst_out_of_window));
  EXPECT_TRUE(DroppedFor(reply({kRst, v() - 10'000'000, 0, 0}), Reason::tcp_rst_out_of_window));
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(same_bytes(before, s));
}

TEST_F(TcpTrack, RstBelowWhatTheReceiverAcknowledgedIsDropped) {
  handshake();
  ASSERT_TRUE(Passes(reply({kAck | kPsh, v(), c(), kServerWindow, 500})));
  ASSERT_TRUE(Passes(orig({kAck, c(), v() + 500, kClientWindow})));
  // Inside the window by I-II, but the client already acknowledged v() + 500.
  EXPECT_TRUE(DroppedFor(reply({kRst, v() + 100, 0, 0}), Reason::tcp_rst_out_of_window));
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(Passes(reply({kRst, v() + 500, 0, 0})));
  EXPECT_EQ(s.state, TcpState::close);
}

TEST_F(TcpTrack, RstInSynSentMustAcknowledgeTheSyn) {
  open(syn());
  const TcpSlice before = s;
  EXPECT_TRUE(DroppedFor(reply({kRst, 0, 0, 0}), Reason::tcp_rst_out_of_window));
  EXPECT_TRUE(
      DroppedFor(reply({kRst | kAck, 0, client_isn + 2, 0}), Reason::tcp_rst_out_of_window));
  EXPECT_TRUE(DroppedFor(reply({kRst | kAck, 0, client_isn, 0}), Reason::tcp_rst_out_of_window));
  EXPECT_EQ(s.state, TcpState::syn_sent);
  EXPECT_TRUE(same_bytes(before, s));
  EXPECT_TRUE(Passes(reply({kRst | kAck, 0, client_isn + 1, 0})));
  EXPECT_EQ(s.state, TcpState::close);
}

TEST_F(TcpTrack, OpenerMayAbortItsOwnSyn) {
  open(syn());
  EXPECT_TRUE(DroppedFor(orig({kRst, client_isn + 5, 0, 0}), Reason::tcp_rst_out_of_window));
  EXPECT_TRUE(Passes(orig({kRst, client_isn + 1, 0, 0})));
  EXPECT_EQ(s.state, TcpState::close);
}

// ---------------------------------------------------------------------------
// SYN on an existing connection

TEST_F(TcpTrack, SynInjectionIntoEstablishedIsDropped) {
  handshake();
  const TcpSlice before = s;
  EXPECT_TRUE(DroppedFor(orig({kSyn, c() + 0x40000000, 0, 1000}), Reason::tcp_out_of_window));
  EXPECT_TRUE(DroppedFor(orig({kSyn, c() + 0x9e3779b9, 0, 1000}), Reason::tcp_out_of_window));
  EXPECT_TRUE(DroppedFor(reply({kSyn, 12345, 0, 1000}), Reason::tcp_invalid_state));
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(same_bytes(before, s));
}

TEST_F(TcpTrack, InWindowSynInEstablishedPassesWithoutChange) {
  handshake();
  const TcpSlice before = s;
  const Outcome o = orig({kSyn, client_isn, 0, 64240});
  EXPECT_TRUE(Passes(o));
  EXPECT_FALSE(o.changed);
  EXPECT_EQ(s.state, TcpState::established);
  EXPECT_TRUE(same_bytes(before, s));
}

// ---------------------------------------------------------------------------
// Closing (RFC 9293 3.6)

TEST_F(TcpTrack, FinCloseSequenceToTimeWait) {
  handshake();
  EXPECT_TRUE(Passes(orig({kFin | kAck, c(), v(), kClientWindow})));
  EXPECT_EQ(s.state, TcpState::fin_wait);
  EXPECT_TRUE(Passes(reply({kAck, v(), c() + 1, kServerWindow})));
  EXPECT_EQ(s.state, TcpState::close_wait);
  EXPECT_TRUE(Passes(reply({kFin | kAck, v(), c() + 1, kServerWindow})));
  EXPECT_EQ(s.state, TcpState::last_ack);
  EXPECT_TRUE(Passes(orig({kAck, c() + 1, v() + 1, kClientWindow})));
  EXPECT_EQ(s.state, TcpState::time_wait);
  EXPECT_TRUE(TcpModule::valid(s));
}

TEST_F(TcpTrack, ServerClosesFirstWithFinAckedInItsFin) {
  handshake();
  EXPECT_TRUE(Passes(reply({kFin | kAck, v(), c(), kServerWindow})));
  EXPECT_EQ(s.state, TcpState::fin_wait);
  EXPECT_TRUE(Passes(orig({kFin | kAck, c(), v() + 1, kClientWindow})));
  EXPECT_EQ(s.state, TcpState::last_ack);
  EXPECT_TRUE(Passes(reply({kAck, v() + 1, c() + 1, kServerWindow})));
  EXPECT_EQ(s.state, TcpState::time_wait);
}

TEST_F(TcpTrack, RetransmittedFinDoesNotAdvanceToLastAck) {
  handshake();
  ASSERT_TRUE(Passes(orig({kFin | kAck, c(), v(), kClientWindow})));
  ASSERT_EQ(s.state, TcpState::fin_wait);
  const Outcome again = orig({kFin | kAck, c(), v(), kClientWindow});
  EXPECT_TRUE(Passes(again));
  EXPECT_FALSE(again.changed);
  EXPECT_EQ(s.state, TcpState::fin_wait);
  ASSERT_TRUE(Passes(reply({kAck, v(), c() + 1, kServerWindow})));
  ASSERT_EQ(s.state, TcpState::close_wait);
  EXPECT_TRUE(Passes(orig({kFin | kAck, c(), v(), kClientWindow})));
  EXPECT_EQ(s.state, TcpState::close_wait);
  // Only the other end's FIN moves on.
  EXPECT_TRUE(Passes(reply({kFin | kAck, v(), c() + 1, kServerWindow})));
  EXPECT_EQ(s.state, TcpState::last_ack);
}

TEST_F(TcpTrack, CloseWaitNeedsTheFinAcknowledged) {
  // CLOSE_WAIT means "that FIN acknowledged": neither the FIN sender's own
  // ACK nor an ACK short of the FIN is that.
  handshake();
  ASSERT_TRUE(Passes(reply({kAck | kPsh, v(), c(), kServerWindow, 100})));
  ASSERT_TRUE(Passes(orig({kFin | kAck, c(), v(), kClientWindow})));
  ASSERT_EQ(s.state, TcpState::fin_wait);
  EXPECT_TRUE(Passes(orig({kAck, c() + 1, v() + 100, kClientWindow})));
  EXPECT_EQ(s.state, TcpState::fin_wait);
  EXPECT_TRUE(Passes(reply({kAck, v() + 100, c(), kServerWindow})));
  EXPECT_EQ(s.state, TcpState::fin_wait);
  EXPECT_TRUE(Passes(reply({kAck, v() + 100, c() + 1, kServerWindow})));
  EXPECT_EQ(s.state, TcpState::close_wait);
}

TEST_F(TcpTrack, TimeWaitNeedsTheLastFinAcknowledged) {
  handshake();
  ASSERT_TRUE(Passes(orig({kFin | kAck, c(), v(), kClientWindow})));
  ASSERT_TRUE(Passes(reply({kFin | kAck, v(), c() + 1, kServerWindow})));
  ASSERT_EQ(s.state, TcpState::last_ack);
  // The server repeating its ACK of the client's FIN is not the last ACK.
  EXPECT_TRUE(Passes(reply({kAck, v() + 1, c() + 1, kServerWindow})));
  EXPECT_EQ(s.state, TcpState::last_ack);
  EXPECT_TRUE(Passes(orig({kAck, c() + 1, v() + 1, kClientWindow})));
  EXPECT_EQ(s.state, TcpState::time_wait);
}

TEST_F(TcpTrack, SimultaneousClose) {
  // RFC 9293 figure 13: both FINs cross; each end then acknowledges the other.
  handshake();
  ASSERT_TRUE(Passes(orig({kFin | kAck, c(), v(), kClientWindow})));
  ASSERT_TRUE(Passes(reply({kFin | kAck, v(), c(), kServerWindow})));
  EXPECT_EQ(s.state, TcpState::last_ack);
  EXPECT_TRUE(Passes(orig({kAck, c() + 1, v() + 1, kClientWindow})));
  EXPECT_EQ(s.state, TcpState::last_ack);
  EXPECT_TRUE(Passes(reply({kAck, v() + 1, c() + 1, kServerWindow})));
  EXPECT_EQ(s.state, TcpState::time_wait);
}

TEST_F(TcpTrack, SynInTimeWaitReopens) {
  handshake();
  ASSERT_TRUE(Passes(orig({kFin | kAck, c(), v(), kClientWindow})));
  ASSERT_TRUE(Passes(reply({kFin | kAck, v(), c() + 1, kServerWindow})));
  ASSERT_TRUE(Passes(orig({kAck, c() + 1, v() + 1, kClientWindow})));
  ASSERT_EQ(s.state, TcpState::time_wait);
  const TcpSlice before = s;
  const Outcome o = orig({kSyn, c() + 1'000'000, 0, 64240});
  EXPECT_EQ(o.action, Outcome::Action::reopen);
  EXPECT_EQ(o.reason, Reason::new_connection);
  EXPECT_TRUE(same_bytes(before, s));  // the pipeline re-initialises the entry
  EXPECT_EQ(reply({kSyn, 77, 0, 64240}).action, Outcome::Action::reopen);
}

TEST_F(TcpTrack, SynAfterRstReopens) {
  handshake();
  ASSERT_TRUE(Passes(reply({kRst, v(), 0, 0})));
  ASSERT_EQ(s.state, TcpState::close);
  EXPECT_EQ(orig({kSyn, 42, 0, 64240}).action, Outcome::Action::reopen);
}

// ---------------------------------------------------------------------------
// Sequence space wraps at 2^32 (RFC 1982 serial arithmetic)

TEST_F(TcpTrack, SequenceNumbersWrapAround) {
  client_isn = 0xffffff00;
  server_isn = 0xfffffff0;
  handshake();
  EXPECT_TRUE(Passes(orig({kAck | kPsh, c(), v(), kClientWindow, 0x200})));
  const uint32_t client_end = c() + 0x200;  // 0x00000101
  ASSERT_EQ(client_end, 0x101u);
  EXPECT_TRUE(Passes(reply({kAck | kPsh, v(), client_end, kServerWindow, 0x100})));
  EXPECT_TRUE(Passes(orig({kAck, client_end, v() + 0x100, kClientWindow})));
  const TcpSlice before = s;
  EXPECT_TRUE(DroppedFor(reply({kAck, v() + 0x100, client_end + 1, kServerWindow}),
                         Reason::tcp_out_of_window));
  EXPECT_TRUE(DroppedFor(orig({kAck, client_end + 0x80000000u, v() + 0x100, kClientWindow, 1}),
                         Reason::tcp_out_of_window));
  EXPECT_TRUE(same_bytes(before, s));
  EXPECT_TRUE(Passes(orig({kFin | kAck, client_end, v() + 0x100, kClientWindow})));
  EXPECT_TRUE(Passes(reply({kFin | kAck, v() + 0x100, client_end + 1, kServerWindow})));
  EXPECT_TRUE(Passes(orig({kAck, client_end + 1, v() + 0x101, kClientWindow})));
  EXPECT_EQ(s.state, TcpState::time_wait);
}

// ---------------------------------------------------------------------------
// Timeouts

class TcpTimeoutTest : public TcpTrack {
 protected:
  void SetUp() override {
    TcpTimeouts& t = settings.tcp;
    t.syn_sent = 1000;
    t.syn_recv = 2000;
    t.established = 3000;
    t.fin_wait = 4000;
    t.close_wait = 5000;
    t.last_ack = 6000;
    t.time_wait = 7000;
    t.close = 8000;
    t.unacknowledged = 100000;
  }
  uint32_t timeout() const { return TcpModule::timeout_ms(s, settings); }
};

TEST_F(TcpTimeoutTest, EachStateHasItsOwnTimeout) {
  open(syn());
  EXPECT_EQ(timeout(), 1000u);
  ASSERT_TRUE(Passes(reply(synack())));
  EXPECT_EQ(timeout(), 2000u);
  ASSERT_TRUE(Passes(orig({kAck, c(), v(), kClientWindow})));
  EXPECT_EQ(timeout(), 3000u);
  ASSERT_TRUE(Passes(orig({kFin | kAck, c(), v(), kClientWindow})));
  EXPECT_EQ(timeout(), 4000u);
  ASSERT_TRUE(Passes(reply({kAck, v(), c() + 1, kServerWindow})));
  EXPECT_EQ(timeout(), 5000u);
  ASSERT_TRUE(Passes(reply({kFin | kAck, v(), c() + 1, kServerWindow})));
  EXPECT_EQ(timeout(), 6000u);
  ASSERT_TRUE(Passes(orig({kAck, c() + 1, v() + 1, kClientWindow})));
  EXPECT_EQ(timeout(), 7000u);
}

TEST_F(TcpTimeoutTest, CloseAndSimultaneousOpenTimeouts) {
  open(syn());
  ASSERT_TRUE(Passes(reply({kSyn, server_isn, 0, 65160, 0, 7})));
  ASSERT_EQ(s.state, TcpState::syn_sent2);
  EXPECT_EQ(timeout(), 1000u);
  ASSERT_TRUE(Passes(orig({kRst, c(), 0, 0})));
  ASSERT_EQ(s.state, TcpState::close);
  EXPECT_EQ(timeout(), 8000u);
}

TEST_F(TcpTimeoutTest, UnacknowledgedDataShortensTheTimeout) {
  settings.tcp.established = 432'000'000;
  settings.tcp.unacknowledged = 300'000;
  handshake();
  EXPECT_EQ(timeout(), 432'000'000u);
  ASSERT_TRUE(Passes(orig({kAck | kPsh, c(), v(), kClientWindow, 100})));
  EXPECT_EQ(timeout(), 300'000u);
  ASSERT_TRUE(Passes(reply({kAck | kPsh, v(), c() + 50, kServerWindow, 10})));
  EXPECT_EQ(timeout(), 300'000u);  // half the client's data and all the server's outstanding
  ASSERT_TRUE(Passes(reply({kAck, v() + 10, c() + 100, kServerWindow})));
  EXPECT_EQ(timeout(), 300'000u);  // the server's 10 bytes are still unacknowledged
  ASSERT_TRUE(Passes(orig({kAck, c() + 100, v() + 10, kClientWindow})));
  EXPECT_EQ(timeout(), 432'000'000u);
}

TEST_F(TcpTimeoutTest, UnacknowledgedTimeoutNeverLengthensAState) {
  settings.tcp.unacknowledged = 100000;
  handshake();
  ASSERT_TRUE(Passes(orig({kFin | kAck | kPsh, c(), v(), kClientWindow, 100})));
  ASSERT_EQ(s.state, TcpState::fin_wait);
  EXPECT_EQ(timeout(), 4000u);
}

// ---------------------------------------------------------------------------
// Restore validation and ICMP quoting

TEST_F(TcpTrack, ValidRejectsCorruptedSlices) {
  handshake();
  ASSERT_TRUE(TcpModule::valid(s));
  TcpSlice bad = s;
  bad.state = TcpState::none;
  EXPECT_FALSE(TcpModule::valid(bad));
  bad = s;
  bad.state = static_cast<TcpState>(kTcpStateCount);
  EXPECT_FALSE(TcpModule::valid(bad));
  bad = s;
  bad.state = static_cast<TcpState>(0xff);
  EXPECT_FALSE(TcpModule::valid(bad));
  bad = s;
  bad.scale[0] = 15;
  EXPECT_FALSE(TcpModule::valid(bad));
  bad = s;
  bad.scale[1] = 200;
  EXPECT_FALSE(TcpModule::valid(bad));
  bad = s;
  bad.sender[0].maxwin = 0;
  EXPECT_FALSE(TcpModule::valid(bad));
  TcpSlice zero{};
  EXPECT_FALSE(TcpModule::valid(zero));
}

TEST_F(TcpTrack, StateNames) {
  EXPECT_STREQ(tcp_state_name(TcpState::syn_sent), "SYN_SENT");
  EXPECT_STREQ(tcp_state_name(TcpState::time_wait), "TIME_WAIT");
  EXPECT_STREQ(tcp_state_name(TcpState::syn_sent2), "SYN_SENT2");
  EXPECT_STREQ(tcp_state_name(static_cast<TcpState>(99)), "INVALID");
}

TEST_F(TcpTrack, QuotedSegmentMustLieInTheWindow) {
  handshake();
  ASSERT_TRUE(Passes(orig({kAck | kPsh, c(), v(), kClientWindow, 100})));
  EXPECT_TRUE(TcpModule::quoted_segment_in_window(s, Dir::original, c()));
  EXPECT_TRUE(TcpModule::quoted_segment_in_window(s, Dir::original, c() + 50));
  EXPECT_FALSE(TcpModule::quoted_segment_in_window(s, Dir::original, c() + 10'000'000));
  EXPECT_FALSE(TcpModule::quoted_segment_in_window(s, Dir::original, c() - 10'000'000));
  EXPECT_TRUE(TcpModule::quoted_segment_in_window(s, Dir::reply, v()));
  EXPECT_FALSE(TcpModule::quoted_segment_in_window(s, Dir::reply, v() + 0x70000000));
}

TEST_F(TcpTrack, QuotedSegmentFromAnUnseenEndIsNotPlausible) {
  open(syn());
  EXPECT_TRUE(TcpModule::quoted_segment_in_window(s, Dir::original, client_isn));
  EXPECT_FALSE(TcpModule::quoted_segment_in_window(s, Dir::reply, server_isn));
}

// ---------------------------------------------------------------------------
// The fast path of TcpModule::track (established ACKs) against the whole
// state machine (track_general): random conversations, every segment
// decided by both on copies of the same slice; outcome, `changed` and the
// slice after it must agree. Segments stray around the window edges, so
// both in-window and out-of-window ones, data, pure ACKs, SACK, zero
// windows, first fragments, FIN and RST (which leave the fast path) occur.
TEST_F(TcpTrack, FastPathDecidesAsTheStateMachine) {
  std::mt19937 rng(20261122);
  auto pick = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  size_t fast = 0;
  size_t changed = 0;
  size_t dropped = 0;
  for (int conversation = 0; conversation < 2000; ++conversation) {
    client_isn = static_cast<uint32_t>(rng());
    server_isn = static_cast<uint32_t>(rng());
    s = TcpSlice{};
    const uint8_t ws = pick(4) == 0 ? kNoScale : static_cast<uint8_t>(pick(15));
    handshake(ws, ws);
    if (pick(8) == 0) s.flags[0] = s.flags[1] |= TcpSlice::kLiberal;
    uint32_t next[2] = {c(), v()};  // what each end sends next, roughly
    for (int step = 0; step < 60; ++step) {
      const int d = static_cast<int>(pick(2));
      Seg seg;
      const uint32_t r = pick(100);
      seg.flags = r < 70 ? kAck : r < 90 ? (kAck | kPsh) : r < 95 ? (kAck | kFin) : (kAck | kRst);
      // Mostly near what was sent; sometimes far off either way.
      const int32_t jitter =
          pick(5) == 0 ? static_cast<int32_t>(rng()) : static_cast<int32_t>(pick(4000)) - 2000;
      seg.seq = next[d] + (pick(3) == 0 ? jitter : 0);
      seg.ack = next[1 - d] + (pick(4) == 0 ? jitter / 2 : 0);
      seg.window = static_cast<uint16_t>(pick(6) == 0 ? 0 : pick(65536));
      seg.len = static_cast<uint16_t>(pick(3) == 0 ? 0 : pick(1461));
      if (pick(6) == 0) seg.sack_right = seg.ack + pick(3000);
      seg.first_fragment = pick(20) == 0;
      const ParsedPacket p = packet(seg);
      const Dir dir = d == 0 ? Dir::original : Dir::reply;
      const bool takes_fast = s.state == TcpState::established &&
                              (seg.flags & (kFin | kRst)) == 0 && s.sender[d].maxwin != 0;
      TcpSlice general = s;
      const Outcome a = TcpModule::track(s, p, dir, settings);
      const Outcome b = TcpModule::track_general(general, p, dir, settings);
      ASSERT_EQ(a.action, b.action) << "conversation " << conversation << " step " << step;
      ASSERT_EQ(a.reason, b.reason) << "conversation " << conversation << " step " << step;
      ASSERT_EQ(a.changed, b.changed) << "conversation " << conversation << " step " << step;
      ASSERT_TRUE(same_bytes(s, general)) << "conversation " << conversation << " step " << step;
      fast += takes_fast;
      changed += takes_fast && a.changed;
      dropped += takes_fast && a.action == Outcome::Action::drop;
      if (a.action == Outcome::Action::pass && !seg.first_fragment) {
        next[d] = seg.seq + seg.len + ((seg.flags & kFin) ? 1 : 0);
      }
      if (s.state != TcpState::established && pick(4) == 0) break;
    }
  }
  // The sample must exercise the fast path both ways.
  EXPECT_GT(fast, 20'000u);
  EXPECT_GT(changed, 5'000u);
  EXPECT_GT(fast - changed - dropped, 2'000u);  // passed, slice unchanged
  EXPECT_GT(dropped, 2'000u);
}

}  // namespace
}  // namespace holdfast
