#include "dataplane/pipeline.h"

#include <algorithm>
#include <unordered_map>

#include "dataplane/steering.h"
#include "modules/l4_dispatch.h"

namespace holdfast {
namespace {

constexpr size_t slot(ModuleId id) {
  return static_cast<size_t>(id);
}

}  // namespace

uint64_t PipelineCounters::packets() const {
  uint64_t n = 0;
  for (uint64_t v : reasons) n += v;
  return n;
}

uint64_t PipelineCounters::passed() const {
  uint64_t n = 0;
  for (size_t i = 0; i < kReasonCount; ++i) {
    if (kReasonPasses[i]) n += reasons[i];
  }
  return n;
}

std::unique_ptr<Pipeline> Pipeline::create(const PipelineSettings& settings, const Policy* policy,
                                           ConnIdSource* ids, int socket, std::string* error) {
  std::unique_ptr<Pipeline> p(new Pipeline());
  p->settings_ = settings;
  p->ids_ = ids;
  p->flows_ = FlowTable::create("flows", settings.connections, socket, error);
  if (!p->flows_) return nullptr;
  p->fragments_ = FragmentTable::create("frags", settings.fragments, socket, error);
  if (!p->fragments_) return nullptr;
  p->expectations_ =
      ExpectationTable::create("expect", expectation_capacity(settings), socket, error);
  if (!p->expectations_) return nullptr;
  if (!p->ftp_pool_.init(settings.ftp.sessions, socket, "FTP sessions", error) ||
      !p->sip_sessions_.init(settings.sip.sessions, socket, "SIP sessions", error) ||
      !p->sip_calls_.init(settings.sip.calls, socket, "SIP calls", error)) {
    return nullptr;
  }
  p->set_policy(policy);
  return p;
}

// Opens and closes the expectations of one master connection, and lends a
// SIP session the worker's call records and media connections.
class Pipeline::Expector final : public SipHost {
 public:
  Expector(Pipeline& pipeline, const Connection& master, uint32_t position)
      : pipeline_(pipeline),
        master_id_(master.id),
        master_pos_(position),
        module_(master.l7),
        l7_index_(master.l7_index) {}

  Result open_expectation(const ExpectationKey& key, uint32_t expires_ms,
                          uint16_t cookie) override {
    Expectation e{};
    e.key = key;
    e.master_id = master_id_;
    e.master_pos = master_pos_;
    e.expires_ms = expires_ms;
    e.module = module_;
    e.persistent = module_ == ModuleId::sip;
    e.cookie = cookie;
    e.master_worker = static_cast<uint8_t>(pipeline_.worker_);
    const uint32_t owner = pipeline_.owner_of(key);
    if (owner == pipeline_.worker_) return pipeline_.put_expectation(e);
    if (pipeline_.mail_ == nullptr) return Result::foreign;
    PinholeMessage m{};
    m.kind = PinholeMessage::Kind::open;
    m.cookie = cookie;
    m.expires_ms = expires_ms;
    m.master_id = master_id_;
    m.key = key;
    return pipeline_.post(owner, m) ? Result::opened : Result::foreign;
  }

  void close_expectation(const ExpectationKey& key, uint16_t cookie) override {
    const uint32_t owner = pipeline_.owner_of(key);
    if (owner == pipeline_.worker_) return pipeline_.erase_expectation(key, master_id_, cookie);
    if (pipeline_.mail_ == nullptr) return;
    PinholeMessage m{};
    m.kind = PinholeMessage::Kind::close;
    m.cookie = cookie;
    m.master_id = master_id_;
    m.key = key;
    pipeline_.post(owner, m);
  }

  SipCall* call(uint16_t index) override { return &pipeline_.sip_calls_[index].slice; }

  int32_t new_call() override {
    uint16_t index;
    auto* r = pipeline_.sip_calls_.take(&index);
    if (r == nullptr) return -1;
    r->position = master_pos_;
    r->reserved = 0;
    r->slice.session = l7_index_;
    r->slice.started_s = pipeline_.now_s_;
    return index;
  }

  void free_call(uint16_t index) override {
    const auto module = ckpt::kSipCallModule;
    ckpt::WorkerCheckpoint* w = pipeline_.ckpt_;
    if (w != nullptr && w->covers_slot(module, index)) w->erase(module, index);
    pipeline_.sip_calls_.give(index);
  }

  void put_call(uint16_t index) override { pipeline_.put_sip_call(index); }

  bool close_media(const SipMedia& m) override {
    if (m.worker == pipeline_.worker_) return pipeline_.close_connection(m.id, m.position);
    if (pipeline_.mail_ == nullptr || m.worker >= pipeline_.workers_) return false;
    PinholeMessage msg{};
    msg.kind = PinholeMessage::Kind::close_media;
    msg.master_id = master_id_;
    msg.media_id = m.id;
    msg.media_pos = m.position;
    return pipeline_.post(m.worker, msg);
  }

