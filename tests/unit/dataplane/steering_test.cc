// The owner of a connection: the symmetric Toeplitz hash of its addresses.
#include "dataplane/steering.h"

#include <gtest/gtest.h>
#include <rte_thash.h>

#include <random>

namespace holdfast {
namespace {

// DPDK's software Toeplitz hash (rte_softrss: a loop over the input's set
// bits) of the addresses as a NIC takes them, source then destination, in
// 32-bit words of network order: what address_pair_hash must equal for
// the NIC to deliver a connection's packets to their owner.
uint32_t nic_hash(const IpAddr& src, const IpAddr& dst) {
  uint32_t words[8];
  uint32_t n = 0;
  const size_t first = src.is_v4() ? 12 : 0;
  for (const IpAddr* a : {&src, &dst}) {
    for (size_t i = first; i < 16; i += 4) {
      words[n++] = uint32_t{a->bytes[i]} << 24 | uint32_t{a->bytes[i + 1]} << 16 |
                   uint32_t{a->bytes[i + 2]} << 8 | a->bytes[i + 3];
    }
  }
  return rte_softrss(words, n, symmetric_rss_key().data());
}

IpAddr random_v4(std::mt19937& rng) {
  return IpAddr::from_v4_host(static_cast<uint32_t>(rng()));
}

IpAddr random_v6(std::mt19937& rng) {
  IpAddr a;
  for (uint8_t& b : a.bytes) b = static_cast<uint8_t>(rng());
  a.bytes[0] = 0x20;  // never IPv4-mapped
  return a;
}

TEST(Steering, HashIsTheToeplitzHashANicComputes) {
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const IpAddr s = random_v4(rng);
    const IpAddr d = random_v4(rng);
    ASSERT_EQ(address_pair_hash(s, d), nic_hash(s, d)) << s.to_string() << " " << d.to_string();
  }
  for (int i = 0; i < 20000; ++i) {
    const IpAddr s = random_v6(rng);
    const IpAddr d = random_v6(rng);
    ASSERT_EQ(address_pair_hash(s, d), nic_hash(s, d)) << s.to_string() << " " << d.to_string();
  }
  // Each single bit of the input on its own, where a mistake in the part
  // of one byte position cannot hide behind the others.
  for (size_t bit = 0; bit < 64; ++bit) {
    uint32_t hosts[2] = {0, 0};
    hosts[bit / 32] = 0x80000000u >> (bit % 32);
    const IpAddr s = IpAddr::from_v4_host(hosts[0]);
    const IpAddr d = IpAddr::from_v4_host(hosts[1]);
    EXPECT_EQ(address_pair_hash(s, d), nic_hash(s, d)) << "IPv4 input bit " << bit;
  }
  for (size_t bit = 0; bit < 256; ++bit) {
    IpAddr a[2];
    a[0].bytes[0] = a[1].bytes[0] = 0x20;
    a[bit / 128].bytes[bit % 128 / 8] ^= static_cast<uint8_t>(0x80u >> (bit % 8));
    EXPECT_EQ(address_pair_hash(a[0], a[1]), nic_hash(a[0], a[1])) << "IPv6 input bit " << bit;
  }
}

TEST(Steering, BothDirectionsHashAlike) {
  std::mt19937 rng(11);
  for (int i = 0; i < 1000; ++i) {
    const IpAddr s4 = random_v4(rng);
    const IpAddr d4 = random_v4(rng);
    EXPECT_EQ(address_pair_hash(s4, d4), address_pair_hash(d4, s4));
    const IpAddr s6 = random_v6(rng);
    const IpAddr d6 = random_v6(rng);
    EXPECT_EQ(address_pair_hash(s6, d6), address_pair_hash(d6, s6));
  }
}

}  // namespace
}  // namespace holdfast
