#include "modules/tcp/tcp.h"

#include <cstring>

namespace holdfast {
namespace {

using tcp_detail::advance;
using tcp_detail::after;
using tcp_detail::before;
using tcp_detail::Segment;
using tcp_detail::window_ok;
using tcp_detail::window_shift;

// Equality of two slices as five 64-bit words: memcmp's result would be a
// libc call on the per-packet path.
bool same_bytes(const TcpSlice& a, const TcpSlice& b) {
  static_assert(sizeof(TcpSlice) % 8 == 0);
  uint64_t wa[sizeof(TcpSlice) / 8];
  uint64_t wb[sizeof(TcpSlice) / 8];
  std::memcpy(wa, &a, sizeof a);
  std::memcpy(wb, &b, sizeof b);
  uint64_t diff = 0;
  for (size_t i = 0; i < sizeof(TcpSlice) / 8; ++i) diff |= wa[i] ^ wb[i];
  return diff == 0;
}

enum SegmentClass : uint8_t {
  kSegSyn,
  kSegSynAck,
  kSegFin,
  kSegAck,
  kSegRst,
  kSegNone,
  kSegmentClassCount
};

SegmentClass classify(uint8_t flags) {
  if (flags & tcpflag::kRst) return kSegRst;
  if (flags & tcpflag::kSyn) return (flags & tcpflag::kAck) ? kSegSynAck : kSegSyn;
  if (flags & tcpflag::kFin) return kSegFin;
  if (flags & tcpflag::kAck) return kSegAck;
  return kSegNone;
}

// Transition targets beyond real states.
constexpr uint8_t kIV = 0xfe;  // invalid: drop
constexpr uint8_t kIG = 0xff;  // ignore: pass if in window, change nothing

constexpr uint8_t sNO = static_cast<uint8_t>(TcpState::none);
constexpr uint8_t sSS = static_cast<uint8_t>(TcpState::syn_sent);
constexpr uint8_t sSR = static_cast<uint8_t>(TcpState::syn_recv);
constexpr uint8_t sES = static_cast<uint8_t>(TcpState::established);
constexpr uint8_t sFW = static_cast<uint8_t>(TcpState::fin_wait);
constexpr uint8_t sCW = static_cast<uint8_t>(TcpState::close_wait);
constexpr uint8_t sLA = static_cast<uint8_t>(TcpState::last_ack);
constexpr uint8_t sTW = static_cast<uint8_t>(TcpState::time_wait);
constexpr uint8_t sCL = static_cast<uint8_t>(TcpState::close);
constexpr uint8_t sS2 = static_cast<uint8_t>(TcpState::syn_sent2);

// kTransitions[dir][segment class][current state] -> next state.
// FIN_WAIT: a FIN seen; CLOSE_WAIT: that FIN acknowledged; LAST_ACK: FINs
// seen from both ends; a FIN from an end that already sent one keeps the
// state (handled in track()).
constexpr uint8_t kTransitions[2][kSegmentClassCount][kTcpStateCount] = {
    {
        // original direction
        //        sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /*syn   */ {sSS, sSS, kIG, kIG, kIG, kIG, kIG, sSS, sSS, sS2},
        /*synack*/ {kIV, kIV, sSR, kIV, kIV, kIV, kIV, kIV, kIV, sSR},
        /*fin   */ {kIV, kIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, kIV},
        /*ack   */ {sES, kIV, sES, sES, sCW, sCW, sTW, sTW, sCL, kIV},
        /*rst   */ {kIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /*none  */ {kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV},
    },
    {
        // reply direction
        //        sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
        /*syn   */ {kIV, sS2, kIV, kIV, kIV, kIV, kIV, sSS, kIV, sS2},
        /*synack*/ {kIV, sSR, kIG, kIG, kIG, kIG, kIG, kIG, kIG, sSR},
        /*fin   */ {kIV, kIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, kIV},
        /*ack   */ {kIV, kIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, kIG},
        /*rst   */ {kIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL},
        /*none  */ {kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV, kIV},
    },
};

uint32_t segment_end(const ParsedPacket& p) {
  uint32_t end = p.tcp.seq + p.tcp.payload_len;
  if (p.tcp.flags & tcpflag::kSyn) ++end;
  if (p.tcp.flags & tcpflag::kFin) ++end;
  return end;
}

// Records what a SYN or SYN/ACK tells about its sender.
void init_sender_from_syn(TcpSlice& s, int d, const ParsedPacket& p) {
  uint32_t end = segment_end(p);
  s.sender[d].end = s.sender[d].maxend = end;
  s.sender[d].maxwin = p.tcp.window == 0 ? 1 : p.tcp.window;  // never scaled in a SYN
  s.flags[d] &= static_cast<uint8_t>(~(TcpSlice::kWindowScale | TcpSlice::kSackPermitted));
  s.scale[d] = 0;
  if (p.tcp.wscale != 0xff) {
    s.flags[d] |= TcpSlice::kWindowScale;
    s.scale[d] = p.tcp.wscale;
  }
  if (p.tcp.sack_permitted) s.flags[d] |= TcpSlice::kSackPermitted;
  if (d == 0) s.syn_data = p.tcp.payload_len;
}

// The window check of the file comment. With update false nothing is
// written; with update true the slice advances only when the check passes.
bool in_window(TcpSlice& s, const ParsedPacket& p, Dir dir, bool update) {
  const int d = static_cast<int>(dir);
  const int r = 1 - d;
  TcpSender& sender = s.sender[d];
  TcpSender& receiver = s.sender[r];
  const uint8_t flags = p.tcp.flags;
  Segment g;
  g.seq = p.tcp.seq;
  g.end = segment_end(p);
  g.win = p.tcp.window;
  const bool liberal = (s.flags[d] | s.flags[r]) & TcpSlice::kLiberal;

  if (sender.maxwin == 0) {
    // First segment seen from this end.
    if (!update) {
      // Its sequence numbers cannot be judged yet, but what it acknowledges
      // can (III and IV): an ignored segment passes only when in window.
      const bool has_ack = (flags & tcpflag::kAck) && !((flags & tcpflag::kRst) && p.tcp.ack == 0);
      if (liberal || !has_ack || receiver.maxwin == 0) return true;
      uint32_t sack = p.tcp.ack;
      if (p.tcp.sack_blocks != 0 && after(p.tcp.sack_right, sack)) sack = p.tcp.sack_right;
      return !after(sack, receiver.end) && !before(sack, receiver.end - 66000);
    }
    if (flags & tcpflag::kSyn) {
      // SYN/ACK answering the SYN, or a SYN of a simultaneous open.
      init_sender_from_syn(s, d, p);
      if (!(flags & tcpflag::kAck)) return true;
    } else {
      // Picked up mid-stream (loose pickup): learn what the segment shows.
      sender.end = g.end;
      uint32_t swin = g.win << window_shift(s, d);
      sender.maxwin = swin == 0 ? 1 : swin;
      sender.maxend = g.end + sender.maxwin;
      if (receiver.maxwin == 0) {
        receiver.end = receiver.maxend = p.tcp.ack;
      } else if (p.tcp.ack == receiver.end + 1) {
        ++receiver.end;  // a reply to a keepalive
      }
    }
  } else if (update && (flags & tcpflag::kSyn)) {
    // A SYN (or SYN/ACK) sent again with a new initial sequence number
    // (RFC 9293 3.4.1: a restarted end picks a larger one). Only a SYN: data
    // the responder sends before the third ACK (TCP Fast Open) is no restart.
    const bool restarted = ((s.state == TcpState::syn_sent && dir == Dir::original) ||
                            (s.state == TcpState::syn_recv && dir == Dir::reply)) &&
                           after(g.end, sender.end);
    // In SYN_SENT2 the responder's ISN came from a bare SYN, which needs no
    // sequence number to forge; a SYN/ACK acknowledging exactly the opener's
    // SYN (checked in track()) is the better witness and replaces it.
    const bool answers_syn = s.state == TcpState::syn_sent2 && dir == Dir::reply &&
                             (flags & tcpflag::kAck) && p.tcp.ack == receiver.end;
    if (restarted || answers_syn) init_sender_from_syn(s, d, p);
  }

  g.ack = p.tcp.ack;
  if (!(flags & tcpflag::kAck)) {
    g.ack = receiver.end;  // no ACK: nothing to check
  } else if ((flags & tcpflag::kRst) && g.ack == 0) {
    g.ack = receiver.end;  // stacks that set ACK on RST with a zero ack
  }
  g.sack = g.ack;
  if (p.tcp.sack_blocks != 0 && after(p.tcp.sack_right, g.sack)) g.sack = p.tcp.sack_right;

  if (!(flags & tcpflag::kSyn)) g.win <<= window_shift(s, d);

  if (!window_ok(s, d, g) && !liberal) return false;
  if (update) advance(s, p, d, g, flags & tcpflag::kAck);
  return true;
}

// Whether end e has sent a FIN and the other end has acknowledged it.
bool fin_acked(const TcpSlice& s, int e) {
  const int o = 1 - e;
  return (s.flags[e] & TcpSlice::kFinSent) && (s.flags[o] & TcpSlice::kMaxAckSet) &&
         !before(s.sender[o].maxack, s.sender[e].end);
}

}  // namespace

const char* tcp_state_name(TcpState state) {
  static constexpr const char* kNames[kTcpStateCount] = {
      "NONE",       "SYN_SENT", "SYN_RECV",  "ESTABLISHED", "FIN_WAIT",
      "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",       "SYN_SENT2"};
  auto i = static_cast<uint8_t>(state);
  return i < kTcpStateCount ? kNames[i] : "INVALID";
}

Reason TcpModule::can_open(const ParsedPacket& p, const TrackerSettings& settings) {
  const uint8_t f = p.tcp.flags;
  if ((f & tcpflag::kSyn) && !(f & tcpflag::kAck)) return Reason::new_connection;
  if (settings.tcp_loose_pickup && classify(f) == kSegAck) return Reason::new_connection;
  return Reason::tcp_mid_stream;
}

void TcpModule::open(Slice& s, const ParsedPacket& p, const TrackerSettings&) {
  s = Slice{};
  if (p.tcp.flags & tcpflag::kSyn) {
    init_sender_from_syn(s, 0, p);
    s.state = TcpState::syn_sent;
    return;
  }
  // Loose pickup: the history is lost, so follow windows without enforcing.
  const uint32_t end = segment_end(p);
  s.sender[0].end = end;
  s.sender[0].maxwin = p.tcp.window == 0 ? 1 : p.tcp.window;
  s.sender[0].maxend = end + s.sender[0].maxwin;
  s.flags[0] = s.flags[1] = TcpSlice::kSackPermitted | TcpSlice::kLiberal;
  s.state = TcpState::established;
}

Outcome TcpModule::track_general(Slice& s, const ParsedPacket& p, Dir dir,
                                 const TrackerSettings& /*settings*/) {
  const int d = static_cast<int>(dir);
  const SegmentClass cls = classify(p.tcp.flags);
  const TcpState old_state = s.state;
  const uint8_t next = kTransitions[d][cls][static_cast<uint8_t>(old_state)];

  if (next == kIV) return Outcome::drop(Reason::tcp_invalid_state);
  if (next == kIG) {
    return in_window(s, p, dir, false) ? Outcome::pass(false)
                                       : Outcome::drop(Reason::tcp_out_of_window);
  }
  TcpState next_state = static_cast<TcpState>(next);

  // A SYN on a finished connection starts a new one on the same tuple.
  if (cls == kSegSyn && (old_state == TcpState::time_wait || old_state == TcpState::close)) {
    return Outcome::reopen();
  }

  if (cls == kSegSynAck) {
    // The SYN/ACK must acknowledge exactly the SYN it answers: with the data
    // the SYN carried (RFC 7413) or without it (RFC 9293 3.10.7.2).
    const TcpSender& syn_sender = s.sender[1 - d];
    const uint32_t syn_only = syn_sender.end - (dir == Dir::reply ? s.syn_data : 0u);
    if (syn_sender.maxwin != 0 && p.tcp.ack != syn_sender.end && p.tcp.ack != syn_only) {
      return Outcome::drop(Reason::tcp_bad_synack);
    }
  }

  if (cls == kSegRst) {
    if (old_state == TcpState::syn_sent) {
      // Only a RST that acknowledges the SYN refuses it (RFC 9293 3.10.7.3);
      // the opener may abort its own attempt with its sequence number.
      bool ok = dir == Dir::reply
                    ? (p.tcp.flags & tcpflag::kAck) && p.tcp.ack == s.sender[0].end
                    : !before(p.tcp.seq, s.sender[0].end - 1) && !after(p.tcp.seq, s.sender[0].end);
      if (!ok) return Outcome::drop(Reason::tcp_rst_out_of_window);
      s.state = TcpState::close;
      return Outcome::pass(true);
    }
    const TcpSender& receiver = s.sender[1 - d];
    const bool liberal = (s.flags[0] | s.flags[1]) & TcpSlice::kLiberal;
    if (!liberal && (s.flags[1 - d] & TcpSlice::kMaxAckSet) && before(p.tcp.seq, receiver.maxack)) {
      return Outcome::drop(Reason::tcp_rst_out_of_window);
    }
    if (!in_window(s, p, dir, false)) return Outcome::drop(Reason::tcp_rst_out_of_window);
  }

  if (cls == kSegFin && (s.flags[d] & TcpSlice::kFinSent)) {
    next_state = old_state;  // the same end's FIN again: a retransmission
  }

  const Slice before_update = s;
  if (!in_window(s, p, dir, true)) {
    s = before_update;
    return Outcome::drop(Reason::tcp_out_of_window);
  }
  if (cls == kSegAck) {
    // An ACK closes FIN_WAIT only when it acknowledges the FIN, and LAST_ACK
    // only when both FINs are acknowledged: the FIN sender's own ACKs and a
    // repeated ACK of the first FIN are neither.
    if (old_state == TcpState::fin_wait && !fin_acked(s, 0) && !fin_acked(s, 1)) {
      next_state = old_state;
    }
    if (old_state == TcpState::last_ack && !(fin_acked(s, 0) && fin_acked(s, 1))) {
      next_state = old_state;
    }
  }
  s.state = next_state;
  if (cls == kSegFin) s.flags[d] |= TcpSlice::kFinSent;
  return Outcome::pass(!same_bytes(before_update, s));
}

bool TcpModule::valid(const Slice& s) {
  if (s.state == TcpState::none || static_cast<uint8_t>(s.state) >= kTcpStateCount) return false;
  for (int d = 0; d < 2; ++d) {
    if (s.scale[d] > 14) return false;
  }
  // The opener has always been seen; the other end may not have been yet.
  return s.sender[0].maxwin != 0;
}

const char* TcpModule::state_name(const Slice& s) {
  return tcp_state_name(s.state);
}

bool TcpModule::quoted_segment_in_window(const Slice& s, Dir dir, uint32_t seq) {
  const int d = static_cast<int>(dir);
  const TcpSender& sender = s.sender[d];
  const TcpSender& receiver = s.sender[1 - d];
  if (sender.maxwin == 0) return false;
  if ((s.flags[0] | s.flags[1]) & TcpSlice::kLiberal) return true;
  return !after(seq, sender.maxend) && !before(seq, sender.end - receiver.maxwin - 1);
}

}  // namespace holdfast
