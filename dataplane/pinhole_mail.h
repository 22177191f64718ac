// Pinhole mail: what workers tell each other about SIP media whose address
// pair another worker owns.
//
// Workers own address pairs (dataplane/steering.h). A call's signalling
// connection lives on the worker that owns the signalling addresses; its
// media may use other addresses (modules.sip.media_ranges), which another
// worker may own. The media's first packet arrives at that worker, so the
// pinhole must be in that worker's expectation table, and the call, which
// lives with its signalling, must learn of the media connection so that
// its end closes it. Four messages do that:
//   open          master's worker -> owner: open or renew the pinhole
//   close         master's worker -> owner: close it (call ended, media moved)
//   media_opened  owner -> master's worker: a connection came in through it
//   close_media   master's worker -> owner: the call ended, close that media
// Each worker has one multi-producer, single-consumer ring of messages
// (rte_ring, lock-free); the owner reads its ring at the top of every loop,
// before it receives packets. A pinhole the master's worker opened before
// the packet that announced it left is therefore in the owner's table
// before any answer to that packet can arrive.
//
// The messages carry no state that a crash could lose: pinholes are derived
// from the call record (checkpointed before the announcing packet leaves)
// and re-opened by recovery, and media connections carry their master's ID
// in their own record, by which recovery relinks them to their call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/expectations.h"

struct rte_ring;

namespace holdfast {

struct PinholeMessage {
  enum class Kind : uint8_t { open = 1, close, media_opened, close_media };
  Kind kind;
  uint8_t from;     // the worker that sent it
  uint16_t cookie;  // the call's index in its worker's call pool
  uint32_t expires_ms;
  uint64_t master_id;  // the signalling connection
  uint64_t media_id;   // media_opened, close_media: the media connection
  uint32_t media_pos;  // its position in the owner's flow table
  uint32_t reserved;
  ExpectationKey key;  // open, close: the pinhole
};
static_assert(sizeof(PinholeMessage) == 80);
static_assert(std::is_trivially_copyable_v<PinholeMessage>);

class PinholeMail {
 public:
  // Messages a worker's ring holds: every pinhole of 256 calls at once.
  static constexpr uint32_t kRingSize = 4096;

  // One ring per worker, on the given NUMA sockets (one per worker).
  static std::unique_ptr<PinholeMail> create(const std::vector<int>& sockets, std::string* error);
  ~PinholeMail();
  PinholeMail(const PinholeMail&) = delete;
  PinholeMail& operator=(const PinholeMail&) = delete;

  // False when the owner's ring is full (the message is lost; the caller
  // counts it).
  bool post(uint32_t to, const PinholeMessage& m);
  // Up to max messages for worker `to`; returns how many.
  uint32_t receive(uint32_t to, PinholeMessage* out, uint32_t max);

 private:
  PinholeMail() = default;
  std::vector<rte_ring*> rings_;
};

}  // namespace holdfast
