// One worker's packet pipeline: parsed packets in, verdicts out.
//
// Theory of operation (run to completion over a burst):
//   1. sort the burst: layer-2 frames, malformed frames, later fragments and
//      ICMP errors are decided on their own; every other IP packet gets a
//      canonical flow key;
//   2. look all keys up in one bulk lookup of the flow table (which leaves
//      the hits' entries in cache) and prefetch what a hit will write;
//   3. walk the burst in order. A hit runs the layer-4 module of the
//      connection; a miss asks the module whether the packet may open a
//      connection, then policy, then inserts. ICMP errors pass as related
//      only if the packet they quote belongs to a tracked connection; later
//      fragments take the verdict recorded for their first fragment.
// The packet path writes only last_seen and the module slice. Idle
// connections are removed by clean(), which the worker calls between bursts
// with a budget. Expiry is also checked on every hit, so whether the cleaner
// has got to an entry yet never changes a verdict.
//
// The same Pipeline serves the DPDK dataplane (dataplane/main.cc) and
// holdfast-replay (dataplane/replay.cc); only the source of packets and of
// the clock differ.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/writer.h"
#include "dataplane/control.h"
#include "dataplane/expectations.h"
#include "dataplane/flow_table.h"
#include "dataplane/l7_pool.h"
#include "dataplane/packet.h"
#include "dataplane/pinhole_mail.h"
#include "dataplane/policy.h"
#include "dataplane/verdict.h"
#include "modules/ftp/ftp.h"
#include "modules/module.h"
#include "modules/sip/sip.h"

namespace holdfast {

struct L2Settings {
  bool arp = true;      // pass ARP
  bool non_ip = false;  // pass other non-IP ethertypes (LLDP, STP, ...)
  bool ipv6_nd = true;  // pass IPv6 neighbour discovery (RFC 4861)
};

struct PipelineSettings {
  TrackerSettings tracker;
  L2Settings l2;
  uint32_t connections = 65536;  // flow table capacity
  uint32_t fragments = 4096;     // fragmented datagrams in flight
  uint32_t fragment_timeout_ms = 30'000;
  FtpSettings ftp;
  SipSettings sip;
};

// Hands out connection IDs, epoch << 40 | counter. Workers of one process
// interleave counters (first = worker + 1, stride = worker count) so IDs are
// unique without sharing a cache line; holdfast-replay gives all its
// pipelines one source so IDs follow capture order whatever the worker count.
//
// 2^40 counters last about 12 days at a million new connections a second.
// Before they run out the dataplane's control thread fetches a fresh epoch
// from holdfast-ckptd into *spare_epoch; the worker moves to it when its
// counter does run out. The control thread reads epoch and next while the
// worker writes them, so both go through atomic_ref (plain moves on x86).
struct ConnIdSource {
  uint32_t epoch = 1;
  uint64_t next = 1;
  uint64_t stride = 1;
  std::atomic<uint32_t>* spare_epoch = nullptr;  // 0 in it: none fetched yet

  uint64_t take() {
    uint64_t counter = next;
    if (counter > kConnCounterMask) [[unlikely]]
      counter = move_to_next_epoch();
    std::atomic_ref<uint64_t>(next).store(counter + stride, std::memory_order_relaxed);
    return make_conn_id(epoch, counter);
  }
  // For the control thread.
  uint64_t used() const {
    return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(next)).load(std::memory_order_relaxed);
  }
  uint32_t current_epoch() const {
    return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(epoch)).load(std::memory_order_relaxed);
  }

 private:
  // Takes the spare epoch (or, with none, the next number: only safe without
  // a checkpoint server, which alone keeps epochs unique across restarts)
  // and returns this worker's first counter in it.
  uint64_t move_to_next_epoch() {
    const uint32_t spare =
        spare_epoch != nullptr ? spare_epoch->load(std::memory_order_acquire) : 0;
    std::atomic_ref<uint32_t>(epoch).store(spare > epoch ? spare : epoch + 1,
                                           std::memory_order_relaxed);
    return (next - 1) % stride + 1;
  }
};

// Index of a module in per-module counters.
inline constexpr size_t kModuleSlots = 5;

struct PipelineCounters {
  std::array<uint64_t, kReasonCount> reasons{};
  std::array<uint64_t, kModuleSlots> opened{};   // connections created, per module
  std::array<uint64_t, kModuleSlots> expired{};  // removed idle, per module
  uint64_t reopened = 0;                         // TCP port reuse on a finished connection
  uint64_t fragments_expired = 0;
  std::array<uint64_t, kModuleSlots> restored{};  // rebuilt from the checkpoint store
  uint64_t unprotected = 0;    // opened without a checkpoint slot (store full, store_full allow)
  uint64_t reload_closed = 0;  // closed because reloaded rules deny them
  FtpCounters ftp;
  SipCounters sip;

