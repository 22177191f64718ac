#include "modules/ftp/ftp.h"

#include <cstring>

namespace holdfast {
namespace {

inline bool before(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a - b) < 0;
}
inline bool after(uint32_t a, uint32_t b) {
  return before(b, a);
}

void remove_pending(FtpSlice& s, uint8_t i) {
  for (uint8_t k = i; k + 1 < s.pending_count; ++k) s.pending[k] = s.pending[k + 1];
  --s.pending_count;
}

// Opens (or refuses) the expectation an announcement asks for. Returns
// whether the slice changed.
bool announce(FtpSlice& s, const ftp::Announcement& a, const ParsedPacket& p, uint32_t now_ms,
              const FtpSettings& settings, ExpectationHost& host, FtpCounters& counters) {
  ++counters.announcements;
  // The announcer is the packet's source: the address must be its own
  // (RFC 2577 3; a 229 reply names no address and means the server's).
  if (a.has_address && !(a.address == p.src)) {
    ++counters.refused_bounce;
    return false;
  }
  if (a.port < 1024) {
    ++counters.refused_low_port;
    return false;
  }
  // The data connection comes from the other end, whose packets arrive on
  // the other port, to the announced port.
  const ExpectationKey key =
      make_expectation_key(p.dst, p.src, a.port, kProtoTcp, p.zone, other_side(p.side));
  const uint32_t expires = now_ms + settings.expectation_timeout_ms;
  for (uint8_t i = 0; i < s.pending_count; ++i) {
    if (s.pending[i].key == key) {
      // Announced again: a new lease on the same pinhole.
      if (host.open_expectation(key, expires, 0) != ExpectationHost::Result::opened) return false;
      s.pending[i].expires_ms = expires;
      return true;
    }
  }
  bool changed = false;
  if (s.pending_count == FtpSlice::kMaxPending) {
    // A session keeps a bounded number: the oldest gives way.
    host.close_expectation(s.pending[0].key, 0);
    remove_pending(s, 0);
    ++counters.replaced_pending;
    changed = true;
  }
  switch (host.open_expectation(key, expires, 0)) {
    case ExpectationHost::Result::opened:
      break;
    case ExpectationHost::Result::table_full:
      ++counters.refused_table_full;
      return changed;
    case ExpectationHost::Result::in_use:
    case ExpectationHost::Result::foreign:  // never: announced addresses are the control
                                            // connection's
      ++counters.refused_in_use;
      return changed;
  }
  s.pending[s.pending_count].key = key;
  s.pending[s.pending_count].expires_ms = expires;
  s.pending[s.pending_count].reserved = 0;
  ++s.pending_count;
  ++counters.expectations_opened;
  return true;
}

bool expired(const FtpPending& e, uint32_t now_ms) {
  return static_cast<int32_t>(now_ms - e.expires_ms) >= 0;
}

// Forgets pending expectations that have expired (the pipeline's cleaner
// removes them from the table on its own time).
bool prune(FtpSlice& s, uint32_t now_ms) {
  bool changed = false;
  for (uint8_t i = 0; i < s.pending_count;) {
    if (expired(s.pending[i], now_ms)) {
      remove_pending(s, i);
      changed = true;
    } else {
      ++i;
    }
  }
  return changed;
}

}  // namespace

void FtpModule::open(FtpSlice& s) {
  std::memset(static_cast<void*>(&s), 0, sizeof s);
}