 private:
  Pipeline& pipeline_;
  uint64_t master_id_;
  uint32_t master_pos_;
  ModuleId module_;
  uint16_t l7_index_;
};

ExpectationHost::Result Pipeline::put_expectation(const Expectation& e) {
  ExpectationTable& t = *expectations_;
  int32_t pos = t.lookup(e.key);
  if (pos >= 0) {
    // Ours (a renewed lease), or another master's that has expired.
    const Expectation& old = t.at(static_cast<uint32_t>(pos));
    if ((old.master_id != e.master_id || old.cookie != e.cookie) && !expectation_expired(old)) {
      return ExpectationHost::Result::in_use;
    }
  } else {
    pos = t.insert(e.key);
    if (pos < 0) {
      clean_expectations(t.capacity());
      pos = t.insert(e.key);
      if (pos < 0) return ExpectationHost::Result::table_full;
    }
  }
  t.at(static_cast<uint32_t>(pos)) = e;
  return ExpectationHost::Result::opened;
}

void Pipeline::erase_expectation(const ExpectationKey& key, uint64_t master_id, uint16_t cookie) {
  const int32_t pos = expectations_->lookup(key);
  if (pos < 0) return;
  const Expectation& e = expectations_->at(static_cast<uint32_t>(pos));
  if (e.master_id == master_id && e.cookie == cookie)
    expectations_->erase(static_cast<uint32_t>(pos));
}

bool Pipeline::close_connection(uint64_t id, uint32_t position) {
  if (position >= flows_->capacity()) return false;
  Connection& c = flows_->at(position);
  if (c.id != id || (c.flags & Connection::kClosed)) return false;
  c.flags |= Connection::kClosed;
  forget_checkpoint(c, position);
  return true;
}

uint32_t Pipeline::owner_of(const ExpectationKey& key) const {
  if (workers_ <= 1) return worker_;
  return worker_for_hash(address_pair_hash(key.src, key.dst), workers_);
}

bool Pipeline::post(uint32_t to, PinholeMessage m) {
  m.from = static_cast<uint8_t>(worker_);
  if (mail_->post(to, m)) {
    ++counters_.sip.mail_sent;
    return true;
  }
  ++counters_.sip.mail_lost;
  return false;
}

SipCall* Pipeline::live_call(uint64_t master_id, uint16_t index) {
  if (index >= sip_calls_.capacity()) return nullptr;
  const auto& r = sip_calls_[index];
  if (r.position >= flows_->capacity()) return nullptr;
  const Connection& m = flows_->at(r.position);
  if (m.id != master_id || m.l7 != ModuleId::sip || r.slice.session != m.l7_index) return nullptr;
  const SipSession& session = sip_sessions_[m.l7_index].slice;
  for (uint8_t k = 0; k < session.call_count; ++k) {
    if (session.calls[k] == index) return &sip_calls_[index].slice;
  }
  return nullptr;
}

void Pipeline::read_mail() {
  if (mail_ == nullptr) return;
  PinholeMessage messages[32];
  uint32_t n;
  while ((n = mail_->receive(worker_, messages, 32)) != 0) {
    for (uint32_t i = 0; i < n; ++i) {
      const PinholeMessage& m = messages[i];
      switch (m.kind) {
        case PinholeMessage::Kind::open: {
          Expectation e{};
          e.key = m.key;
          e.master_id = m.master_id;
          e.master_pos = Expectation::kRemoteMaster;
          e.expires_ms = m.expires_ms;
          e.module = ModuleId::sip;
          e.persistent = 1;
          e.cookie = m.cookie;
          e.master_worker = m.from;
          const auto r = put_expectation(e);
          if (r == ExpectationHost::Result::in_use) ++counters_.sip.refused_in_use;
          if (r == ExpectationHost::Result::table_full) ++counters_.sip.refused_table_full;
          break;
        }
        case PinholeMessage::Kind::close:
          erase_expectation(m.key, m.master_id, m.cookie);
          break;
        case PinholeMessage::Kind::media_opened:
          if (SipCall* call = live_call(m.master_id, m.cookie)) {
            SipModule::media_opened(*call, m.media_id, m.media_pos, m.from);
            put_sip_call(m.cookie);
          }
          break;
        case PinholeMessage::Kind::close_media:
          close_connection(m.media_id, m.media_pos);
          break;
      }
    }
  }
}

uint32_t Pipeline::expectation_capacity(const PipelineSettings& settings) {
  const uint64_t n =
      uint64_t{settings.ftp.sessions} * FtpSlice::kMaxPending * 2 +
      (settings.sip.enabled ? uint64_t{settings.sip.calls} * SipCall::kMaxPinholes : 0);
  return static_cast<uint32_t>(std::clamp<uint64_t>(n, 64, 1u << 24));
}

void Pipeline::set_policy(const Policy* policy) {
  policy_ = policy;
  rule_hits_.assign(policy->rules().size() + 1, 0);
  rules_vouch_ = flows_->size() == 0;
  record_rules();
}

void Pipeline::set_checkpoint(ckpt::WorkerCheckpoint* w, bool fail_open) {
  ckpt_ = w;
  ckpt_fail_open_ = fail_open;
  record_rules();
}

void Pipeline::record_rules() {
  if (ckpt_ == nullptr || policy_ == nullptr || !ckpt_->covers_slot(ckpt::kRulesModule, 0)) {
    return;
  }
  if (!rules_vouch_) {
    ckpt_->erase(ckpt::kRulesModule, 0);
    return;
  }
  const ckpt::RulesRecord r{policy_->digest(),
                            static_cast<uint32_t>(policy_->rules().size()),
                            static_cast<uint8_t>(policy_->default_action()),
                            {}};
  ckpt_->put(ckpt::kRulesModule, 0, ckpt::kNoConnection, &r, sizeof r);
}

void Pipeline::process(const ParsedPacket* packets, uint16_t n, uint64_t now_ns,
                       Verdict* verdicts) {
  now_ms_ = static_cast<uint32_t>(now_ns / 1'000'000);
  now_s_ = static_cast<uint32_t>(now_ns / 1'000'000'000);

  // Stage 1: key and hash for every packet that needs a flow lookup.
  // Uninitialised storage: a plain FlowKey array would zero 3 KiB per burst
  // (IpAddr value-initialises); only the m keys below are ever read.
  union KeySlot {
    KeySlot() {}
    FlowKey key;
  };
  KeySlot key_slots[kMaxBurst];
  FlowKey* const keys = &key_slots[0].key;
  static_assert(sizeof(KeySlot) == sizeof(FlowKey));
  const FlowKey* key_ptrs[kMaxBurst];
  uint32_t hashes[kMaxBurst];
  bool src_is_lo[kMaxBurst];
  int32_t positions[kMaxBurst];
  int16_t lookup_of[kMaxBurst];   // packet index -> lookup slot, -1 if none
  uint16_t packet_of[kMaxBurst];  // lookup slot -> packet index
  uint16_t m = 0;
  for (uint16_t i = 0; i < n; ++i) {
    const ParsedPacket& p = packets[i];
    lookup_of[i] = -1;
    if (p.kind != FrameKind::ip || !p.has_l4_header()) continue;
    if (p.is_icmp() && p.icmp.kind != IcmpHeaderInfo::Kind::echo_request &&
        p.icmp.kind != IcmpHeaderInfo::Kind::echo_reply) {
      continue;
    }
    keys[m] = make_flow_key(p.src, p.sport, p.dst, p.dport, p.proto, p.zone, &src_is_lo[m]);
    key_ptrs[m] = &keys[m];
    hashes[m] = FlowTable::hash(keys[m]);
    lookup_of[i] = static_cast<int16_t>(m);
    packet_of[m] = i;
    ++m;
  }

  // Stage 2: one bulk lookup, then prefetch the entries that hit, and the
  // TCP checkpoint slot of a segment that will most likely change its
  // connection's slice (data, SYN, FIN, RST): the put then finds its lines
  // in cache instead of waiting for them (see checkpoint/writer.h).
  if (m != 0) {
    flows_->lookup_bulk(key_ptrs, hashes, m, positions);
    for (uint16_t j = 0; j < m; ++j) {
      if (positions[j] < 0) continue;
      const auto pos = static_cast<uint32_t>(positions[j]);
      flows_->prefetch(pos);
      const ParsedPacket& p = packets[packet_of[j]];
      if (ckpt_ != nullptr && p.proto == kProtoTcp && ckpt_->covers(pos) &&
          (p.tcp.payload_len != 0 ||
           (p.tcp.flags & (tcpflag::kSyn | tcpflag::kFin | tcpflag::kRst)) != 0)) {
        ckpt_->prefetch(static_cast<uint8_t>(ModuleId::tcp), pos);
      }
    }
  }

  // Stage 2b: policy for every miss that may open a connection, in one
  // classifier call (policy depends on the packet alone, never on state).
  const ParsedPacket* candidates[kMaxBurst];
  Policy::Match matches[kMaxBurst];
  int16_t match_of[kMaxBurst];  // lookup slot -> index into matches, -1 if none
  uint16_t c = 0;
  for (uint16_t j = 0; j < m; ++j) match_of[j] = -1;
  for (uint16_t i = 0; i < n; ++i) {
    const int16_t j = lookup_of[i];
    if (j < 0 || positions[j] >= 0) continue;
    const ParsedPacket& p = packets[i];
    const Reason can = visit_l4(l4_module_for(p.proto),
                                [&]<typename M>(M) { return M::can_open(p, settings_.tracker); });
    if (can != Reason::new_connection) continue;
    candidates[c] = &p;
    match_of[j] = static_cast<int16_t>(c++);
  }
  if (c != 0) policy_->classify_bulk(candidates, c, matches);

  // Stage 3: decide in arrival order.
  uint16_t inserted[kMaxBurst];  // lookup slots whose packet created a connection
  uint16_t inserted_count = 0;
  for (uint16_t i = 0; i < n; ++i) {
    const ParsedPacket& p = packets[i];
    Verdict v;
    if (p.kind == FrameKind::malformed) {
      v = {0, p.error};
    } else if (p.kind != FrameKind::ip) {
      v = decide_l2(p);
    } else if (p.fragment && !p.first_fragment) {
      v = decide_later_fragment(p);
    } else if (lookup_of[i] < 0) {
      if (p.icmp.kind == IcmpHeaderInfo::Kind::error) {
        v = decide_icmp_error(p);
      } else {
        v = decide_untracked(p);
      }
    } else {
      const uint16_t j = static_cast<uint16_t>(lookup_of[i]);
      int32_t pos = positions[j];
      // A miss may have been created by an earlier packet of this burst.
      for (uint16_t q = 0; pos < 0 && q < inserted_count; ++q) {
        const uint16_t e = inserted[q];
        if (hashes[e] == hashes[j] && keys[e] == keys[j]) pos = flows_->lookup(keys[j], hashes[j]);
      }
      if (pos >= 0) {
        v = track(p, static_cast<uint32_t>(pos), src_is_lo[j]);
      } else {
        const Policy::Match* match = match_of[j] >= 0 ? &matches[match_of[j]] : nullptr;
        v = open(p, keys[j], hashes[j], src_is_lo[j], match, positions + j + 1,
                 static_cast<uint16_t>(m - j - 1));
        if (v.reason == Reason::new_connection || v.reason == Reason::expected) {
          inserted[inserted_count++] = j;
        }
      }
    }
    // Later fragments take this verdict; with no room to remember it they
    // would all be dropped as orphans, so the first goes too (fail closed).
    // Malformed first fragments are remembered too, so their later fragments
    // are dropped as what they are (frag_of_dropped).
    if (p.first_fragment && p.ip_version != 0 && !record_first_fragment(p, v) && v.pass()) {
      v.reason = Reason::frag_table_full;
    }
    ++counters_.reasons[static_cast<size_t>(v.reason)];
    verdicts[i] = v;
  }
}

Verdict Pipeline::decide_l2(const ParsedPacket& p) {
  if (p.kind == FrameKind::arp) return {0, settings_.l2.arp ? Reason::arp : Reason::arp_denied};
  return {0, settings_.l2.non_ip ? Reason::non_ip : Reason::non_ip_denied};
}

FragmentKey Pipeline::fragment_key(const ParsedPacket& p) {
  FragmentKey key{};
  key.src = p.src;
  key.dst = p.dst;
  key.id = p.frag_id;
  key.proto = p.ip_version == 4 ? p.proto : 0;  // IPv6 identifies by addresses and ID alone
  key.zone = p.zone;
  key.side = static_cast<uint8_t>(p.side);  // fragments of one datagram share a port
  return key;
}

Verdict Pipeline::decide_later_fragment(const ParsedPacket& p) {
  const FragmentKey key = fragment_key(p);
  const int32_t pos = fragments_->lookup(key);
  if (pos < 0) return {0, Reason::frag_without_first};
  const FragmentRecord& e = fragments_->at(static_cast<uint32_t>(pos));
  if (idle_longer_than(now_ms_, e.created_ms, settings_.fragment_timeout_ms)) {
    return {0, Reason::frag_without_first};
  }
  return {e.conn_id, reason_passes(e.reason) ? Reason::fragment : Reason::frag_of_dropped};
}

bool Pipeline::record_first_fragment(const ParsedPacket& p, const Verdict& v) {
  const FragmentKey key = fragment_key(p);
  int32_t pos = fragments_->lookup(key);
  if (pos < 0) {
    pos = fragments_->insert(key);
    if (pos < 0) return false;
    // Without a slot in the store the record would not survive a crash:
    // refuse it like a full table, unless the store may be outrun.
    if (ckpt_ != nullptr && !ckpt_->covers_fragment(static_cast<uint32_t>(pos)) &&
        !ckpt_fail_open_) {
      fragments_->erase(static_cast<uint32_t>(pos));
      return false;
    }
  }
  FragmentRecord& e = fragments_->at(static_cast<uint32_t>(pos));
  e.used = true;
  e.conn_id = v.conn_id;
  e.created_ms = now_ms_;
  e.reason = v.reason;
  put_fragment(static_cast<uint32_t>(pos));
  return true;
}

void Pipeline::put_fragment(uint32_t index) {
  if (ckpt_ == nullptr || !ckpt_->covers_fragment(index)) return;
  const FragmentRecord& e = fragments_->at(index);
  ckpt_->put(ckpt::kFragmentModule, index, e.conn_id != 0 ? e.conn_id : ckpt::kNoConnection, &e,
             sizeof e);
}

Verdict Pipeline::decide_icmp_error(const ParsedPacket& p) {
  const IcmpInner& in = p.icmp.inner;
  // An error travels back to the sender of the packet it quotes.
  if (!(p.dst == in.src)) return {0, Reason::icmp_error_unrelated};
  bool src_is_lo = false;
  const FlowKey key =
      make_flow_key(in.src, in.sport, in.dst, in.dport, in.proto, p.zone, &src_is_lo);
  const int32_t pos = flows_->lookup(key);
  if (pos < 0) return {0, Reason::icmp_error_unrelated};
  const Connection& c = flows_->at(static_cast<uint32_t>(pos));
  if (expired(c)) return {0, Reason::icmp_error_unrelated};
  // The error comes from beyond the quoted packet's destination, so it
  // arrives on the port that packet left by.
  const Dir quoted = c.dir_of(src_is_lo);
  if (p.side != other_side(expected_side(c, quoted))) return {c.id, Reason::side_mismatch};
  if (c.l4 == ModuleId::tcp &&
      !TcpModule::quoted_segment_in_window(c.slice<TcpSlice>(), quoted, in.tcp_seq)) {
    return {0, Reason::icmp_error_unrelated};
  }
  return {c.id, Reason::related};
}

Verdict Pipeline::decide_untracked(const ParsedPacket& p) {
  if (p.icmp.kind == IcmpHeaderInfo::Kind::neighbor_discovery) {
    if (!settings_.l2.ipv6_nd) return {0, Reason::ipv6_nd_denied};
    // Neighbour discovery is link-local: a hop limit below 255 means it was
    // routed, i.e. forged off-link (RFC 4861 6.1, 7.1).
    if (p.hop_limit != 255) return {0, Reason::ipv6_nd_bad_hop_limit};
    return {0, Reason::ipv6_nd};
  }
  const Reason r = admit(policy_->classify(p));
  return {0, r == Reason::new_connection ? Reason::untracked : r};
}

Reason Pipeline::admit(const Policy::Match& match) {
  ++rule_hits_[static_cast<size_t>(match.rule + 1)];
  if (match.action == Action::allow) return Reason::new_connection;
  return match.rule < 0 ? Reason::default_deny : Reason::policy_deny;
}

// Inline: every packet of a tracked connection asks, from track().
[[gnu::always_inline]] inline bool Pipeline::expired(const Connection& c) const {
  uint32_t timeout = visit_l4(c.l4, [&]<typename M>(M) {
    return M::timeout_ms(c.slice<typename M::Slice>(), settings_.tracker);
  });
  // Both flags are on line 0, which established packets read anyway.
  if (c.flags & (Connection::kClosed | Connection::kHasL7)) [[unlikely]] {
    if (c.flags & Connection::kClosed) return true;
    timeout = l7_timeout_ms(c, timeout);
  }
  return idle_longer_than(now_ms_, c.last_seen_ms, timeout);
}

Verdict Pipeline::track(const ParsedPacket& p, uint32_t index, bool src_is_lo) {
  Connection& c = flows_->at(index);
  if (expired(c)) {
    // As if the connection were gone: the packet must open a new one.
    return open_in_place(p, index, src_is_lo);
  }
  const Dir dir = c.dir_of(src_is_lo);
  // The opener's packets arrive on the port it opened from, replies on the
  // other: an inside address arriving from outside is a forgery.
  if (p.side != expected_side(c, dir)) return {c.id, Reason::side_mismatch};
  const bool ckpt = checkpointed(index);
  const Outcome outcome = visit_l4(c.l4, [&]<typename M>(M) {
    auto& slice = c.slice<typename M::Slice>();
    const Outcome o = M::track(slice, p, dir, settings_.tracker);
    // The module is known here: no second dispatch on it to put the slice.
    if (o.changed && ckpt) ckpt_->put_slice(M::kId, index, c.id, slice);
    return o;
  });
  switch (outcome.action) {
    case Outcome::Action::pass:
      c.last_seen_ms = now_ms_;
      ++c.packets[static_cast<size_t>(dir)];
      if (ckpt) {
        // last_seen reaches the store once a second, not on every packet:
        // recovery then expires a connection at most a second early.
        const auto second = static_cast<uint16_t>(now_s_);
        if (c.ckpt_seen_s != second) {
          c.ckpt_seen_s = second;
          ckpt_->put_base(index, c);
        }
      }
      // The flag, on line 0: l7 is on line 1, which established packets
      // otherwise never touch.
      if (c.flags & Connection::kHasL7) [[unlikely]] {
        if (track_l7(c, index, p, dir)) return {c.id, Reason::sip_malformed};
      }
      return {c.id, Reason::established};
    case Outcome::Action::drop:
      return {c.id, outcome.reason};
    case Outcome::Action::reopen:
      ++counters_.reopened;
      return open_in_place(p, index, src_is_lo);
  }
  return {c.id, Reason::tcp_invalid_state};
}

Verdict Pipeline::open(const ParsedPacket& p, const FlowKey& key, uint32_t hash, bool src_is_lo,
                       const Policy::Match* match, const int32_t* pending, uint16_t pending_count) {
  if (match == nullptr) {
    // Stage 2b found that the module refuses this packet as an opener.
    const Reason can = visit_l4(l4_module_for(p.proto),
                                [&]<typename M>(M) { return M::can_open(p, settings_.tracker); });
    return {0, can};
  }
  // A connection a layer-7 module announced is admitted by its expectation,
  // not by policy.
  int32_t expected = find_expectation(p);
  if (expected < 0) {
    const Reason admitted = admit(*match);
    if (admitted != Reason::new_connection) return {0, admitted};
  }

  int32_t pos = flows_->insert(key, hash);
  if (pos < 0 && reclaim(64, pending, pending_count)) pos = flows_->insert(key, hash);
  if (pos < 0) return {0, Reason::conn_table_full};
  if (!store_admits(static_cast<uint32_t>(pos))) {
    // Just inserted, so no other packet of the burst holds this position.
    flows_->erase(static_cast<uint32_t>(pos));
    return {0, Reason::ckpt_store_full};
  }
  Expectation taken{};
  if (expected >= 0) {
    // reclaim() above may have expired the master, closing its expectations.
    expected = find_expectation(p);
    if (expected >= 0) {
      taken = take_expectation(static_cast<uint32_t>(expected));
    } else if (const Reason admitted = admit(*match); admitted != Reason::new_connection) {
      flows_->erase(static_cast<uint32_t>(pos));
      return {0, admitted};
    }
  }
  Connection& c = flows_->at(static_cast<uint32_t>(pos));
  if (init_connection(c, static_cast<uint32_t>(pos), p, src_is_lo, taken.master_id)) {
    return {c.id, Reason::sip_malformed};
  }
  if (!taken.in_use()) return {c.id, Reason::new_connection};
  settle_expectation(taken, c.id, static_cast<uint32_t>(pos));
  return {c.id, Reason::expected};
}

Verdict Pipeline::open_in_place(const ParsedPacket& p, uint32_t index, bool src_is_lo) {
  Connection& c = flows_->at(index);
  const ModuleId module = l4_module_for(p.proto);
  const Reason can =
      visit_l4(module, [&]<typename M>(M) { return M::can_open(p, settings_.tracker); });
  if (can != Reason::new_connection) return {0, can};
  int32_t expected = find_expectation(p);
  // Releasing this connection below closes its own expectations.
  if (expected >= 0 && expectations_->at(static_cast<uint32_t>(expected)).master_pos == index) {
    expected = -1;
  }
  if (expected < 0) {
    const Reason admitted = admit(policy_->classify(p));
    if (admitted != Reason::new_connection) return {0, admitted};
  }
  if (!store_admits(index)) return {0, Reason::ckpt_store_full};
  if (expired(c)) ++counters_.expired[slot(c.l4)];
  release_l7(c);
  const Expectation taken =
      expected >= 0 ? take_expectation(static_cast<uint32_t>(expected)) : Expectation{};
  if (init_connection(c, index, p, src_is_lo, taken.master_id)) {
    return {c.id, Reason::sip_malformed};
  }
  if (!taken.in_use()) return {c.id, Reason::new_connection};
  settle_expectation(taken, c.id, index);
  return {c.id, Reason::expected};
}

int32_t Pipeline::find_expectation(const ParsedPacket& p) const {
  if (expectations_->size() == 0 || (p.proto != kProtoTcp && p.proto != kProtoUdp)) return -1;
  const ExpectationKey key = make_expectation_key(p.src, p.dst, p.dport, p.proto, p.zone, p.side);
  const int32_t pos = expectations_->lookup(key);
  if (pos < 0) return -1;
  const Expectation& e = expectations_->at(static_cast<uint32_t>(pos));
  if (expectation_expired(e)) return -1;
  // A master that has idled out is gone, whether or not the cleaner has
  // removed it (and its expectations) yet: verdicts never depend on that.
  // A master on another worker closes its expectations when it goes.
  if (e.remote()) return pos;
  const Connection& m = flows_->at(e.master_pos);
  if (m.id != e.master_id || expired(m)) return -1;
  return pos;
}

Expectation Pipeline::take_expectation(uint32_t index) {
  const Expectation e = expectations_->at(index);
  if (e.module == ModuleId::ftp) ++counters_.ftp.data_connections;
  if (e.module == ModuleId::sip) ++counters_.sip.media_connections;
  if (!e.persistent) expectations_->erase(index);
  return e;
}

void Pipeline::settle_expectation(const Expectation& e, uint64_t id, uint32_t position) {
  // The master learns the connection its expectation admitted: FTP leaves
  // the expectation off its pending list, SIP records the media connection
  // in its call. This is checkpointed after the new connection: a crash in
  // between leaves the expectation pending next to the connection that used
  // it (recovery re-opens it until it expires), never a used expectation
  // without its connection, which would make the retransmitted SYN meet the
  // rules.
  if (e.remote()) {
    // The call lives on another worker: it learns by mail.
    PinholeMessage m{};
    m.kind = PinholeMessage::Kind::media_opened;
    m.cookie = e.cookie;
    m.master_id = e.master_id;
    m.media_id = id;
    m.media_pos = position;
    if (mail_ != nullptr && e.master_worker < workers_) post(e.master_worker, m);
    return;
  }
  Connection& m = flows_->at(e.master_pos);
  if (m.id != e.master_id || m.l7 != e.module) return;
  if (m.l7 == ModuleId::ftp) {
    FtpModule::consumed(ftp_pool_[m.l7_index].slice, e.key);
    if (checkpointed(e.master_pos)) put_l7(m);
  } else if (m.l7 == ModuleId::sip && e.cookie < sip_calls_.capacity()) {
    SipCall& call = sip_calls_[e.cookie].slice;
    if (call.session != m.l7_index) return;
    SipModule::media_opened(call, id, position, worker_);
    put_sip_call(e.cookie);
  }
}

void Pipeline::clean_expectations(uint32_t budget) {
  expectations_->sweep(budget, [&](uint32_t index, Expectation& e) {
    if (!expectation_expired(e)) return;
    if (e.module == ModuleId::ftp) ++counters_.ftp.expectations_expired;
    expectations_->erase(index);
  });
}

SipSignalling Pipeline::signalling_of(const Connection& c) {
  SipSignalling s;
  s.addr[0] = c.addr(Dir::original);
  s.addr[1] = c.addr(Dir::reply);
  s.side[0] = c.origin_side();
  s.side[1] = other_side(c.origin_side());
  s.zone = c.key.zone;
  return s;
}

uint32_t Pipeline::l7_timeout_ms(const Connection& c, uint32_t l4_timeout) const {
  if (c.l7 != ModuleId::sip || sip_sessions_[c.l7_index].slice.call_count == 0) return l4_timeout;
  return std::max(l4_timeout, settings_.sip.call_timeout_ms);
}

template <typename Slice>
typename L7Pool<Slice>::Record* Pipeline::take_l7(L7Pool<Slice>& pool, ModuleId module,
                                                  Connection& c, uint32_t index) {
  uint16_t i;
  auto* r = pool.take(&i);
  if (r == nullptr) return nullptr;
  r->position = index;
  r->reserved = 0;
  c.l7 = module;
  c.l7_index = i;
  c.flags |= Connection::kHasL7;
  return r;
}

bool Pipeline::bind_l7(Connection& c, uint32_t index, const ParsedPacket& p) {
  if (settings_.ftp.enabled && c.l4 == ModuleId::tcp && settings_.ftp.ports.contains(p.dport)) {
    auto* r = take_l7(ftp_pool_, ModuleId::ftp, c, index);
    if (r == nullptr) {
      ++counters_.ftp.sessions_full;
      return false;
    }
    FtpModule::open(r->slice);
    ++counters_.ftp.sessions;
    Expector host(*this, c, index);
    FtpModule::on_segment(r->slice, p, Dir::original, now_ms_, settings_.ftp, host, counters_.ftp);
    return false;
  }
  if (settings_.sip.enabled && (c.l4 == ModuleId::tcp || c.l4 == ModuleId::udp) &&
      settings_.sip.ports.contains(p.dport)) {
    auto* r = take_l7(sip_sessions_, ModuleId::sip, c, index);
    if (r == nullptr) {
      ++counters_.sip.sessions_full;
      return false;
    }
    SipModule::open(r->slice);
    ++counters_.sip.sessions;
    Expector host(*this, c, index);
    return SipModule::on_packet(r->slice, p, Dir::original, signalling_of(c), now_ms_,
                                settings_.sip, host, counters_.sip)
        .drop;
  }
  return false;
}

bool Pipeline::track_l7(Connection& c, uint32_t index, const ParsedPacket& p, Dir dir) {
  Expector host(*this, c, index);
  if (c.l7 == ModuleId::ftp) {
    if (FtpModule::on_segment(ftp_pool_[c.l7_index].slice, p, dir, now_ms_, settings_.ftp, host,
                              counters_.ftp) &&
        checkpointed(index)) {
      put_l7(c);
    }
    return false;
  }
  if (c.l7 != ModuleId::sip) return false;
  const SipModule::Result r =
      SipModule::on_packet(sip_sessions_[c.l7_index].slice, p, dir, signalling_of(c), now_ms_,
                           settings_.sip, host, counters_.sip);
  if (r.session_changed && checkpointed(index)) put_l7(c);
  return r.drop;
}

void Pipeline::release_l7(Connection& c) {
  if (c.l7 == ModuleId::none) return;
  const auto module = static_cast<uint8_t>(c.l7);
  if (c.l7 == ModuleId::ftp) {
    auto& r = ftp_pool_[c.l7_index];
    Expector host(*this, c, r.position);
    FtpModule::close(r.slice, host);
    ftp_pool_.give(c.l7_index);
  } else {
    auto& r = sip_sessions_[c.l7_index];
    Expector host(*this, c, r.position);
    SipModule::close(r.slice, signalling_of(c), now_ms_, settings_.sip, host, counters_.sip);
    sip_sessions_.give(c.l7_index);
  }
  if (ckpt_ != nullptr && ckpt_->covers_slot(module, c.l7_index)) ckpt_->erase(module, c.l7_index);
  c.l7 = ModuleId::none;
  c.l7_index = 0;
  c.flags &= static_cast<uint8_t>(~Connection::kHasL7);
}

void Pipeline::put_l7(const Connection& c) {
  const auto module = static_cast<uint8_t>(c.l7);
  if (ckpt_ == nullptr || !ckpt_->covers_slot(module, c.l7_index)) return;
  if (c.l7 == ModuleId::ftp) {
    ckpt_->put(module, c.l7_index, c.id, &ftp_pool_[c.l7_index], sizeof ftp_pool_[0]);
  } else if (c.l7 == ModuleId::sip) {
    ckpt_->put(module, c.l7_index, c.id, &sip_sessions_[c.l7_index], sizeof sip_sessions_[0]);
  }
}

void Pipeline::put_sip_call(uint16_t index) {
  if (ckpt_ == nullptr || !ckpt_->covers_slot(ckpt::kSipCallModule, index)) return;
  const auto& r = sip_calls_[index];
  // Tagged with the signalling connection's ID, like its session.
  const Connection& m = flows_->at(r.position);
  ckpt_->put(ckpt::kSipCallModule, index, m.id, &r, sizeof r);
}

bool Pipeline::store_admits(uint32_t index) {
  if (ckpt_ == nullptr || ckpt_->covers(index)) return true;
  if (!ckpt_fail_open_) return false;
  ++counters_.unprotected;
  return true;
}

void Pipeline::put_l4(const Connection& c, uint32_t index) {
  visit_l4(c.l4, [&]<typename M>(M) {
    ckpt_->put_slice(M::kId, index, c.id, c.slice<typename M::Slice>());
  });
}

bool Pipeline::init_connection(Connection& c, uint32_t index, const ParsedPacket& p, bool src_is_lo,
                               uint64_t master) {
  const FlowKey key = c.key;
  zero_entry(c);
  c.key = key;
  c.id = ids_->take();
  c.l4 = l4_module_for(p.proto);
  c.flags = static_cast<uint8_t>((src_is_lo ? Connection::kOriginIsLo : 0) |
                                 (p.side == Side::inside ? Connection::kOriginInside : 0));
  c.last_seen_ms = now_ms_;
  c.created_s = now_s_;
  c.packets[0] = 1;
  c.master_id = master;
  visit_l4(c.l4,
           [&]<typename M>(M) { M::open(c.slice<typename M::Slice>(), p, settings_.tracker); });
  ++counters_.opened[slot(c.l4)];
  const bool drop = master == 0 && bind_l7(c, index, p);
  if (checkpointed(index)) {
    // Base layer first, so a crash between them leaves a base without a
    // module slice (discarded on recovery), never a slice without a base.
    c.ckpt_seen_s = static_cast<uint16_t>(now_s_);
    ckpt_->put_base(index, c);
    put_l4(c, index);
    if (c.l7 != ModuleId::none) put_l7(c);
  }
  return drop;
}

bool Pipeline::reclaim(uint32_t budget, const int32_t* pending, uint16_t pending_count) {
  bool freed = false;
  flows_->sweep(budget, [&](uint32_t index, Connection& c) {
    if (!expired(c)) return;
    for (uint16_t k = 0; k < pending_count; ++k) {
      if (pending[k] == static_cast<int32_t>(index)) return;  // a later packet holds it
    }
    expire(index);
    freed = true;
  });
  return freed;
}

void Pipeline::expire(uint32_t index) {
  Connection& c = flows_->at(index);
  ++counters_.expired[slot(c.l4)];
  release_l7(c);
  forget_checkpoint(c, index);
  flows_->erase(index);
}

void Pipeline::forget_checkpoint(const Connection& c, uint32_t index) {
  if (!checkpointed(index)) return;
  ckpt_->erase(static_cast<uint8_t>(c.l4), index);
  ckpt_->erase(ckpt::kBaseModule, index);
}

int32_t Pipeline::restore(const Connection& staged, uint32_t hash, bool* duplicate) {
  *duplicate = flows_->lookup(staged.key, hash) >= 0;
  if (*duplicate) return -1;
  const int32_t pos = flows_->insert_entry(staged, hash);
  if (pos < 0) return -1;
  ++counters_.restored[slot(staged.l4)];
  return pos;
}

void Pipeline::drop_restored(uint32_t position) {
  Connection& c = flows_->at(position);
  --counters_.restored[slot(c.l4)];
  release_l7(c);
  flows_->erase(position);
}

bool Pipeline::restore_ftp(uint32_t position, const FtpSlice& slice) {
  Connection& c = flows_->at(position);
  auto* r = take_l7(ftp_pool_, ModuleId::ftp, c, position);
  if (r == nullptr) return false;
  r->slice = slice;
  Expector host(*this, c, position);
  FtpModule::reopen(r->slice, host);
  ++counters_.ftp.sessions_restored;
  return true;
}

bool Pipeline::restore_sip_session(uint32_t position, const SipSession& session) {
  Connection& c = flows_->at(position);
  auto* r = take_l7(sip_sessions_, ModuleId::sip, c, position);
  if (r == nullptr) return false;
  r->slice = session;
  r->slice.call_count = 0;  // its calls come next, each from its own record
  ++counters_.sip.sessions_restored;
  return true;
}

const char* Pipeline::restore_sip_call(uint32_t position, const SipCall& call) {
  Connection& c = flows_->at(position);
  if (c.l7 != ModuleId::sip) return "orphan_slice";
  SipSession& session = sip_sessions_[c.l7_index].slice;
  if (session.call_count >= settings_.sip.calls_per_session) return "sip_calls_full";
  uint16_t index;
  auto* r = sip_calls_.take(&index);
  if (r == nullptr) return "sip_calls_full";
  r->position = position;
  r->reserved = 0;
  r->slice = call;
  r->slice.session = c.l7_index;
  // Its media connections' positions are the old ones until
  // relink_sip_media() has run, once all connections are restored.
  session.calls[session.call_count++] = index;
  Expector host(*this, c, position);
  SipModule::reopen(r->slice, index, signalling_of(c), settings_.sip, host);
  ++counters_.sip.calls_restored;
  return nullptr;
}

uint32_t Pipeline::relink_sip_media(const std::vector<Pipeline*>& pipelines) {
  // Where a connection is: its worker and its position there.
  struct At {
    uint32_t worker;
    uint32_t position;
  };
  std::unordered_map<uint64_t, At> masters;  // SIP signalling connection ID -> where
  for (uint32_t w = 0; w < pipelines.size(); ++w) {
    pipelines[w]->flows_->for_each([&](uint32_t index, const Connection& c) {
      if (c.l7 == ModuleId::sip) masters.emplace(c.id, At{w, index});
    });
  }
  if (masters.empty()) return 0;
  std::unordered_map<uint64_t, At> media;  // restored media connection ID -> where
  for (uint32_t w = 0; w < pipelines.size(); ++w) {
    pipelines[w]->flows_->for_each([&](uint32_t index, const Connection& c) {
      if (c.master_id != 0 && c.l4 == ModuleId::udp && masters.count(c.master_id) != 0) {
        media.emplace(c.id, At{w, index});
      }
    });
  }
  uint32_t linked = 0;
  // First the media each call recorded (its positions are the old ones, and
  // so may be its workers).
  for (const auto& [id, at] : masters) {
    Pipeline& p = *pipelines[at.worker];
    const SipSession& session = p.sip_sessions_[p.flows_->at(at.position).l7_index].slice;
    for (uint8_t k = 0; k < session.call_count; ++k) {
      SipCall& call = p.sip_calls_[session.calls[k]].slice;
      uint8_t kept = 0;
      for (uint8_t i = 0; i < call.media_count; ++i) {
        const auto it = media.find(call.media[i].id);
        if (it == media.end()) continue;  // not restored
        call.media[kept] = call.media[i];
        call.media[kept].position = it->second.position;
        call.media[kept].worker = static_cast<uint16_t>(it->second.worker);
        ++kept;
        media.erase(it);
        ++linked;
      }
      call.media_count = kept;
      call.media_next = 0;
    }
  }
  // Then media a call had not recorded yet (a crash between the media
  // connection and its call's update, or before the mail about it was
  // read): by the pinhole it matches.
  for (const auto& [id, at] : media) {
    const Connection& c = pipelines[at.worker]->flows_->at(at.position);
    const At master = masters.at(c.master_id);
    Pipeline& p = *pipelines[master.worker];
    const Connection& m = p.flows_->at(master.position);
    const SipSession& session = p.sip_sessions_[m.l7_index].slice;
    const ExpectationKey opened =
        make_expectation_key(c.addr(Dir::original), c.addr(Dir::reply), c.port(Dir::reply),
                             kProtoUdp, c.key.zone, c.origin_side());
    const SipSignalling sig = signalling_of(m);
    for (uint8_t k = 0; k < session.call_count; ++k) {
      SipCall& call = p.sip_calls_[session.calls[k]].slice;
      ExpectationKey keys[SipCall::kMaxPinholes];
      const uint32_t n = SipModule::pinholes(call, sig, p.settings_.sip, keys, nullptr);
      if (std::find(keys, keys + n, opened) == keys + n) continue;
      SipModule::media_opened(call, c.id, at.position, at.worker);
      ++linked;
      break;
    }
  }
  return linked;
}

void Pipeline::forget_l7(uint32_t position) {
  flows_->at(position).flags &= static_cast<uint8_t>(~Connection::kHasL7);
}

void Pipeline::admits(const uint32_t* positions, uint32_t n, bool* allowed) const {
  const Connection* conns[Policy::kMaxBulk];
  for (uint32_t done = 0; done < n; done += Policy::kMaxBulk) {
    const uint32_t k = std::min(n - done, Policy::kMaxBulk);
    for (uint32_t i = 0; i < k; ++i) conns[i] = &flows_->at(positions[done + i]);
    admits(conns, k, allowed + done);
  }
}

void Pipeline::admits(const Connection* const* conns, uint32_t n, bool* allowed) const {
  // Each connection's first packet as the opener sent it, from the port it
  // arrived on: what policy judged then is judged again, a burst at a time.
  Policy::Query queries[Policy::kMaxBulk];
  Policy::Match matches[Policy::kMaxBulk];
  for (uint32_t done = 0; done < n; done += Policy::kMaxBulk) {
    const uint32_t k = std::min(n - done, Policy::kMaxBulk);
    for (uint32_t i = 0; i < k; ++i) {
      const Connection& c = *conns[done + i];
      queries[i] = {.src = c.addr(Dir::original),
                    .dst = c.addr(Dir::reply),
                    .sport = c.port(Dir::original),
                    .dport = c.port(Dir::reply),
                    .proto = c.key.proto,
                    .ip_version = static_cast<uint8_t>(c.key.lo.is_v4() ? 4 : 6),
                    .side = c.origin_side()};
    }
    policy_->classify_bulk(queries, k, matches);
    for (uint32_t i = 0; i < k; ++i) allowed[done + i] = matches[i].action == Action::allow;
  }
}

bool Pipeline::restore_fragment(const FragmentRecord& record) {
  if (fragments_->lookup(record.key) >= 0) return false;
  const int32_t pos = fragments_->insert(record.key);
  if (pos < 0) return false;
  fragments_->at(static_cast<uint32_t>(pos)) = record;
  return true;
}

void Pipeline::checkpoint_restored(const std::vector<uint32_t>& positions) {
  if (ckpt_ == nullptr) return;
  for (const uint32_t index : positions) {
    const Connection& c = flows_->at(index);
    if (!c.in_use() || !checkpointed(index)) continue;
    ckpt_->put_base(index, c);
    put_l4(c, index);
    if (c.l7 != ModuleId::none) put_l7(c);
    if (c.l7 == ModuleId::sip) {
      const SipSession& session = sip_sessions_[c.l7_index].slice;
      for (uint8_t k = 0; k < session.call_count; ++k) put_sip_call(session.calls[k]);
    }
  }
  fragments_->for_each([&](uint32_t index, const FragmentRecord&) { put_fragment(index); });
}

void Pipeline::clean(uint64_t now_ns, uint32_t budget) {
  now_ms_ = static_cast<uint32_t>(now_ns / 1'000'000);
  now_s_ = static_cast<uint32_t>(now_ns / 1'000'000'000);
  flows_->sweep(budget, [&](uint32_t index, Connection& c) {
    if (expired(c)) expire(index);
  });
  clean_expectations(budget);
  fragments_->sweep(budget, [&](uint32_t index, FragmentRecord& e) {
    if (idle_longer_than(now_ms_, e.created_ms, settings_.fragment_timeout_ms)) {
      ++counters_.fragments_expired;
      if (ckpt_ != nullptr && ckpt_->covers_fragment(index)) {
        ckpt_->erase(ckpt::kFragmentModule, index);
      }
      fragments_->erase(index);
    }
  });
}

void Pipeline::clean_paced(uint64_t now_ns) {
  if (last_clean_ns_ == 0 || now_ns < last_clean_ns_) last_clean_ns_ = now_ns;
  // At most one period of credit: after a stall, sweep once, not many times.
  clean_credit_ns_ = std::min(clean_credit_ns_ + (now_ns - last_clean_ns_), kSweepPeriodNs);
  last_clean_ns_ = now_ns;
  const uint64_t capacity = flows_->capacity();
  const uint64_t budget = clean_credit_ns_ * capacity / kSweepPeriodNs;
  if (budget == 0) return;
  clean_credit_ns_ -= budget * kSweepPeriodNs / capacity;
  clean(now_ns, static_cast<uint32_t>(budget));
}

}  // namespace holdfast