  uint64_t packets() const;
  uint64_t passed() const;
};

// A fragmented datagram's identity (RFC 791: addresses, ID and protocol;
// RFC 8200: addresses and ID), and the port pair and port it arrives on.
struct FragmentKey {
  IpAddr src;
  IpAddr dst;
  uint32_t id;
  uint8_t proto;  // IPv4 only
  uint8_t zone;
  uint8_t side;
  uint8_t reserved;
};
static_assert(sizeof(FragmentKey) == 40);

// What the first fragment of a datagram was told, for its later fragments.
// Checkpointed as is (the fragment region of the store).
struct FragmentRecord {
  FragmentKey key;
  uint64_t conn_id;  // 0: the first fragment belonged to no connection
  uint32_t created_ms;
  Reason reason;  // the first fragment's verdict
  bool used;
  uint16_t reserved;
  bool in_use() const { return used; }
};
static_assert(sizeof(FragmentRecord) == 56, "fragment slot: 16-byte header + 56 = 72 bytes");
static_assert(std::is_trivially_copyable_v<FragmentRecord>);

class Pipeline {
 public:
  using FragmentTable = HashedTable<FragmentKey, FragmentRecord>;
  static constexpr uint16_t kMaxBurst = 64;

  // policy must outlive the pipeline (or be replaced with set_policy).
  static std::unique_ptr<Pipeline> create(const PipelineSettings& settings, const Policy* policy,
                                          ConnIdSource* ids, int socket, std::string* error);
  // Entries of the expectation table: every FTP session keeps at most
  // kMaxPending open, every SIP call at most kMaxPinholes; expired ones wait
  // for the cleaner, hence the margin.
  static uint32_t expectation_capacity(const PipelineSettings& settings);

  // Decides n <= kMaxBurst packets, all at time now_ns (nanoseconds of a
  // clock whose epoch is the Unix epoch). verdicts[i] is for packets[i].
  void process(const ParsedPacket* packets, uint16_t n, uint64_t now_ns, Verdict* verdicts);

  // Removes idle connections and stale fragment records, visiting at most
  // `budget` entries of each table.
  void clean(uint64_t now_ns, uint32_t budget);

  // clean() at the pace that visits every entry once per kSweepPeriodNs,
  // however often it is called: the dataplane worker calls it every loop,
  // and a fixed budget per loop would sweep a busy table dozens of times a
  // second for nothing. Expiry stays exact (it is also checked on lookup);
  // this only bounds how long an idle entry holds its slot.
  static constexpr uint64_t kSweepPeriodNs = 1'000'000'000;
  void clean_paced(uint64_t now_ns);

  // A new rule set for connections opened from now on. The connections
  // already in the table are not judged again (a reload, serve_control,
  // does that), so the rules record vouches for them only if there are
  // none (record_rules).
  void set_policy(const Policy* policy);

  // Serves a request of the control thread (dataplane/control.h), a
  // bounded slice of it per call. Returns true once it is done.
  bool serve_control(ControlRequest& r);

  // This pipeline is worker `worker` of `workers` (dataplane/steering.h).
  // Expectations for address pairs another worker owns go to it through
  // mail (dataplane/pinhole_mail.h), or without mail are refused.
  void set_steering(uint32_t worker, uint32_t workers, PinholeMail* mail = nullptr) {
    worker_ = worker;
    workers_ = workers;
    mail_ = mail;
  }
  // Acts on the pinhole messages other workers posted to this one: the
  // worker calls it before every receive, replay before every frame,
  // recovery after every call it restores.
  void read_mail();

  // Checkpoints every state change into w (nullptr: no checkpointing). A
  // new connection whose position has no slot in w is refused
  // (ckpt_store_full), or with fail_open forwarded unprotected and counted.
  // Writes the rules record (ckpt::RulesRecord) into w at once.
  void set_checkpoint(ckpt::WorkerCheckpoint* w, bool fail_open);
  const ckpt::WorkerCheckpoint* checkpoint() const { return ckpt_; }

