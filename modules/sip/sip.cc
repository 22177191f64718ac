#include "modules/sip/sip.h"

#include <algorithm>
#include <cstring>

#include "dataplane/byteorder.h"

namespace holdfast {
namespace {

inline bool after(uint32_t a, uint32_t b) {
  return static_cast<int32_t>(a - b) > 0;
}
inline bool reached(uint32_t now_ms, uint32_t at_ms) {
  return static_cast<int32_t>(now_ms - at_ms) >= 0;
}
inline Dir other(Dir d) {
  return d == Dir::original ? Dir::reply : Dir::original;
}
inline size_t at(Dir d) {
  return static_cast<size_t>(d);
}

bool contains(const ExpectationKey* keys, uint32_t n, const ExpectationKey& k) {
  for (uint32_t i = 0; i < n; ++i) {
    if (keys[i] == k) return true;
  }
  return false;
}

// Is a stream's address one its announcer may use?
bool address_allowed(const sip::MediaStream& m, const IpAddr& signalling,
                     const SipSettings& settings) {
  return m.address == signalling || settings.in_media_range(m.address);
}

struct Ctx {
  const SipSignalling& sig;
  uint32_t now_ms;
  const SipSettings& settings;
  SipHost& host;
  SipCounters& counters;
};

// Opens the call's current pinholes and closes those of `old` it no longer
// has. Opening an open one renews its expiry.
void apply_pinholes(const SipCall& call, uint16_t index, const ExpectationKey* old, uint32_t old_n,
                    bool count_refusals, Ctx& x) {
  ExpectationKey now[SipCall::kMaxPinholes];
  const uint32_t n =
      SipModule::pinholes(call, x.sig, x.settings, now, count_refusals ? &x.counters : nullptr);
  for (uint32_t i = 0; i < old_n; ++i) {
    if (!contains(now, n, old[i])) x.host.close_expectation(old[i], index);
  }
  for (uint32_t i = 0; i < n; ++i) {
    const auto r = x.host.open_expectation(now[i], call.expires_ms, index);
    const bool fresh = !contains(old, old_n, now[i]);
    switch (r) {
      case ExpectationHost::Result::opened:
        if (fresh) ++x.counters.pinholes_opened;
        break;
      case ExpectationHost::Result::table_full:
        if (fresh) ++x.counters.refused_table_full;
        break;
      case ExpectationHost::Result::in_use:
        if (fresh) ++x.counters.refused_in_use;
        break;
      case ExpectationHost::Result::foreign:
        if (fresh) ++x.counters.refused_other_worker;
        break;
    }
  }
}

// Ends the call in slot `slot` of the session: pinholes closed, media
// connections closed (unless the call timed out: live media of a long call
// without signalling goes on under its own idle timeout), record freed.
void end_call(SipSession& s, uint8_t slot, Ctx& x, bool close_media = true) {
  const uint16_t index = s.calls[slot];
  SipCall& call = *x.host.call(index);
  ExpectationKey keys[SipCall::kMaxPinholes];
  const uint32_t n = SipModule::pinholes(call, x.sig, x.settings, keys, nullptr);
  for (uint32_t i = 0; i < n; ++i) x.host.close_expectation(keys[i], index);
  for (uint8_t i = 0; close_media && i < call.media_count; ++i) {
    if (x.host.close_media(call.media[i])) ++x.counters.media_closed;
  }
  x.host.free_call(index);
  for (uint8_t k = slot; k + 1 < s.call_count; ++k) s.calls[k] = s.calls[k + 1];
  --s.call_count;
}

int find_call(const SipSession& s, const sip::Message& m, SipHost& host) {
  for (uint8_t i = 0; i < s.call_count; ++i) {
    const SipCall& c = *host.call(s.calls[i]);
    if (c.call_id_hash == m.call_id_hash && c.call_id_len == m.call_id_len &&
        std::memcmp(c.call_id, m.call_id, c.call_id_len) == 0) {
      return i;
    }
  }
  return -1;
}

// A new call for an INVITE; -1 when none can be followed.
int start_call(SipSession& s, const sip::Message& m, Ctx& x) {
  if (s.call_count >= x.settings.calls_per_session) {
    // The oldest call not yet confirmed gives way; confirmed calls stay.
    int victim = -1;
    for (uint8_t i = 0; i < s.call_count && victim < 0; ++i) {
      if (x.host.call(s.calls[i])->state != SipCall::confirmed) victim = i;
    }
    if (victim < 0) {
      ++x.counters.calls_refused;
      return -1;
    }
    end_call(s, static_cast<uint8_t>(victim), x);
    ++x.counters.calls_replaced;
  }
  const int32_t index = x.host.new_call();
  if (index < 0) {
    ++x.counters.calls_full;
    return -1;
  }
  SipCall& c = *x.host.call(static_cast<uint16_t>(index));
  const uint16_t session = c.session;  // set by the host
  const uint32_t started = c.started_s;
  std::memset(static_cast<void*>(&c), 0, sizeof c);
  c.session = session;
  c.started_s = started;
  c.call_id_hash = m.call_id_hash;
  c.call_id_len = m.call_id_len;
  std::memcpy(c.call_id, m.call_id, m.call_id_len);
  c.state = SipCall::inviting;
  c.pending_dir = SipCall::kNoOffer;
  s.calls[s.call_count++] = static_cast<uint16_t>(index);
  ++x.counters.calls;
  return s.call_count - 1;
}

void activate(SipCall& c, const sip::SessionDescription& answer, Dir dir, SipCounters& counters) {
  c.active[at(other(dir))] = c.pending;
  c.active[at(dir)] = answer;
  c.has_active = 1;
  c.pending_dir = SipCall::kNoOffer;
  ++counters.answers;
}

// One complete, well-formed message. Returns whether the session changed.
bool handle(SipSession& s, const sip::Message& m, Dir dir, Ctx& x) {
  ++x.counters.messages;
  bool session_changed = false;
  int slot = find_call(s, m, x.host);
  if (slot < 0) {
    if (!m.request || m.method != sip::Method::invite) return false;  // not a call we follow
    slot = start_call(s, m, x);
    if (slot < 0) return true;  // replacing may have ended a call
    session_changed = true;
  }
  const uint16_t index = s.calls[slot];
  SipCall& c = *x.host.call(index);
  ExpectationKey old[SipCall::kMaxPinholes];
  const uint32_t old_n = SipModule::pinholes(c, x.sig, x.settings, old, nullptr);
  const bool had_active = c.has_active != 0;
  c.expires_ms = x.now_ms + x.settings.call_timeout_ms;
  if (m.has_sdp && m.sdp.ignored != 0) x.counters.streams_ignored += m.sdp.ignored;
  const uint8_t from_other = static_cast<uint8_t>(other(dir));
  bool ends = false;
  bool descriptions_changed = false;
  if (m.request) {
    switch (m.method) {
      case sip::Method::invite:
      case sip::Method::update:
        if (m.has_sdp) {
          c.pending = m.sdp;
          c.pending_dir = static_cast<uint8_t>(dir);
          ++x.counters.offers;
        } else {
          c.pending_dir = SipCall::kNoOffer;  // a late offer comes in the response
        }
        break;
      case sip::Method::ack:
      case sip::Method::prack:
        if (m.has_sdp && c.pending_dir == from_other) {
          activate(c, m.sdp, dir, x.counters);
          descriptions_changed = true;
        }
        break;
      case sip::Method::bye:
        ends = true;
        break;
      case sip::Method::cancel:
        ends = c.state != SipCall::confirmed;
        break;
      default:
        break;
    }
  } else if (m.method == sip::Method::invite || m.method == sip::Method::update) {
    const bool success = m.status >= 200 && m.status < 300;
    if (m.status >= 300) {
      c.pending_dir = SipCall::kNoOffer;
      ends = m.method == sip::Method::invite && c.state != SipCall::confirmed;
    } else if (m.has_sdp && (success || (m.status >= 180 && m.status < 190))) {
      if (c.pending_dir == from_other) {
        activate(c, m.sdp, dir, x.counters);
      } else if (c.has_active) {
        c.active[at(dir)] = m.sdp;  // a repeated or revised answer
      } else {
        c.pending = m.sdp;
        c.pending_dir = static_cast<uint8_t>(dir);
        ++x.counters.offers;
      }
      descriptions_changed = c.has_active != 0;
    }
    if (success && m.method == sip::Method::invite) c.state = SipCall::confirmed;
  }
  if (ends) {
    end_call(s, static_cast<uint8_t>(slot), x);
    ++x.counters.calls_ended;
    return true;
  }
  // Refusals are counted when descriptions change, not on every renewal.
  apply_pinholes(c, index, old, old_n, descriptions_changed || (c.has_active && !had_active), x);
  x.host.put_call(index);
  return session_changed;
}

}  // namespace

void SipModule::open(SipSession& s) {
  std::memset(static_cast<void*>(&s), 0, sizeof s);
}

SipModule::Result SipModule::on_packet(SipSession& s, const ParsedPacket& p, Dir dir,
                                       const SipSignalling& sig, uint32_t now_ms,
                                       const SipSettings& settings, SipHost& host,
                                       SipCounters& counters) {
  Ctx x{sig, now_ms, settings, host, counters};
  Result r;
  r.session_changed = expire_calls(s, sig, now_ms, settings, host, counters) != 0;
  if (p.proto == kProtoUdp) {
    if (p.fragment || p.l4_len < 8) return r;  // a fragment holds part of a message: not read
    const uint8_t* udp = p.frame + p.l4_offset;
    const uint32_t length = std::min<uint32_t>(load_be16(udp + 4), p.l4_len);
    if (length < 8 || uint32_t{p.l4_offset} + length > p.frame_len) return r;
    sip::Message m;
    if (!sip::parse_datagram(udp + 8, length - 8, &m)) return r;  // keepalive
    if (m.error != sip::Error::none) {
      ++counters.malformed;
      r.drop = true;
      return r;
    }
    if (handle(s, m, dir, x)) r.session_changed = true;
    return r;
  }
  SipStream& d = s.dir[at(dir)];
  if (p.tcp.flags & tcpflag::kSyn) {
    // A SYN (or SYN/ACK) fixes where this direction's bytes start.
    if (!d.synced || d.next_seq != p.tcp.seq + 1) {
      d.next_seq = p.tcp.seq + 1;
      d.synced = 1;
      d.reader = sip::StreamReader{};
      r.session_changed = true;
    }
    return r;
  }
  const uint32_t len = p.tcp.payload_len;
  if (!d.synced || len == 0) return r;
  if (p.frame_len < uint32_t{p.l4_offset} + p.tcp.header_len + len) return r;
  const uint8_t* payload = p.frame + p.l4_offset + p.tcp.header_len;
  const uint32_t seq = p.tcp.seq;
  if (after(seq, d.next_seq)) {
    // Ahead of a gap: the message in progress is lost, and the bytes in the
    // gap will not be read. Reading goes on in this segment, from its first
    // start line.
    d.reader.resync();
    d.next_seq = seq;
    ++counters.out_of_order_lost;
    r.session_changed = true;
  }
  const uint32_t skip = d.next_seq - seq;
  if (skip >= len) return r;  // a retransmission of what was read
  // A segment completing a malformed message is dropped whole, and the
  // reader stays where it was: read it on a copy first.
  sip::StreamReader probe = d.reader;
  bool bad = false;
  probe.feed(payload + skip, len - skip,
             [&](const sip::Message& m) { bad = bad || m.error != sip::Error::none; });
  if (bad) {
    ++counters.malformed;
    r.drop = true;
    return r;
  }
  d.reader.feed(payload + skip, len - skip, [&](const sip::Message& m) { handle(s, m, dir, x); });
  d.next_seq += len - skip;
  r.session_changed = true;
  return r;
}

void SipModule::close(SipSession& s, const SipSignalling& sig, uint32_t now_ms,
                      const SipSettings& settings, SipHost& host, SipCounters& counters) {
  Ctx x{sig, now_ms, settings, host, counters};
  while (s.call_count != 0) {
    const auto last = static_cast<uint8_t>(s.call_count - 1);
    const bool timed_out = reached(now_ms, host.call(s.calls[last])->expires_ms);
    end_call(s, last, x, !timed_out);
    ++(timed_out ? counters.calls_timed_out : counters.calls_ended);
  }
}

uint32_t SipModule::expire_calls(SipSession& s, const SipSignalling& sig, uint32_t now_ms,
                                 const SipSettings& settings, SipHost& host,
                                 SipCounters& counters) {
  Ctx x{sig, now_ms, settings, host, counters};
  uint32_t ended = 0;
  for (uint8_t i = 0; i < s.call_count;) {
    if (reached(now_ms, host.call(s.calls[i])->expires_ms)) {
      end_call(s, i, x, /*close_media=*/false);
      ++counters.calls_timed_out;
      ++ended;
    } else {
      ++i;
    }
  }
  return ended;
}

void SipModule::media_opened(SipCall& call, uint64_t id, uint32_t position, uint32_t worker) {
  for (uint8_t i = 0; i < call.media_count; ++i) {
    if (call.media[i].position == position && call.media[i].worker == worker) {
      call.media[i].id = id;  // the same flow table entry, a new connection
      return;
    }
  }
  SipMedia* slot;
  if (call.media_count < SipCall::kMaxMedia) {
    slot = &call.media[call.media_count++];
  } else {
    // Full (media flows that idled out and came back): the oldest entry,
    // most likely a connection already gone, gives way.
    slot = &call.media[call.media_next];
    call.media_next = static_cast<uint8_t>((call.media_next + 1) % SipCall::kMaxMedia);
  }
  slot->id = id;
  slot->position = position;
  slot->worker = static_cast<uint16_t>(worker);
  slot->reserved = 0;
}

uint32_t SipModule::reopen(const SipCall& call, uint16_t index, const SipSignalling& sig,
                           const SipSettings& settings, SipHost& host) {
  ExpectationKey keys[SipCall::kMaxPinholes];
  const uint32_t n = pinholes(call, sig, settings, keys, nullptr);
  uint32_t open = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (host.open_expectation(keys[i], call.expires_ms, index) == ExpectationHost::Result::opened) {
      ++open;
    }
  }
  return open;
}

