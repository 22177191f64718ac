// Expectations: pinholes a layer-7 module opens for a connection it has seen
// announced (an FTP data connection, later RTP media), so that the
// connection's first packet is admitted as related to its master instead of
// going to policy.
//
// Theory of operation: an expectation is exact on the protocol, both
// addresses, the destination port and the port the opener's packets arrive
// on (a data connection from the wrong side is a forgery and goes to
// policy); only the source port is open, because announcements do not carry
// it. It is consumed by the first
// connection that matches and expires after the module's timeout. Each
// expectation records its master (connection ID and table position) and the
// module that opened it, which keeps the list of its master's pending
// expectations (a bounded number, so one session cannot fill the table).
//
// A module may tag an expectation with a cookie of its own (SIP: the call
// that opened it); a master's expectations are told apart by key and
// cookie. FTP's are consumed by their data connection; SIP's stay while
// their call lives (persistent), so a media flow that idled out comes back.
//
// One table per worker, written only by its worker. An FTP data connection
// always lands on its master's worker: its addresses are the control
// connection's (the module refuses any other address as an FTP bounce) and
// workers own address pairs (dataplane/steering.h). SIP media may use
// other addresses (modules.sip.media_ranges): an expectation whose address
// pair another worker owns is posted to that worker
// (dataplane/pinhole_mail.h) and kept in its table with a remote master.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "dataplane/flow_table.h"
#include "dataplane/ip_address.h"
#include "dataplane/packet.h"
#include "modules/module.h"

namespace holdfast {

struct ExpectationKey {
  IpAddr src;  // who will open the connection
  IpAddr dst;
  uint16_t dport;
  uint8_t proto;
  uint8_t zone;
  uint8_t side;     // Side the opener's packets arrive on
  uint8_t pad[11];  // 48 bytes, zero: keys compare as bytes (dataplane/flow_key.h)
};
static_assert(sizeof(ExpectationKey) == 48);
static_assert(std::is_trivially_copyable_v<ExpectationKey>);

inline ExpectationKey make_expectation_key(const IpAddr& src, const IpAddr& dst, uint16_t dport,
                                           uint8_t proto, uint8_t zone, Side side) {
  ExpectationKey k;
  k.src = src;
  k.dst = dst;
  k.dport = dport;
  k.proto = proto;
  k.zone = zone;
  k.side = static_cast<uint8_t>(side);
  std::memset(k.pad, 0, sizeof k.pad);
  return k;
}

inline bool operator==(const ExpectationKey& a, const ExpectationKey& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

struct Expectation {
  ExpectationKey key;
  uint64_t master_id;     // 0: the entry is free
  uint32_t master_pos;    // the master's position in the worker's flow table
  uint32_t expires_ms;    // clock of expiry, milliseconds mod 2^32
  ModuleId module;        // the module that opened it
  uint8_t persistent;     // 1: not consumed by the connections it admits
  uint16_t cookie;        // the module's tag (SIP: the call's record index)
  uint8_t master_worker;  // the worker the master lives on
  uint8_t reserved[3];
  // master_pos of an expectation whose master lives on another worker.
  static constexpr uint32_t kRemoteMaster = UINT32_MAX;
  bool in_use() const { return master_id != 0; }
  bool remote() const { return master_pos == kRemoteMaster; }
};
static_assert(sizeof(Expectation) == 72);

using ExpectationTable = HashedTable<ExpectationKey, Expectation>;

// How a module opens and closes expectations for its master connection
// (the pipeline binds the master). Expectations are opened and closed only
// through here, so a module's list of pending ones and the table agree.
class ExpectationHost {
 public:
  enum class Result : uint8_t {
    opened,      // opened, or an expectation of this master refreshed
    table_full,  // no room in the table
    in_use,      // another master (or another cookie) expects the same connection
    foreign,     // another worker owns the key's address pair and cannot be told
  };
  virtual ~ExpectationHost() = default;
  virtual Result open_expectation(const ExpectationKey& key, uint32_t expires_ms,
                                  uint16_t cookie) = 0;
  // Closes it if it is still this master's, with this cookie.
  virtual void close_expectation(const ExpectationKey& key, uint16_t cookie) = 0;
};

}  // namespace holdfast
