// TCP connection tracking.
//
// Theory of operation
// -------------------
// A connection moves through the states below on the flags of each segment
// and its direction (the state machine of Linux nf_conntrack_proto_tcp,
// itself derived from RFC 9293's, with the differences noted). Every segment
// must also fall inside the windows the two ends have advertised, as in
// Guido van Rooij, "Real Stateful TCP Packet Filtering in IP Filter" (2000):
// for a segment from sender S to receiver R carrying seq, end = seq + length
// (+1 for SYN and FIN), ack and window win (scaled, RFC 7323):
//
//   I   end  >= S.end - R.maxwin         not older than R can still accept
//   II  seq  <= S.maxend                 not beyond what R has offered
//   III ack  <= R.end                    acknowledges only data R sent
//   IV  ack  >= R.end - max(S.maxwin, 66000)   not an ancient ack
//
// where S.end is the highest sequence S has sent, S.maxend the highest
// right edge R has advertised (ack + window), and S.maxwin the largest
// window S has advertised. SACK (RFC 2018): the highest SACK right edge
// counts as the ack for III and IV. A segment that crosses as IP fragments
// is judged by its first fragment, which does not tell its length: until
// its sender sends new data, III lets the other end acknowledge up to the
// right edge it offered (II bounds what the sender can have sent). A segment that fails is dropped
// and the state is left alone, so an attacker without the sequence numbers cannot move it.
// Retransmissions satisfy I-IV and pass without changing anything.
//
// Differences from Linux, each to close a hole or stop a surprise:
// - A SYN/ACK must acknowledge exactly the SYN (RFC 9293 3.10.7.3), not
//   merely fall in the ack window; of data the SYN carried it acknowledges
//   all (TCP Fast Open, RFC 7413) or none (RFC 9293 3.10.7.2).
// - RST must be in window (I-II) and not below what the receiver has already
//   acknowledged (RFC 5961 3 asks endpoints for the same); in SYN-SENT only a
//   RST acknowledging the SYN closes.
// - A retransmitted FIN does not advance FIN_WAIT to LAST_ACK; only the
//   other end's FIN does (Linux would time a half-closed connection out as
//   TIME_WAIT). Likewise an ACK moves FIN_WAIT to CLOSE_WAIT only when it
//   acknowledges the FIN, and LAST_ACK to TIME_WAIT only when both FINs are
//   acknowledged (Linux takes any ACK, so a repeated ACK of the first FIN
//   would open the tuple to reuse while the second is still in flight).
// - Segments Linux "ignores" (a SYN inside an established connection, a
//   retransmitted SYN/ACK, an ACK from the responder before its SYN/ACK)
//   pass only if they are in window and never change state; an
//   out-of-window SYN (SYN injection) is dropped. From an end not seen yet
//   only the acknowledgement can be judged (III, IV).
// - In SYN_SENT2 (a SYN seen from both ends) the SYN/ACK that acknowledges
//   the opener's SYN re-initialises the responder's side, so a forged bare
//   SYN, which needs no sequence number, cannot lock the real handshake out.
// - A SYN in TIME_WAIT or CLOSE starts a new connection on the tuple (port
//   reuse): the pipeline re-runs policy and gives it a new connection ID.
//
// Loose pickup (config modules.tcp.loose_pickup, off by default) accepts a
// mid-stream segment as the start of an established connection. Window
// scaling is then unknown, so such connections are tracked liberally:
// windows are followed but not enforced, exactly as Linux does.
#pragma once

#include <cstdint>

#include "modules/module.h"

namespace holdfast {

enum class TcpState : uint8_t {
  none = 0,
  syn_sent,
  syn_recv,
  established,
  fin_wait,
  close_wait,
  last_ack,
  time_wait,
  close,
  syn_sent2,  // simultaneous open: SYN seen from both ends
};
inline constexpr int kTcpStateCount = 10;

// What one end has sent and been offered (Rooij's per-direction data).
struct TcpSender {
  uint32_t end;     // highest sequence number sent, plus one
  uint32_t maxend;  // highest right edge of the window the other end offered
  uint32_t maxwin;  // largest window this end advertised, scaled; 0: not seen yet
  uint32_t maxack;  // highest acknowledgement this end sent
};

struct TcpSlice {
  TcpSender sender[2];  // indexed by Dir
  uint8_t scale[2];     // window scale each end offered; applies once both did (kWindowScale)
  uint8_t flags[2];     // TcpSlice::k* per end
  TcpState state;
  uint8_t reserved;
  uint16_t syn_data;  // bytes of data the opener's SYN carried (RFC 7413)

  static constexpr uint8_t kWindowScale = 0x01;  // sent the window scale option
  static constexpr uint8_t kSackPermitted = 0x02;
  static constexpr uint8_t kMaxAckSet = 0x04;    // maxack holds a value
  static constexpr uint8_t kDataUnacked = 0x08;  // sent data not yet acknowledged
  static constexpr uint8_t kFinSent = 0x10;
  static constexpr uint8_t kLiberal = 0x20;  // windows followed, not enforced
  // Sent a segment in IP fragments: the tracker saw its first fragment only,
  // so where it ended is unknown until this end sends new data.
  static constexpr uint8_t kUnknownEnd = 0x40;
};
static_assert(sizeof(TcpSlice) == 40, "TCP slice is checkpointed as is");
static_assert(std::is_trivially_copyable_v<TcpSlice>);

struct TcpModule {
  using Slice = TcpSlice;
  static constexpr ModuleId kId = ModuleId::tcp;
  static constexpr uint16_t kSchemaVersion = 1;