bool FtpModule::on_segment(FtpSlice& s, const ParsedPacket& p, Dir dir, uint32_t now_ms,
                           const FtpSettings& settings, ExpectationHost& host,
                           FtpCounters& counters) {
  FtpDirection& d = s.dir[static_cast<size_t>(dir)];
  bool changed = prune(s, now_ms);
  if (p.tcp.flags & tcpflag::kSyn) {
    // A SYN (or SYN/ACK) fixes where this direction's bytes start.
    if (!d.synced || d.next_seq != p.tcp.seq + 1) {
      d.next_seq = p.tcp.seq + 1;
      d.synced = 1;
      d.held_len = 0;
      changed = true;
    }
    return changed;
  }
  const uint32_t len = p.tcp.payload_len;
  if (!d.synced || len == 0) return changed;
  if (p.frame_len < uint32_t{p.l4_offset} + p.tcp.header_len + len) return changed;  // parser bug
  const uint8_t* payload = p.frame + p.l4_offset + p.tcp.header_len;
  const bool from_client = dir == Dir::original;
  auto on_line = [&](std::string_view line) {
    ftp::ParseError error;
    const auto a = ftp::parse_line(line, from_client, &error);
    if (a) {
      announce(s, *a, p, now_ms, settings, host, counters);  // the slice changes anyway
    } else if (error == ftp::ParseError::malformed) {
      ++counters.refused_malformed;
    }
  };

  const uint32_t seq = p.tcp.seq;
  if (after(seq, d.next_seq)) {
    // Ahead of a gap: hold it until the gap closes, if there is room.
    if (len <= ftp::kMaxLine && (d.held_len == 0 || d.held_seq == seq)) {
      std::memcpy(d.held, payload, len);
      d.held_seq = seq;
      d.held_len = static_cast<uint16_t>(len);
      ++counters.out_of_order_held;
    } else {
      // Cannot hold it: give up the gap and read on from here. A line
      // broken by the gap is lost, never misread: the assembler restarts.
      d.line = ftp::LineAssembler{};
      d.next_seq = seq + len;
      d.held_len = 0;
      ++counters.out_of_order_lost;
    }
    return true;
  }
  // In order, or a retransmission reaching past what was read.
  const uint32_t skip = d.next_seq - seq;
  if (skip >= len) return changed;  // nothing new
  d.line.feed(payload + skip, len - skip, on_line);
  d.next_seq += len - skip;
  // The gap may be closed now.
  if (d.held_len != 0 && !after(d.held_seq, d.next_seq)) {
    const uint32_t held_skip = d.next_seq - d.held_seq;
    if (held_skip < d.held_len) {
      d.line.feed(d.held + held_skip, d.held_len - held_skip, on_line);
      d.next_seq += d.held_len - held_skip;
    }
    d.held_len = 0;
  }
  return true;
}

void FtpModule::close(FtpSlice& s, ExpectationHost& host) {
  for (uint8_t i = 0; i < s.pending_count; ++i) host.close_expectation(s.pending[i].key, 0);
  s.pending_count = 0;
}

void FtpModule::consumed(FtpSlice& s, const ExpectationKey& key) {
  for (uint8_t i = 0; i < s.pending_count; ++i) {
    if (s.pending[i].key == key) {
      remove_pending(s, i);
      return;
    }
  }
}

uint32_t FtpModule::reopen(FtpSlice& s, ExpectationHost& host) {
  for (uint8_t i = 0; i < s.pending_count;) {
    if (host.open_expectation(s.pending[i].key, s.pending[i].expires_ms, 0) ==
        ExpectationHost::Result::opened) {
      ++i;
    } else {
      remove_pending(s, i);
    }
  }
  return s.pending_count;
}

bool FtpModule::valid(const FtpSlice& s) {
  if (s.pending_count > FtpSlice::kMaxPending) return false;
  for (const FtpDirection& d : s.dir) {
    if (d.held_len > ftp::kMaxLine || d.synced > 1 || !d.line.valid()) return false;
    if (d.held_len != 0 && d.synced == 0) return false;
  }
  for (uint8_t i = 0; i < s.pending_count; ++i) {
    const ExpectationKey& k = s.pending[i].key;
    if (k.proto != kProtoTcp || k.dport < 1024 || k.side > 1 || k.src.is_v4() != k.dst.is_v4()) {
      return false;
    }
    for (uint8_t b : k.pad) {
      if (b != 0) return false;
    }
  }
  return true;
}

}  // namespace holdfast
