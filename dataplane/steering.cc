#include "dataplane/steering.h"

namespace holdfast {
namespace {

constexpr size_t kMaxInputBytes = 32;  // IPv6 source and destination

constexpr std::array<uint8_t, kRssKeySize> make_key() {
  std::array<uint8_t, kRssKeySize> key{};
  for (size_t i = 0; i < kRssKeySize; i += 2) {
    key[i] = 0x6d;
    key[i + 1] = 0x5a;
  }
  return key;
}
constexpr std::array<uint8_t, kRssKeySize> kKey = make_key();

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

struct ToeplitzTable {
  // contribution[i][v]: hash of input byte i having value v, all others 0.
  uint32_t contribution[kMaxInputBytes][256];
};

constexpr ToeplitzTable make_table() {
  ToeplitzTable t{};
  for (size_t i = 0; i < kMaxInputBytes; ++i) {
    for (uint32_t v = 0; v < 256; ++v) {
      uint32_t h = 0;
      for (size_t bit = 0; bit < 8; ++bit) {
        if (v & (0x80u >> bit)) h ^= key_window(8 * i + bit);
      }
      t.contribution[i][v] = h;
    }
  }
  return t;
}
constexpr ToeplitzTable kTable = make_table();

}  // namespace

const std::array<uint8_t, kRssKeySize>& symmetric_rss_key() {
  return kKey;
}

uint32_t address_pair_hash(const IpAddr& src, const IpAddr& dst) {
  uint32_t h = 0;
  if (src.is_v4()) {
    for (size_t i = 0; i < 4; ++i) {
      h ^= kTable.contribution[i][src.bytes[12 + i]];
      h ^= kTable.contribution[4 + i][dst.bytes[12 + i]];
    }
    return h;
  }
  for (size_t i = 0; i < 16; ++i) {
    h ^= kTable.contribution[i][src.bytes[i]];
    h ^= kTable.contribution[16 + i][dst.bytes[i]];
  }
  return h;
}

uint32_t owner_worker(const ParsedPacket& p, uint32_t workers) {
  if (workers <= 1 || p.ip_version == 0) return 0;
  if (p.kind == FrameKind::ip && p.is_icmp() && p.icmp.kind == IcmpHeaderInfo::Kind::error) {
    return worker_for_hash(address_pair_hash(p.icmp.inner.src, p.icmp.inner.dst), workers);
  }
  return worker_for_hash(address_pair_hash(p.src, p.dst), workers);
}

}  // namespace holdfast