  // Recovery (control path, before forwarding): adds a connection read from
  // the store, complete with its layer-4 slice, and counts it as restored.
  // `staged` is the whole entry as it is to be (key, base fields, slice;
  // no layer-7 module yet); hash is FlowTable::hash(staged.key). Returns its
  // position, or -1 when the key is already present (*duplicate) or the
  // table is full.
  int32_t restore(const Connection& staged, uint32_t hash, bool* duplicate);
  // Removes a restored connection that recovery does not keep after all
  // (a related connection whose master the current rules deny).
  void drop_restored(uint32_t position);
  // Whether the current rules would still admit each connection's first
  // packet (allowed[i] for the connection at positions[i], or conns[i]);
  // counts nothing.
  void admits(const uint32_t* positions, uint32_t n, bool* allowed) const;
  void admits(const Connection* const* conns, uint32_t n, bool* allowed) const;
  // Recovery: attaches an FTP slice to the restored control connection at
  // position and re-opens its pending expectations; false when every FTP
  // slice of this worker is taken.
  bool restore_ftp(uint32_t position, const FtpSlice& slice);
  // Recovery: attaches a SIP session to the restored signalling connection
  // at position (its list of calls starts empty); false when every SIP
  // session of this worker is taken.
  bool restore_sip_session(uint32_t position, const SipSession& session);
  // Recovery: attaches a call to the restored signalling connection at
  // position (which has its session) and re-opens its pinholes. Returns
  // nullptr on success, else why the call was not restored.
  const char* restore_sip_call(uint32_t position, const SipCall& call);
  // Recovery, after every connection is restored and checked: links each
  // restored media connection to its call (by the IDs the call recorded,
  // else by the pinhole it matches), whichever worker either landed on, so
  // that the call's end closes it. Returns how many were linked.
  static uint32_t relink_sip_media(const std::vector<Pipeline*>& pipelines);
  // Recovery: a restored connection that was followed by a layer-7 module
  // whose slice did not come back goes on as plain layer 4.
  void forget_l7(uint32_t position);
  // Recovery: adds a fragment record read from the store; false when its
  // datagram is already known or the table is full.
  bool restore_fragment(const FragmentRecord& record);
  // After recovery: writes the connections at `positions` that are still in
  // use (with their layer-7 records) and every fragment record into the
  // checkpoint set. Only those entries are read: the rest of a fresh table
  // may not even have been faulted in.
  void checkpoint_restored(const std::vector<uint32_t>& positions);

  const PipelineCounters& counters() const { return counters_; }
  // Connections opened per rule: [0] default action, [i + 1] rule i.
  const std::vector<uint64_t>& rule_hits() const { return rule_hits_; }
  const FlowTable& flows() const { return *flows_; }
  const FragmentTable& fragments() const { return *fragments_; }
  const ExpectationTable& expectations() const { return *expectations_; }
  // The FTP slice of a connection with l7 == ModuleId::ftp.
  const FtpSlice& ftp_slice(const Connection& c) const { return ftp_pool_[c.l7_index].slice; }
  // The SIP session of a connection with l7 == ModuleId::sip, and a call of
  // it by pool index.
  const SipSession& sip_session(const Connection& c) const {
    return sip_sessions_[c.l7_index].slice;
  }
  const SipCall& sip_call(uint16_t index) const { return sip_calls_[index].slice; }
  const Policy* policy() const { return policy_; }
  const PipelineSettings& settings() const { return settings_; }

 private:
  Pipeline() = default;

