// SIP: the second layer-7 module, for video conferencing. Follows SIP
// signalling (RFC 3261) over UDP and TCP, reads the SDP offers and answers
// it carries (RFC 4566, RFC 3264) and opens pinholes (expectations,
// dataplane/expectations.h) for the RTP and RTCP media (RFC 3550) of every
// call, so media is admitted as related to its signalling connection
// whatever the policy says about its ports.
//
// Theory of operation
// -------------------
// A signalling connection is a UDP flow or TCP connection opened to one of
// the SIP ports (modules.sip.ports, 5060 by default). Its state is a
// session: the reader of each TCP direction (in sequence order, messages
// delimited by Content-Length; modules/sip/sip_parse.h) and the calls it
// carries. A UDP datagram is one message. A message that does not parse is
// dropped (reason sip_malformed); on TCP the reader does not move past it,
// so its retransmission meets the same verdict.
//
// A call is a dialog by Call-ID, started by an INVITE. Each call has its own
// record (so a trunk carrying many calls costs a record per call, not a
// bigger session), checkpointed whole whenever it changes. Offer/answer: an
// SDP in an INVITE or UPDATE is an offer; SDP in the other direction's
// reliable or provisional response (or ACK/PRACK) answers it, and the pair
// becomes the call's active descriptions. From the active descriptions, for
// every stream both parties accept (audio or video, port non-zero, address
// the announcer's own signalling address or inside modules.sip.media_ranges,
// port 1024 or above), the call keeps pinholes in both directions, for RTP
// and RTCP:
//   to A: from B's stream address to A's stream address and port (and RTCP
//         port), arriving on the port B's signalling arrives on;
//   to B: the same the other way.
// Pinholes are derived from the descriptions whenever needed (never stored),
// live as long as the call and are not consumed: a media flow that idled out
// during a call on hold comes back through them. A media connection admitted
// through a pinhole carries the signalling connection's ID as its master and
// is recorded in its call. The call ends on BYE, on CANCEL before it is
// confirmed, on a final error response to its initial INVITE, or with its
// signalling connection: its pinholes close and its media connections are
// closed at once (their next packet meets policy). After call_timeout
// without signalling the pinholes expire (exactly: they are expectations
// with that expiry) and the call is forgotten, but its live media is not
// cut: a long call without re-INVITEs goes on until its media idles out.
//
// Bounds: 4 streams per description (16 pinholes per call), calls_per_session
// calls per signalling connection (a new INVITE replaces the oldest call not
// yet confirmed, or is not followed), pools of sessions and calls per
// worker. INVITEs alone open no pinhole: only answered calls do.
#pragma once

#include <cstdint>

#include "dataplane/expectations.h"
#include "dataplane/ip_address.h"
#include "dataplane/packet.h"
#include "modules/module.h"
#include "modules/sip/sip_parse.h"

namespace holdfast {

struct SipSettings {
  bool enabled = true;
  PortSet ports{{5060}, 1};  // signalling ports
  static constexpr size_t kMaxRanges = 16;
  Cidr media_ranges[kMaxRanges];
  uint8_t range_count = 0;
  static constexpr uint8_t kMaxCallsPerSession = 32;
  uint8_t calls_per_session = kMaxCallsPerSession;
  uint32_t call_timeout_ms = 3'600'000;
  uint32_t sessions = 1024;  // signalling connections followed per worker
  uint32_t calls = 4096;     // calls followed per worker