  static Reason can_open(const ParsedPacket& p, const TrackerSettings& settings);
  static void open(Slice& s, const ParsedPacket& p, const TrackerSettings& settings);
  static Outcome track(Slice& s, const ParsedPacket& p, Dir dir, const TrackerSettings& settings);
  // The whole state machine, without track's fast path for established
  // ACKs; decides every segment exactly as track does.
  static Outcome track_general(Slice& s, const ParsedPacket& p, Dir dir,
                               const TrackerSettings& settings);
  // Inline: every packet of every connection asks (the expiry check).
  static uint32_t timeout_ms(const Slice& s, const TrackerSettings& settings);
  static bool valid(const Slice& s);
  static const char* state_name(const Slice& s);

  // Is an ICMP error quoting a segment with this sequence number, sent in
  // direction dir, plausible for the connection? (pf's check: the quoted
  // segment must lie in the window.)
  static bool quoted_segment_in_window(const Slice& s, Dir dir, uint32_t seq);
};
static_assert(L4Module<TcpModule>);

const char* tcp_state_name(TcpState state);

// Pieces of the window check that TcpModule::track's fast path needs
// inline; tcp.cc holds the rest of the tracker.
namespace tcp_detail {

// Serial number arithmetic on 32-bit sequence space (RFC 1982).
inline bool before(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a - b) < 0;
}
inline bool after(uint32_t a, uint32_t b) {
  return before(b, a);
}

// The shift end d applies to its windows: what it offered in its SYN, but
// only once both ends have offered scaling (RFC 7323 1.3). Deciding it here
// rather than zeroing scale[] at the handshake keeps each end's offer, so a
// SYN/ACK that re-initialises an end (see in_window) negotiates afresh.
inline uint8_t window_shift(const TcpSlice& s, int d) {
  const bool both = (s.flags[0] & TcpSlice::kWindowScale) && (s.flags[1] & TcpSlice::kWindowScale);
  return both ? s.scale[d] : 0;
}

// A segment as the window check reads it: seq and end (RFC 9293's
// SEG.SEQ and SEG.SEQ + SEG.LEN, SYN and FIN counted), the acknowledgement
// to judge (the highest SACK right edge counts, see the file comment), and
// the window scaled as its sender applies it.
struct Segment {
  uint32_t seq;
  uint32_t end;
  uint32_t ack;
  uint32_t sack;
  uint32_t win;
};

// I-IV of the file comment, for a segment from end d.
[[gnu::always_inline]] inline bool window_ok(const TcpSlice& s, int d, const Segment& g) {
  const int r = 1 - d;
  const TcpSender& sender = s.sender[d];
  const TcpSender& receiver = s.sender[r];
  const uint32_t max_ack_window = sender.maxwin > 66000 ? sender.maxwin : 66000;
  // What the receiver can have sent: its end, or up to the edge it was
  // offered while a fragmented segment of unknown length is in flight.
  const uint32_t receiver_sent =
      (s.flags[r] & TcpSlice::kUnknownEnd) ? receiver.maxend : receiver.end;
  return !after(g.seq, sender.maxend) &&                  // II
         !before(g.end, sender.end - receiver.maxwin) &&  // I
         !after(g.sack, receiver_sent) &&                 // III
         !before(g.sack, receiver.end - max_ack_window);  // IV
}

// Advances the slice by a segment from end d that passed the check; has_ack
// tells whether it carries an acknowledgement. Returns whether any byte of
// the slice changed.
[[gnu::always_inline]] inline bool advance(TcpSlice& s, const ParsedPacket& p, int d,
                                           const Segment& g, bool has_ack) {
  const int r = 1 - d;
  TcpSender& sender = s.sender[d];
  TcpSender& receiver = s.sender[r];
  // Every write below either is guarded by a strict comparison with the
  // value it replaces, and so changes it (changes), or is to the flags or
  // maxend, compared at the end.
  const uint8_t flags_before[2] = {s.flags[0], s.flags[1]};
  const uint32_t maxend_before = receiver.maxend;
  bool changes = false;
  if (sender.maxwin < g.win) {
    sender.maxwin = g.win;
    changes = true;
  }
  // Only a first fragment reaches the tracker (later ones follow its
  // verdict). New data shows where an earlier fragmented segment ended;
  // a retransmission does not.
  if (p.fragment) {
    s.flags[d] |= TcpSlice::kUnknownEnd;
  } else if (!before(g.seq, sender.end)) {
    s.flags[d] &= static_cast<uint8_t>(~TcpSlice::kUnknownEnd);
  }
  if ((s.flags[r] & TcpSlice::kUnknownEnd) && after(g.sack, receiver.end)) {
    receiver.end = g.sack;  // acknowledged, so sent
    changes = true;
  }
  if (after(g.end, sender.end)) {
    sender.end = g.end;
    s.flags[d] |= TcpSlice::kDataUnacked;
    changes = true;
  }
  if (has_ack) {
    if (!(s.flags[d] & TcpSlice::kMaxAckSet)) {
      sender.maxack = g.ack;  // the flag below changes
      s.flags[d] |= TcpSlice::kMaxAckSet;
    } else if (after(g.ack, sender.maxack)) {
      sender.maxack = g.ack;
      changes = true;
    }
  }
  // What this segment offers the receiver. Nothing until the receiver has
  // been seen: its first segment sets its window from scratch, and writing
  // here before would make a retransmitted SYN change the slice.
  if (receiver.maxwin != 0 && after(g.end, sender.maxend)) {
    receiver.maxwin += g.end - sender.maxend;
    changes = true;
  }
  if (receiver.maxwin != 0 && after(g.sack + g.win, receiver.maxend - 1)) {
    receiver.maxend = g.sack + g.win;
    if (g.win == 0) ++receiver.maxend;  // leave room for a zero-window probe
  }
  if (g.ack == receiver.end) s.flags[r] &= static_cast<uint8_t>(~TcpSlice::kDataUnacked);
  return changes || receiver.maxend != maxend_before || s.flags[0] != flags_before[0] ||
         s.flags[1] != flags_before[1];
}

// in_window for the fast path of TcpModule::track: a segment with ACK set
// and neither SYN, FIN nor RST, from an end already seen (maxwin != 0).
// Of in_window's branches only the check and the advance remain. *moved
// tells whether the advance changed any byte of the slice.
[[gnu::always_inline]] inline bool ack_in_window(TcpSlice& s, const ParsedPacket& p, int d,
                                                 bool* moved) {
  Segment g;
  g.seq = p.tcp.seq;
  g.end = g.seq + p.tcp.payload_len;
  g.ack = p.tcp.ack;
  g.sack = g.ack;
  if (p.tcp.sack_blocks != 0 && after(p.tcp.sack_right, g.sack)) g.sack = p.tcp.sack_right;
  g.win = static_cast<uint32_t>(p.tcp.window) << window_shift(s, d);
  const bool liberal = (s.flags[0] | s.flags[1]) & TcpSlice::kLiberal;
  if (!window_ok(s, d, g) && !liberal) return false;
  *moved = advance(s, p, d, g, true);
  return true;
}

}  // namespace tcp_detail

