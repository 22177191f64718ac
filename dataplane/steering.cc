#include "dataplane/steering.h"

#include <cstring>

namespace holdfast {
namespace {

constexpr std::array<uint8_t, kRssKeySize> make_key() {
  std::array<uint8_t, kRssKeySize> key{};
  for (size_t i = 0; i < kRssKeySize; i += 2) {
    key[i] = 0x6d;
    key[i + 1] = 0x5a;
  }
  return key;
}
constexpr std::array<uint8_t, kRssKeySize> kKey = make_key();

constexpr bool repeats_every_16_bits(const std::array<uint8_t, kRssKeySize>& key) {
  for (size_t i = 2; i < kRssKeySize; ++i) {
    if (key[i] != key[i % 2]) return false;
  }
  return true;
}
// What symmetry and the two-byte table below both rest on.
static_assert(repeats_every_16_bits(kKey));

// The 32 key bits starting at bit `pos` of the key (bit 0 = MSB of byte 0).
constexpr uint32_t key_window(size_t pos) {
  uint32_t w = 0;
  for (size_t b = 0; b < 32; ++b) {
    const size_t bit = pos + b;
    const uint32_t v = (kKey[bit / 8] >> (7 - bit % 8)) & 1u;
    w = (w << 1) | v;
  }
  return w;
}

// The hash is linear over GF(2), and an input bit's key window depends only
// on its position modulo 16, as the key repeats every 16 bits: a byte at
// an even offset of the input hashes as if it were byte 0, one at an odd
// offset as if it were byte 1. The hash of the whole input is therefore
// the hash of two bytes: the XOR of its bytes at even offsets in place of
// byte 0, of those at odd offsets in place of byte 1.
struct ToeplitzTable {
  uint32_t even[256];  // hash of byte 0 having value v, all others 0
  uint32_t odd[256];   // the same for byte 1
};

constexpr ToeplitzTable make_table() {
  ToeplitzTable t{};
  for (uint32_t v = 0; v < 256; ++v) {
    for (size_t bit = 0; bit < 8; ++bit) {
      if (v & (0x80u >> bit)) {
        t.even[v] ^= key_window(bit);
        t.odd[v] ^= key_window(8 + bit);
      }
    }
  }
  return t;
}
constexpr ToeplitzTable kTable = make_table();

// The hash of an input folded to two bytes by XOR, in memory order: the
// first is the XOR of the bytes at even offsets. Folding 16-bit halves of
// words loaded from memory keeps every byte's offset parity in either byte
// order.
uint32_t folded_hash(uint16_t folded) {
  uint8_t b[2];
  std::memcpy(b, &folded, sizeof b);
  return kTable.even[b[0]] ^ kTable.odd[b[1]];
}

}  // namespace

const std::array<uint8_t, kRssKeySize>& symmetric_rss_key() {
  return kKey;
}

uint32_t address_pair_hash(const IpAddr& src, const IpAddr& dst) {
  uint16_t halves[4];
  if (src.is_v4()) {
    // Input offsets 0-3 and 4-7: the same parities as bytes 12-15.
    uint32_t s;
    uint32_t d;
    std::memcpy(&s, &src.bytes[12], sizeof s);
    std::memcpy(&d, &dst.bytes[12], sizeof d);
    const uint32_t x = s ^ d;
    std::memcpy(halves, &x, sizeof x);
    return folded_hash(static_cast<uint16_t>(halves[0] ^ halves[1]));
  }
  uint64_t w[4];
  std::memcpy(&w[0], src.bytes.data(), 8);
  std::memcpy(&w[1], src.bytes.data() + 8, 8);
  std::memcpy(&w[2], dst.bytes.data(), 8);
  std::memcpy(&w[3], dst.bytes.data() + 8, 8);
  const uint64_t x = w[0] ^ w[1] ^ w[2] ^ w[3];
  std::memcpy(halves, &x, sizeof x);
  return folded_hash(static_cast<uint16_t>(halves[0] ^ halves[1] ^ halves[2] ^ halves[3]));
}

uint32_t owner_worker(const ParsedPacket& p, uint32_t workers) {
  if (workers <= 1 || p.ip_version == 0) return 0;
  if (p.kind == FrameKind::ip && p.is_icmp() && p.icmp.kind == IcmpHeaderInfo::Kind::error) {
    return worker_for_hash(address_pair_hash(p.icmp.inner.src, p.icmp.inner.dst), workers);
  }
  return worker_for_hash(address_pair_hash(p.src, p.dst), workers);
}

}  // namespace holdfast