uint32_t SipModule::pinholes(const SipCall& call, const SipSignalling& sig,
                             const SipSettings& settings, ExpectationKey* out,
                             SipCounters* counters) {
  if (!call.has_active) return 0;
  const sip::SessionDescription& a = call.active[0];
  const sip::SessionDescription& b = call.active[1];
  const uint8_t streams = std::min(a.count, b.count);
  uint32_t n = 0;
  for (uint8_t i = 0; i < streams && i < sip::kMaxStreams; ++i) {
    const sip::MediaStream& sa = a.streams[i];
    const sip::MediaStream& sb = b.streams[i];
    if (sa.kind == sip::MediaKind::other || sb.kind == sip::MediaKind::other) continue;
    if (sa.port == 0 || sb.port == 0) continue;
    if (!address_allowed(sa, sig.addr[0], settings) ||
        !address_allowed(sb, sig.addr[1], settings) || sa.address.is_v4() != sb.address.is_v4()) {
      if (counters != nullptr) ++counters->refused_address;
      continue;
    }
    // To A, from B (B's packets arrive where B's signalling does), and back;
    // a port below 1024 opens nothing (bounce to a privileged service).
    auto add = [&](const sip::MediaStream& from, const sip::MediaStream& to, uint16_t port,
                   Side side) {
      if (port < 1024) {
        if (counters != nullptr) ++counters->refused_low_port;
        return;
      }
      out[n++] = make_expectation_key(from.address, to.address, port, kProtoUdp, sig.zone, side);
    };
    add(sb, sa, sa.port, sig.side[1]);
    if (sa.rtcp_port != sa.port && sa.rtcp_port != 0) add(sb, sa, sa.rtcp_port, sig.side[1]);
    add(sa, sb, sb.port, sig.side[0]);
    if (sb.rtcp_port != sb.port && sb.rtcp_port != 0) add(sa, sb, sb.rtcp_port, sig.side[0]);
  }
  return n;
}

