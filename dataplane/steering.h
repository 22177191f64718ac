// Which worker owns a packet.
//
// Theory of operation: a worker owns every connection between one pair of
// addresses, so both directions, every fragment (which carries no ports) and
// every ICMP error (steered by the addresses it quotes) meet the state they
// need on one worker. The owner is the Toeplitz hash (Microsoft RSS
// specification) of the source and destination addresses under the key
// 0x6d5a repeated, which is symmetric: swapping the addresses shifts every
// input bit by a multiple of 16, and the key repeats every 16 bits (Woo and
// Park, "Scalable TCP Session Monitoring with Symmetric Receive-side
// Scaling", 2012). It is exactly what a NIC computes with symmetric IP-only
// RSS, so with the RETA the dataplane programs (entry i -> worker
// (i % kRetaSpan) % workers) the NIC already delivers almost every packet to
// its owner; a worker hands the rest to their owner over a ring.
//
// The hash is linear over GF(2), and as the key repeats every 16 bits a
// byte's part in it depends only on whether its offset is even or odd: it
// is computed by folding the input to two bytes by XOR and looking both up
// in a 2 KiB table (steering.cc), instead of a loop over bits.
#pragma once

#include <array>
#include <cstdint>

#include "dataplane/ip_address.h"
#include "dataplane/packet.h"

namespace holdfast {

// The RSS key programmed into NICs (40 bytes, as most NICs take).
inline constexpr size_t kRssKeySize = 40;
const std::array<uint8_t, kRssKeySize>& symmetric_rss_key();

// Largest worker count: the RETA pattern repeats every kRetaSpan entries,
// and every NIC's RETA size is a multiple of it.
inline constexpr uint32_t kRetaSpan = 64;
inline constexpr uint32_t kMaxWorkers = kRetaSpan;

// Toeplitz hash of (src, dst) with symmetric_rss_key(): 4+4 address bytes
// for IPv4, 16+16 for IPv6, as a NIC hashes them.
uint32_t address_pair_hash(const IpAddr& src, const IpAddr& dst);

inline uint32_t worker_for_hash(uint32_t hash, uint32_t workers) {
  return (hash % kRetaSpan) % workers;
}

// The owner of a parsed packet among `workers`. Frames without addresses
// (non-IP, malformed before the addresses) belong to worker 0; they carry no
// state.
uint32_t owner_worker(const ParsedPacket& p, uint32_t workers);

}  // namespace holdfast