  static FragmentKey fragment_key(const ParsedPacket& p);
  Verdict decide_l2(const ParsedPacket& p);
  Verdict decide_later_fragment(const ParsedPacket& p);
  Verdict decide_icmp_error(const ParsedPacket& p);
  Verdict decide_untracked(const ParsedPacket& p);
  Verdict track(const ParsedPacket& p, uint32_t index, bool src_is_lo);
  // Opens a connection for a packet that missed. match is its policy
  // decision, or nullptr when its module refused it as an opener.
  Verdict open(const ParsedPacket& p, const FlowKey& key, uint32_t hash, bool src_is_lo,
               const Policy::Match* match, const int32_t* pending, uint16_t pending_count);
  // Re-initialises the entry at index for a new connection opened by p.
  Verdict open_in_place(const ParsedPacket& p, uint32_t index, bool src_is_lo);
  // Counts a policy decision for a would-be connection; returns
  // Reason::new_connection when it is allowed, else the drop reason.
  Reason admit(const Policy::Match& match);
  // Returns whether the packet must be dropped (its layer-7 module refused
  // it); the connection stays either way.
  bool init_connection(Connection& c, uint32_t index, const ParsedPacket& p, bool src_is_lo,
                       uint64_t master);
  bool checkpointed(uint32_t index) const { return ckpt_ != nullptr && ckpt_->covers(index); }
  // Writes the current rules' digest into the store's rules record while
  // rules_vouch_ holds, else erases it.
  void record_rules();
  void put_l4(const Connection& c, uint32_t index);
  void put_fragment(uint32_t index);
  // May a new connection be opened at index, as far as the store goes?
  bool store_admits(uint32_t index);
  // Remembers a first fragment's verdict for the later ones; false when full.
  bool record_first_fragment(const ParsedPacket& p, const Verdict& v);
  bool expired(const Connection& c) const;
  bool expectation_expired(const Expectation& e) const {
    return static_cast<int32_t>(now_ms_ - e.expires_ms) >= 0;
  }
  // Removes expired expectations, visiting at most `budget` entries.
  void clean_expectations(uint32_t budget);
  // The expectation the connection p opens was announced by, or -1.
  int32_t find_expectation(const ParsedPacket& p) const;
  // Takes expectation `index` for the connection it admits (removing it,
  // unless persistent); once that connection (id, at position) is created
  // and checkpointed, settle tells its master.
  Expectation take_expectation(uint32_t index);
  void settle_expectation(const Expectation& e, uint64_t id, uint32_t position);
  // Opens (or renews) the expectation e.key for e's master and cookie: the
  // part of opening that is the same for a local master and for one on
  // another worker (pinhole mail).
  ExpectationHost::Result put_expectation(const Expectation& e);
  // Closes the expectation if it is still that master's, with that cookie.
  void erase_expectation(const ExpectationKey& key, uint64_t master_id, uint16_t cookie);
  // Closes the connection at position if it is still connection id (a
  // media connection whose call ended): its next packet meets policy.
  bool close_connection(uint64_t id, uint32_t position);
  // The worker that owns the expectation's address pair.
  uint32_t owner_of(const ExpectationKey& key) const;
  // Posts m to worker `to`, counting it lost when that worker's ring is full.
  bool post(uint32_t to, PinholeMessage m);
  // A call of this worker by its signalling connection's ID and record
  // index, or nullptr when it has ended since.
  SipCall* live_call(uint64_t master_id, uint16_t index);
  // Layer-7 modules of a connection: follow it if one applies, release the
  // slice (and its expectations) when the connection goes.
  // bind_l7 and track_l7 return whether the packet must be dropped (a
  // malformed SIP message).
  bool bind_l7(Connection& c, uint32_t index, const ParsedPacket& p);
  bool track_l7(Connection& c, uint32_t index, const ParsedPacket& p, Dir dir);
  void release_l7(Connection& c);
  // Checkpoints the layer-7 slice of c (FTP slice or SIP session).
  void put_l7(const Connection& c);
  void put_sip_call(uint16_t index);
  // Binds a free record of `pool` to c at position index; nullptr when none.
  template <typename Slice>
  typename L7Pool<Slice>::Record* take_l7(L7Pool<Slice>& pool, ModuleId module, Connection& c,
                                          uint32_t index);
  static SipSignalling signalling_of(const Connection& c);
  // Idle timeout of a connection a layer-7 module follows: a SIP signalling
  // connection with calls lives at least as long as its calls.
  uint32_t l7_timeout_ms(const Connection& c, uint32_t l4_timeout) const;
  class Expector;
  // Frees up to `budget` idle entries that no packet of the current burst
  // refers to. Returns whether anything was freed.
  bool reclaim(uint32_t budget, const int32_t* pending, uint16_t pending_count);
  void expire(uint32_t index);
  // Erases a connection's base and layer-4 slots (expired, or closed).
  void forget_checkpoint(const Connection& c, uint32_t index);

  PipelineSettings settings_;
  const Policy* policy_ = nullptr;
  ConnIdSource* ids_ = nullptr;
  ckpt::WorkerCheckpoint* ckpt_ = nullptr;
  // Every connection in the table that a rule admitted was admitted (or
  // re-checked) by policy_: false from set_policy on a table with
  // connections, and while a reload re-checks them.
  bool rules_vouch_ = true;
  bool ckpt_fail_open_ = false;
  std::unique_ptr<FlowTable> flows_;
  std::unique_ptr<FragmentTable> fragments_;
  std::unique_ptr<ExpectationTable> expectations_;
  uint32_t expectations_open_ = 0;
  // Layer-7 records: pools per worker (the connection holds an index).
  L7Pool<FtpSlice> ftp_pool_;
  L7Pool<SipSession> sip_sessions_;
  L7Pool<SipCall> sip_calls_;
  uint32_t worker_ = 0;
  uint32_t workers_ = 1;
  PinholeMail* mail_ = nullptr;
  PipelineCounters counters_;
  std::vector<uint64_t> rule_hits_;
  uint32_t now_ms_ = 0;
  uint32_t now_s_ = 0;
  uint64_t last_clean_ns_ = 0;
  uint64_t clean_credit_ns_ = 0;  // time not yet turned into visited entries
};

}  // namespace holdfast