bool SipModule::valid(const SipSession& s) {
  if (s.call_count > SipSettings::kMaxCallsPerSession) return false;
  for (const SipStream& d : s.dir) {
    if (d.synced > 1 || !d.reader.valid()) return false;
  }
  return true;
}

bool SipModule::valid(const SipCall& c) {
  if (c.call_id_len > sip::kMaxCallId) return false;
  if (c.state != SipCall::inviting && c.state != SipCall::confirmed) return false;
  if (c.has_active > 1 || c.media_count > SipCall::kMaxMedia ||
      c.media_next >= SipCall::kMaxMedia) {
    return false;
  }
  if (c.pending_dir > 1 && c.pending_dir != SipCall::kNoOffer) return false;
  for (const sip::SessionDescription* d : {&c.active[0], &c.active[1], &c.pending}) {
    if (d->count > sip::kMaxStreams) return false;
    for (uint8_t i = 0; i < d->count; ++i) {
      if (static_cast<uint8_t>(d->streams[i].kind) > static_cast<uint8_t>(sip::MediaKind::other)) {
        return false;
      }
    }
  }
  return true;
}

const char* SipModule::state_name(const SipCall& c) {
  if (c.state == SipCall::confirmed) return c.has_active ? "confirmed" : "confirmed_no_media";
  return c.has_active ? "early_media" : "inviting";
}

}  // namespace holdfast