inline Outcome TcpModule::track(Slice& s, const ParsedPacket& p, Dir dir,
                                const TrackerSettings& settings) {
  // Fast path, nearly every segment of a connection's life: an ACK (PSH,
  // URG, ECE, CWR aside) on an established connection from an end already
  // seen. The transition table maps it back to ESTABLISHED in both
  // directions, and the window check writes nothing unless it passes (no
  // SYN to re-initialise from, no first segment to learn from), so neither
  // the state machine nor a copy of the slice to restore or compare is
  // needed: ack_in_window tells what it changed. track_general decides the
  // same (tests/unit/modules/tcp/tcp_test.cc compares the two). Inline, so
  // that the caller's dispatch on the module lands here without a call.
  const int d = static_cast<int>(dir);
  constexpr uint8_t kNotAck = tcpflag::kSyn | tcpflag::kFin | tcpflag::kRst;
  if (s.state == TcpState::established &&
      (p.tcp.flags & (kNotAck | tcpflag::kAck)) == tcpflag::kAck && s.sender[d].maxwin != 0)
      [[likely]] {
    bool moved = false;
    if (!tcp_detail::ack_in_window(s, p, d, &moved))
      return Outcome::drop(Reason::tcp_out_of_window);
    return Outcome::pass(moved);
  }
  return track_general(s, p, dir, settings);
}

inline uint32_t TcpModule::timeout_ms(const Slice& s, const TrackerSettings& settings) {
  const TcpTimeouts& t = settings.tcp;
  uint32_t timeout = t.close;
  switch (s.state) {
    case TcpState::syn_sent:
    case TcpState::syn_sent2:
      timeout = t.syn_sent;
      break;
    case TcpState::syn_recv:
      timeout = t.syn_recv;
      break;
    case TcpState::established:
      timeout = t.established;
      break;
    case TcpState::fin_wait:
      timeout = t.fin_wait;
      break;
    case TcpState::close_wait:
      timeout = t.close_wait;
      break;
    case TcpState::last_ack:
      timeout = t.last_ack;
      break;
    case TcpState::time_wait:
      timeout = t.time_wait;
      break;
    case TcpState::none:
    case TcpState::close:
      timeout = t.close;
      break;
  }
  // Data outstanding in either direction: the connection is waiting on a
  // peer that may be gone, so do not hold it for days.
  if (((s.flags[0] | s.flags[1]) & TcpSlice::kDataUnacked) && timeout > t.unacknowledged) {
    timeout = t.unacknowledged;
  }
  return timeout;
}

}  // namespace holdfast