  bool in_media_range(const IpAddr& a) const {
    for (uint8_t i = 0; i < range_count; ++i) {
      if (media_ranges[i].contains(a)) return true;
    }
    return false;
  }
};

#define HOLDFAST_SIP_COUNTERS(X)                                                           \
  X(sessions)             /* signalling connections followed */                            \
  X(sessions_full)        /* signalling connection not followed: no free session */        \
  X(sessions_restored)    /* sessions rebuilt from the checkpoint store */                 \
  X(messages)             /* SIP messages read */                                          \
  X(malformed)            /* messages that do not parse: dropped */                        \
  X(calls)                /* calls followed */                                             \
  X(calls_restored)       /* calls rebuilt from the checkpoint store */                    \
  X(calls_ended)          /* BYE, CANCEL, rejected, or with the signalling connection */   \
  X(calls_timed_out)      /* no signalling for call_timeout */                             \
  X(calls_replaced)       /* an unconfirmed call given up for a new INVITE */              \
  X(calls_refused)        /* INVITE not followed: the session's calls are all confirmed */ \
  X(calls_full)           /* INVITE not followed: no free call record in the worker */     \
  X(offers)               /* SDP offers read */                                            \
  X(answers)              /* SDP answers read: active descriptions set */                  \
  X(pinholes_opened)      /* expectations opened (RTP and RTCP, each direction) */         \
  X(media_connections)    /* connections admitted through a pinhole */                     \
  X(media_closed)         /* media connections closed when their call ended */             \
  X(refused_address)      /* stream address not the announcer's nor in media_ranges */     \
  X(refused_low_port)     /* stream port below 1024 */                                     \
  X(refused_table_full)   /* no room in the expectation table */                           \
  X(refused_in_use)       /* another call already expects that flow */                     \
  X(refused_other_worker) /* media on another worker, which could not be told */           \
  X(streams_ignored)      /* m= lines beyond the fourth */                                 \
  X(out_of_order_lost)    /* TCP segment ahead of a gap: message in progress given up */   \
  X(mail_sent)            /* pinhole messages posted to other workers (pinhole mail) */    \
  X(mail_lost)            /* a pinhole message to another worker: its ring was full */

struct SipCounters {
#define HOLDFAST_SIP_COUNTER_FIELD(name) uint64_t name = 0;
  HOLDFAST_SIP_COUNTERS(HOLDFAST_SIP_COUNTER_FIELD)
#undef HOLDFAST_SIP_COUNTER_FIELD
};

// One direction of a TCP signalling connection.
struct SipStream {
  uint32_t next_seq;  // sequence number of the next byte to read
  uint8_t synced;     // next_seq is known (the SYN was seen)
  uint8_t reserved[3];
  sip::StreamReader reader;
};

// A signalling connection's state. The list of calls is rebuilt from the
// call records on recovery (each names its signalling connection).
struct SipSession {
  SipStream dir[2];                                  // by Dir; TCP only
  uint16_t calls[SipSettings::kMaxCallsPerSession];  // indices into the worker's call pool
  uint8_t call_count;
  uint8_t reserved[7];
};
static_assert(std::is_trivially_copyable_v<SipSession>);
static_assert(sizeof(SipSession) == 1096, "SIP session: checkpointed whole on every change");

// A media connection admitted through one of a call's pinholes.
struct SipMedia {
  uint64_t id;
  uint32_t position;  // in its worker's flow table
  uint16_t worker;    // the worker that owns its address pair
  uint16_t reserved;
};

struct SipCall {
  static constexpr size_t kMaxMedia = 16;
  static constexpr size_t kMaxPinholes = sip::kMaxStreams * 4;
  enum State : uint8_t { inviting = 1, confirmed = 2 };
  uint64_t call_id_hash;
  char call_id[sip::kMaxCallId];  // for display
  uint8_t call_id_len;
  uint8_t state;
  uint8_t has_active;   // 1: active[] holds an offer and its answer
  uint8_t pending_dir;  // Dir of the pending offer, kNoOffer: none
  uint8_t media_count;
  uint8_t media_next;  // ring position once media[] is full
  uint16_t session;    // index of the signalling connection's session
  uint32_t expires_ms;
  uint32_t started_s;
  uint32_t reserved;
  sip::SessionDescription active[2];  // by Dir of the party that sent it
  sip::SessionDescription pending;
  SipMedia media[kMaxMedia];

  static constexpr uint8_t kNoOffer = 0xff;
};
static_assert(std::is_trivially_copyable_v<SipCall>);
static_assert(sizeof(SipCall) == 648, "SIP call: checkpointed whole on every change");

// The signalling connection's addresses and ports, by Dir: what pinholes
// are derived from.
struct SipSignalling {
  IpAddr addr[2];  // source address of each direction's packets
  Side side[2];    // the port each direction's packets arrive on
  uint8_t zone;
};

// What the SIP module needs of the pipeline besides expectations: the
// worker's pool of call records and its media connections.
class SipHost : public ExpectationHost {
 public:
  virtual SipCall* call(uint16_t index) = 0;
  // A free call record's index, or -1.
  virtual int32_t new_call() = 0;
  virtual void free_call(uint16_t index) = 0;
  // Checkpoints a changed call record.
  virtual void put_call(uint16_t index) = 0;
  // Closes a media connection of an ending call (if it is still that
  // connection); returns whether it was.
  virtual bool close_media(const SipMedia& m) = 0;
};

struct SipModule {
  static constexpr ModuleId kId = ModuleId::sip;
  static constexpr uint16_t kSchemaVersion = 1;

  // What a packet of the signalling connection did.
  struct Result {
    bool drop = false;             // a malformed message: drop the packet
    bool session_changed = false;  // checkpoint the session record
  };

  static void open(SipSession& s);
  // A packet of the signalling connection (a UDP datagram, or a TCP segment
  // the TCP module accepted) travelling in direction dir.
  static Result on_packet(SipSession& s, const ParsedPacket& p, Dir dir, const SipSignalling& sig,
                          uint32_t now_ms, const SipSettings& settings, SipHost& host,
                          SipCounters& counters);
  // The signalling connection ends: every call ends (those past their
  // timeout as timed out, leaving their media be).
  static void close(SipSession& s, const SipSignalling& sig, uint32_t now_ms,
                    const SipSettings& settings, SipHost& host, SipCounters& counters);
  // A media connection (id, at position on worker) was admitted through a
  // pinhole of the call.
  static void media_opened(SipCall& call, uint64_t id, uint32_t position, uint32_t worker);
  // Ends calls of the session that have timed out; returns how many.
  static uint32_t expire_calls(SipSession& s, const SipSignalling& sig, uint32_t now_ms,
                               const SipSettings& settings, SipHost& host, SipCounters& counters);
  // After recovery: re-opens the pinholes of a restored call (index) of
  // session s. Returns how many are open.
  static uint32_t reopen(const SipCall& call, uint16_t index, const SipSignalling& sig,
                         const SipSettings& settings, SipHost& host);
  // The pinholes of a call (at most SipCall::kMaxPinholes), for recovery's
  // relinking of media connections and for the CLI. Refusals are counted
  // when counters is not nullptr.
  static uint32_t pinholes(const SipCall& call, const SipSignalling& sig,
                           const SipSettings& settings, ExpectationKey* out, SipCounters* counters);
  // Restore hooks: are records read from the store sane?
  static bool valid(const SipSession& s);
  static bool valid(const SipCall& c);
  static const char* state_name(const SipCall& c);
};

}  // namespace holdfast
