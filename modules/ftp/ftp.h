// FTP: the first layer-7 module. Follows a control connection in both
// directions and opens a pinhole (an expectation, dataplane/expectations.h)
// for every data connection it announces, so that the data connection is
// admitted as related to its control connection whatever the policy says
// about its ports.
//
// Theory of operation
// -------------------
// The control connection is a TCP connection to one of the FTP ports
// (modules.ftp.ports, 21 by default). Its bytes are read in sequence order
// per direction: the slice remembers the next sequence number to read, a
// retransmitted segment is read only past what was already read, a segment
// that arrives ahead of a gap is held (one per direction, up to kMaxLine
// bytes) until the gap is filled, and lines are assembled across segments
// (modules/ftp/ftp_parse.h). Announcements (RFC 959 PORT and 227, RFC 2428
// EPRT and 229) open an expectation:
//   PORT / EPRT from the client: the server will connect from its address to
//     the announced client address and port;
//   227 / 229 from the server: the client will connect from its address to
//     the announced server address (229: the server's own) and port.
// Security, as Linux's nf_conntrack_ftp and pf's ftp-proxy do:
//   - the announced address must be the announcing end's own address
//     (no FTP bounce, RFC 2577 3): refused as bounce;
//   - ports below 1024 are refused (RFC 2577 3: bounce to privileged
//     services);
//   - a session keeps at most kMaxPending pending expectations; a new
//     announcement replaces its oldest, so a flood of PORT commands costs
//     the table two entries per session, not the table.
// Refusals do not drop the control segment (the server will refuse or time
// out the data connection it cannot open); they are counted by reason. The
// whole slice is checkpointed when it changes, so a restarted dataplane goes
// on parsing mid-stream and re-opens the pending expectations.
#pragma once

#include <cstdint>

#include "dataplane/expectations.h"
#include "dataplane/packet.h"
#include "modules/ftp/ftp_parse.h"
#include "modules/module.h"

namespace holdfast {

struct FtpSettings {
  bool enabled = true;
  PortSet ports{{21}, 1};  // control ports
  uint32_t expectation_timeout_ms = 60'000;
  uint32_t sessions = 1024;  // FTP control connections followed per worker
};

#define HOLDFAST_FTP_COUNTERS(X)                                                   \
  X(sessions)             /* control connections followed */                       \
  X(sessions_full)        /* control connection not followed: no free FTP slice */ \
  X(sessions_restored)    /* FTP slices rebuilt from the checkpoint store */       \
  X(announcements)        /* PORT, EPRT, 227 and 229 lines read */                 \
  X(expectations_opened)  /* pinholes opened */                                    \
  X(data_connections)     /* pinholes consumed: data connections admitted */       \
  X(expectations_expired) /* pinholes that timed out unused */                     \
  X(refused_bounce)       /* announced address is not the announcer's own */       \
  X(refused_low_port)     /* announced port below 1024 */                          \
  X(refused_malformed)    /* PORT, EPRT, 227 or 229 line that does not parse */    \
  X(refused_table_full)   /* no room in the expectation table */                   \
  X(refused_in_use)       /* another session already expects that connection */    \
  X(replaced_pending)     /* a session's oldest pending expectation given up */    \
  X(out_of_order_held)    /* segment ahead of a gap, held until the gap closes */  \
  X(out_of_order_lost)    /* segment ahead of a gap that could not be held */

struct FtpCounters {
#define HOLDFAST_FTP_COUNTER_FIELD(name) uint64_t name = 0;
  HOLDFAST_FTP_COUNTERS(HOLDFAST_FTP_COUNTER_FIELD)
#undef HOLDFAST_FTP_COUNTER_FIELD
};

// One direction of the control channel.
struct FtpDirection {
  uint32_t next_seq;  // sequence number of the next byte to read
  uint32_t held_seq;  // sequence number of the held segment's first byte
  uint16_t held_len;  // bytes held (0: none)
  uint8_t synced;     // next_seq is known (the SYN was seen)
  uint8_t reserved;
  uint8_t held[ftp::kMaxLine];
  ftp::LineAssembler line;
};

struct FtpPending {
  ExpectationKey key;
  uint32_t expires_ms;
  uint32_t reserved;
};

struct FtpSlice {
  static constexpr size_t kMaxPending = 2;
  FtpDirection dir[2];              // by Dir: original is the client
  FtpPending pending[kMaxPending];  // oldest first
  uint8_t pending_count;
  uint8_t reserved[7];
};
static_assert(std::is_trivially_copyable_v<FtpSlice>);
static_assert(sizeof(FtpSlice) == 2200, "FTP slice: checkpointed whole on every change");

struct FtpModule {
  static constexpr ModuleId kId = ModuleId::ftp;
  static constexpr uint16_t kSchemaVersion = 1;

  static void open(FtpSlice& s);
  // A TCP segment of the control connection that the TCP module accepted,
  // travelling in direction dir. Returns whether the slice changed.
  static bool on_segment(FtpSlice& s, const ParsedPacket& p, Dir dir, uint32_t now_ms,
                         const FtpSettings& settings, ExpectationHost& host, FtpCounters& counters);
  // The connection ends: closes its pending expectations.
  static void close(FtpSlice& s, ExpectationHost& host);
  // An expectation of this session was consumed by its data connection.
  static void consumed(FtpSlice& s, const ExpectationKey& key);
  // After recovery: re-opens the pending expectations (with their expiry
  // times; expired ones are removed by the cleaner), forgets any the table
  // refuses. Returns how many are open.
  static uint32_t reopen(FtpSlice& s, ExpectationHost& host);
  // Restore hook: is a slice read from the store sane?
  static bool valid(const FtpSlice& s);
};

}  // namespace holdfast
