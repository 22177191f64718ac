// Synthetic traffic for holdfast-bench: the rule set, the connection tuples
// and the wire frames the benchmarks feed through a Pipeline.
//
// Everything is generated from fixed seeds, so two runs feed bit-identical
// frames in the same order. Frames are built here independently of the
// parser (own checksum code), so a parser that disagrees with them shows up
// as drops, which the benchmarks refuse to time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/packet.h"
#include "dataplane/policy.h"

namespace holdfast::bench {

// One TCP connection between an inside client and an outside server.
// Addresses are IPv4, host byte order.
struct Tuple {
  uint32_t client_addr;
  uint32_t server_addr;
  uint16_t client_port;
  uint16_t server_port;
  uint32_t client_isn;
  uint32_t server_isn;
};

// count distinct tuples: clients spread over 10.0.0.0/8 with ephemeral
// ports, servers over 198.18.0.0/15 (RFC 2544's benchmarking range) on web
// ports, initial sequence numbers random. Every tuple is allowed by
// benchmark_rules() through the rule "web-out".
std::vector<Tuple> make_tuples(size_t count, uint64_t seed);

// A small edge-firewall rule set (14 rules, IPv4 and IPv6, default deny), in
// which the benchmark's traffic matches the sixth rule, so classification
// walks a realistic trie rather than a one-rule one.
std::vector<Rule> benchmark_rules();
std::unique_ptr<Policy> compile_benchmark_policy();

// Which segment of a connection to build.
enum class Segment : uint8_t {
  syn,         // client -> server, with MSS, window scale and SACK-permitted options
  syn_ack,     // server -> client, same options
  client_ack,  // client -> server, pure ACK after the handshake
  server_ack,  // server -> client, pure ACK after the handshake
};

// Side of the firewall the segment arrives on.
inline Side side_of(Segment s) {
  return s == Segment::syn || s == Segment::client_ack ? Side::inside : Side::outside;
}

// Largest frame build_frame writes.
inline constexpr size_t kMaxFrame = 128;

// Writes the Ethernet/IPv4/TCP frame for segment s of connection t to out
// (at least kMaxFrame bytes) with valid IPv4 and TCP checksums, padded to
// the 60-byte Ethernet minimum (64 on the wire with the FCS). Returns its
// length: 60 for the pure ACKs, 66 for SYN and SYN/ACK.
uint32_t build_frame(const Tuple& t, Segment s, uint8_t* out);

// Largest payload build_data_frame writes (the frame stays within kMaxFrame).
inline constexpr uint32_t kMaxPayload = kMaxFrame - 14 - 20 - 20;

// A data segment (ACK and PSH, `payload` bytes, at most kMaxPayload) of an
// established connection t, from the client (inside) or the server
// (outside), with sequence number seq and acknowledgement ack, the same
// windows as the pure ACKs, valid checksums, padded to 60 bytes. With up to
// 6 bytes of data the frame is 60 bytes, as long as a pure ACK.
uint32_t build_data_frame(const Tuple& t, bool from_client, uint32_t seq, uint32_t ack,
                          uint32_t payload, uint8_t* out);

// Frames in slots of a fixed stride in DPDK memory (rte_malloc: on
// hugepages when the EAL has them, as mbufs would be), with the side each
// arrives on. Read in order by the benchmarks, like an RX ring.
class FrameStore {
 public:
  static std::unique_ptr<FrameStore> create(size_t count, size_t stride, std::string* error);
  ~FrameStore();
  FrameStore(const FrameStore&) = delete;
  FrameStore& operator=(const FrameStore&) = delete;

  uint8_t* slot(size_t i) { return base_ + i * stride_; }
  const uint8_t* frame(size_t i) const { return base_ + i * stride_; }
  uint32_t len(size_t i) const { return len_[i]; }
  Side side(size_t i) const { return side_[i]; }
  void set(size_t i, uint32_t len, Side side) {
    len_[i] = static_cast<uint16_t>(len);
    side_[i] = side;
  }
  size_t size() const { return count_; }

 private:
  FrameStore() = default;

  uint8_t* base_ = nullptr;
  size_t count_ = 0;
  size_t stride_ = 0;
  std::vector<uint16_t> len_;
  std::vector<Side> side_;
};

}  // namespace holdfast::bench
